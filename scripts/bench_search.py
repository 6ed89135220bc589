#!/usr/bin/env python
"""Search latency of the exact vector indexes: FAISS (IndexIDMap2 over IndexFlatIP) vs numpy.

Synthetic galleries of random unit vectors (128-d, float32); one query at a time
(k=80, Rekognition's default MaxFaces), as a search request does. Prints p50 and
p95 latency in milliseconds and queries per second (1 / mean latency) per
gallery size and index. With --e2e N it also times FaceCollections.search_faces
(SQLite snapshot, index sync check, the 80 result rows) on a stored collection of
N synthetic faces.

    python scripts/bench_search.py                      # 10k, 100k, 1M; 1 thread
    python scripts/bench_search.py --sizes 10000 --queries 500 --threads 2 --e2e 100000

Measured 2026-11-24 (2 shared x86_64 cores, faiss 1.15.1, numpy 2.4.6, 1 thread, 200 queries;
`--e2e 100000`): p50 / p95 ms, queries/s

    faiss     10k   0.18 /  0.20   5,850      numpy     10k   0.21 /  0.29   4,662
    faiss    100k   2.09 /  2.31     480      numpy    100k   4.60 /  6.30     207
    faiss      1M  22.8  / 26.1       43      numpy      1M  49.1  / 68.9      19
    FaceCollections.search_faces on 100k stored faces: 3.9 / 5.5 ms, 241/s

Two threads were slower on this shared machine (1M: faiss 64 ms p50): keep one
thread per process and scale with processes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time


def _threads(argv) -> str:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# BLAS reads its thread count when numpy is imported
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads(sys.argv[1:])

import numpy as np  # noqa: E402


def unit(rng, n, d):
    out = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 100_000):  # in chunks: bounded temporary memory
        v = rng.standard_normal((min(100_000, n - lo), d)).astype(np.float32)
        out[lo:lo + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def time_queries(index, queries, k):
    index.search(queries[:1], k)  # warm-up
    lat = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None, :], k)
        lat.append(time.perf_counter() - t)
    return np.asarray(lat) * 1000.0


def row(name, n, lat):
    return (name, f"{n:,}", f"{np.percentile(lat, 50):.3f}", f"{np.percentile(lat, 95):.3f}",
            f"{1000.0 / lat.mean():,.0f}", str(len(lat)))


def print_table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def e2e(n, k, queries, rng, d):
    from faceaudit.collections import FaceCollections
    from faceaudit.collections._prepare import PreparedFace, PreparedImage
    from faceaudit.engine import BoundingBox, get_model

    version = get_model("sface").version
    with tempfile.TemporaryDirectory() as tmp:
        fc = FaceCollections(tmp)
        fc.create_collection(collection_id="bench")
        box = BoundingBox(0.1, 0.1, 0.5, 0.5)
        face_ids = []
        t0 = time.perf_counter()
        for lo in range(0, n, 1000):
            vecs = unit(rng, min(1000, n - lo), d)
            faces = tuple(PreparedFace({"BoundingBox": box.to_rekognition()}, box, 99.0, 90.0, v) for v in vecs)
            img = PreparedImage(f"{lo:064x}", 100, 100, version, faces, ())
            r = fc._store_prepared("bench", img)
            face_ids.append(r.face_records[0].face.face_id)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        fc.verify_index("bench")  # first use: builds the index from SQLite
        build = time.perf_counter() - t0
        lat = []
        for i in range(queries):
            t = time.perf_counter()
            fc.search_faces(collection_id="bench", face_id=face_ids[i % len(face_ids)], max_faces=k,
                            face_match_threshold=0)
            lat.append(time.perf_counter() - t)
        return load, build, np.asarray(lat) * 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="gallery sizes (comma-separated)")
    ap.add_argument("--k", type=int, default=80)
    ap.add_argument("--queries", type=int, default=200, help="single queries per size and index")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="FAISS OpenMP and BLAS threads (default 1)")
    ap.add_argument("--e2e", type=int, default=0, metavar="N",
                    help="also time FaceCollections.search_faces on N stored faces")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import faiss

    faiss.omp_set_num_threads(args.threads)
    blas = f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}"
    from faceaudit.collections import FaissIndex, NumpyIndex

    print(f"# exact search, d={args.dim}, k={args.k}, one query at a time; "
          f"{platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; faiss {faiss.__version__}, numpy {np.__version__}; "
          f"FAISS threads {args.threads}; {blas}")
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        vectors = unit(rng, n, args.dim)
        ids = np.arange(1, n + 1, dtype=np.int64)
        queries = unit(rng, args.queries, args.dim)
        for name, cls in (("faiss", FaissIndex), ("numpy", NumpyIndex)):
            index = cls(args.dim)
            t = time.perf_counter()
            index.add(ids, vectors)
            built = time.perf_counter() - t
            lat = time_queries(index, queries, args.k)
            rows.append((*row(name, n, lat), f"{built:.2f}"))
            # the two must agree (exact search)
            a = index.search(queries[:3], args.k)
            if name == "faiss":
                ref = a
            else:
                for (ia, _), (ib, _) in zip(ref, a, strict=True):
                    overlap = len(set(ia.tolist()) & set(ib.tolist())) / max(len(ia), 1)
                    assert overlap > 0.97, "FAISS and numpy disagree"
            del index
            print(f"  done {name} {n:,}", file=sys.stderr)
        del vectors
    print_table(["index", "gallery", "p50 ms", "p95 ms", "queries/s", "queries", "build s"], rows)
    if args.e2e:
        load, build, lat = e2e(args.e2e, args.k, args.queries, rng, args.dim)
        print(f"\n# FaceCollections.search_faces (SearchFaces, k={args.k}, threshold 0) on {args.e2e:,} stored faces:"
              f" SQLite load {load:.1f} s, first index build {build:.2f} s")
        print_table(["path", "gallery", "p50 ms", "p95 ms", "queries/s", "queries"],
                    [row("search_faces", args.e2e, lat)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
