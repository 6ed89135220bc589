"""Security of the service pipeline."""

from __future__ import annotations

import json

import pytest

from faceaudit.service import Dispatcher, ServiceApp, ServiceConfig
from tests.service.test_app import FakeBackend, request


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:9", True), ("localhost:8080", True), ("[::1]:8080", True), ("127.0.0.1", True),
    ("attacker.example:8080", False), ("attacker.example", False), ("10.0.0.5:8080", False),
])
def test_no_auth_mode_serves_only_loopback_host_names(tmp_path, host, ok):
    """Without authentication (loopback only), a web page that rebinds its DNS name to 127.0.0.1
    is same-origin with the service and could call every operation as the anonymous admin;
    its requests carry its own name in Host, so only loopback names are served."""
    app = ServiceApp(ServiceConfig(tmp_path, auth=False),
                     dispatcher=Dispatcher(tmp_path, backend_factory=FakeBackend))
    r = app.handle(request(None, "ListCollections", headers={"Host": host}))
    if ok:
        assert r.status == 200, r.body
    else:
        assert r.status == 400 and json.loads(r.body)["__type"] == "AccessDeniedException"


def test_context_headers_must_be_signed(tmp_path):
    """x-faceaudit-* headers (case reference, purpose) go into the search log as what the key
    holder asserted: one added to a signed request (replayed within 15 minutes, or changed on
    the way over plain HTTP) must be refused, not logged."""
    from dataclasses import replace

    from faceaudit.service import KeyStore

    key = KeyStore(tmp_path).create("operator")
    app = ServiceApp(ServiceConfig(tmp_path, rate_limit=0),
                     dispatcher=Dispatcher(tmp_path, backend_factory=FakeBackend))
    signed = request(key, "ListCollections", headers={"x-faceaudit-case-reference": "case-1"})
    assert app.handle(signed).status == 200
    plain = request(key, "ListCollections")
    assert app.handle(plain).status == 200
    forged = request(key, "ListCollections")
    forged = replace(forged, headers=[*forged.headers, ("X-Faceaudit-Case-Reference", "case-forged")])
    r = app.handle(forged)
    assert r.status == 400 and json.loads(r.body)["__type"] == "InvalidSignatureException", r.body
