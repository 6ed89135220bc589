#!/usr/bin/env python
"""Benchmark the HTTP service over loopback: requests/second and p50/p95 latency of
SearchFacesByImage and IndexFaces, with the engine time beside the HTTP overhead.

It starts `faceaudit serve` in a subprocess (fresh data dir, a key made by `faceaudit
keys create --json`, rate limit off), fills a collection, then runs each operation with
C concurrent boto3 clients (threads) for D seconds. Every response carries
``x-faceaudit-engine-ms`` (time in the backend/engine); overhead = client latency - that
(HTTP, SigV4, JSON, base64, validation, boto3 itself). The engine time of the same work
measured in this process without HTTP is shown for reference.

    python scripts/bench_service.py                   # 2 workers, 1 and 4 clients, 10 s each
    python scripts/bench_service.py --workers 1 --clients 1 8 --seconds 20 --json out.json

A script, not a test: numbers depend on the machine (print them with its core count).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
PORTRAITS = sorted((DATA / "congress2018").glob("*.jpg"))
PROBES = sorted((DATA / "congress2014").glob("*.jpg"))


def faceaudit() -> list:
    script = Path(sys.executable).with_name("faceaudit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "faceaudit.cli._main"]


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def client(url, key):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "rekognition", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=4),
    )


def run_load(url, key, op, clients, seconds, collection):
    """C threads, each its own client, calling ``op`` until the time is up."""
    images = [p.read_bytes() for p in (PROBES if op == "SearchFacesByImage" else PORTRAITS)]
    lat, eng, errors = [], [], []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    counter = [0]

    def worker(n):
        c = client(url, key)
        i = 0
        while time.monotonic() < deadline:
            img = images[(n + i) % len(images)]
            t0 = time.perf_counter()
            try:
                if op == "SearchFacesByImage":
                    r = c.search_faces_by_image(CollectionId=collection, Image={"Bytes": img}, MaxFaces=5)
                else:
                    with lock:
                        counter[0] += 1
                        ext = f"bench-{counter[0]}"
                    r = c.index_faces(CollectionId=collection, Image={"Bytes": img}, ExternalImageId=ext,
                                      MaxFaces=1, QualityFilter="NONE")
                dt = (time.perf_counter() - t0) * 1000
                e = float(r["ResponseMetadata"]["HTTPHeaders"].get("x-faceaudit-engine-ms", "nan"))
                with lock:
                    lat.append(dt)
                    eng.append(e)
            except Exception as exc:
                with lock:
                    errors.append(type(exc).__name__)
            i += 1

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    over = [a - b for a, b in zip(lat, eng, strict=True)]
    return {
        "operation": op, "clients": clients, "requests": len(lat), "errors": len(errors),
        "seconds": round(elapsed, 2), "rps": round(len(lat) / elapsed, 2),
        "latency_p50_ms": round(pct(lat, 0.5), 1), "latency_p95_ms": round(pct(lat, 0.95), 1),
        "engine_p50_ms": round(pct(eng, 0.5), 1), "engine_p95_ms": round(pct(eng, 0.95), 1),
        "overhead_p50_ms": round(pct(over, 0.5), 1), "overhead_p95_ms": round(pct(over, 0.95), 1),
    }


def in_process_engine_ms(repeat=20):
    """The engine work of one request without HTTP: largest face of a probe (SearchFacesByImage)."""
    from faceaudit.engine import FaceEngine

    engine = FaceEngine()
    imgs = [p.read_bytes() for p in PROBES]
    engine.largest(imgs[0])  # load the model
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        engine.largest(imgs[i % len(imgs)])
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--faces", type=int, default=200, help="faces in the searched collection (default 200)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        key = json.loads(subprocess.run([*faceaudit(), "keys", "create", "--json", "--data-dir", tmp],
                                        check=True, capture_output=True, text=True).stdout)
        log = open(data / "serve.log", "w")  # noqa: SIM115 - closed in the finally below, after the server
        proc = subprocess.Popen(
            [*faceaudit(), "serve", "--port", "0", "--data-dir", tmp, "--workers", str(args.workers),
             "--rate-limit", "0", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            line = proc.stdout.readline()
            m = re.search(r"serving (http://\S+)", line)
            if not m:
                raise SystemExit(f"serve did not start: {line!r}")
            url = m.group(1)
            c = client(url, key)
            c.create_collection(CollectionId="bench")
            images = [p.read_bytes() for p in PORTRAITS]
            for i in range(args.faces):
                c.index_faces(CollectionId="bench", Image={"Bytes": images[i % len(images)]},
                              ExternalImageId=f"seed-{i}", MaxFaces=1, QualityFilter="NONE")
            c.create_collection(CollectionId="bench-index")
            # warm every worker's engine
            for _ in range(4 * args.workers):
                client(url, key).search_faces_by_image(CollectionId="bench", Image={"Bytes": images[0]})
            results = []
            for clients in args.clients:
                results.append(run_load(url, key, "SearchFacesByImage", clients, args.seconds, "bench"))
                results.append(run_load(url, key, "IndexFaces", clients, args.seconds, "bench-index"))
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
    reference = in_process_engine_ms()
    header = (f"faceaudit serve over loopback: {args.workers} worker(s), {os.cpu_count()} CPU(s), "
              f"collection of {args.faces} faces, {args.seconds:g} s per row")
    print(header)
    cols = ["operation", "clients", "requests", "errors", "rps", "latency_p50_ms", "latency_p95_ms",
            "engine_p50_ms", "engine_p95_ms", "overhead_p50_ms", "overhead_p95_ms"]
    widths = [max(len(c), *(len(str(r[c])) for r in results)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in results:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))
    print(f"engine alone, in process (largest face of a probe, no HTTP): p50 {reference} ms")
    if args.json:
        args.json.write_text(json.dumps({"setup": header, "results": results,
                                         "engine_in_process_p50_ms": reference}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
