#!/usr/bin/env python
"""Benchmark search log appends: the JSONL file against PostgreSQL, one process and two at once.

Usage: python scripts/bench_log.py [--appends N] [--database-url postgresql://...]

Each process appends N search records (about the size of a real one: five candidates) and
times every append (wall clock, from the call to its return: for JSONL the fsync, for
PostgreSQL the COMMIT). "two processes" runs two appenders on the same log at once, as two
hosts (or two workers) would, and pools their latencies. Without --database-url a throwaway
PostgreSQL server is started from the local binaries (scripts/_pgserver.py) with its default
durability (fsync on, synchronous_commit on), on the same disk as the JSONL file.
Absolute numbers on a shared machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RECORD = {
    "access_key_id": "AKIDBENCH", "role": "operator", "source": "http", "request_id": "r" * 32,
    "case_reference": "case-2026-0001", "purpose": "benchmark", "person": "", "audit": False,
    "operation": "SearchFacesByImage", "collection_id": "mugshots", "model_version": "sface-2021dec",
    "similarity_scale": "1", "threshold": 99.0, "max_faces": 5, "probe_sha256": "a" * 64,
    "probe_face_id": None, "probe_user_id": None, "started_at": 0.0, "gallery_size": 100000,
    "candidates": [{"similarity": 99.5 - i, "face_id": f"{i:08d}-0000-0000-0000-000000000000",
                    "external_image_id": f"person-{i}"} for i in range(5)],
}


def _open(target: str):
    from faceaudit.accountability import PostgresSearchLog, SearchLog

    return PostgresSearchLog(target) if target.startswith("postgresql://") else SearchLog(target)


def appender(target: str, n: int, start, out) -> None:
    log = _open(target)
    log.append("search", RECORD)  # connect (and migrate) before the clock starts
    start.wait()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        log.append("search", RECORD)
        times.append((time.perf_counter() - t0) * 1000)
    out.put(times)


def run(target: str, n: int, processes: int) -> tuple[list, float]:
    """Every append's latency (ms) from ``processes`` appenders at once, and the run's wall time (s)."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [ctx.Process(target=appender, args=(target, n, start, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    times = [t for _ in procs for t in out.get()]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    return times, wall


def pct(values: list, q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--appends", type=int, default=500, help="appends per process (default 500)")
    ap.add_argument("--database-url", help="an existing PostgreSQL database (default: a throwaway server)")
    args = ap.parse_args()

    from faceaudit.accountability import PostgresSearchLog, SearchLog

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-log-"))
        url = args.database_url
        if url is None:
            from _pgserver import throwaway_server

            url = stack.enter_context(throwaway_server(fsync=True)).new_database()
        print(f"{'store':<12}{'processes':>10}{'appends':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
              f"{'appends/s':>11}")
        for processes in (1, 2):
            for store in ("jsonl", "postgresql"):
                target = str(Path(tmp) / f"log-{processes}.jsonl") if store == "jsonl" else url
                times, wall = run(target, args.appends, processes)
                print(f"{store:<12}{processes:>10}{len(times):>9}{pct(times, 50):>9.2f}{pct(times, 95):>9.2f}"
                      f"{pct(times, 99):>9.2f}{len(times) / wall:>11.0f}", flush=True)
        for store, log in (("jsonl", SearchLog(Path(tmp) / "log-2.jsonl")), ("postgresql", PostgresSearchLog(url))):
            result = log.verify()
            print(f"{store}: verify ok={result.ok} records={result.records}")


if __name__ == "__main__":
    main()
