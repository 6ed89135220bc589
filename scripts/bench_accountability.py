#!/usr/bin/env python
"""Benchmark the accountability store per request: the data dir (SQLite, JSONL log, files)
against PostgreSQL (issue 21).

Usage: python scripts/bench_accountability.py --database-url postgresql://... [--n N]

Times, N times each, what one request costs the accountability layer: the policy check of a
search (``authorize``: a read), recording a search with one candidate (``record``: the log
append, the kept probe, the lead made from the log), listing pending leads, a reviewer's
decision (lead row locked, log append, decision row) and an access key lookup (per signed
request). --database-url names an empty PostgreSQL database (e.g. one made on a throwaway
server: scripts/_pgserver.py ``throwaway_server().new_database()``). Absolute numbers on a shared
machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else 0.0


def timed(n: int, call: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


def bench(data_dir: Path, url: str | None, n: int) -> dict[str, list[float]]:
    from faceaudit.accountability import Accountability, CallerContext, Candidate, SearchRecord, ThresholdPolicy
    from faceaudit.accountability._review import Reviewer
    from faceaudit.service import KeyStore

    acc = Accountability(data_dir, face_image=lambda face_id: b"crop", database_url=url)
    keys = KeyStore(data_dir, database_url=url)
    admin = CallerContext("AKADMIN", role="admin")
    oper = CallerContext("AKOPER", case_reference="case-1", person="Olga")
    acc.set_policy(ThresholdPolicy("mugshots", 90, 10), admin)
    key = keys.create("reviewer", person="Alice")

    def record(i: int) -> None:
        probe = f"probe {i}".encode() * 2000  # about a 20 kB JPEG
        acc.record(oper, SearchRecord("SearchFacesByImage", "mugshots", "v1", 99.0, 10,
                                      hashlib.sha256(probe).hexdigest(), [Candidate(99.5, face_id=f"f{i}")]),
                   probe=probe)

    out = {
        "authorize": timed(n, lambda i: acc.authorize(oper, "SearchFacesByImage", "mugshots", 99.0, 5)),
        "record": timed(n, record),
        "leads(50)": timed(n, lambda i: acc.leads("pending", 50)),
    }
    pending = [lead.lead_id for lead in acc.leads("pending", n)]
    out["decide"] = timed(len(pending), lambda i: acc.decide(pending[i], Reviewer(key.access_key_id, "Alice"),
                                                             "confirm"))
    out["key lookup"] = timed(n, lambda i: keys.lookup(key.access_key_id))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="calls of each operation (default 300)")
    ap.add_argument("--database-url", required=True, help="an existing, empty PostgreSQL database")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-acc-") as name:
        tmp, url = Path(name), args.database_url
        results = {"sqlite": bench(tmp / "sqlite", None, args.n), "postgresql": bench(tmp / "pg", url, args.n)}
        print(f"{'operation':<12}{'store':<12}{'calls':>7}{'p50 ms':>9}{'p95 ms':>9}")
        for op in results["sqlite"]:
            for store, by_op in results.items():
                times = by_op[op]
                print(f"{op:<12}{store:<12}{len(times):>7}{pct(times, 50):>9.2f}{pct(times, 95):>9.2f}", flush=True)


if __name__ == "__main__":
    main()
