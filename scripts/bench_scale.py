#!/usr/bin/env python
"""Large galleries: build time, memory, latency and recall of flat, fast scan, HNSW and Milvus-lite.

Gallery: N synthetic faces shaped like real ones plus real faces with real mates.
Real sface embeddings are measured on the shared photos (congress 2014/2018
portraits, MEDS mugshots, former members; cached in --cache); the synthetic
faces are drawn from a Gaussian with the mean and covariance of one real
embedding per distinct person, then L2-normalised, so their impostor scores
are distributed like real impostors' (checked and printed). Into the gallery go
one photo of each person who has two (2014 portrait, first mugshot); their other
photo (2018 portrait, second mugshot) is the probe, so each probe has one
planted real mate.

For each index, one query at a time (k = 80, Rekognition's default MaxFaces),
one thread: p50/p95 latency, and against flat (exact, the oracle):

- candidate recall at Similarity >= T: of flat's candidates with Similarity >= T
  (within the top 80), the fraction the index also returns;
- mate recall at T: the fraction of probes whose planted mate comes back with
  Similarity >= T (flat's is the model's own; an index can only lose mates).

Similarity comes from the model's ``spec.scale`` (never hard-coded cosines).
Milvus-lite (``--milvus N``) runs on the first N faces of the gallery, with the
flat index on the same N as its reference. The audit rate (``--audit``) is exact
block scoring (probes x gallery, one thread): scores per second per core.

    python scripts/bench_scale.py --sizes 1000000 --ef 64,128,256,512 --milvus 200000
    python scripts/bench_scale.py --sizes 1000000,5000000 --refine 16,64 --ef ""   # fast scan only
    python scripts/bench_scale.py --sizes 100000 --queries 200          # a quick look

Results and the paper estimates for 20M faces and a 1e12-score audit: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACEAUDIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
THRESHOLDS = (60.0, 70.0, 80.0, 90.0)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def children_rss_mb() -> float:
    """Resident memory of this process's child processes (milvus-lite runs in one)."""
    me, total = os.getpid(), 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me:
                for line in (d / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024.0
        except (OSError, ValueError, IndexError):
            continue
    return total


# -- real embeddings -------------------------------------------------------------------------------
def real_embeddings(cache: Path, former: int):
    """{subject: [(photo key, vector)]} for the shared photos (cached)."""
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            return list(z["subjects"]), list(z["keys"]), z["vectors"]
    from faceaudit.collections import read_manifest
    from faceaudit.engine import FaceEngine

    engine = FaceEngine("sface")
    man = SHARED / "manifests"
    items = []
    for name, limit in (("congress_2014.csv", None), ("congress_2018.csv", None), ("meds.csv", None),
                        ("former_members.csv", former)):
        rows = read_manifest(man / name)
        items += [(name, r) for r in rows[:limit]]
    subjects, keys, vectors = [], [], []
    t = time.perf_counter()
    for i, (name, item) in enumerate(items):
        try:
            _, emb = engine.largest(item.source)
        except Exception:  # no face, unreadable: skip
            continue
        subjects.append(str(item.labels.get("subject", item.external_image_id)))
        keys.append(f"{name}:{item.source.name}")
        vectors.append(emb.vector)
        if i % 200 == 0:
            print(f"  embedded {i}/{len(items)} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, subjects=np.array(subjects), keys=np.array(keys), vectors=np.asarray(vectors, np.float32))
    return subjects, keys, np.asarray(vectors, np.float32)


def make_gallery(subjects, keys, vectors, n, rng):
    """(gallery vectors, probe vectors, mate row in the gallery for each probe, Gaussian sampler)."""
    by = {}
    for s, k, v in zip(subjects, keys, vectors, strict=True):
        by.setdefault(s, []).append((k, v))
    one = np.asarray([items[0][1] for items in by.values()], np.float32)  # one photo per person
    mu = one.mean(axis=0)
    cov = np.cov(one - mu, rowvar=False) + 1e-6 * np.eye(one.shape[1])
    real_imp = (one[: len(one) // 2] @ one[len(one) // 2:].T).ravel()
    qs = (0.99, 0.999, 0.9999)
    want = np.quantile(real_imp, qs)

    def sampler(spread):
        chol = np.linalg.cholesky(cov * spread).astype(np.float32)
        local = np.random.default_rng(rng.integers(1 << 62))

        def sample(m):
            out = np.empty((m, one.shape[1]), np.float32)
            for lo in range(0, m, 200_000):
                z = local.standard_normal((min(200_000, m - lo), one.shape[1])).astype(np.float32)
                v = mu + z @ chol.T
                out[lo:lo + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
            return out
        return sample

    # the spread of the Gaussian that gives the real impostor tail (a normalised Gaussian's
    # tail is slightly heavier than the real one at the measured covariance)
    best = None
    for spread in (0.8, 0.85, 0.9, 0.95, 1.0, 1.05):
        x = sampler(spread)(2000)
        got = np.quantile((x[:1000] @ x[1000:].T).ravel(), qs)
        err = float(np.abs(got - want).sum())
        if best is None or err < best[0]:
            best = (err, spread, got)
    sample = sampler(best[1])
    print(f"# impostor cosine quantiles {qs}: real {want.round(3).tolist()} ({len(real_imp):,} pairs of "
          f"{len(one)} people), synthetic {best[2].round(3).tolist()} (covariance x {best[1]})")

    pairs = [(items[0][1], items[1][1]) for items in by.values() if len(items) >= 2]
    mates = np.asarray([p[0] for p in pairs], np.float32)
    probes = np.asarray([p[1] for p in pairs], np.float32)
    gallery = sample(n)
    rows = rng.choice(n, size=len(mates), replace=False)
    gallery[rows] = mates
    return gallery, probes, rows


# -- measuring -------------------------------------------------------------------------------------
def time_queries(index, queries, k):
    index.search(queries[:1], k)  # warm-up
    lat, hits = [], []
    for q in queries:
        t = time.perf_counter()
        hits.append(index.search(q[None, :], k)[0])
        lat.append(time.perf_counter() - t)
    return np.asarray(lat) * 1000.0, hits


def recall_rows(name, n, lat, hits, ref_hits, mate_ids, to_sim, build_s, mb_per_face):
    row = {"index": name, "gallery": f"{n:,}", "build s": f"{build_s:.1f}", "bytes/face": f"{mb_per_face:,.0f}",
           "p50 ms": f"{np.percentile(lat, 50):.2f}", "p95 ms": f"{np.percentile(lat, 95):.2f}"}
    for t in THRESHOLDS:
        want = got = mates = 0
        for (ids, scores), (rids, rscores), mate in zip(hits, ref_hits, mate_ids, strict=True):
            sims, rsims = to_sim(scores), to_sim(rscores)
            ref = set(rids[rsims >= t].tolist())
            mine = set(ids[sims >= t].tolist())
            want += len(ref)
            got += len(ref & mine)
            mates += int(mate in mine)
        row[f"recall@{t:g}"] = f"{got / want:.4f} ({got}/{want})" if want else "n/a (0)"
        row[f"mates@{t:g}"] = f"{mates}/{len(mate_ids)}"
    return row


def print_table(rows):
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r.get(h, ""))) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r.get(h, "")).ljust(w) for h, w in zip(headers, widths, strict=True)))
    sys.stdout.flush()


