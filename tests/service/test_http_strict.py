"""Issue 22, item 10 (HTTP): header block and count limits, 414, UTF-8 JSON only, no NaN,
Infinity or overflowing numbers anywhere, Host checked with authentication off."""

from __future__ import annotations

import json

import pytest

from tests.service.test_hostile import connect, read_all


def exchange(url, raw: bytes) -> bytes:
    s = connect(url)
    s.sendall(raw)
    s.settimeout(30)
    return read_all(s)


def api_request(body: bytes, host: str = "x", extra: str = "") -> bytes:
    return (f"POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: RekognitionService.ListCollections\r\n"
            f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {len(body)}\r\n{extra}"
            "Connection: close\r\n\r\n").encode() + body


def error_type(reply: bytes) -> str:
    return json.loads(reply.partition(b"\r\n\r\n")[2])["__type"]


def test_too_many_headers_get_431(server):
    many = "".join(f"X-Pad-{i}: a\r\n" for i in range(150))
    reply = exchange(server, f"GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:100]
    assert error_type(reply) == "RequestHeaderFieldsTooLargeException"


def test_a_large_header_block_gets_431(server):
    big = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(64))  # 64 KiB, sent at once
    reply = exchange(server, f"GET /health HTTP/1.1\r\nHost: x\r\n{big}\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:100]


def test_a_long_url_gets_414(server):
    reply = exchange(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 414 "), reply[:100]
    assert error_type(reply) == "UriTooLongException"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """Authentication off (loopback only): the body is parsed without a signature."""
    from faceaudit.service import (
        ServiceApp,
        ServiceConfig,
        start_in_thread,
        stop_thread_server,
    )

    app = ServiceApp(ServiceConfig(tmp_path_factory.mktemp("open"), auth=False, rate_limit=10_000))
    srv, thread, url = start_in_thread(app)
    yield url
    stop_thread_server(srv, thread)


@pytest.mark.parametrize("body", [
    '{"MaxResults": 1}'.encode("utf-16"),
    '{"MaxResults": 1}'.encode("utf-16-le"),
    b'\xef\xbb\xbf{"MaxResults": 1}',
    b'{"Unknown": NaN}',
    b'{"Unknown": [1, {"deep": Infinity}]}',
    b'{"Unknown": -Infinity}',
    b'{"Unknown": 1e400}',
    b'{"Unknown": 1' + b"0" * 400 + b"}",
])
def test_only_utf8_json_with_finite_numbers(open_server, body):
    reply = exchange(open_server, api_request(body, host="127.0.0.1"))
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert error_type(reply) == "SerializationException"


def test_ordinary_json_still_parses(open_server):
    reply = exchange(open_server, api_request(b'{"MaxResults": 1, "x": 1.5e-300}', host="127.0.0.1"))
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]


@pytest.mark.parametrize("host", ["evil.example@127.0.0.1", "evil.example@127.0.0.1:80", "127.0.0.1:x",
                                  "evil.example", "127.0.0.1/evil"])
def test_host_is_checked_strictly_without_authentication(open_server, host):
    reply = exchange(open_server, api_request(b"{}", host=host))
    assert error_type(reply) == "AccessDeniedException", reply[:300]


def test_loopback_hosts_pass_without_authentication(open_server):
    for host in ("127.0.0.1", "127.0.0.1:8080", "localhost:1", "[::1]:8080"):
        assert exchange(open_server, api_request(b"{}", host=host)).startswith(b"HTTP/1.1 200 "), host
