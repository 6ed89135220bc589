#!/usr/bin/env python
"""Failover behind deploy/haproxy.cfg: how long a host killed with SIGKILL disturbs clients.

Starts two `faceaudit serve` hosts on one data dir (loopback, fixed ports so a host can come
back on its own), HAProxy from deploy/haproxy.cfg as it is (TLS with a throwaway CA), indexes
three faces, then for each trial: C boto3 clients search through the proxy back to back
(SearchFacesByImage: the face engine runs, so requests are in flight on both hosts), host B gets
SIGKILL, the clients go on for S seconds; B is started again and the script waits until HAProxy
has it UP. Per trial it reports:

- requests that failed (those in flight on B when it died: HAProxy never resends a request it
  has sent) and every other outcome;
- first failure -> next success (the gap one client sees) in milliseconds, and the slowest of the
  first requests to finish after the kill against the median before it;
- kill -> HAProxy marks B DOWN (its /ready checks, ``inter 1s fall 2``), and restart -> UP again;
- at the end, HAProxy's log lines of API requests it retried or did not answer with 200.

    python scripts/deploy_failover.py                       # 5 trials, 4 clients, 6 s after each kill
    python scripts/deploy_failover.py --trials 3 --clients 8 --after 8
    python scripts/deploy_failover.py --attempts 3             # as boto3 retries by default
    python scripts/deploy_failover.py --postgres               # each host its own data dir, one PostgreSQL

``--postgres`` starts a throwaway PostgreSQL server (scripts/_pgserver.py: Debian's binaries) and
gives each host its own data dir and ``--database URL``, as docs/deploy.md deploys them.

Loopback only. Uses the scripts' support code (scripts/_deploy_support.py, scripts/_support.py).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _deploy_support import HAProxy, ServeProcess, create_key, free_port, rekognition, wait_for
from _support import portrait_2014, portrait_2018


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--after", type=float, default=6.0, help="seconds of traffic after each kill")
    ap.add_argument("--attempts", type=int, default=1,
                    help="boto3 tries per call (1: no retry, every failure shows; boto3's default is 3)")
    ap.add_argument("--postgres", action="store_true",
                    help="each host its own data dir and --database on a throwaway PostgreSQL server")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.postgres:
            from _pgserver import throwaway_server

            database = ("--database", stack.enter_context(throwaway_server()).new_database())
            dirs = [Path(tmp) / "host-a", Path(tmp) / "host-b"]
        else:
            database = ()
            dirs = [Path(tmp) / "data"] * 2  # one data dir for both hosts
        keys = {"operator": create_key(dirs[0], "operator", "Oscar", database)}
        ports = [free_port(), free_port()]

        def serve(i: int) -> ServeProcess:
            return ServeProcess(dirs[i], "--trusted-proxy", "127.0.0.1/32", "--rate-limit", "0",
                                "--port", str(ports[i]), *database,
                                log_path=Path(tmp) / f"host-{i}-{time.monotonic_ns()}.log")

        hosts = [serve(0), serve(1)]
        proxy = HAProxy(Path(tmp) / "proxy", [f"127.0.0.1:{p}" for p in ports]).start()
        try:
            wait_for(lambda: set(proxy.server_states().values()) == {"UP"}, 60, "hosts never UP")
            direct = rekognition(hosts[0].url, keys["operator"])
            direct.create_collection(CollectionId="door")
            for person in ("B000944", "C000141", "C000127"):
                direct.index_faces(CollectionId="door", Image={"Bytes": portrait_2014(person).read_bytes()},
                                   ExternalImageId=person)
            probe = {"Bytes": portrait_2018("B000944").read_bytes()}
            rows = []
            for trial in range(args.trials):
                rows.append(_trial(proxy, keys["operator"], probe, hosts, args.clients, args.after, args.attempts))
                hosts[1] = serve(1)
                t_restart = time.monotonic()
                wait_for(lambda: proxy.server_states()["host_b"] == "UP", 60, "B never came back")
                rows[-1]["up_s"] = time.monotonic() - t_restart
                r = rows[-1]
                print(f"trial {trial + 1}: {r['ok']} ok, {r['failed']} failed {r['codes']}, "
                      f"gap {r['gap_ms']:.0f} ms, latency p50 before {r['p50_before_ms']:.0f} ms, slowest "
                      f"across the kill {r['slowest_after_ms']:.0f} ms, kill->DOWN {r['down_s']:.2f} s, "
                      f"restart->UP {r['up_s']:.2f} s; "
                      f"HAProxy so far: {_counters(proxy)}", flush=True)
            gaps = [r["gap_ms"] for r in rows if r["failed"]]
            print(f"\n{args.trials} trials, {args.clients} clients, {args.attempts} attempt(s) per call: "
                  f"failed requests per kill "
                  f"{[r['failed'] for r in rows]}; first failure -> next success median "
                  f"{statistics.median(gaps) if gaps else 0:.0f} ms (max {max(gaps, default=0):.0f}); slowest request "
                  f"across a kill {max(r['slowest_after_ms'] for r in rows):.0f} ms (p50 before the kills "
                  f"{statistics.median(r['p50_before_ms'] for r in rows):.0f} ms); "
                  f"kill -> DOWN median {statistics.median(r['down_s'] for r in rows):.2f} s; "
                  f"restart -> UP median {statistics.median(r['up_s'] for r in rows):.2f} s")
            _proxy_log(proxy)
        finally:
            proxy.stop()
            for host in hosts:
                with contextlib.suppress(Exception):
                    host.stop()


def _proxy_log(proxy: HAProxy) -> None:
    """HAProxy's log lines of API requests that were retried (the last counter of
    ``actconn/feconn/beconn/srv_conn/retries``; ``+N``: sent to another server) or not answered 200."""
    shown = 0
    for line in proxy.logs().splitlines():
        parts = line.split()
        if '"POST' not in line or len(parts) < 12:
            continue
        status, retries = parts[5], parts[10].rsplit("/", 1)[-1]
        if status != "200" or retries not in ("0", ""):
            print("  haproxy:", line[line.find("]") + 2:], flush=True)
            shown += 1
    print(f"  {shown} API requests retried or not answered 200 by HAProxy", flush=True)


def _counters(proxy: HAProxy) -> dict[str, int]:
    """HAProxy's own totals for host B: requests sent (stot), retries (wretr), redispatches (wredis),
    response errors (eresp: e.g. a host that died while answering)."""
    lines = proxy.command("show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "faceaudit_hosts" and row.get("svname") == "host_b":
            return {k: int(row.get(k) or 0) for k in ("stot", "wretr", "wredis", "eresp")}
    return {}


def _trial(proxy: HAProxy, key: dict, probe: dict, hosts: list[ServeProcess], n_clients: int,
           after: float, attempts: int) -> dict:
    stop = threading.Event()
    events: list[tuple[float, bool, str, float]] = []  # (finish time, ok, code, seconds taken)
    lock = threading.Lock()

    def client() -> None:
        rek = rekognition(proxy.url, key, verify=proxy.ca, attempts=attempts)
        while not stop.is_set():
            start = time.monotonic()
            try:
                rek.search_faces_by_image(CollectionId="door", Image=probe)
                outcome = (time.monotonic(), True, "200", time.monotonic() - start)
            except Exception as exc:  # every failure a client sees is counted
                code = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
                outcome = (time.monotonic(), False, str(code or type(exc).__name__), time.monotonic() - start)
            with lock:
                events.append(outcome)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(n_clients)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # both hosts busy
    t_kill = time.monotonic()
    hosts[1].stop(signal.SIGKILL)
    down = None
    while time.monotonic() - t_kill < after:
        if down is None and proxy.server_states()["host_b"].startswith("DOWN"):
            down = time.monotonic() - t_kill
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join(60)
    after_kill = sorted(e for e in events if e[0] >= t_kill)
    failed = [e for e in after_kill if not e[1]]
    gap = 0.0
    if failed:
        first_fail = failed[0][0]
        next_ok = next((e[0] for e in after_kill if e[1] and e[0] > first_fail), first_fail)
        gap = (next_ok - first_fail) * 1000.0
    codes: dict[str, int] = {}
    for e in failed:
        codes[e[2]] = codes.get(e[2], 0) + 1
    before = [e[3] for e in events if e[0] < t_kill]
    return {"ok": sum(1 for e in after_kill if e[1]), "failed": len(failed), "codes": codes, "gap_ms": gap,
            "p50_before_ms": statistics.median(before) * 1000.0 if before else float("nan"),
            "slowest_after_ms": max((e[3] for e in after_kill[:4 * n_clients]), default=0.0) * 1000.0,
            "down_s": down if down is not None else float("nan")}


if __name__ == "__main__":
    main()
