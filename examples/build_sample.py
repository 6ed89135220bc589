#!/usr/bin/env python
"""Build examples/sample/: a small public-domain audit sample cut from the shared data.

Usage: python examples/build_sample.py [--data ../shared/data] [--out examples/sample]

Only public-domain images are copied: official Congressional portraits from the
Biographical Directory (congress115 photos_2018 whose photos_2018_source is
"bioguide"), the 2014 Pictorial Directory portraits (photos_2014_gray), and
official portraits of former members (former_members, Bioguide). No MEDS image
(NIST-licensed) and no Wikipedia-sourced photo is copied. The choice is seeded,
so the sample rebuilds identically.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 2018
MATED = {"F": 50, "M": 70}       # members with a 2018 probe and a 2014 mate
NON_MATED = {"F": 20, "M": 20}   # members with a 2018 probe and no photo in the gallery
FORMER = {"F": 40, "M": 60, "": 100}  # former members: strangers in the gallery

FIELDS = ["image", "subject", "dataset", "sex", "age", "role"]


def read_csv(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "sample")
    args = ap.parse_args()
    data, out = args.data, args.out
    rng = random.Random(SEED)
    members = read_csv(data / "congress115" / "members.csv")
    rows18 = {Path(r["image"]).stem: r for r in read_csv(data / "manifests" / "congress_2018.csv")}
    rows14 = {Path(r["image"]).stem: r for r in read_csv(data / "manifests" / "congress_2014.csv")}
    former = read_csv(data / "manifests" / "former_members.csv")

    public = sorted((m for m in members if m["photo_2018_source"] == "bioguide"), key=lambda m: m["bioguide"])
    mated, non_mated = [], []
    for sex, n in MATED.items():
        pool = [m for m in public if m["sex"] == sex and m["photo_2014"]]
        mated += rng.sample(pool, n)
    for sex, n in NON_MATED.items():
        pool = [m for m in public if m["sex"] == sex and not m["photo_2014"]]
        non_mated += rng.sample(pool, min(n, len(pool)))
    strangers = []
    for sex, n in FORMER.items():
        pool = sorted((r for r in former if r["sex"] == sex), key=lambda r: r["image"])
        strangers += rng.sample(pool, n)

    if out.exists():
        shutil.rmtree(out)
    (out / "manifests").mkdir(parents=True)

    def copy(src_manifest_dir: Path, row: dict, folder: str) -> dict:
        src = (src_manifest_dir / row["image"]).resolve()
        dst = out / folder / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        new = {k: row.get(k, "") for k in FIELDS}
        new["image"] = f"../{folder}/{src.name}"
        return new

    mdir = data / "manifests"
    probes = [copy(mdir, rows18[m["bioguide"]], "congress2018")
              for m in sorted(mated + non_mated, key=lambda m: m["bioguide"])]
    mates = [copy(mdir, rows14[m["bioguide"]], "congress2014") for m in sorted(mated, key=lambda m: m["bioguide"])]
    others = [copy(mdir, r, "former_members") for r in sorted(strangers, key=lambda r: r["image"])]
    for name, rows in (("congress_2018.csv", probes), ("congress_2014.csv", mates),
                       ("former_members.csv", others)):
        with open(out / "manifests" / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(probes)} probes ({len(mated)} mated, {len(non_mated)} non-mated), "
          f"{len(mates)} mates, {len(others)} former members; {size / 1e6:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
