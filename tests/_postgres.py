"""The throwaway PostgreSQL server's pytest side: fixtures, and the rule for a machine without one.

The server itself is scripts/_pgserver.py (the benchmarks use it too), loaded by path. Without
the binaries, or without psycopg, the tests that need a server are skipped, except under CI
(``CI=true``), where they fail: CI installs Debian's ``postgresql``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import scripts_module

_PGSERVER = scripts_module("_pgserver")
START_LIMIT_S = _PGSERVER.START_LIMIT_S
SUPERUSER = _PGSERVER.SUPERUSER
PostgresServer = _PGSERVER.PostgresServer
find_bin_dir = _PGSERVER.find_bin_dir
start_server = _PGSERVER.start_server
throwaway_server = _PGSERVER.throwaway_server


def unavailable(why: str) -> None:
    """Skip (locally) or fail (CI=true) a test that needs PostgreSQL."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI: {why}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {why}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway server for the whole session (skipped locally / failed under CI when missing)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (the 'postgres' extra)")
    if find_bin_dir() is None:
        unavailable("no initdb/pg_ctl/postgres on PATH or in /usr/lib/postgresql/*/bin")
    with throwaway_server(fsync=False) as server:  # no crash of the server is tested: skip fsync
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.new_database()
