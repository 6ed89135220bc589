"""The server's guard (service/_server.py) over uvicorn's h11 protocol, by composition (issue 20
item 8): keep-alive and pipelined requests keep their deadline, a body is counted across reads,
refusals never land inside another response. Each test waits for a condition, never a fixed time."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture()
def guarded(service_dir):
    """A server with a 3 s request deadline."""
    from faceaudit.service import ServerLimits, ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    app = ServiceApp(ServiceConfig(service_dir, rate_limit=10_000))
    srv, thread, url = start_in_thread(app, limits=ServerLimits(request_timeout=3))
    yield url
    stop_thread_server(srv, thread)


def connect(url):
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


class Responses:
    """Reads whole responses (Content-Length framed) off a socket, in order."""

    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def next(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        while len(rest) < length:
            self.buffer = head + b"\r\n\r\n" + rest
            self._more()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return int(head.split(b" ")[1]), rest[:length]

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed; unread: {self.buffer[:200]!r}")
        self.buffer += chunk


def trickle_until_answered(sock, reader: Responses) -> tuple[int, bytes]:
    """Send a byte of a never-ending header now and then until the server answers."""
    sock.settimeout(0.2)
    start = time.monotonic()
    while time.monotonic() - start < 30:
        try:
            sock.sendall(b"X")
            return reader.next()
        except TimeoutError:
            continue
    pytest.fail("no answer")


def test_a_kept_alive_connection_has_a_deadline_for_each_request(guarded):
    sock = connect(guarded)
    reader = Responses(sock)
    sock.sendall(GET)
    assert reader.next()[0] == 200
    sock.sendall(b"GET /health HTTP/1.1\r\n")  # the second request never finishes its head
    status, body = trickle_until_answered(sock, reader)
    assert status == 408 and json.loads(body)["__type"] == "RequestTimeoutException"


def test_pipelined_requests_are_answered_in_order_and_a_late_one_after_them(guarded):
    sock = connect(guarded)
    reader = Responses(sock)
    sock.sendall(GET + GET + b"GET /health HTTP/1.1\r\n")  # two whole requests and a late head
    assert [reader.next()[0] for _ in range(2)] == [200, 200]
    status, body = trickle_until_answered(sock, reader)  # its 408 comes whole, after both answers
    assert status == 408 and json.loads(body)["__type"] == "RequestTimeoutException"


def test_bodies_are_followed_across_reads_and_into_the_next_request(guarded):
    sock = connect(guarded)
    reader = Responses(sock)
    body = b'{"x": 1}'
    post = (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    sock.sendall(post + body[:3])
    statuses = [reader.next()[0]]  # answered from the head: the rest of the body comes in another read
    sock.sendall(body[3:] + GET)  # the rest of the body and a whole request in one read
    empty = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    statuses.append(reader.next()[0])
    sock.sendall(empty)
    statuses.append(reader.next()[0])
    sock.sendall(GET)
    statuses.append(reader.next()[0])
    assert statuses == [405, 200, 405, 200]  # POST /health is refused, and the connection goes on


@pytest.mark.parametrize("refused,status,code", [
    (b"GET /health HTTP/2.0\r\n\r\n", 505, "HttpVersionNotSupportedException"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "SerializationException"),
])
def test_a_refused_pipelined_request_is_answered_after_the_ones_before_it(guarded, refused, status, code):
    # behind a whole request in the same read: that one is served, and the refusal comes after
    # its answer, not inside it
    sock = connect(guarded)
    reader = Responses(sock)
    sock.sendall(GET + refused)
    assert reader.next()[0] == 200
    got, body = reader.next()
    assert got == status and json.loads(body)["__type"] == code


def test_no_uvicorn_method_is_overridden():
    import inspect

    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.supervisors.multiprocess import Multiprocess

    from faceaudit.service import GuardedH11Protocol, Supervisor

    assert not issubclass(GuardedH11Protocol, H11Protocol) and not issubclass(Supervisor, Multiprocess)
    uvicorn_bases = [c for c in inspect.getmro(GuardedH11Protocol) + inspect.getmro(Supervisor)
                     if c.__module__.startswith("uvicorn")]
    assert uvicorn_bases == []