def audit_rate(rng, d, seconds=20.0):
    """Exact scores per second on one core, 1,000 probes x 100,000-face blocks (float32 GEMM):
    (the product alone, the product plus a per-probe reduction as an audit keeps per threshold)."""
    probes = rng.standard_normal((1000, d)).astype(np.float32)
    block = rng.standard_normal((100_000, d)).astype(np.float32)
    rates = []
    for reduce in (False, True):
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            s = block @ probes.T
            if reduce:
                (s >= 0.4).sum(axis=0)
            done += s.size
        rates.append(done / (time.perf_counter() - t0))
    return rates


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000", help="gallery sizes (comma-separated)")
    ap.add_argument("--queries", type=int, default=0, help="probes to time (default: every planted-mate probe)")
    ap.add_argument("--k", type=int, default=80)
    ap.add_argument("--m", type=int, default=32, help="HNSW M")
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef", default="64,128,256", help="HNSW efSearch values to measure (empty: no HNSW)")
    ap.add_argument("--refine", default="16,64", help="fast-scan refine values to measure (empty: no fast scan)")
    ap.add_argument("--subquantizers", type=int, default=64, help="fast-scan 4-bit code parts")
    ap.add_argument("--build-threads", type=int, default=2, help="FAISS threads while building HNSW")
    ap.add_argument("--milvus", type=int, default=0, metavar="N", help="also Milvus-lite on the first N faces")
    ap.add_argument("--milvus-queries", type=int, default=30, help="probes timed on Milvus-lite (slow)")
    ap.add_argument("--audit", type=float, default=20.0, metavar="S", help="seconds of exact audit scoring (0: skip)")
    ap.add_argument("--former", type=int, default=1200, help="former members' photos embedded (distribution fit)")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "bench" / "real_sface.npz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import faiss

    from faceaudit.collections import FaissIndex, FastScanIndex, FastScanParams, HnswIndex, HnswParams
    from faceaudit.engine import get_model

    scale = get_model("sface").scale
    to_sim_array = getattr(scale, "to_similarity_array", None)

    def to_sim(cos):
        cos = np.asarray(cos, np.float64)
        if to_sim_array is not None:
            return np.asarray(to_sim_array(cos))
        return np.asarray([scale.to_similarity(float(c)) for c in cos])

    rng = np.random.default_rng(args.seed)
    subjects, keys, vectors = real_embeddings(args.cache, args.former)
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs (shared, loaded: load average "
          f"{os.getloadavg()[0]:.1f}); faiss {faiss.__version__}, numpy {np.__version__}; sface; "
          f"similarity scale: {scale.formula}")
    print(f"# real embeddings: {len(vectors)} photos of {len(set(subjects))} people")
    rows = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        gallery, probes, mate_rows = make_gallery(subjects, keys, vectors, n, rng)
        if args.queries:
            probes, mate_rows = probes[:args.queries], mate_rows[:args.queries]
        ids = np.arange(1, n + 1, dtype=np.int64)
        mate_ids = (mate_rows + 1).tolist()
        print(f"# Similarity 80 at cosine {scale.to_cosine(80):.3f}; {len(probes)} probes with a planted mate; "
              f"gallery {n:,}")
        faiss.omp_set_num_threads(1)
        m0 = rss_mb()
        t = time.perf_counter()
        flat = FaissIndex(gallery.shape[1])
        flat.add(ids, gallery)
        build = time.perf_counter() - t
        print(f"  flat resident growth {(rss_mb() - m0) * 1.048576e6 / n:,.0f} bytes/face", file=sys.stderr)
        per_face = gallery.shape[1] * 4 + 8  # vectors and ids (IDMap2's reverse map comes on top)
        lat, ref = time_queries(flat, probes, args.k)
        rows.append(recall_rows("flat", n, lat, ref, ref, mate_ids, to_sim, build, per_face))
        print_table(rows[-1:])
        refines = [int(r) for r in args.refine.split(",") if r]
        if refines:
            faiss.omp_set_num_threads(args.build_threads)
            m0 = rss_mb()
            t = time.perf_counter()
            fparams = FastScanParams(subquantizers=args.subquantizers, exact_below=0)
            scan = FastScanIndex(gallery.shape[1], fparams)
            scan.add(ids, gallery)  # one add: codebooks trained once, every face encoded
            build = time.perf_counter() - t
            print(f"  fastscan resident growth {(rss_mb() - m0) * 1.048576e6 / n:,.0f} bytes/face", file=sys.stderr)
            per_face = gallery.shape[1] * 4 + args.subquantizers / 2 + 8 + 1  # vector, 4-bit codes, id, live flag
            faiss.omp_set_num_threads(1)
            for refine in refines:
                scan.params = dataclasses.replace(fparams, refine=refine)
                lat, hits = time_queries(scan, probes, args.k)
                rows.append(recall_rows(f"fastscan PQ{args.subquantizers}x4 refine {refine}", n, lat, hits, ref,
                                        mate_ids, to_sim, build, per_face))
                print_table(rows[-1:])
            del scan
        if not [e for e in args.ef.split(",") if e]:
            if args.milvus:
                rows += bench_milvus(gallery, ids, probes, mate_ids, min(args.milvus, n), args.k, to_sim,
                                     args.milvus_queries)
            del flat, gallery
            continue
        faiss.omp_set_num_threads(args.build_threads)
        m0 = rss_mb()
        t = time.perf_counter()
        params = HnswParams(m=args.m, ef_construction=args.ef_construction, exact_below=0)
        hnsw = HnswIndex(gallery.shape[1], params)
        for lo in range(0, n, 250_000):
            hnsw.add(ids[lo:lo + 250_000], gallery[lo:lo + 250_000])
            print(f"  hnsw {min(lo + 250_000, n):,}/{n:,} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        build = time.perf_counter() - t
        g = hnsw._index.hnsw
        per_face = (n * gallery.shape[1] * 4 + g.neighbors.size() * 4 + g.offsets.size() * 8
                    + g.levels.size() * 4 + n * 9) / n  # vectors, graph, node ids and live flags
        print(f"  hnsw resident growth {(rss_mb() - m0) * 1.048576e6 / n:,.0f} bytes/face", file=sys.stderr)
        faiss.omp_set_num_threads(1)
        for ef in (int(e) for e in args.ef.split(",")):
            hnsw.params = dataclasses.replace(params, ef_search=ef)
            lat, hits = time_queries(hnsw, probes, args.k)
            rows.append(recall_rows(f"hnsw M{args.m} efC{args.ef_construction} ef{ef}", n, lat, hits, ref,
                                    mate_ids, to_sim, build, per_face))
            print_table(rows[-1:])
        del hnsw
        if args.milvus:
            rows += bench_milvus(gallery, ids, probes, mate_ids, min(args.milvus, n), args.k, to_sim,
                                 args.milvus_queries)
        del flat, gallery
    print()
    print_table(rows)
    if args.audit:
        gemm, counted = audit_rate(rng, vectors.shape[1], args.audit)
        print(f"\n# exact audit scoring, one core: {gemm:,.0f} scores/s (product only), {counted:,.0f} scores/s "
              f"(product + a count per probe); 1e12 scores: {1e12 / gemm / 3600:,.1f} to "
              f"{1e12 / counted / 3600:,.1f} core-hours")
    return 0


def bench_milvus(gallery, ids, probes, mate_ids, n, k, to_sim, queries):
    from faceaudit.collections import FaissIndex
    from faceaudit.collections._milvus import MilvusIndex, milvus_client

    probes, mate_ids = probes[:queries], mate_ids[:queries]
    # the reference for recall: flat on the same first n faces (mates outside them cannot be found)
    flat = FaissIndex(gallery.shape[1])
    flat.add(ids[:n], gallery[:n])
    flat_lat, ref = time_queries(flat, probes, k)
    rows = [recall_rows("flat (same faces)", n, flat_lat, ref, ref, mate_ids, to_sim, 0.0, gallery.shape[1] * 4 + 8)]
    print_table(rows[-1:])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        client = milvus_client(str(path))
        m0 = children_rss_mb()
        t = time.perf_counter()
        index = MilvusIndex(client, "bench", gallery.shape[1])
        for lo in range(0, n, 100_000):
            index.add(ids[lo:min(lo + 100_000, n)], gallery[lo:min(lo + 100_000, n)])
            print(f"  milvus {min(lo + 100_000, n):,}/{n:,} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        index.search(probes[:1], k)
        build = time.perf_counter() - t
        grown = (children_rss_mb() - m0) * 1.048576e6 / n
        lat, hits = time_queries(index, probes, k)
        rows.append(recall_rows("milvus-lite FLAT, as inserted", n, lat, hits, ref, mate_ids, to_sim, build, grown))
        print_table(rows[-1:])
        client.close()
        disk = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / n
        client = milvus_client(str(path))  # reopened: sealed segments, as after a restart
        t = time.perf_counter()
        index = MilvusIndex(client, "bench", gallery.shape[1])
        opened = time.perf_counter() - t
        lat, hits = time_queries(index, probes, k)
        rows.append(recall_rows(f"milvus-lite FLAT, reopened ({opened:.0f} s)", n, lat, hits, ref, mate_ids,
                                to_sim, build, disk))
        print_table(rows[-1:])
        client.close()
    print("  milvus bytes/face: resident growth of the milvus-lite process as inserted; on disk when reopened",
          file=sys.stderr)
    return rows


if __name__ == "__main__":
    sys.exit(main())
