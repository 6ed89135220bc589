#!/usr/bin/env python
"""Soak the HTTP service with hostile traffic while real boto3 clients work (issue 11).

For each server under test it starts `faceaudit serve --workers W` on loopback (fresh data dir,
keys made with `faceaudit keys create --json`), then for D seconds:

- holds H hostile connections from loopback addresses 127.0.0.2-127.0.0.251: slowloris
  (headers never finished, a byte every few seconds; reconnecting whenever the server closes
  one) and B "pre-auth large body" connections (an auditor key's id, a zero signature,
  StartAudit declaring a 60 MiB body sent at full speed, over and over);
- runs C boto3 clients (threads, standard retry mode, 3 attempts) calling DetectFaces;
- probes GET /health every 0.5 s on a fresh connection (10 s timeout);
- samples the resident memory of each worker process every second.

It reports boto3 calls and errors (after retries), /health latency (p50/p95/max, failures),
worker memory (before the attack, peak during it) and how many hostile connections were held.
Loopback only; bounded in time (D seconds per server plus start-up).

    python scripts/soak_service.py                                 # this checkout, 60 s
    python scripts/soak_service.py --src old=/path/to/old/src --src new=src --seconds 60
    python scripts/soak_service.py --hostile 8 --big-bodies 8 --seconds 30   # the memory attack alone
    python scripts/soak_service.py --attack h1 --hostile 60 --seconds 20      # issue 22's replays
    python scripts/soak_service.py --attack h2 --hostile 80 --seconds 25
    python scripts/soak_service.py --attack kill --workers 2

``--src LABEL=DIR`` runs the server from another source tree (PYTHONPATH=DIR, same
interpreter), so that two versions are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "congress2018" / "C000127.jpg"
HOSTILE_SOURCES = [f"127.0.0.{i}" for i in range(2, 252)]


def cli(src: Path) -> list[str]:
    return [sys.executable, "-m", "faceaudit.cli._main"]


def env_for(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src.resolve())}


class Server:
    def __init__(self, src: Path, data_dir: Path, workers: int) -> None:
        self.log_path = data_dir / "serve.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 -- the server writes to it until stop() closes it
        self.proc = subprocess.Popen(
            [*cli(src), "serve", "--data-dir", str(data_dir), "--port", "0", "--workers", str(workers),
             "--rate-limit", "0", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env=env_for(src),
        )
        line = self.proc.stdout.readline()
        m = re.search(r"serving (http://\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"serve did not start: {line!r} {self.log_path.read_text()[-2000:]}")
        self.url = m.group(1)
        host, port = self.url.split("//")[1].rsplit(":", 1)
        self.address = (host, int(port))

    def workers(self) -> list[int]:
        """The worker processes (the server itself when it has none)."""
        kids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and b"resource_tracker" not in cmdline:
                kids.append(int(entry))
        return sorted(kids) or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Slowloris(threading.Thread):
    """Holds ``n`` connections whose headers never end (a byte every ``interval`` seconds)."""

    def __init__(self, address, n: int, interval: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.address, self.n, self.interval, self.stop = address, n, interval, stop
        self.socks: list[socket.socket | None] = [None] * n
        self.due = [0.0] * n
        self.reconnects = 0
        self.held_samples: list[int] = []

    def _open(self, i: int) -> None:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2.0)
            s.bind((HOSTILE_SOURCES[i % len(HOSTILE_SOURCES)], 0))
            s.connect(self.address)
            s.sendall(b"POST / HTTP/1.1\r\nHost: soak\r\nX-Amz-Target: RekognitionService.DetectFaces\r\n")
            s.setblocking(False)
            self.socks[i] = s
            self.due[i] = time.monotonic() + random.uniform(0, self.interval)
        except OSError:
            self.socks[i] = None
            self.due[i] = time.monotonic() + 1.0

    def held(self) -> int:
        return sum(1 for s in self.socks if s is not None)

    def run(self) -> None:
        for i in range(self.n):
            if self.stop.is_set():
                break
            self._open(i)
        while not self.stop.is_set():
            now = time.monotonic()
            for i, s in enumerate(self.socks):
                if now < self.due[i]:
                    continue
                if s is None:
                    self.reconnects += 1
                    self._open(i)
                    continue
                try:
                    if s.recv(65536) == b"":  # closed by the server (or answered)
                        raise OSError("closed")
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    self.socks[i] = None
                    self.due[i] = now + 0.5
                    continue
                try:
                    s.send(b"X")  # one byte of a header that never ends
                    self.due[i] = now + self.interval
                except BlockingIOError:
                    self.due[i] = now + self.interval
                except OSError:
                    s.close()
                    self.socks[i] = None
                    self.due[i] = now + 0.5
            self.held_samples.append(self.held())
            self.stop.wait(0.5)
        for s in self.socks:
            if s is not None:
                s.close()


class BigBody(threading.Thread):
    """StartAudit with an auditor key's id, a zero signature and a 60 MiB body, again and again."""

    SIZE = 60 * 1024 * 1024

    def __init__(self, address, key_id: str, source: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.address, self.key_id, self.source, self.stop = address, key_id, source, stop
        self.sent = 0
        self.answers: dict[str, int] = {}

    def run(self) -> None:
        chunk = b"0" * (1 << 20)
        while not self.stop.is_set():
            now = dt.datetime.now(dt.UTC)
            amz = now.strftime("%Y%m%dT%H%M%SZ")
            head = (
                "POST / HTTP/1.1\r\nHost: soak\r\nContent-Type: application/x-amz-json-1.1\r\n"
                "X-Amz-Target: FaceAuditService.StartAudit\r\n"
                f"X-Amz-Date: {amz}\r\nContent-Length: {self.SIZE}\r\n"
                f"Authorization: AWS4-HMAC-SHA256 Credential={self.key_id}/{amz[:8]}/us-east-1/rekognition/"
                "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                f"Signature={'0' * 64}\r\n\r\n"
            ).encode()
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(30.0)
                s.bind((self.source, 0))
                s.connect(self.address)
                s.sendall(head)
                left = self.SIZE
                while left > 0 and not self.stop.is_set():
                    n = s.send(chunk[: min(left, len(chunk))])
                    left -= n
                    self.sent += n
                reply = s.recv(4096)
                status = reply.split(b"\r\n", 1)[0].decode("latin-1", "replace")[9:12] or "closed"
            except OSError as exc:
                status = type(exc).__name__
            finally:
                s.close()
            self.answers[status] = self.answers.get(status, 0) + 1
            self.stop.wait(0.2)


class Health(threading.Thread):
    def __init__(self, address, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.address, self.stop = address, stop
        self.latencies_ms: list[float] = []
        self.failures: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                with socket.create_connection(self.address, timeout=10) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                    reply = b""
                    while True:
                        data = s.recv(65536)
                        if not data:
                            break
                        reply += data
                status = reply.split(b"\r\n", 1)[0][9:12].decode("latin-1", "replace") or "closed"
            except OSError as exc:
                status = type(exc).__name__
            if status == "200":
                self.latencies_ms.append((time.perf_counter() - start) * 1000.0)
            else:
                self.failures[status] = self.failures.get(status, 0) + 1
            self.stop.wait(0.5)


def legit_clients(url: str, key: dict, n: int, seconds: float) -> dict:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    image = PHOTO.read_bytes()
    calls = [0] * n
    errors: list[dict[str, int]] = [{} for _ in range(n)]  # error code -> count, per thread
    end = time.monotonic() + seconds

    def work(i: int) -> None:
        rek = boto3.client(
            "rekognition", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60),
        )
        while time.monotonic() < end:
            try:
                rek.detect_faces(Image={"Bytes": image})
                calls[i] += 1
            except ClientError as exc:
                code = exc.response["Error"]["Code"] or str(exc.response["ResponseMetadata"]["HTTPStatusCode"])
                errors[i][code] = errors[i].get(code, 0) + 1
            except (BotoCoreError, OSError) as exc:
                errors[i][type(exc).__name__] = errors[i].get(type(exc).__name__, 0) + 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 180)
    by_code: dict[str, int] = {}
    for e in errors:
        for k, v in e.items():
            by_code[k] = by_code.get(k, 0) + v
    return {"calls_ok": sum(calls), "errors": sum(by_code.values()), "errors_by_code": by_code}


