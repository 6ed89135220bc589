#!/usr/bin/env python
"""Batch indexing throughput on real photos: images per second with 1 and 2 processes.

Takes N images (default 300) from the shared manifests, interleaving congress
2018 portraits, former members' portraits and MEDS mugshots, and indexes them
with `faceaudit.collections.index_batch` into a fresh collection per run (a
temporary data dir). The time includes starting the worker processes and every
SQLite commit (one per image, synchronous=FULL).

    python scripts/bench_index.py                        # 300 images, 1 and 2 processes
    python scripts/bench_index.py --images 100 --workers 1,2,4

Measured 2026-11-24 on 2 shared cores (load average 1.6 before; sface): 300 images,
293 indexed, 7 without an indexable face; 1 process 31.8 images/s (OpenCV's own
2 threads), 2 processes 39.6 images/s (one OpenCV thread each, start-up included).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

DEFAULT_MANIFESTS = Path(os.environ.get("FACEAUDIT_SHARED_DATA", "/work/shared/data")) / "manifests"


def pick(manifests: Path, n: int):
    from faceaudit.collections import read_manifest

    sets = [read_manifest(manifests / f) for f in ("congress_2018.csv", "former_members.csv", "meds.csv")]
    mixed = [x for group in zip_longest(*sets) for x in group if x is not None]
    return mixed[:n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--workers", default="1,2", help="process counts to compare (comma-separated)")
    ap.add_argument("--manifests", type=Path, default=DEFAULT_MANIFESTS)
    args = ap.parse_args(argv)
    if not args.manifests.is_dir():
        print(f"no manifests at {args.manifests} (set --manifests)", file=sys.stderr)
        return 2
    from faceaudit.collections import FaceCollections, index_batch

    items = pick(args.manifests, args.images)
    size = sum(i.source.stat().st_size for i in items)
    print(f"# {len(items)} images ({size / 1e6:.1f} MB) from {args.manifests}; {os.cpu_count()} CPUs; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    for w in (int(x) for x in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            fc = FaceCollections(tmp)
            fc.create_collection(collection_id="bench")
            t = time.perf_counter()
            report = index_batch("bench", items, collections=fc, workers=w, progress=False, checkpoint=False)
            wall = time.perf_counter() - t
            rows.append((w, report.indexed_images, report.faces_indexed, report.without_faces, report.failed,
                         f"{wall:.1f}", f"{len(items) / wall:.1f}"))
    headers = ("processes", "indexed images", "faces", "no indexable face", "failed", "seconds", "images/s")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
