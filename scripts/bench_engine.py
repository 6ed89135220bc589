#!/usr/bin/env python
"""Benchmark the face engine: detect and embed milliseconds per face, faces per second.

Usage: python scripts/bench_engine.py [--images N] [--models sface,dlib] [--data ../shared/data]

Runs each installed model over the same images in one process, side by side
(absolute times on a shared machine are noisy; compare within one run). Uses
the public shared data when present, else the committed test photos.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit.engine import FaceEngine, get_model, load_image  # noqa: E402


def pick_images(data: Path, n: int):
    if data.is_dir():
        paths = sorted((data / "congress115" / "photos_2018").glob("*.jpg"))[: n // 2]
        paths += sorted((data / "meds" / "images").glob("*.jpg"))[: n - len(paths)]
    else:
        paths = sorted((ROOT / "tests" / "data").rglob("*.jpg"))
    return paths[:n]


def bench(model: str, images):
    engine = FaceEngine(model)
    engine.detect(images[0])  # load + warm up
    det_ms, emb_ms, faces = [], [], 0
    t_all = time.perf_counter()
    for img in images:
        t0 = time.perf_counter()
        result = engine.detect(img)
        t1 = time.perf_counter()
        det_ms.append((t1 - t0) * 1000)
        for face in result.faces:
            t2 = time.perf_counter()
            engine.embed(img, face)
            emb_ms.append((time.perf_counter() - t2) * 1000)
            faces += 1
    wall = time.perf_counter() - t_all
    return {
        "model": model,
        "images": len(images),
        "faces": faces,
        "detect_ms_p50": statistics.median(det_ms),
        "detect_ms_mean": statistics.fmean(det_ms),
        "embed_ms_p50": statistics.median(emb_ms) if emb_ms else float("nan"),
        "embed_ms_mean": statistics.fmean(emb_ms) if emb_ms else float("nan"),
        "faces_per_s": faces / wall if wall else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--models", default="sface,dlib")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    paths = pick_images(args.data, args.images)
    images = [load_image(p) for p in paths]  # decode outside the timed loop
    sizes = sorted({f"{i.width}x{i.height}" for i in images})
    print(f"{len(images)} images ({', '.join(sizes[:4])}{'...' if len(sizes) > 4 else ''}), one thread")
    print(f"{'model':8} {'faces':>5} {'detect ms/img p50':>18} {'mean':>7} "
          f"{'embed ms/face p50':>18} {'mean':>7} {'faces/s':>8}")
    for name in args.models.split(","):
        if not get_model(name).is_installed():
            print(f"{name:8} not installed")
            continue
        r = bench(name, images)
        print(f"{r['model']:8} {r['faces']:5d} {r['detect_ms_p50']:18.1f} {r['detect_ms_mean']:7.1f} "
              f"{r['embed_ms_p50']:18.1f} {r['embed_ms_mean']:7.1f} {r['faces_per_s']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
