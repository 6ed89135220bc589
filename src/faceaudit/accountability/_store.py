"""The store of threshold policies, leads and review decisions: the data dir's
``accountability.db`` (SQLite), or, for a deployment of several hosts, the tables of
:data:`PG_SCHEMA` in its PostgreSQL database (issue 21).

Both take the same SQL (``?`` placeholders; where the two differ the store's ``dialect``
says how). In PostgreSQL the store also keeps what every host must share and the data dir
held: the probe images kept for review (``probe_images``, by SHA-256), the review-session
signing key (``deployment_secrets``) and the last retention run (``retention_runs``).
"""

from __future__ import annotations

import contextlib
import secrets as _secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceaudit._db import Dialect, Schema, SQLiteDatabase, is_postgres_url, open_database, transaction
from faceaudit._errors import InvalidParameterError, ServiceUnavailableError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS policies (
    collection_id TEXT PRIMARY KEY,
    min_face_match_threshold REAL,
    max_faces INTEGER,
    require_case_reference INTEGER NOT NULL DEFAULT 0,
    purpose TEXT NOT NULL DEFAULT '',
    set_by TEXT NOT NULL,
    set_at REAL NOT NULL,
    max_false_match_rate REAL
);
CREATE TABLE IF NOT EXISTS leads (
    lead_id TEXT PRIMARY KEY,
    search_seq INTEGER NOT NULL,
    created_at REAL NOT NULL,
    operation TEXT NOT NULL,
    collection_id TEXT,
    requested_by TEXT,
    case_reference TEXT,
    probe_sha256 TEXT,
    candidate_face_id TEXT,
    candidate_external_image_id TEXT,
    candidate_user_id TEXT,
    similarity REAL NOT NULL,
    threshold REAL NOT NULL,
    model_version TEXT,
    status TEXT NOT NULL DEFAULT 'pending'
);
CREATE TABLE IF NOT EXISTS video_policies (
    collection_id TEXT PRIMARY KEY,
    warrant_required INTEGER NOT NULL DEFAULT 1,
    set_by TEXT NOT NULL,
    set_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_status ON leads(status, created_at);
CREATE TABLE IF NOT EXISTS lead_sync (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL,
    log_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_collections (
    collection_id TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS retention (
    collection_id TEXT PRIMARY KEY,
    days INTEGER,
    legal_hold INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    set_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS review_sessions (
    session_id TEXT PRIMARY KEY,
    access_key_id TEXT NOT NULL,
    expires REAL NOT NULL,
    ended REAL,
    notice TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    lead_id TEXT NOT NULL REFERENCES leads(lead_id),
    reviewer TEXT NOT NULL,
    decision TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    decided_at REAL NOT NULL,
    log_seq INTEGER NOT NULL,
    PRIMARY KEY (lead_id, reviewer)
);
"""


def _add_columns(conn: sqlite3.Connection, columns=None) -> None:
    """Columns added after the first release: older databases get them (only ever added)."""
    for table, column, decl in _ADDED_COLUMNS if columns is None else columns:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def _add_probe_quality_columns(conn: sqlite3.Connection) -> None:
    """Version 3 (issue 19): a policy's minimum probe quality; each lead's probe quality and flag."""
    _add_columns(conn, _PROBE_QUALITY_COLUMNS)


_ADDED_COLUMNS = (
    # table, column, declaration
    ("policies", "max_false_match_rate", "REAL"),
    ("leads", "requested_by_person", "TEXT NOT NULL DEFAULT ''"),
    ("leads", "rank", "INTEGER NOT NULL DEFAULT 1"),
    ("leads", "candidates", "INTEGER NOT NULL DEFAULT 1"),
    ("leads", "gallery_size", "INTEGER"),
    ("decisions", "access_key_id", "TEXT NOT NULL DEFAULT ''"),
)

_PROBE_QUALITY_COLUMNS = (
    ("policies", "min_eye_distance_px", "REAL"),
    ("policies", "min_probe_quality", "TEXT"),
    ("policies", "on_low_quality", "TEXT NOT NULL DEFAULT 'refuse'"),
    ("leads", "probe_quality", "TEXT"),  # JSON: the search record's probe_quality
    ("leads", "quality_flag", "TEXT NOT NULL DEFAULT ''"),
)

SCHEMA = Schema("accountability", {1: _SCHEMA, 2: _add_columns, 3: _add_probe_quality_columns})
"""Version 1: the tables (made before versions were recorded); 2: the columns added since;
3: probe quality (policy minimum, each lead's probe quality and flag)."""


_PG_TABLES = """
CREATE TABLE policies (
    collection_id TEXT PRIMARY KEY,
    min_face_match_threshold DOUBLE PRECISION,
    max_faces INTEGER,
    require_case_reference INTEGER NOT NULL DEFAULT 0,
    purpose TEXT NOT NULL DEFAULT '',
    set_by TEXT NOT NULL,
    set_at DOUBLE PRECISION NOT NULL,
    max_false_match_rate DOUBLE PRECISION,
    min_eye_distance_px DOUBLE PRECISION,
    min_probe_quality TEXT,
    on_low_quality TEXT NOT NULL DEFAULT 'refuse'
);
CREATE TABLE leads (
    lead_id TEXT PRIMARY KEY,
    search_seq BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    operation TEXT NOT NULL,
    collection_id TEXT,
    requested_by TEXT,
    case_reference TEXT,
    probe_sha256 TEXT,
    candidate_face_id TEXT,
    candidate_external_image_id TEXT,
    candidate_user_id TEXT,
    similarity DOUBLE PRECISION NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    model_version TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    requested_by_person TEXT NOT NULL DEFAULT '',
    rank INTEGER NOT NULL DEFAULT 1,
    candidates INTEGER NOT NULL DEFAULT 1,
    gallery_size BIGINT,
    probe_quality TEXT,
    quality_flag TEXT NOT NULL DEFAULT ''
);
CREATE INDEX leads_status ON leads(status, created_at);
CREATE TABLE video_policies (
    collection_id TEXT PRIMARY KEY,
    warrant_required INTEGER NOT NULL DEFAULT 1,
    set_by TEXT NOT NULL,
    set_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE lead_sync (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL,
    log_offset BIGINT NOT NULL
);
CREATE TABLE audit_collections (
    collection_id TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE retention (
    collection_id TEXT PRIMARY KEY,
    days INTEGER,
    legal_hold INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    set_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE review_sessions (
    session_id TEXT PRIMARY KEY,
    access_key_id TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION,
    notice TEXT
);
CREATE TABLE decisions (
    lead_id TEXT NOT NULL REFERENCES leads(lead_id),
    reviewer TEXT NOT NULL,
    decision TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    decided_at DOUBLE PRECISION NOT NULL,
    log_seq BIGINT NOT NULL,
    access_key_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (lead_id, reviewer)
);
CREATE TABLE probe_images (
    sha256 TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    kept_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE deployment_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE retention_runs (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ran_at DOUBLE PRECISION NOT NULL
);
"""

PG_SCHEMA = Schema("accountability", {}, initial=_PG_TABLES, version_key="accountability_schema_version")
"""The same tables and columns in PostgreSQL (REAL as DOUBLE PRECISION: times and rates keep
their digits), created in one step, plus the shared probe images, secrets and retention clock."""

RETENTION_LOCK = 0x6661_6365_7265_746E  # "faceretn": pg_try_advisory_lock key of a retention run
LEAD_SYNC_LOCK = 0x6661_6365_6C65_6164  # "facelead": catching up leads, one host at a time


class Store:
    """Policies, leads and decisions: SQLite shared by worker processes (WAL, busy timeout,
    FULL sync), or PostgreSQL shared by hosts (``database_url``). One connection per thread."""

    def __init__(self, path: Path, database_url: str | None = None) -> None:
        self.path = Path(path)
        self.database_url = database_url
        self._db: Any
        if database_url is None:
            self._db = SQLiteDatabase(self.path, SCHEMA, busy_timeout_s=30.0, row_factory=sqlite3.Row)
        elif is_postgres_url(database_url):
            self._db = open_database(database_url, PG_SCHEMA, timeout_s=30.0, qmark=True)
        else:
            raise InvalidParameterError("the accountability store goes to the data dir's accountability.db "
                                        "or to PostgreSQL (postgresql://...)")
        self._local = threading.local()

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    @property
    def shared(self) -> bool:
        """True when the store is the deployment's database (PostgreSQL), not one data dir's file."""
        return self.database_url is not None

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.shared and conn.closed:
            conn = None
        if conn is None:
            conn = self._local.conn = self._db.connect()
        return conn

    def _dropped(self, exc: BaseException) -> ServiceUnavailableError:
        """The connection broke (PostgreSQL went away): forget it; a 503 for the caller."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        text = str(exc).strip().splitlines()
        return ServiceUnavailableError(f"the accountability database {getattr(self._db, 'where', '')} failed: "
                                       f"{text[-1] if text else type(exc).__name__}")

    @contextmanager
    def write(self) -> Iterator[Any]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, one writer at a time across processes;
        PostgreSQL: writers serialise on the rows they lock).

        PostgreSQL: a connection found broken at BEGIN (the server restarted, a failover) is
        replaced and BEGIN tried once more (nothing was done yet); one that breaks inside the
        transaction is a ServiceUnavailableError (503): the server rolled it back, or, at
        COMMIT, the caller cannot know, as with any database."""
        if not self.shared:
            with transaction(self._conn(), write=True) as conn:
                yield conn
            return
        import psycopg

        for attempt in (1, 2):
            began = False
            try:
                with transaction(self._conn(), write=True) as conn:
                    began = True
                    yield conn
                return
            except psycopg.OperationalError as exc:
                failure = self._dropped(exc)
                if began or attempt == 2:
                    raise failure from None

    def read(self) -> Any:
        """This thread's connection, for single statements (autocommit)."""
        return _Reader(self) if self.shared else self._conn()

    def for_update(self) -> str:
        """The suffix locking the selected rows until COMMIT (PostgreSQL); SQLite's BEGIN
        IMMEDIATE already holds the whole database."""
        return " FOR UPDATE" if self.shared else ""

    def lock(self, conn: Any, key: int) -> None:
        """Inside a write transaction: one holder of ``key`` at a time across hosts (PostgreSQL's
        transaction advisory lock; SQLite's writer lock already is one)."""
        if self.shared:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (key,))

    # -- what hosts share (PostgreSQL only) ---------------------------------------------------

    def secret(self, name: str, size: int = 32) -> bytes:
        """The deployment's secret ``name`` (made once, by the first host to ask: ``size`` random
        bytes); the same bytes on every host. Never logged."""
        with self.write() as conn:
            conn.execute(self.dialect.insert_ignore("deployment_secrets", ("name", "value")),
                         (name, _secrets.token_bytes(size)))
            row = conn.execute("SELECT value FROM deployment_secrets WHERE name = ?", (name,)).fetchone()
        return bytes(row[0])

    def keep_probe(self, sha256: str, data: bytes, when: float) -> None:
        with self.write() as conn:
            conn.execute(self.dialect.insert_ignore("probe_images", ("sha256", "data", "kept_at")),
                         (sha256, data, when))

    def probe(self, sha256: str) -> bytes | None:
        row = self.read().execute("SELECT data FROM probe_images WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    def probe_kept(self, sha256: str) -> bool:
        return self.read().execute("SELECT 1 FROM probe_images WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def forget_probe(self, sha256: str) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM probe_images WHERE sha256 = ?", (sha256,))


class _Reader:
    """Single autocommit statements on a shared store's connection. A broken connection (the
    server restarted, a failover) is dropped and the read tried once more on a new one (a read
    changes nothing); if that fails too: ServiceUnavailableError (503)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def execute(self, sql: str, params: Any = ()) -> Any:
        import psycopg

        for attempt in (1, 2):
            try:
                return self._store._conn().execute(sql, params)
            except psycopg.OperationalError as exc:
                failure = self._store._dropped(exc)
                if attempt == 2:
                    raise failure from None
        raise AssertionError("unreachable")  # pragma: no cover
