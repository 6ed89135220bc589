"""`faceaudit serve`: the settings reach the worker processes inside the picklable app factory
(the database URL and the runtime), not through environment variables (issues 20 and 21)."""

from __future__ import annotations

import functools
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
