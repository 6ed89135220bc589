"""faceaudit._db's copy helpers (``faceaudit db migrate``): a store's SQLite tables into PostgreSQL."""

from __future__ import annotations

import pytest

from faceaudit._db import POSTGRESQL, SQLITE, PostgreSQLDatabase, Schema, SQLiteDatabase, StoreTables, copy_tables
from faceaudit._errors import FaceAuditError, ResourceAlreadyExistsError


def _ddl(dialect, blob: str, boolean: str) -> str:
    return f"""
    CREATE TABLE copy_parent (id {dialect.auto_id()}, name TEXT NOT NULL UNIQUE, active {boolean} NOT NULL);
    CREATE TABLE copy_child (
        id {dialect.auto_id()},
        parent_id BIGINT NOT NULL REFERENCES copy_parent (id),
        payload {blob}, score DOUBLE PRECISION, note TEXT);
    """


SQLITE_SCHEMA = Schema("copy-test", {1: _ddl(SQLITE, "BLOB", "INTEGER")}, version_key="copy_test_version")
PG_SCHEMA = Schema("copy-test", {1: _ddl(POSTGRESQL, "BYTEA", "BOOLEAN")}, version_key="copy_test_version")
STORE = StoreTables("copy-test", "copy-test.sqlite3", SQLITE_SCHEMA, PG_SCHEMA, ("copy_parent", "copy_child"))


def _source(data_dir) -> SQLiteDatabase:
    db = SQLiteDatabase(data_dir / STORE.sqlite_file, SQLITE_SCHEMA)
    with db.session(write=True) as conn:
        for i in range(1, 8):
            conn.execute("INSERT INTO copy_parent (name, active) VALUES (?, ?)", (f"p{i}", i % 2))
        conn.execute("DELETE FROM copy_parent WHERE name = 'p3'")  # ids with a gap
        rows = [(pid, bytes([pid, 0, 255]) * 50, pid / 3, None if pid % 2 else f"n'{pid}%")
                for pid in (1, 2, 4, 7, 7)]
        conn.executemany("INSERT INTO copy_child (parent_id, payload, score, note) VALUES (?, ?, ?, ?)", rows)
    return db


def _all(conn, table):
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
            for r in conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()]


def test_copy_tables_keeps_every_row_and_id_and_the_ids_go_on(tmp_path, postgres_url):
    src = _source(tmp_path)
    dst = PostgreSQLDatabase(postgres_url, PG_SCHEMA, qmark=True)
    assert copy_tables(src, dst, STORE.tables) == {"copy_parent": 6, "copy_child": 5}
    with src.session(write=False) as a, dst.session(write=False) as b:
        assert _all(b, "copy_child") == _all(a, "copy_child")
        assert [(r[0], r[1], bool(r[2])) for r in _all(a, "copy_parent")] == _all(b, "copy_parent")
    with dst.session(write=True) as conn:  # the identity sequence continues after the largest id
        new = conn.execute("INSERT INTO copy_parent (name, active) VALUES (?, ?) RETURNING id",
                           ("p8", True)).fetchone()[0]
    assert new == 8
    with pytest.raises(ResourceAlreadyExistsError, match="copy_parent already holds rows"):
        copy_tables(src, dst, STORE.tables)
    with dst.session(write=False) as conn:
        assert conn.execute("SELECT count(*) FROM copy_child").fetchone()[0] == 5


def test_migrate_copies_registered_stores_in_one_transaction(tmp_path, postgres_url):
    from faceaudit.cli._db_cmds import migrate

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    _source(data)
    result = migrate(data, postgres_url, stores=(STORE,), copies=())
    assert result.tables == {"copy-test.copy_parent": 6, "copy-test.copy_child": 5}
    assert result.log_records == 0 and "copy-test.sqlite3" not in result.not_copied
    with pytest.raises(ResourceAlreadyExistsError, match=r"copy-test\.copy_parent"):
        migrate(data, postgres_url, stores=(STORE,), copies=())


def test_a_failed_copy_leaves_the_target_empty(tmp_path, postgres_url):
    from faceaudit.cli._db_cmds import migrate

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    _source(data)
    loose = SQLiteDatabase(data / STORE.sqlite_file, SQLITE_SCHEMA, foreign_keys=False)
    with loose.session(write=True) as c:  # a reference SQLite let through (foreign keys were off)
        c.execute("INSERT INTO copy_child (parent_id, payload) VALUES (999, NULL)")
    with pytest.raises(FaceAuditError, match=r"copy_child.*nothing was copied"):
        migrate(data, postgres_url, stores=(STORE,), copies=())
    dst = PostgreSQLDatabase(postgres_url, PG_SCHEMA, qmark=True)
    with dst.session(write=False) as c:
        assert c.execute("SELECT count(*) FROM copy_parent").fetchone()[0] == 0


def test_stores_that_copy_themselves_run_after_the_log_and_are_checked_first(tmp_path, postgres_url):
    from faceaudit.accountability import PostgresSearchLog, SearchLog
    from faceaudit.cli._db_cmds import StoreCopy, migrate

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    SearchLog(data / "search-log.jsonl").append("policy", {"n": 1})
    (data / "self.db").write_bytes(b"")
    seen = []

    def copy(d, url):
        seen.append(PostgresSearchLog(url).verify().records)  # the log is in (and committed) first
        return {"copy_parent": 0}

    own = StoreCopy("self", ("self.db",), ("copy_parent",), copy)
    result = migrate(data, postgres_url, stores=(STORE,), copies=(own,))
    assert seen == [1] and result.tables["self.copy_parent"] == 0 and "self.db" not in result.not_copied
    with pytest.raises(ResourceAlreadyExistsError, match=r"search_log"):
        migrate(data, postgres_url, stores=(), copies=(own,))
    assert seen == [1]


def test_a_table_renamed_on_postgresql(tmp_path, postgres_url):
    src = SQLiteDatabase(tmp_path / "r.sqlite3", Schema("r", {1: "CREATE TABLE jobs (id TEXT PRIMARY KEY, n INTEGER)"},
                                                        version_key="r_version"))
    with src.session(write=True) as conn:
        conn.executemany("INSERT INTO jobs VALUES (?, ?)", [("a", 1), ("b", 2)])
    dst = PostgreSQLDatabase(postgres_url, Schema("r", {1: "CREATE TABLE r_jobs (id TEXT PRIMARY KEY, n BIGINT)"},
                                                  version_key="r_version"))
    assert copy_tables(src, dst, ("jobs",), renamed={"jobs": "r_jobs"}) == {"jobs": 2}
    with dst.session(write=False) as conn:
        assert conn.execute("SELECT id, n FROM r_jobs ORDER BY id").fetchall() == [("a", 1), ("b", 2)]
