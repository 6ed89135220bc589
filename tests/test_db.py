"""The one SQLite helper: connections, transactions, numbered migrations."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from faceaudit import DataVersionError
from faceaudit._db import Schema, SQLiteDatabase, migrate, schema_version, statements, transaction
from faceaudit._errors import UnsafePermissionsError


def _applied(conn):
    return [r[0] for r in conn.execute("SELECT step FROM applied ORDER BY rowid")]


def _schema(calls=None, fail_at=None):
    """Three steps that record themselves; ``fail_at`` raises inside that step."""

    def step(n):
        def run(conn):
            if calls is not None:
                calls.append(n)
            conn.execute("INSERT INTO applied (step) VALUES (?)", (n,))
            if n == fail_at:
                raise RuntimeError(f"step {n} breaks")
        return run

    first = "CREATE TABLE applied (step INTEGER NOT NULL);\nINSERT INTO applied (step) VALUES (1);"
    return Schema("test", {1: first, 2: step(2), 3: step(3)})


def test_new_file_is_private_wal_and_migrated(tmp_path):
    db = SQLiteDatabase(tmp_path / "data" / "x.sqlite3", _schema(), synchronous="NORMAL")
    conn = db.connect()
    assert stat.S_IMODE(os.stat(db.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(db.path.parent).st_mode) == 0o700
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 60000
    assert _applied(conn) == [1, 2, 3]
    assert schema_version(conn, db.schema) == 3
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"


def test_migrations_run_once_in_order(tmp_path):
    calls: list[int] = []
    path = tmp_path / "x.sqlite3"
    SQLiteDatabase(path, _schema(calls)).connect().close()
    SQLiteDatabase(path, _schema(calls)).connect().close()  # a second process: nothing to do
    assert calls == [2, 3]
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    conn = SQLiteDatabase(path, _schema(calls)).connect()
    assert calls == [2, 3, 2, 3] and _applied(conn) == [1, 2, 3, 2, 3]
    assert migrate(conn, _schema(calls)) == 0


def test_processes_opening_an_old_database_at_once_migrate_it_once(tmp_path):
    import threading

    calls: list[int] = []
    path = tmp_path / "x.sqlite3"
    errors = []

    def open_it():
        try:
            SQLiteDatabase(path, _schema(calls)).connect().close()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and calls == [2, 3]


def test_interrupted_migration_rolls_back_everything(tmp_path):
    path = tmp_path / "x.sqlite3"
    with pytest.raises(RuntimeError, match="step 3 breaks"):
        SQLiteDatabase(path, _schema(fail_at=3)).connect()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name IN ('applied', 'meta')").fetchall() == []
    conn.close()
    conn = SQLiteDatabase(path, _schema()).connect()  # the next start migrates from scratch
    assert _applied(conn) == [1, 2, 3] and schema_version(conn, _schema()) == 3


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "x.sqlite3"
    SQLiteDatabase(path, _schema()).connect().close()
    older = Schema("test", {1: "CREATE TABLE applied (step INTEGER NOT NULL)"})
    with pytest.raises(DataVersionError, match="schema 3; this faceaudit knows up to 1"):
        SQLiteDatabase(path, older).connect()


def test_initial_step_makes_the_latest_schema_at_once(tmp_path):
    calls: list[int] = []
    schema = Schema("test", {2: lambda conn: calls.append(2)},
                    initial="CREATE TABLE t (x INTEGER); CREATE INDEX t_x ON t(x);")
    conn = SQLiteDatabase(tmp_path / "x.sqlite3", schema).connect()
    assert calls == [] and schema_version(conn, schema) == 2
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    assert migrate(conn, schema) == 1 and calls == [2]


def test_a_migration_that_breaks_references_is_refused(tmp_path):
    schema = Schema("test", {
        1: "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p INTEGER REFERENCES p(id));"
           "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1);",
        2: "DELETE FROM p",
    })
    with pytest.raises(DataVersionError, match="would break 1 references"):
        SQLiteDatabase(tmp_path / "x.sqlite3", schema).connect()
    conn = sqlite3.connect(tmp_path / "x.sqlite3")
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'p'").fetchall() == []


def test_transaction_commits_or_rolls_back(tmp_path):
    schema = Schema("test", {1: "CREATE TABLE t (x INTEGER)"})
    db = SQLiteDatabase(tmp_path / "x.sqlite3", schema)
    conn = db.connect()
    with transaction(conn, write=True):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(KeyError), transaction(conn, write=True):
        conn.execute("INSERT INTO t VALUES (2)")
        raise KeyError("x")
    with db.session(write=False) as other:
        assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not conn.in_transaction


def test_a_data_dir_open_to_others_is_refused(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o755)
    schema = Schema("test", {1: "CREATE TABLE t (x INTEGER)"})
    with pytest.raises(UnsafePermissionsError):
        SQLiteDatabase(d / "x.sqlite3", schema).connect()
    SQLiteDatabase(d / "y.sqlite3", schema, check_dir=False).connect().close()  # a cache may live there


def test_bad_schemas_and_statement_splitting():
    with pytest.raises(ValueError, match="without gaps"):
        Schema("test", {1: "", 3: ""})
    with pytest.raises(ValueError, match="start at 1"):
        Schema("test", {2: ""})
    assert statements("CREATE TABLE t (x TEXT DEFAULT 'a;b');\n\nINSERT INTO t VALUES (1)") == [
        "CREATE TABLE t (x TEXT DEFAULT 'a;b');", "INSERT INTO t VALUES (1);"]
