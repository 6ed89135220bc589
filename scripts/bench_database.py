#!/usr/bin/env python
"""Benchmark the collections' database: SQLite (the data dir's file) against PostgreSQL, side by side.

Usage: python scripts/bench_database.py [--gallery N] [--repeats N] [--database-url postgresql://...]

For each database, in the same run and on the same disk: a collection of N synthetic faces
(stored in images of 50 faces), then the latency (wall clock, ms, p50/p95) of

- ``store 1 face``: IndexFaces' write of one prepared face (image row, face row, crop, change
  log, the COMMIT), i.e. IndexFaces without the face engine;
- ``IndexFaces``: the whole operation on a 2014 portrait (detection and embedding included);
- ``SearchFaces``: a search by FaceId (the read transaction, the index catch-up, the hits' rows);
- ``SearchFacesByImage``: the whole operation on a 2018 portrait (engine included);
- ``store 1 face, 2 hosts at once``: the first item from two FaceCollections in two threads at
  once (two hosts on PostgreSQL; on SQLite two connections to the one file), latencies pooled.

Each write moves the collection's change log, so each following search first catches the
in-memory index up (as on a host that serves searches while others index). Without
--database-url a throwaway PostgreSQL server is started from the local binaries
(scripts/_pgserver.py) with its default durability (fsync on, synchronous_commit on); SQLite runs
with synchronous=FULL. Absolute numbers on a shared machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _pct(times: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times), q))


def _timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bench(data_dir: Path, url: str | None, engine, gallery: int, repeats: int) -> dict[str, list[float]]:
    from _support import MEMBERS, portrait_2014, portrait_2018, synthetic_image

    from faceaudit.collections import FaceCollections

    fc = FaceCollections(data_dir, engines={"sface": engine}, database_url=url)
    fc.create_collection(collection_id="bench")
    rng = np.random.default_rng(7)
    face_ids: list[str] = []
    for start in range(0, gallery, 50):
        r = fc._store_prepared("bench", synthetic_image(min(50, gallery - start), engine.model_version, rng))
        face_ids += [f.face.face_id for f in r.face_records]
    fc.search_faces(collection_id="bench", face_id=face_ids[0])  # the index built before the clock starts
    portraits = [portrait_2014(m).read_bytes() for m in MEMBERS]
    probes = [portrait_2018(m).read_bytes() for m in MEMBERS]
    singles = [synthetic_image(1, engine.model_version, rng) for _ in range(repeats)]
    out = {
        "store 1 face": _timed(lambda i: fc._store_prepared("bench", singles[i]), repeats),
        "SearchFaces": _timed(lambda i: fc.search_faces(collection_id="bench", face_id=face_ids[i % len(face_ids)],
                                                        max_faces=5), repeats),
        "IndexFaces": _timed(lambda i: fc.index_faces(collection_id="bench", image=portraits[i % len(portraits)]),
                             max(5, repeats // 4)),
        "SearchFacesByImage": _timed(lambda i: fc.search_faces_by_image(collection_id="bench",
                                                                        image=probes[i % len(probes)], max_faces=5),
                                     max(5, repeats // 4)),
    }
    # interleaved: each search after a write catches up one log entry
    inter = []
    for i in range(max(5, repeats // 2)):
        fc._store_prepared("bench", synthetic_image(1, engine.model_version, rng))
        t0 = time.perf_counter()
        fc.search_faces(collection_id="bench", face_id=face_ids[i], max_faces=5)
        inter.append((time.perf_counter() - t0) * 1000)
    out["SearchFaces after a write"] = inter
    out["store 1 face, 2 hosts at once"] = _two_hosts(fc, data_dir, url, engine, repeats)
    fc.close()
    return out


def _two_hosts(fc, data_dir: Path, url: str | None, engine, repeats: int) -> list[float]:
    """Latencies of one-face writes from two FaceCollections at once (two hosts on PostgreSQL,
    two processes' worth of connections on one SQLite file), pooled."""
    import threading

    from _support import synthetic_image

    from faceaudit.collections import FaceCollections

    other = FaceCollections(data_dir, engines={"sface": engine}, database_url=url)
    pooled: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def run(host, seed: int) -> None:
        rng = np.random.default_rng(seed)
        images = [synthetic_image(1, engine.model_version, rng) for _ in range(repeats)]
        host._store_prepared("bench", images[0])  # connect before the clock starts
        start.wait()
        times = _timed(lambda i: host._store_prepared("bench", images[i]), repeats)
        with lock:
            pooled.extend(times)

    threads = [threading.Thread(target=run, args=(h, s)) for s, h in ((11, fc), (12, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    return pooled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gallery", type=int, default=5000, help="synthetic faces in the collection (default 5000)")
    ap.add_argument("--repeats", type=int, default=200, help="timed calls per operation (default 200)")
    ap.add_argument("--database-url", help="an existing, empty PostgreSQL database (default: a throwaway server)")
    args = ap.parse_args()
    from faceaudit.engine import FaceEngine

    engine = FaceEngine("sface")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-db-")))
        url = args.database_url
        if url is None:
            from _pgserver import throwaway_server

            url = stack.enter_context(throwaway_server(fsync=True)).new_database()
        results = {
            "sqlite": bench(tmp / "sqlite", None, engine, args.gallery, args.repeats),
            "postgresql": bench(tmp / "pg", url, engine, args.gallery, args.repeats),
        }
    print(f"collections database, {args.gallery} faces, latency in ms (p50 / p95, n)")
    print(f"{'operation':<28}{'SQLite p50':>11}{'p95':>8}{'PostgreSQL p50':>16}{'p95':>8}{'n':>6}")
    for op in results["sqlite"]:
        s, p = results["sqlite"][op], results["postgresql"][op]
        print(f"{op:<28}{statistics.median(s):>11.2f}{_pct(s, 95):>8.2f}"
              f"{statistics.median(p):>16.2f}{_pct(p, 95):>8.2f}{len(s):>6}")


if __name__ == "__main__":
    main()
