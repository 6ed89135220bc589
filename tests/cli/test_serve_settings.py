"""`faceaudit serve`: the settings reach the worker processes inside the picklable app factory
(the database URL and the runtime), not through environment variables (issues 20 and 21)."""

from __future__ import annotations

import functools
import json
import pickle

from faceaudit.accountability import PostgresSearchLog, SearchLog
from faceaudit.cli._service_cmds import build_app
from faceaudit.service import RateLimiter, ServiceConfig


def test_the_app_factory_carries_the_database_url_and_the_runtime(tmp_path, postgres_url):
    config = ServiceConfig(data_dir=tmp_path / "d", runtime="opencv", database_url=postgres_url)
    # the factory's config is pickled to each spawned worker (the rate limiter is shared memory)
    factory = functools.partial(build_app, pickle.loads(pickle.dumps(config)), RateLimiter(50.0, None))
    app = factory()
    assert isinstance(app.extension.acc.log, PostgresSearchLog)
    assert app.dispatcher.engine.runtime == "opencv"
    plain = build_app(ServiceConfig(data_dir=tmp_path / "e"), RateLimiter(50.0, None))
    assert isinstance(plain.extension.acc.log, SearchLog) and plain.dispatcher.engine.runtime is None


def test_the_database_url_never_appears_in_the_config_repr(tmp_path):
    config = ServiceConfig(data_dir=tmp_path, database_url="postgresql://u:hunter2@h/db")
    assert "hunter2" not in repr(config)


def test_serve_database_reaches_every_worker(tmp_path, postgres_url):
    """`faceaudit serve --database URL --workers 2`: searches answered by either spawned worker
    are logged in the PostgreSQL log, which every host (and `log verify --database`) reads."""
    from tests.conftest import portrait_2014
    from tests.service.conftest import ServeProcess, cli, client

    data = tmp_path / "host-a"
    data.mkdir(mode=0o700)
    key = json.loads(cli("keys", "create", "--json", "--data-dir", str(data), "--database", postgres_url).stdout)
    serve = ServeProcess(data, "--database", postgres_url, "--workers", "2")
    try:
        rek = client(serve.url, key)
        rek.create_collection(CollectionId="mug")
        face = portrait_2014("C000141").read_bytes()
        rek.index_faces(CollectionId="mug", Image={"Bytes": face})
        for _ in range(4):
            found = rek.search_faces_by_image(CollectionId="mug", Image={"Bytes": face})
            assert found["FaceMatches"]
    finally:
        assert serve.stop() == 0
    kinds = [r.kind for r in PostgresSearchLog(postgres_url).records()]
    assert kinds.count("search") == 4
    assert not (data / "search-log.jsonl").exists() or "search" not in (data / "search-log.jsonl").read_text()
    out = cli("log", "verify", "--database", postgres_url, "--data-dir", str(tmp_path / "host-b"))
    assert out.stdout.startswith(f"OK: {len(kinds)} records"), out.stdout + out.stderr
