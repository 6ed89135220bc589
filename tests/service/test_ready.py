"""GET /ready: readiness of the stores a host needs (503 with a reason when one does not answer)."""

from __future__ import annotations

import threading

import pytest

from faceaudit.service import ServiceApp, ServiceConfig
from faceaudit.service._protocol import HttpRequest
from faceaudit.service._ready import Readiness
from tests._deploy import get


def _get(app: ServiceApp, path: str, method: str = "GET"):
    import json

    response = app.handle(HttpRequest(method=method, raw_path=path, query="", headers=[("Host", "localhost")],
                                      remote="127.0.0.1", content_length=None))
    return response.status, json.loads(response.body), dict(response.headers)


def test_ready_checks_every_store_of_a_served_data_dir(tmp_path):
    from faceaudit.accountability import AccountabilityExtension

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = ServiceApp(ServiceConfig(data), extension=AccountabilityExtension(data))
    status, doc, headers = _get(app, "/ready")
    assert status == 200, doc
    assert doc == {"Status": "ready", "Checks": {"keys": "ok", "collections": "ok", "accountability": "ok"}}
    assert headers["Cache-Control"] == "no-store" and "Retry-After" not in headers
    status, doc, headers = _get(app, "/ready", "POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_a_store_that_fails_makes_the_host_unavailable_without_its_secrets(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = ServiceApp(ServiceConfig(data))

    def broken() -> None:
        raise ConnectionError("connection to postgresql://faceaudit:hunter2@db.internal failed")

    app.readiness = Readiness([("keys", lambda: None), ("collections", broken)])
    status, doc, headers = _get(app, "/ready")
    assert status == 503 and headers["Retry-After"] == "1"
    assert doc == {"Status": "unavailable", "Checks": {"keys": "ok", "collections": "failed: ConnectionError"},
                   "Reason": "collections failed (ConnectionError)"}
    assert "hunter2" not in str(doc)
    status, doc, _ = _get(app, "/health")  # liveness is not readiness: the process answers
    assert status == 200 and doc["Status"] == "ok"


def test_a_store_that_hangs_gets_a_deadline_and_one_check_at_a_time():
    release = threading.Event()
    calls = []

    def hangs() -> None:
        calls.append(1)
        release.wait(30)

    ready = Readiness([("database", lambda: None), ("vectors", hangs), ("log", lambda: None)],
                      deadline_s=0.2, cache_s=0.0)
    try:
        for _ in range(3):  # the hanging check is waited on again, never started twice
            report = ready.check()
            assert not report.ready
            assert report.checks == {"database": "ok", "vectors": "no answer within 0.2 s", "log": "not checked"}
            assert report.reason == "vectors: no answer within 0.2 s"
        assert len(calls) == 1
    finally:
        release.set()


def test_results_are_reused_for_the_cache_period():
    now = [100.0]
    calls = []
    ready = Readiness([("database", lambda: calls.append(1))], cache_s=1.0, clock=lambda: now[0])
    assert ready.check().ready and ready.check().ready
    assert len(calls) == 1
    now[0] += 1.5
    assert ready.check().ready and len(calls) == 2


def test_ready_over_http_needs_no_key(server):
    status, doc, headers = get(server + "/ready")
    assert status == 200 and doc["Status"] == "ready" and headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/ready", "/health"])
def test_head_is_answered(tmp_path, path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    status, _, _ = _get(ServiceApp(ServiceConfig(data)), path, "HEAD")
    assert status == 200


def test_a_database_that_cannot_be_read_is_not_ready(tmp_path):
    from faceaudit.collections._store import DB_NAME

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / DB_NAME).write_bytes(b"not a database, " * 512)
    (data / DB_NAME).chmod(0o600)
    status, doc, _ = _get(ServiceApp(ServiceConfig(data)), "/ready")
    assert status == 503 and doc["Checks"]["keys"] == "ok"
    assert doc["Checks"]["collections"].startswith("failed: ") and doc["Reason"].startswith("collections failed")


def test_a_milvus_server_that_does_not_answer_is_not_ready(tmp_path):
    pytest.importorskip("pymilvus")
    from faceaudit.collections import BackendOptions, SearchConfig, VectorStore
    from tests._deploy import free_port

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    uri = f"http://127.0.0.1:{free_port()}"  # no server there
    config = SearchConfig(vector_store=VectorStore.MILVUS, milvus_uri=uri)
    app = ServiceApp(ServiceConfig(data, backend_options=BackendOptions(search_config=config)))
    app.readiness.deadline_s = 0.5
    status, doc, headers = _get(app, "/ready")
    assert status == 503 and headers["Retry-After"] == "1"
    assert doc["Checks"]["keys"] == "ok" and doc["Checks"]["collections"] != "ok"
    assert doc["Reason"].startswith("collections")


def test_ready_is_logged_at_debug_and_not_ready_at_warning(tmp_path, caplog):
    import logging

    from faceaudit.service._log import ACCESS_LOGGER

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = ServiceApp(ServiceConfig(data))
    with caplog.at_level(logging.DEBUG, logger=ACCESS_LOGGER):
        _get(app, "/ready")
        app.readiness = Readiness([("keys", lambda: 1 / 0)])
        _get(app, "/ready")
    levels = [r.levelno for r in caplog.records if r.name == ACCESS_LOGGER]
    assert levels == [logging.DEBUG, logging.WARNING]
