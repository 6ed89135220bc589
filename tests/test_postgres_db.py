"""The database layer on both engines: numbered migrations, transactions, the dialect, URLs.

Every test here runs on SQLite and on a throwaway PostgreSQL (tests/_postgres.py);
tests/test_db.py keeps the SQLite-only ones (file modes, WAL, pragmas)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from faceaudit import DataVersionError
from faceaudit._db import (
    POSTGRESQL,
    SQLITE,
    PostgreSQLDatabase,
    Schema,
    SQLiteDatabase,
    open_database,
    transaction,
)
from faceaudit._errors import InvalidParameterError, ServiceUnavailableError


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """What open_database is given: a SQLite path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "data" / "x.sqlite3")
    return request.getfixturevalue("postgres_url")


def _version(db):
    with db.session(write=False) as conn:
        cur = conn.execute(db.dialect.sql("SELECT value FROM meta WHERE key = ?"), (db.schema.version_key,))
        return int(cur.fetchone()[0])


def _applied(db):
    with db.session(write=False) as conn:
        return [r[0] for r in conn.execute("SELECT step FROM applied ORDER BY id").fetchall()]


def _schema(dialect, calls=None, fail_at=None, key="schema_version"):
    """Three steps that record themselves; ``fail_at`` raises inside that step."""

    def step(n):
        def run(conn):
            if calls is not None:
                calls.append(n)
            conn.execute(dialect.sql("INSERT INTO applied (step) VALUES (?)"), (n,))
            if n == fail_at:
                raise RuntimeError(f"step {n} breaks")
        return run

    first = f"CREATE TABLE applied (id {dialect.auto_id()}, step INTEGER NOT NULL);\n" \
            "INSERT INTO applied (step) VALUES (1);"
    return Schema("test", {1: first, 2: step(2), 3: step(3)}, version_key=key)


def _dialect(target):
    return POSTGRESQL if target.startswith("postgresql://") else SQLITE


def test_open_database_picks_the_engine_by_url(tmp_path, target):
    db = open_database(target, _schema(_dialect(target)))
    assert isinstance(db, PostgreSQLDatabase if target.startswith("postgresql://") else SQLiteDatabase)
    assert db.dialect is _dialect(target)
    db.connect().close()
    assert _applied(db) == [1, 2, 3] and _version(db) == 3 and db.exists()


def _sqlite_path(target: str | Path, schema: Schema) -> Path:
    db = open_database(target, schema)
    assert isinstance(db, SQLiteDatabase)
    return db.path


def test_sqlite_urls_and_bad_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    schema = _schema(SQLITE)
    assert _sqlite_path("sqlite:///rel/x.db", schema).as_posix() == "rel/x.db"
    assert _sqlite_path(f"sqlite:///{tmp_path}/abs.db", schema) == tmp_path / "abs.db"
    assert _sqlite_path(tmp_path / "p.db", schema) == tmp_path / "p.db"
    for bad in ("mysql://u@h/db", "sqlite:///", "sqlite://relative.db"):
        with pytest.raises(InvalidParameterError):
            open_database(bad, schema)
    with pytest.raises(InvalidParameterError, match="u@h") as err:
        open_database("mysql://u:secret@h/db", schema)
    assert "secret" not in str(err.value)


def test_migrations_run_once_in_order(target):
    calls: list[int] = []
    d = _dialect(target)
    open_database(target, _schema(d, calls)).connect().close()
    open_database(target, _schema(d, calls)).connect().close()  # a second process: nothing to do
    assert calls == [2, 3]
    db = open_database(target, _schema(d, calls))
    with db.session(write=True) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db = open_database(target, _schema(d, calls))
    db.connect().close()
    assert calls == [2, 3, 2, 3] and _applied(db) == [1, 2, 3, 2, 3]


def test_stores_sharing_a_database_keep_their_own_versions(target):
    d = _dialect(target)
    other = Schema("other", {1: "CREATE TABLE other_t (x INTEGER)"}, version_key="other_version")
    a = open_database(target, _schema(d))
    b = open_database(target, other)
    a.connect().close()
    b.connect().close()
    assert _version(a) == 3 and _version(b) == 1


def test_hosts_opening_an_old_database_at_once_migrate_it_once(target):
    calls: list[int] = []
    errors: list[BaseException] = []
    d = _dialect(target)

    def open_it():
        try:
            open_database(target, _schema(d, calls)).connect().close()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and calls == [2, 3]


def test_interrupted_migration_rolls_back_everything(target):
    d = _dialect(target)
    with pytest.raises(RuntimeError, match="step 3 breaks"):
        open_database(target, _schema(d, fail_at=3)).connect()
    db = open_database(target, Schema("probe", {1: "CREATE TABLE probe (x INTEGER)"}, version_key="probe"))
    with db.session(write=False) as conn:
        if d is SQLITE:
            assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'applied'").fetchall() == []
        else:
            assert conn.execute("SELECT to_regclass('applied')").fetchone()[0] is None
        assert [tuple(r) for r in conn.execute("SELECT key FROM meta").fetchall()] == [("probe",)]
    db = open_database(target, _schema(d))  # the next start migrates from scratch
    db.connect().close()
    assert _applied(db) == [1, 2, 3] and _version(db) == 3


