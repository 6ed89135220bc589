#!/usr/bin/env python
"""A real Milvus server against the in-memory indexes: insert/build time, search latency, recall.

For each gallery size (default 100,000 and 1,000,000) N synthetic unit vectors of dimension
``--dim`` (128: sface's, and dlib's) are drawn from an isotropic Gaussian and normalised; each
query is a gallery vector plus noise, renormalised (``--noise``: cosine about 0.7 to its mate), so
every query has a clear nearest face. Side by side, in one run, on the same vectors and queries:

- **flat**: the exact in-memory index (faiss IndexFlatIP), the oracle for recall;
- **fastscan**: the in-memory 4-bit fast scan (``FastScanIndex``, the project's default params);
- **milvus server**: ``MilvusIndex`` (what ``--vector-store milvus --milvus-uri http://...`` uses:
  a FLAT inner-product index, Strong consistency) on a throwaway Milvus 2.3 standalone server
  (scripts/_milvus_server.py; ``make milvus-server`` installs it) or on ``--milvus-uri``; measured as
  inserted (growing segments) and again after ``flush`` and a release/load (sealed segments, as
  after a restart).

One query at a time, one thread in this process, top ``--k`` (Rekognition's default MaxFaces, 80):
p50/p95 latency in ms, and recall@1 / recall@10: the fraction of flat's top 1 / top 10 the index
returns in its own top 1 / top 10. The Milvus server is a separate process and uses every core
for a search; the in-memory indexes use one (OMP/BLAS threads 1, as the service runs them per
worker).

    python scripts/bench_milvus.py                              # 100,000 and 1,000,000
    python scripts/bench_milvus.py --sizes 100000 --queries 200 # a quick look
    python scripts/bench_milvus.py --milvus-uri http://127.0.0.1:19530 --sizes 100000

Results: docs/scaling.md ("Milvus server").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

INSERT_BATCH = 100_000


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(n: int, d: int, queries: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    gallery = np.empty((n, d), np.float32)
    for lo in range(0, n, INSERT_BATCH):  # in blocks: no float64 copy of the whole gallery
        hi = min(lo + INSERT_BATCH, n)
        gallery[lo:hi] = unit(rng.standard_normal((hi - lo, d), dtype=np.float32))
    ids = np.arange(1, n + 1, dtype=np.int64)
    mates = rng.choice(n, size=queries, replace=False)
    q = unit(gallery[mates] + noise * rng.standard_normal((queries, d), dtype=np.float32) / np.sqrt(d))
    return ids, gallery, q


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def time_queries(index, queries: np.ndarray, k: int):
    index.search(queries[:1], k)  # warm-up
    lat, hits = [], []
    for q in queries:
        t = time.perf_counter()
        hits.append(index.search(q[None, :], k)[0][0])
        lat.append(time.perf_counter() - t)
    return np.asarray(lat) * 1000.0, hits


def recall(hits, ref, at: int) -> float:
    got = sum(len(set(h[:at].tolist()) & set(r[:at].tolist())) for h, r in zip(hits, ref, strict=True))
    return got / sum(len(r[:at]) for r in ref)


def row(name: str, n: int, build_s: float, lat: np.ndarray, hits, ref, mb: float) -> dict:
    return {"index": name, "faces": n, "build_s": round(build_s, 1), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2), "recall@1": round(recall(hits, ref, 1), 4),
            "recall@10": round(recall(hits, ref, 10), 4), "resident_mb": round(mb)}


def print_rows(rows: list[dict]) -> None:
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(headers, widths, strict=True)))
    sys.stdout.flush()


def bench_size(n: int, args, uri: str, server_pid: int | None) -> list[dict]:
    from faceaudit.collections import FaissIndex, FastScanIndex, FastScanParams
    from faceaudit.collections._milvus import MilvusIndex, milvus_client

    d, k = args.dim, args.k
    ids, gallery, queries = make_data(n, d, args.queries, args.noise, args.seed)
    rows = []

    m0, t = rss_mb(), time.perf_counter()
    flat = FaissIndex(d)
    flat.add(ids, gallery)
    build = time.perf_counter() - t
    lat, ref = time_queries(flat, queries, k)
    rows.append(row("flat (faiss, exact)", n, build, lat, ref, ref, rss_mb() - m0))
    print_rows(rows[-1:])

    m0, t = rss_mb(), time.perf_counter()
    scan = FastScanIndex(d, FastScanParams(exact_below=0))
    scan.add(ids, gallery)
    scan.search(queries[:1], k)  # trains and encodes on first use
    build = time.perf_counter() - t
    lat, hits = time_queries(scan, queries, k)
    rows.append(row("fastscan (in memory)", n, build, lat, hits, ref, rss_mb() - m0))
    print_rows(rows[-1:])
    del scan

    client = milvus_client(uri)
    name = f"faceaudit_bench_{n}_{d}"
    if client.has_collection(name):
        client.drop_collection(name)
    m0, t = rss_mb(server_pid) if server_pid else float("nan"), time.perf_counter()
    index = MilvusIndex(client, name, d)
    for lo in range(0, n, INSERT_BATCH):
        index.add(ids[lo:lo + INSERT_BATCH], gallery[lo:lo + INSERT_BATCH])
        print(f"  milvus: {min(lo + INSERT_BATCH, n):,}/{n:,} inserted ({time.perf_counter() - t:.0f} s)",
              file=sys.stderr)
    inserted = time.perf_counter() - t
    index.search(queries[:1], k)
    first = time.perf_counter() - t
    lat, hits = time_queries(index, queries, k)
    mb = (rss_mb(server_pid) - m0) if server_pid else float("nan")
    rows.append(row(f"milvus server FLAT, as inserted (insert {inserted:.0f} s)", n, first, lat, hits, ref, mb))
    print_rows(rows[-1:])

    t = time.perf_counter()
    client.flush(name)
    client.release_collection(name)
    client.load_collection(name)
    index = MilvusIndex(client, name, d)
    sealed = time.perf_counter() - t
    lat, hits = time_queries(index, queries, k)
    mb = (rss_mb(server_pid) - m0) if server_pid else float("nan")
    rows.append(row(f"milvus server FLAT, flushed + reloaded ({sealed:.0f} s)", n, sealed, lat, hits, ref, mb))
    print_rows(rows[-1:])

    # what the searches would cost at Strong consistency (they use Session: see collections/_milvus.py)
    strong = queries[:args.strong_queries]
    lat, hits = [], []
    for q in strong:
        t = time.perf_counter()
        res = client.search(name, data=[q], limit=k, search_params={"metric_type": "IP"}, output_fields=["id"],
                            consistency_level="Strong")
        lat.append(time.perf_counter() - t)
        hits.append(np.asarray([int(h["id"]) for h in res[0]], dtype=np.int64))
    rows.append(row(f"milvus server FLAT, Strong consistency ({len(strong)} queries)", n, sealed,
                    np.asarray(lat) * 1000.0, hits, ref[:len(strong)], mb))
    print_rows(rows[-1:])
    client.drop_collection(name)
    client.close()
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="gallery sizes, comma-separated")
    ap.add_argument("--dim", type=int, default=128, help="vector dimension (128: sface, dlib)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=80, help="results per search (Rekognition's default MaxFaces)")
    ap.add_argument("--noise", type=float, default=1.0, help="query = mate + noise (1.0: cosine ~0.7)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--strong-queries", type=int, default=50, help="queries timed at Strong consistency too")
    ap.add_argument("--milvus-uri", default=None, help="a running Milvus server (default: start a throwaway one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    import contextlib

    import faiss
    import pymilvus

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.node()}: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; Python "
          f"{platform.python_version()}, faiss {faiss.__version__}, numpy {np.__version__}, pymilvus "
          f"{pymilvus.__version__}; {args.queries} queries, k={args.k}, dim {args.dim}")
    with contextlib.ExitStack() as stack:
        if args.milvus_uri:
            uri, pid = args.milvus_uri, None
        else:
            from _milvus_server import throwaway_server

            t = time.perf_counter()
            server = stack.enter_context(throwaway_server())
            uri, pid = server.uri, server.proc.pid if server.proc else None
            print(f"# Milvus {server.version} standalone at {uri}: answered {time.perf_counter() - t:.1f} s "
                  f"after start", flush=True)
        rows = []
        for n in sizes:
            rows += bench_size(n, args, uri, pid)
        print()
        print_rows(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
