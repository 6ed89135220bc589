#!/usr/bin/env python
"""Per-request cost of PostgreSQL against SQLite, through HTTP with boto3 (issue 21).

One run, the same images and the same order for every deployment compared:

- ``sqlite-1``: one `faceaudit serve` on its data dir (SQLite files, the JSONL search log);
- ``sqlite-2``: two hosts on one data dir (SQLite across processes);
- ``postgresql-1``: one host with ``--database URL`` on a throwaway PostgreSQL server
  (scripts/_pgserver.py, fsync on);
- ``postgresql-2``: two hosts, each its own data dir, the same ``--database URL``.

For each: IndexFaces and SearchFacesByImage latencies (one client, requests alternating over the
hosts: the face engine runs in each), SearchFaces latencies (by FaceId: no face engine, so the
stores and the search log's append are most of the request), then C clients per deployment
(spread over its hosts) calling SearchFaces for S seconds: requests (= search log appends) per
second and their p50/p95; at the end `faceaudit log verify` must say OK with every search.

    python scripts/bench_two_hosts.py                          # 40 index, 60 searches, 8 clients x 20 s
    python scripts/bench_two_hosts.py --rounds 3                # interleaved rounds, pooled percentiles
    python scripts/bench_two_hosts.py --only postgresql-2 --clients 16 --seconds 30

Loopback only; results depend on the machine's cores (the hosts, the server and the clients
share them). Uses the scripts' support code (scripts/_deploy_support.py, _pgserver.py, _support.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _deploy_support import ServeProcess, create_key, faceaudit_cmd, rekognition
from _support import MEMBERS, portrait_2014, portrait_2018

DEPLOYMENTS = ("sqlite-1", "sqlite-2", "postgresql-1", "postgresql-2")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000.0


def _timed(calls) -> list[float]:
    out = []
    for call in calls:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def _verify(data_dir: Path, database: tuple[str, ...]) -> dict:
    done = subprocess.run([*faceaudit_cmd(), "log", "verify", "--json", "--data-dir", str(data_dir), *database],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"log verify failed: {done.stdout}{done.stderr}")
    return json.loads(done.stdout)


def run(name: str, root: Path, url: str | None, args: argparse.Namespace) -> dict:
    n_hosts = int(name.rsplit("-", 1)[1])
    database: tuple[str, ...] = ("--database", url) if url else ()
    dirs = [root / f"host-{i}" for i in range(n_hosts)] if url else [root / "data"] * n_hosts
    root.mkdir(parents=True, exist_ok=True)
    key = create_key(dirs[0], "operator", "Oscar", database)
    hosts = [ServeProcess(d, "--rate-limit", "0", *database, log_path=root / f"host-{i}.log")
             for i, d in enumerate(dirs)]
    try:
        clients = [rekognition(h.url, key) for h in hosts]
        clients[0].create_collection(CollectionId="bench")
        gallery = [portrait_2014(m).read_bytes() for m in MEMBERS]
        probes = [portrait_2018(m).read_bytes() for m in MEMBERS]
        face_ids: list[str] = []

        def index(i: int):
            def call():
                r = clients[i % n_hosts].index_faces(CollectionId="bench", Image={"Bytes": gallery[i % len(gallery)]},
                                                     ExternalImageId=f"{MEMBERS[i % len(MEMBERS)]}-{i}", MaxFaces=1)
                face_ids.append(r["FaceRecords"][0]["Face"]["FaceId"])
            return call

        for i in range(n_hosts):  # warm-up, not timed: each host loads its face model
            index(i)()
            clients[i].search_faces_by_image(CollectionId="bench", Image={"Bytes": probes[i]})
        index_s = _timed(index(i) for i in range(args.index))
        by_image_s = _timed((lambda i=i: clients[i % n_hosts].search_faces_by_image(
            CollectionId="bench", Image={"Bytes": probes[i % len(probes)]})) for i in range(args.searches))
        by_id_s = _timed((lambda i=i: clients[i % n_hosts].search_faces(
            CollectionId="bench", FaceId=face_ids[i % len(face_ids)])) for i in range(args.searches))

        stop = threading.Event()
        lock = threading.Lock()
        concurrent: list[float] = []
        errors: list[str] = []

        def client(c: int) -> None:
            rek = rekognition(hosts[c % n_hosts].url, key)
            mine = []
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    rek.search_faces(CollectionId="bench", FaceId=face_ids[c % len(face_ids)])
                    mine.append(time.perf_counter() - start)
                except Exception as exc:  # every failure is reported
                    with lock:
                        errors.append(type(exc).__name__)
            with lock:
                concurrent.extend(mine)

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)  # (a benchmark's fixed duration; not a test)
        stop.set()
        for t in threads:
            t.join(120)
        elapsed = time.perf_counter() - t0
    finally:
        for h in hosts:
            with contextlib.suppress(Exception):
                h.stop()
    searches = n_hosts + 2 * args.searches + len(concurrent)  # the warm-up searched once per host
    verified = _verify(dirs[0], database)
    if not verified.get("Ok") or verified.get("Records", 0) < searches:
        raise SystemExit(f"{name}: the log does not verify with {searches} searches: {verified}")
    return {"index": index_s, "by_image": by_image_s, "by_id": by_id_s, "load": concurrent,
            "load_s": elapsed, "errors": len(errors)}


def summary(name: str, runs: list[dict]) -> dict:
    """One deployment's rounds together: p50/p95 in ms, appends per second over all rounds."""
    row: dict = {"deployment": name, "rounds": len(runs)}
    for kind in ("index", "by_image", "by_id", "load"):
        values = [v for r in runs for v in r[kind]]
        row[f"{kind}_p50"], row[f"{kind}_p95"] = _pct(values, 0.5), _pct(values, 0.95)
    row["appends_per_s"] = sum(len(r["load"]) for r in runs) / sum(r["load_s"] for r in runs)
    row["errors"] = sum(r["errors"] for r in runs)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=int, default=40, help="timed IndexFaces calls")
    ap.add_argument("--searches", type=int, default=60, help="timed SearchFacesByImage and SearchFaces calls each")
    ap.add_argument("--clients", type=int, default=8, help="concurrent SearchFaces clients (over all hosts)")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of concurrent load")
    ap.add_argument("--rounds", type=int, default=1, help="times through every deployment, interleaved")
    ap.add_argument("--only", nargs="*", choices=DEPLOYMENTS, default=list(DEPLOYMENTS))
    args = ap.parse_args()

    from _pgserver import throwaway_server

    runs: dict[str, list[dict]] = {name: [] for name in args.only}
    loads = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server = None
        if any(d.startswith("postgresql") for d in args.only):
            server = stack.enter_context(throwaway_server(fsync=True))
        for round_ in range(args.rounds):  # interleaved: a burst of other load falls on every deployment
            for name in args.only:
                url = server.new_database() if name.startswith("postgresql") and server is not None else None
                loads.append(os.getloadavg()[0])
                runs[name].append(run(name, Path(tmp) / f"{name}-{round_}", url, args))
                print(f"round {round_ + 1}: {json.dumps(summary(name, runs[name][-1:]))}", flush=True)
    rows = [summary(name, runs[name]) for name in args.only]
    print(f"\n{os.cpu_count()} CPUs (1-min load average before each deployment: "
          f"{min(loads):.1f}-{max(loads):.1f}); {args.rounds} rounds; per round {args.index} IndexFaces, "
          f"{args.searches} searches of each kind (one client), {args.clients} SearchFaces clients x "
          f"{args.seconds:g} s; ms")
    print("| deployment | IndexFaces p50 / p95 | SearchFacesByImage p50 / p95 | SearchFaces p50 / p95 "
          "| under load: appends/s | p50 / p95 | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['deployment']} | {r['index_p50']:.0f} / {r['index_p95']:.0f} | {r['by_image_p50']:.0f} / "
              f"{r['by_image_p95']:.0f} | {r['by_id_p50']:.1f} / {r['by_id_p95']:.1f} | {r['appends_per_s']:.0f} | "
              f"{r['load_p50']:.0f} / {r['load_p95']:.0f} | {r['errors']} |")


if __name__ == "__main__":
    main()