def test_a_newer_database_is_refused(target):
    d = _dialect(target)
    open_database(target, _schema(d)).connect().close()
    older = Schema("test", {1: "CREATE TABLE applied2 (step INTEGER NOT NULL)"})
    with pytest.raises(DataVersionError, match="schema 3; this faceaudit knows up to 1"):
        open_database(target, older).connect()


def test_initial_step_makes_the_latest_schema_at_once(target):
    calls: list[int] = []
    schema = Schema("test", {2: lambda conn: calls.append(2)},
                    initial="CREATE TABLE t (x INTEGER); CREATE INDEX t_x ON t(x);")
    db = open_database(target, schema)
    db.connect().close()
    assert calls == [] and _version(db) == 2


def test_transaction_commits_or_rolls_back(target):
    db = open_database(target, Schema("test", {1: "CREATE TABLE t (x INTEGER)"}))
    conn = db.connect()
    with transaction(conn, write=True):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(KeyError), transaction(conn, write=True):
        conn.execute("INSERT INTO t VALUES (2)")
        raise KeyError("x")
    with db.session(write=False) as other:
        assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
    with pytest.raises(Exception), db.session(write=False) as reader:  # noqa: B017 - a driver's own error
        reader.execute("INSERT INTO t VALUES (3)") if db.dialect is POSTGRESQL else reader.execute("SELECT nope")
    conn.close()


def test_the_dialect_writes_each_engines_sql(target):
    d = _dialect(target)
    schema = Schema("test", {1: f"CREATE TABLE t (id {d.auto_id()}, k TEXT UNIQUE, v TEXT, doc TEXT)"})
    db = open_database(target, schema)
    with db.session(write=True) as conn:
        ins = d.sql(d.insert_ignore("t", ("k", "v", "doc")))
        conn.execute(ins, ("a", "100%", json.dumps({"who": "alice", "n": 2})))
        conn.execute(ins, ("a", "ignored", "{}"))  # the unique key exists: nothing happens
        conn.execute(d.sql(d.upsert("t", ("k", "v", "doc"), ("k",))), ("b", "50% '?'", json.dumps({"who": "bob"})))
        conn.execute(d.sql(d.upsert("t", ("k", "v", "doc"), ("k",))), ("b", "replaced", json.dumps({"who": "bo"})))
        rows = conn.execute(d.sql(f"SELECT id, k, v, {d.json_text('doc', 'who')} FROM t "
                                  "WHERE v LIKE '%' AND k <> '?' ORDER BY id")).fetchall()
    assert [tuple(r)[1:] for r in rows] == [("a", "100%", "alice"), ("b", "replaced", "bo")]
    assert 1 == rows[0][0] < rows[1][0]  # generated keys
    with pytest.raises(ValueError):
        d.json_text("doc", "x') OR ('1")


def test_placeholders_outside_literals_only():
    assert POSTGRESQL.sql("SELECT '?', \"a?\", ? WHERE x LIKE '5%'") == "SELECT '?', \"a?\", %s WHERE x LIKE '5%%'"
    assert SQLITE.sql("SELECT ?") == "SELECT ?"


def test_an_unreachable_server_is_a_503(postgres_server):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = open_database(f"postgresql://u:secret@127.0.0.1:{port}/x", Schema("t", {1: "SELECT 1"}), timeout_s=2)
    with pytest.raises(ServiceUnavailableError, match="cannot be reached") as err:
        db.connect()
    assert err.value.http_status == 503 and "secret" not in str(err.value)


def test_qmark_connection_takes_sqlite_sql_and_gives_rows_by_name(postgres_url):
    schema = Schema("q", {1: "CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                             "name TEXT NOT NULL, note TEXT)"}, version_key="q_version")
    db = open_database(postgres_url, schema, qmark=True)
    with db.session(write=True) as conn:
        new_id = conn.execute("INSERT INTO t (name, note) VALUES (?, ?) RETURNING id", ("a?b", "100%")).fetchone()[0]
        conn.executemany("INSERT INTO t (name) VALUES (?)", [("c",), ("d",)])
    with db.session(write=False) as conn:
        rows = conn.execute("SELECT id, name, note FROM t WHERE name <> '?' ORDER BY id").fetchall()
        like = conn.execute("SELECT name FROM t WHERE note LIKE '100%'").fetchall()
    assert rows[0]["id"] == rows[0][0] == new_id
    assert [r["name"] for r in rows] == ["a?b", "c", "d"] and rows[0].keys() == ["id", "name", "note"]
    assert rows[0]["note"] == "100%" and [r[0] for r in like] == ["a?b"]
    with pytest.raises(IndexError):
        rows[0]["missing"]
