#!/usr/bin/env python
"""Which capture measure tells a night probe from a day one, and says nothing about the person.

Usage: .venv/bin/python scripts/probe_axes.py [--model sface] [--data ../shared/data]
       [--condition PRESET ...]   (default: clean, doorbell-day-3m, doorbell-night-3m, cctv-4m)

For every 2018 portrait (congress_2018.csv) under each condition (engine/_conditions.py, seeded),
the face a search would use (the largest, found as the audit finds it: detect_upscaled on the
degraded photo) and its Quality: brightness (mean luminance of the face box, 0-100) and noise
(Immerkaer's estimate, 8-bit gray levels, engine/_quality.py measure_noise). Prints, per condition
and per race/ethnicity group of the manifest (published lists, never inferred from a photo), the
5th / 10th / 50th / 90th / 95th percentiles of both and the share of faces at or above
NOISY_LEVELS: the data behind engine/_quality.py NOISY_LEVELS (docs/public-audit/probe-bands.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit.audit import read_manifest  # noqa: E402
from faceaudit.engine import (  # noqa: E402
    NOISY_LEVELS,
    PRESETS,
    degrade,
    detect_upscaled,
    load_image,
    load_model,
    read_bytes,
)

GROUPS = ("all", "white_non_hispanic", "black", "hispanic", "asian_pacific")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="sface")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--condition", action="append", default=None)
    args = ap.parse_args()
    names = args.condition or ["clean", "doorbell-day-3m", "doorbell-night-3m", "cctv-4m"]
    records = read_manifest(args.data / "manifests" / "congress_2018.csv").records
    detector = load_model(args.model).detector
    print(f"model {args.model}; {len(records)} probes; noisy at or above {NOISY_LEVELS:g} gray levels\n")
    print("| condition | group | faces | brightness p5 / p10 / p50 / p90 / p95 | noise p5 / p50 / p95 | noisy |")
    print("|---|---|---|---|---|---|")
    for name in names:
        cond = PRESETS[name]
        rows = []
        for r in records:
            img = load_image(read_bytes(r.path))
            faces = (detector.detect(img, 1) if cond.is_clean
                     else detect_upscaled(detector, degrade(detector, img, cond).image, 1)[0])
            if faces:
                q = faces[0].quality
                groups = set((r.label("race") or "").split(";"))
                rows.append((q.brightness, q.noise, groups))
        for g in GROUPS:
            mine = [(b, n) for b, n, gs in rows if g == "all" or g in gs]
            if not mine:
                continue
            b = np.array([x for x, _ in mine])
            n = np.array([y for _, y in mine])
            bp = " / ".join(f"{v:.1f}" for v in np.percentile(b, [5, 10, 50, 90, 95]))
            npc = " / ".join(f"{v:.1f}" for v in np.percentile(n, [5, 50, 95]))
            noisy = int((n >= NOISY_LEVELS).sum())
            print(f"| {name} | {g} | {len(mine)} | {bp} | {npc} | {noisy} ({100 * noisy / len(mine):.1f}%) |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
