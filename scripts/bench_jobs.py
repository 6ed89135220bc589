#!/usr/bin/env python
"""Benchmark the stored-video job queue: claims by two processes at once, SQLite against PostgreSQL.

Usage: python scripts/bench_jobs.py --database-url postgresql://... [--jobs N] [--processes P]

N jobs are queued (the pending quotas are lifted for the benchmark only), then P processes
(two "hosts": on SQLite two processes on one data dir, on PostgreSQL two data dirs on one
database) drain the queue at once, each in a loop: claim() (timed, wall clock from the call to
its return: one write transaction), then succeed() with one result item (timed too). Every job
must be claimed exactly once (checked). Reported: submit p50, claim p50/p95/p99, succeed p50,
and jobs finished per second over the whole drain. --database-url names an empty PostgreSQL
database (for a like-for-like comparison a server on the same disk as the temp dir that holds the
SQLite file, with its default durability: fsync on, synchronous_commit on; the SQLite file has
synchronous=FULL). Absolute numbers on a shared machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

KIND = "face_detection"


def pct(values: list, q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def drain(data_dir: str, url: str | None, start, out) -> None:
    """One process: claim and finish jobs until none is left; puts (job ids, claim s, succeed s)."""
    from faceaudit.collections._jobs import JobItem, JobOutcome, JobStore

    store = JobStore(data_dir, database_url=url)
    store.requester_of("warm-up")  # (connect and migrate once before timing)
    claims, succeeds, ids = [], [], []
    start.wait()
    while True:
        t0 = time.perf_counter()
        job = store.claim()
        claims.append(time.perf_counter() - t0)
        if job is None:
            break
        ids.append(job.job_id)
        t0 = time.perf_counter()
        store.succeed(job.job_id, JobOutcome({"n": 1}, [JobItem(0, 0, {"Timestamp": 0})]))
        succeeds.append(time.perf_counter() - t0)
    out.put((ids, claims[:-1], succeeds))


def run(data_dirs: list[str], url: str | None, jobs: int) -> dict:
    from faceaudit.collections import _jobs

    _jobs.MAX_PENDING_JOBS = _jobs.MAX_PENDING_JOBS_PER_CALLER = jobs + 1  # (the benchmark only)
    stores = [_jobs.JobStore(d, database_url=url) for d in data_dirs]
    submits = []
    for i in range(jobs):
        t0 = time.perf_counter()
        stores[i % len(stores)].submit(KIND, {"n": i}, None, None, {"access_key_id": "AKBENCH"})
        submits.append(time.perf_counter() - t0)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=drain, args=(d, url, start, out)) for d in data_dirs]
    for p in procs:
        p.start()
    time.sleep(3.0)  # (let the processes import and connect; the drain is timed from `start`)
    t0 = time.perf_counter()
    start.set()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    ids = [i for r in results for i in r[0]]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"a job was claimed twice: {len(ids) - len(set(ids))} duplicates")
    claims = [c for r in results for c in r[1]]
    succeeds = [s for r in results for s in r[2]]
    return {"claimed": len(ids), "per_process": [len(r[0]) for r in results], "wall": wall,
            "submit_p50": pct(submits, 50), "claim": claims, "succeed_p50": pct(succeeds, 50)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=400, help="jobs queued then drained (default 400)")
    ap.add_argument("--processes", type=int, default=2, help="processes draining at once (default 2)")
    ap.add_argument("--database-url", required=True, help="an existing, empty PostgreSQL database")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as name:
        tmp, url = Path(name), args.database_url
        print(f"{'store':<12}{'procs':>6}{'jobs':>6}{'per proc':>12}{'submit p50':>11}{'claim p50':>10}"
              f"{'p95':>8}{'p99':>8}{'succeed p50':>12}{'jobs/s':>8}   (times in ms)")
        for store in ("sqlite", "postgresql"):
            if store == "sqlite":
                dirs, target = [str(tmp / "sqlite")] * args.processes, None
            else:
                dirs, target = [str(tmp / f"pg-host-{i}") for i in range(args.processes)], url
            r = run(dirs, target, args.jobs)
            c = r["claim"]
            print(f"{store:<12}{args.processes:>6}{r['claimed']:>6}{'/'.join(map(str, r['per_process'])):>12}"
                  f"{r['submit_p50'] * 1e3:>11.2f}{pct(c, 50) * 1e3:>10.2f}{pct(c, 95) * 1e3:>8.2f}"
                  f"{pct(c, 99) * 1e3:>8.2f}{r['succeed_p50'] * 1e3:>12.2f}{r['claimed'] / r['wall']:>8.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
