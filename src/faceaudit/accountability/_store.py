"""SQLite store for threshold policies, leads and review decisions (``accountability.db``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faceaudit._db import Schema, SQLiteDatabase, transaction

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


class Store:
    """A small SQLite database shared by worker processes (WAL, busy timeout, FULL sync):
    one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = SQLiteDatabase(self.path, SCHEMA, busy_timeout_s=30.0, row_factory=sqlite3.Row)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._db.connect()
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: one writer at a time across processes)."""
        with transaction(self._conn(), write=True) as conn:
            yield conn

    def read(self) -> sqlite3.Connection:
        return self._conn()
