"""Issue 22, H2: unauthenticated paths (the review pages' sign-in) cannot stall the API: their
bodies are read on the event loop within a small size and a short deadline, and the pages run
in their own small pool. Bounded: 80 hostile connections, waits on conditions."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.service.conftest import client, create_key
from tests.service.test_hostile import connect, read_all


@pytest.fixture()
def review_server(tmp_path):
    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import (
        ServerLimits,
        ServiceApp,
        ServiceConfig,
        start_in_thread,
        stop_thread_server,
    )

    key = create_key(tmp_path, "operator", "Sam")
    app = ServiceApp(ServiceConfig(tmp_path, rate_limit=10_000), extension=AccountabilityExtension(tmp_path))
    limits = ServerLimits(page_body_timeout=2.0)
    srv, thread, url = start_in_thread(app, limits=limits)
    yield url, key
    stop_thread_server(srv, thread)


def slow_login(url) -> socket.socket:
    s = connect(url)
    s.sendall(b"POST /review/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
              b"Content-Length: 16000\r\n\r\na")  # one byte of 16,000, then nothing
    return s


def test_slow_sign_in_bodies_do_not_stall_the_api(review_server):
    url, key = review_server
    hostile = [slow_login(url) for _ in range(80)]  # more than the API's 32 threads
    rek = client(url, key, read_timeout=10, connect_timeout=10)
    answered = 0
    for _ in range(10):
        try:
            rek.detect_faces(Image={"Bytes": b"x" * 100})
        except ClientError as exc:
            answered += exc.response["Error"]["Code"] == "InvalidImageFormatException"
        except Exception:
            pass
    assert answered == 10
    for s in hostile:
        s.close()


def test_a_page_body_that_does_not_arrive_gets_408_at_the_page_deadline(review_server):
    url, _ = review_server
    s = slow_login(url)
    s.settimeout(30)
    reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:100]
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["__type"] == "RequestTimeoutException"


def test_page_bodies_past_the_limit_are_refused_before_reading(review_server):
    url, _ = review_server
    s = connect(url)
    s.sendall(b"POST /review/login HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n")
    s.settimeout(30)
    reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]


def test_sign_in_forms_are_small(review_server):
    import http.client

    url, _ = review_server
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
    conn.request("POST", "/review/login", body=b"a=" + b"b" * 5000,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert conn.getresponse().status == 413


def test_review_cookies_are_secure_behind_a_trusted_https_proxy(tmp_path):
    import http.client

    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import (
        ServerLimits,
        ServiceApp,
        ServiceConfig,
        start_in_thread,
        stop_thread_server,
    )

    app = ServiceApp(ServiceConfig(tmp_path, rate_limit=10_000), extension=AccountabilityExtension(tmp_path))
    srv, thread, url = start_in_thread(app, limits=ServerLimits(trusted_proxies=("127.0.0.1/32",)))
    try:
        def login_cookie(source, headers):
            conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=30,
                                              source_address=(source, 0))
            conn.request("GET", "/review/login", headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.headers["Set-Cookie"]

        assert "; Secure" in login_cookie("127.0.0.1", {"X-Forwarded-Proto": "https"})
        assert "; Secure" not in login_cookie("127.0.0.1", {})
        assert "; Secure" not in login_cookie("127.0.0.2", {"X-Forwarded-Proto": "https"})  # not a proxy
    finally:
        stop_thread_server(srv, thread)
