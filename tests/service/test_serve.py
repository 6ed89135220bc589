"""`faceaudit serve` as a subprocess: workers, logs, graceful shutdown, --no-auth."""

from __future__ import annotations

import http.client
import json
import signal
import socket
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import WAIT_LIMIT_S, portrait_2018, wait_until
from tests.service.conftest import ServeProcess, cli, client, create_key


@pytest.fixture(scope="module")
def serve_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def serve_key(serve_dir):
    return create_key(serve_dir)


def signed_bytes(url, key, op, body: bytes) -> bytes:
    req = AWSRequest("POST", url + "/", data=body, headers={
        "X-Amz-Target": f"RekognitionService.{op}", "Content-Type": "application/x-amz-json-1.1",
        "Host": urlsplit(url).netloc})
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "rekognition", "us-east-1").add_auth(req)
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _tcp_sockets():
    """(local port, remote port, tx_queue, rx_queue) of every TCP socket, from /proc/net/tcp{,6}."""
    from pathlib import Path

    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            tx, rx = (int(x, 16) for x in f[4].split(":"))
            yield int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16), tx, rx


def server_has_read(server_port: int, client_port: int, sent: int) -> bool:
    """True once the server side of our connection has taken bytes out of its receive queue.

    The kernel's queues say it without a clock: the server's socket (local port =
    the server's, remote port = ours) holds fewer than ``sent`` unread bytes while
    nothing of ours is still unacknowledged.
    """
    socks = list(_tcp_sockets())
    ours = [(tx, rx) for lp, rp, tx, rx in socks if lp == client_port and rp == server_port]
    theirs = [rx for lp, rp, tx, rx in socks if lp == server_port and rp == client_port]
    if not ours or not theirs:
        return False
    return ours[0][0] == 0 and theirs[0] < sent


def read_response(sock) -> bytes:
    sock.settimeout(WAIT_LIMIT_S)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_two_workers_serve_log_and_stop_gracefully(serve_dir, serve_key):
    import base64

    proc = ServeProcess(serve_dir, "--workers", "2")
    try:
        image = portrait_2018("C000127").read_bytes()
        for _ in range(6):  # fresh connections spread over the workers
            r = client(proc.url, serve_key).detect_faces(Image={"Bytes": image})
            assert len(r["FaceDetails"]) == 1
        # an idle keep-alive connection must not hold the shutdown up
        parts = urlsplit(proc.url)
        idle = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        idle.request("GET", "/health")
        assert idle.getresponse().read()
        # a request in flight when SIGTERM arrives completes
        body = json.dumps({"Image": {"Bytes": base64.b64encode(image).decode()}}).encode()
        raw = signed_bytes(proc.url, serve_key, "DetectFaces", body)
        sock = socket.create_connection((parts.hostname, parts.port))
        sent = raw[:-100]
        sock.sendall(sent)
        # SIGTERM only once a worker has read from the connection (the request is then in flight)
        client_port = sock.getsockname()[1]
        wait_until(lambda: server_has_read(parts.port, client_port, len(sent)), "a worker to read the request")
        proc.proc.send_signal(signal.SIGTERM)
        sock.sendall(raw[-100:])
        response = read_response(sock)
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert proc.proc.wait(WAIT_LIMIT_S) == 0
    finally:
        proc.stop()
    lines = [json.loads(line) for line in proc.logs().splitlines() if line.startswith("{")]
    requests = [r for r in lines if r.get("message") == "request"]
    assert len(requests) >= 8
    for r in requests:
        assert {"time", "request_id", "operation", "access_key_id", "status", "error_code", "duration_ms"} <= set(r)
    pids = {r["worker"] for r in lines if r.get("event") == "worker_stopped"}
    assert len(pids) == 2  # both workers stopped cleanly
    assert serve_key["SecretAccessKey"] not in proc.logs()
    assert "Signature=" not in proc.logs()


def test_sigint_stops_too(serve_dir):
    proc = ServeProcess(serve_dir, "--workers", "1")
    assert proc.stop(signal.SIGINT, timeout=WAIT_LIMIT_S) == 0


def test_no_auth_warns_and_stays_on_loopback(serve_dir):
    proc = ServeProcess(serve_dir, "--no-auth", "--log-level", "WARNING")
    try:
        parts = urlsplit(proc.url)
        assert parts.hostname == "127.0.0.1"
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("POST", "/", body=json.dumps({"Image": {"Bytes": "AAAA"}}), headers={
            "X-Amz-Target": "RekognitionService.DetectFaces", "Content-Type": "application/x-amz-json-1.1"})
        resp = conn.getresponse()
        assert json.loads(resp.read())["__type"] == "InvalidImageFormatException"  # reached the engine unsigned
    finally:
        proc.stop()
    assert "authentication is OFF" in proc.logs()
    refused = cli("serve", "--no-auth", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(serve_dir), check=False)
    assert refused.returncode == 2 and "loopback" in refused.stderr


def test_rate_limit_flag(serve_dir, serve_key):
    from botocore.exceptions import ClientError

    # one request per 2 s per key, for both workers together
    proc = ServeProcess(serve_dir, "--rate-limit", "0.5", "--rate-burst", "1", "--workers", "2")
    try:
        patient = client(proc.url, serve_key, retries={"max_attempts": 10, "mode": "standard"})

        def call(rek):
            try:
                rek.detect_faces(Image={"Bytes": b"x"})
            except ClientError as e:
                return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]

        assert call(patient) == ("InvalidImageFormatException", 400)  # warm: reached the engine
        rek = client(proc.url, serve_key)  # no retries
        codes = [call(rek) for _ in range(5)]
        assert codes.count(("ThrottlingException", 500)) >= 3, codes
        # boto3 retries ThrottlingException by itself (standard mode: a throttling error)
        assert call(patient) == ("InvalidImageFormatException", 400)
        # another key has its own bucket
        other = client(proc.url, create_key(serve_dir))
        assert call(other) == ("InvalidImageFormatException", 400)
    finally:
        proc.stop()
