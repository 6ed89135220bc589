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