def soak(label: str, src: Path, args) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"soak-{label}-") as tmp:
        data = Path(tmp)
        keys = {}
        for role in ("operator", "auditor"):
            out = subprocess.run([*cli(src), "keys", "create", "--json", "--role", role, "--data-dir", str(data)],
                                 capture_output=True, text=True, check=True, env=env_for(src)).stdout
            keys[role] = json.loads(out)
        server = Server(src, data, args.workers)
        try:
            warm = legit_clients(server.url, keys["operator"], args.workers * 4, 5.0)  # engines loaded
            workers = server.workers()
            baseline = {pid: rss_mib(pid) for pid in workers}
            peak = dict(baseline)
            stop = threading.Event()
            slow = Slowloris(server.address, args.hostile - args.big_bodies, args.interval, stop)
            bigs = [BigBody(server.address, keys["auditor"]["AccessKeyId"], HOSTILE_SOURCES[-1 - i], stop)
                    for i in range(args.big_bodies)]
            health = Health(server.address, stop)
            slow.start()
            for b in bigs:
                b.start()
            deadline = time.monotonic() + 60
            while slow.held() < slow.n * 0.95 and time.monotonic() < deadline:
                time.sleep(0.5)
            held_at_start = slow.held() + len(bigs)
            health.start()

            def sample() -> None:
                while not stop.is_set():
                    for pid in server.workers():
                        value = rss_mib(pid)
                        if value is not None:
                            peak[pid] = max(peak.get(pid) or 0.0, value)
                    stop.wait(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            result = legit_clients(server.url, keys["operator"], args.clients, args.seconds)
            stop.set()
            for t in [slow, health, sampler, *bigs]:
                t.join(60)
        finally:
            server.stop()
        lat = sorted(health.latencies_ms)
        held = sorted(slow.held_samples) or [0]
        return {
            "server": label,
            "workers": args.workers,
            "warm_up": warm,
            "boto3": result,
            "health": {
                "ok": len(lat), "failures": health.failures,
                "p50_ms": round(statistics.median(lat), 1) if lat else None,
                "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
                "max_ms": round(lat[-1], 1) if lat else None,
            },
            "memory_mib": {str(pid): {"before": None if baseline.get(pid) is None else round(baseline[pid], 1),
                                      "peak": None if peak.get(pid) is None else round(peak[pid], 1)}
                           for pid in sorted(peak)},
            "hostile": {"connections": args.hostile, "held_at_start": held_at_start,
                        "slowloris_held_median": held[len(held) // 2] + args.big_bodies,
                        "slowloris_reconnects": slow.reconnects,
                        "big_body_mib_sent": round(sum(b.sent for b in bigs) / 2**20),
                        "big_body_answers": {k: sum(b.answers.get(k, 0) for b in bigs)
                                             for k in sorted({k for b in bigs for k in b.answers})}},
        }


# -- issue 22: replays of H1 (header-only requests naming known key ids), H2 (slow sign-ins) and
# -- the kill test (both workers killed, the outage measured) -------------------------------------

def signed_heads(url: str, key_ids: list[str], length: int, op: str = "CompareFaces") -> list[bytes]:
    """Request heads naming each key id with a junk signature (a wrong secret) for a body of
    ``length`` bytes."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    heads = []
    netloc = url.split("//")[1]
    for key_id in key_ids:
        req = AWSRequest("POST", url + "/", data=b"", headers={
            "X-Amz-Target": f"RekognitionService.{op}", "Content-Type": "application/x-amz-json-1.1", "Host": netloc})
        SigV4Auth(Credentials(key_id, "junk" * 10), "rekognition", "us-east-1").add_auth(req)
        head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
        heads.append((head + f"Content-Length: {length}\r\n\r\n").encode())
    return heads


class Holder(threading.Thread):
    """Holds ``n`` connections that each sent ``heads[i]`` and ``first`` and then a byte every
    ``interval`` seconds (never completing); one answered or closed is opened again at once."""

    def __init__(self, address, heads: list[bytes], n: int, stop: threading.Event, interval: float = 5.0,
                 first: bytes = b"{", sources: int = 6) -> None:
        super().__init__(daemon=True)
        self.address, self.heads, self.n, self.stop = address, heads, n, stop
        self.interval, self.first, self.sources = interval, first, sources
        self.renewed = 0
        self.answers: dict[str, int] = {}
        self.held_samples: list[int] = []

    def _open(self, sel, i: int) -> None:
        import selectors

        try:
            s = socket.create_connection(self.address, timeout=5, source_address=(HOSTILE_SOURCES[i % self.sources], 0))
            s.sendall(self.heads[i % len(self.heads)] + self.first)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
        except OSError:
            pass

    def run(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        for i in range(self.n):
            self._open(sel, i)
        next_byte = time.monotonic() + self.interval
        while not self.stop.is_set():
            for sk, _ in sel.select(0.2):
                sel.unregister(sk.fileobj)
                try:
                    status = sk.fileobj.recv(64)[9:12].decode("latin-1") or "closed"
                except OSError:
                    status = "reset"
                self.answers[status] = self.answers.get(status, 0) + 1
                sk.fileobj.close()
                self.renewed += 1
                self._open(sel, sk.data + 1)
            if time.monotonic() >= next_byte:
                next_byte += self.interval
                for sk in list(sel.get_map().values()):
                    with contextlib.suppress(OSError):
                        sk.fileobj.send(b"a")
            self.held_samples.append(len(sel.get_map()))
        for sk in list(sel.get_map().values()):
            sk.fileobj.close()


def victim(url: str, key: dict, seconds: float, read_timeout: float) -> dict:
    """DetectFaces calls (a 200 KB junk image; no retries) for ``seconds``: answered (the
    service's InvalidImageFormatException) and not (refusals, timeouts), with their codes."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    rek = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                       config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10,
                                     read_timeout=read_timeout))
    answered = 0
    refused: dict[str, int] = {}  # error code -> count
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            rek.detect_faces(Image={"Bytes": b"x" * 200_000})
            answered += 1
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "InvalidImageFormatException":
                answered += 1
            else:
                refused[code] = refused.get(code, 0) + 1
        except Exception as exc:  # a timeout or a broken connection
            refused[type(exc).__name__] = refused.get(type(exc).__name__, 0) + 1
    return {"answered": answered, "not_answered": sum(refused.values()), "why": refused}


def replay(label: str, src: Path, args) -> dict:
    """One of the issue 22 attacks against `faceaudit serve --workers W` from ``src``."""
    with tempfile.TemporaryDirectory(prefix=f"replay-{label}-") as tmp:
        data = Path(tmp)
        keys = []
        for role in ("operator", "admin", "operator", "auditor"):
            out = subprocess.run([*cli(src), "keys", "create", "--json", "--role", role, "--data-dir", str(data)],
                                 capture_output=True, text=True, check=True, env=env_for(src)).stdout
            keys.append(json.loads(out))
        server = Server(src, data, args.workers)
        try:
            victim(server.url, keys[0], 2.0, 30)  # warm
            if args.attack == "kill":
                return {"server": label, "attack": "kill", **kill_test(server)}
            workers = server.workers()
            baseline = {pid: rss_mib(pid) for pid in workers}
            peak = dict(baseline)
            stop = threading.Event()
            if args.attack == "h1":  # 12 such bodies fill a worker's 160 MiB budget to the byte
                heads = signed_heads(server.url, [k["AccessKeyId"] for k in keys], 160 * 2**20 // 12)
                hostile = Holder(server.address, heads, args.hostile, stop)
            else:  # h2
                head = (b"POST /review/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                        b"\r\nContent-Length: 16000\r\n\r\n")
                hostile = Holder(server.address, [head], args.hostile, stop, first=b"a")
            hostile.start()

            def sample() -> None:
                while not stop.is_set():
                    for pid in server.workers():
                        value = rss_mib(pid)
                        if value is not None:
                            peak[pid] = max(peak.get(pid) or 0.0, value)
                    stop.wait(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            time.sleep(2.0)  # the hostile connections are made (a script, not a test)
            result = victim(server.url, keys[0], args.seconds, 25.0)
            stop.set()
            hostile.join(60)
            sampler.join(10)
        finally:
            server.stop()
        held = sorted(hostile.held_samples) or [0]
        return {"server": label, "attack": args.attack, "victim": result,
                "hostile": {"connections": args.hostile, "held_median": held[len(held) // 2],
                            "renewed": hostile.renewed, "answers": hostile.answers},
                "memory_mib": {str(pid): {"before": None if baseline.get(pid) is None else round(baseline[pid], 1),
                                          "peak": None if peak.get(pid) is None else round(peak[pid], 1)}
                               for pid in sorted(peak)}}


def kill_test(server: Server, rounds: int = 6) -> dict:
    """Kill -9 every worker at once, ``rounds`` times (each as soon as every slot has a new
    worker, so that the supervisor's back-off grows): per round, the seconds until the service
    answered GET /health again (the outage) and until every slot had a new worker."""
    import signal as _signal

    def answers() -> bool:
        try:
            with socket.create_connection(server.address, timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    outages, recovered = [], []
    for _ in range(rounds):
        before = server.workers()
        killed = time.monotonic()
        for pid in before:
            os.kill(pid, _signal.SIGKILL)
        deadline = killed + 120
        while any(os.path.exists(f"/proc/{pid}") and "zombie" not in Path(f"/proc/{pid}/status").read_text()
                  for pid in before if os.path.exists(f"/proc/{pid}/status")) and time.monotonic() < deadline:
            time.sleep(0.01)  # the old workers are gone (their accepted connections with them)
        while not answers() and time.monotonic() < deadline:
            time.sleep(0.05)
        outages.append(round(time.monotonic() - killed, 2))
        while time.monotonic() < deadline:
            now = server.workers()
            if len(now) == len(before) and not set(now) & set(before):
                break
            time.sleep(0.05)
        recovered.append(round(time.monotonic() - killed, 2))
    return {"rounds": rounds, "outage_s": outages, "all_workers_back_s": recovered}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", action="append", default=[], metavar="LABEL=DIR",
                   help="a source tree to serve from (repeatable; default: this checkout's src)")
    p.add_argument("--seconds", type=float, default=60.0, help="boto3 work per server (default 60)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--hostile", type=int, default=1000, help="hostile connections held (default 1000)")
    p.add_argument("--big-bodies", type=int, default=4, help="of which pre-auth 60 MiB bodies (default 4)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between slowloris bytes (default 10)")
    p.add_argument("--json", dest="json_out", default=None, help="write the results here too")
    p.add_argument("--attack", choices=["h1", "h2", "kill"], default=None,
                   help="replay one attack of issue 22 instead of the soak: h1 (--hostile header-only "
                        "requests naming known key ids, junk signatures, renewed), h2 (--hostile slow "
                        "sign-ins), kill (every worker killed at once, 3 times: the outage)")
    args = p.parse_args(argv)
    if args.attack:
        sources = [s.split("=", 1) for s in args.src] or [["this", str(ROOT / "src")]]
        results = [replay(label, Path(src), args) for label, src in sources]
        for r in results:
            print(json.dumps(r))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))
        return 0
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.hostile * 2 + 256)), hard))
    sources = [s.split("=", 1) for s in args.src] or [["this", str(ROOT / "src")]]
    results = []
    for label, src in sources:
        print(f"soaking {label} ({src}): {args.hostile} hostile connections, {args.clients} boto3 clients, "
              f"{args.seconds:g} s, {args.workers} workers, {os.cpu_count()} cores", file=sys.stderr, flush=True)
        results.append(soak(label, Path(src), args))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(f"{'server':<10} {'boto3 ok':>9} {'errors':>7} {'health ok':>9} {'fail':>5} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'max ms':>8}  worker memory MiB (before -> peak)")
    for r in results:
        h, b = r["health"], r["boto3"]
        mem = ", ".join(f"{m['before']}->{m['peak']}" for m in r["memory_mib"].values())
        print(f"{r['server']:<10} {b['calls_ok']:>9} {b['errors']:>7} {h['ok']:>9} {sum(h['failures'].values()):>5} "
              f"{h['p50_ms']!s:>7} {h['p95_ms']!s:>7} {h['max_ms']!s:>8}  {mem}")
        print(f"{'':<10} errors {b['errors_by_code']}; health failures {h['failures']}; hostile {r['hostile']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
