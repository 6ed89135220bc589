"""The throwaway PostgreSQL the tests start (tests/_postgres.py)."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from tests import _postgres


def _scalar(conn: Any, sql: str) -> Any:
    """The one value ``sql`` selects."""
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_server_is_on_loopback_with_trust_only_there(postgres_server, postgres_url):
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert _scalar(conn, "SHOW listen_addresses") == "127.0.0.1"
        assert _scalar(conn, "SELECT current_user") == "postgres"
        assert _scalar(conn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    hba = (postgres_server.data_dir / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert [r for r in rules if "trust" in r] == [["host", "all", "all", "127.0.0.1/32", "trust"]]
    assert stat.S_IMODE(os.stat(postgres_server.root).st_mode) == 0o700
    if os.geteuid() == 0:  # PostgreSQL never runs as root
        assert os.stat(postgres_server.data_dir).st_uid != 0


def test_each_test_gets_an_empty_database(postgres_server, postgres_url):
    assert postgres_url != postgres_server.new_database()


def test_a_server_is_stopped_and_removed_whatever_happens():
    if _postgres.find_bin_dir() is None:
        _postgres.unavailable("no binaries")
    with pytest.raises(KeyError), _postgres.throwaway_server(fsync=False) as server:
        root, proc = server.root, server.proc
        raise KeyError("a test fails")
    assert proc.poll() is not None and not root.exists()


def test_missing_binaries_fail_under_ci_and_skip_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI"):
        _postgres.unavailable("none here")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        _postgres.unavailable("none here")
