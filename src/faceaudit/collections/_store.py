"""The database of the collections: the source of truth of every collection.

By default one SQLite file per data dir (``collections.sqlite3``), in WAL mode with
``synchronous=FULL`` (a committed transaction is on disk before COMMIT returns:
it survives kill -9 and power loss) and a busy timeout, so several processes
can read while one writes. Writes run in ``BEGIN IMMEDIATE`` transactions (one
writer at a time, waiting up to the busy timeout); reads run in a deferred
transaction, i.e. on one consistent snapshot.

With a ``database_url`` (``postgresql://...``, issue 21) the same tables live in PostgreSQL,
shared by several hosts (:data:`PG_SCHEMA`: BIGINT identity ids, DOUBLE PRECISION times, BYTEA
embeddings and crops; its own ``collections_schema_version`` in the shared ``meta`` table and
its own ``collections_token_secret``). The statements are the same for both (``?`` placeholders
through :class:`~faceaudit._db.QmarkConnection`, ``RETURNING id``, the dialect's upsert and
insert-or-ignore). A write transaction first takes a transaction-scoped advisory lock of the
store (:data:`WRITE_LOCK`): writers run one at a time across hosts, exactly as SQLite's
``BEGIN IMMEDIATE`` makes them, so every check-then-write of the operations keeps its meaning,
and a collection's change log (``face_log``, read by ``seq > last``) commits in ``seq`` order
(the log rows are also written under the collection's row lock). Reads run in ``REPEATABLE
READ READ ONLY`` (one snapshot). A server that cannot be reached is a
:class:`~faceaudit._errors.ServiceUnavailableError` (HTTP 503); the broken connection is
dropped and the next call opens a new one (a stale connection found at BEGIN is replaced
at once, a bounded number of times).

Tables
------
``collections``  name, model name and FaceModelVersion (the pin), creation time,
                 tags, face/user counts, ``head_seq`` (last change-log entry of
                 the collection) and ``log_floor`` (entries up to it were pruned).
``images``       one row per IndexFaces call that indexed faces: ImageId, sha256
                 of the bytes, ExternalImageId ('' when none), its UnindexedFaces,
                 manifest labels, source path. Indexed by (collection, sha256,
                 ExternalImageId): the batch indexer's resume key (it skips what it
                 indexed before); IndexFaces indexes the same bytes again, as
                 Rekognition does (schema 3; before, that key was UNIQUE).
``faces``        FaceId, image, user, bounding box, confidence, FaceDetail JSON,
                 the embedding (float32 little-endian BLOB). Its integer row id
                 is the vector id in the in-memory index.
``users``        UserId per collection.
``face_log``     one row per face added or deleted (seq, collection, face row):
                 what other processes replay to bring their index up to date.
``idempotency``  responses of requests made with a ClientRequestToken.
``meta``         schema version (see :mod:`faceaudit._db`) and the secret that signs
                 pagination tokens.

Every row id is AUTOINCREMENT, never reused, so an id seen by a cache always
means the same face (or collection).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, overload

import numpy as np

from faceaudit._db import (
    POSTGRESQL,
    SQLITE,
    Dialect,
    PostgreSQLDatabase,
    QmarkConnection,
    Schema,
    SQLiteDatabase,
    is_postgres_url,
    open_database,
    statements,
    transaction,
)
from faceaudit._errors import ResourceNotFoundError, ServiceUnavailableError

if TYPE_CHECKING:
    from faceaudit.engine import BoundingBox

log = logging.getLogger(__name__)

DB_NAME = "collections.sqlite3"
BUSY_TIMEOUT_S = 60.0
LOG_KEEP = 200_000
"""Change-log entries kept per collection; a process further behind rebuilds its index."""
IDEMPOTENCY_TTL_S = 24 * 3600.0
PG_CONNECT_ATTEMPTS = 3
"""Connections tried at the start of a transaction on PostgreSQL (a stale one is replaced)."""

Connection: TypeAlias = sqlite3.Connection | QmarkConnection
"""A connection of the store: sqlite3's, or PostgreSQL's taking the same SQL."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    created_at REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',
    face_count INTEGER NOT NULL DEFAULT 0,
    user_count INTEGER NOT NULL DEFAULT 0,
    head_seq INTEGER NOT NULL DEFAULT 0,
    log_floor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    external_image_id TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    unindexed TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}',
    source TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_key ON images(collection_id, sha256, external_image_id);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (collection_id, user_id)
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    face_id TEXT NOT NULL UNIQUE,
    image_row INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    user_row INTEGER REFERENCES users(id) ON DELETE SET NULL,
    box_left REAL NOT NULL,
    box_top REAL NOT NULL,
    box_width REAL NOT NULL,
    box_height REAL NOT NULL,
    confidence REAL NOT NULL,
    quality REAL,
    detail TEXT NOT NULL,
    embedding BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_by_collection ON faces(collection_id, id);
CREATE INDEX IF NOT EXISTS faces_by_image ON faces(image_row);
CREATE INDEX IF NOT EXISTS faces_by_user ON faces(user_row);
CREATE TABLE IF NOT EXISTS face_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    face_row INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS face_log_by_collection ON face_log(collection_id, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (operation, token)
);
CREATE INDEX IF NOT EXISTS idempotency_by_time ON idempotency(created_at);
CREATE TABLE IF NOT EXISTS face_thumbnails (
    face_row INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL
);
"""

_REBUILD_IMAGES = """
CREATE TABLE images_v3 (id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, external_image_id TEXT NOT NULL,
    width INTEGER, height INTEGER, unindexed TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}', source TEXT, created_at REAL NOT NULL);
INSERT INTO images_v3 (id, collection_id, image_id, sha256, external_image_id, width, height,
    unindexed, labels, source, created_at) SELECT id, collection_id, image_id, sha256,
    external_image_id, width, height, unindexed, labels, source, created_at FROM images;
INSERT INTO sqlite_sequence (name, seq) SELECT 'images_v3', seq FROM sqlite_sequence
    WHERE name = 'images' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'images_v3');
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence
    WHERE name = 'images'), 0)) WHERE name = 'images_v3';
DROP TABLE images;
ALTER TABLE images_v3 RENAME TO images;
CREATE INDEX IF NOT EXISTS images_by_key ON images(collection_id, sha256, external_image_id);
"""


def _create(conn: Connection) -> None:
    """A new database: the latest schema and the secret that signs pagination tokens."""
    for stmt in statements(_SCHEMA):
        conn.execute(stmt)
    conn.execute(SQLITE.insert_ignore("meta", ("key", "value")), ("token_secret", secrets.token_hex(32)))


SCHEMA = Schema("collections", {
    # version 1 was made by the first release (its version recorded in meta from the start)
    2: "CREATE TABLE IF NOT EXISTS face_thumbnails (face_row INTEGER PRIMARY KEY "
       "REFERENCES faces(id) ON DELETE CASCADE, jpeg BLOB NOT NULL)",
    # images without UNIQUE(collection, sha256, ExternalImageId): SQLite's table rebuild (foreign
    # keys off meanwhile: faces keep pointing at the same image rows), the AUTOINCREMENT sequence
    # carried over so that no row id is ever reused
    3: _REBUILD_IMAGES,
}, initial=_create)
SCHEMA_VERSION = SCHEMA.latest

_PG_SCHEMA = f"""
CREATE TABLE collections (
    id {POSTGRESQL.auto_id()},
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    tags TEXT NOT NULL DEFAULT '{{}}',
    face_count BIGINT NOT NULL DEFAULT 0,
    user_count BIGINT NOT NULL DEFAULT 0,
    head_seq BIGINT NOT NULL DEFAULT 0,
    log_floor BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE images (
    id {POSTGRESQL.auto_id()},
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    external_image_id TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    unindexed TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{{}}',
    source TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX images_by_key ON images(collection_id, sha256, external_image_id);
CREATE TABLE users (
    id {POSTGRESQL.auto_id()},
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (collection_id, user_id)
);
CREATE TABLE faces (
    id {POSTGRESQL.auto_id()},
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    face_id TEXT NOT NULL UNIQUE,
    image_row BIGINT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    user_row BIGINT REFERENCES users(id) ON DELETE SET NULL,
    box_left DOUBLE PRECISION NOT NULL,
    box_top DOUBLE PRECISION NOT NULL,
    box_width DOUBLE PRECISION NOT NULL,
    box_height DOUBLE PRECISION NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    quality DOUBLE PRECISION,
    detail TEXT NOT NULL,
    embedding BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX faces_by_collection ON faces(collection_id, id);
CREATE INDEX faces_by_image ON faces(image_row);
CREATE INDEX faces_by_user ON faces(user_row);
CREATE TABLE face_log (
    seq {POSTGRESQL.auto_id().replace(" PRIMARY KEY", "")} PRIMARY KEY,
    collection_id BIGINT NOT NULL,
    face_row BIGINT NOT NULL
);
CREATE INDEX face_log_by_collection ON face_log(collection_id, seq);
CREATE TABLE idempotency (
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (operation, token)
);
CREATE INDEX idempotency_by_time ON idempotency(created_at);
CREATE TABLE face_thumbnails (
    face_row BIGINT PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    jpeg BYTEA NOT NULL
);
"""

PG_SECRET_KEY = "collections_token_secret"
"""The pagination-token secret's key in PostgreSQL's ``meta`` table (shared by every store)."""


def _pg_create(conn: Any) -> None:
    """The collections' tables in a PostgreSQL database, and the secret every host signs
    pagination tokens with (``conn``: the psycopg connection of the migration)."""
    conn.execute(_PG_SCHEMA)
    conn.execute(POSTGRESQL.sql(POSTGRESQL.insert_ignore("meta", ("key", "value"))),
                 (PG_SECRET_KEY, secrets.token_hex(32)))


PG_SCHEMA = Schema("collections", {}, initial=_pg_create, version_key="collections_schema_version")
"""The same tables and columns as :data:`SCHEMA` on PostgreSQL (one ``initial`` step)."""

WRITE_LOCK = int.from_bytes(hashlib.sha256(b"faceaudit-collections-write").digest()[:8], "big", signed=True)
"""The advisory lock every PostgreSQL write transaction of the store holds (SQLite's BEGIN IMMEDIATE)."""


@dataclass(frozen=True)
class CollectionRow:
    rowid: int
    name: str
    model: str
    model_version: str
    dimension: int
    created_at: float
    face_count: int
    user_count: int
    head_seq: int
    log_floor: int


@dataclass(frozen=True)
class FaceRow:
    rowid: int
    face_id: str
    image_id: str
    external_image_id: str | None
    box: tuple[float, float, float, float]
    confidence: float
    user_id: str | None
    user_row: int | None
    labels: dict[str, Any]
    sha256: str


_COLLECTION_COLS = "id, name, model, model_version, dimension, created_at, face_count, user_count, head_seq, log_floor"
_FACE_SELECT = """
SELECT f.id, f.face_id, i.image_id, i.external_image_id, f.box_left, f.box_top, f.box_width,
       f.box_height, f.confidence, u.user_id, f.user_row, i.labels, i.sha256
FROM faces f JOIN images i ON i.id = f.image_row LEFT JOIN users u ON u.id = f.user_row
"""


def _returned_id(conn: Connection, sql: str, params: Sequence[Any]) -> int:
    """Run an INSERT ending in ``RETURNING id``; the new row's id (all rows fetched: the statement
    runs to its end before the transaction goes on)."""
    rows = conn.execute(sql, params).fetchall()
    if len(rows) != 1:  # pragma: no cover - an INSERT of one row returns one id
        raise RuntimeError(f"an INSERT returned {len(rows)} ids")
    return int(rows[0][0])


def _face_row(r: Sequence[Any]) -> FaceRow:
    return FaceRow(
        rowid=r[0], face_id=r[1], image_id=r[2], external_image_id=r[3] or None,
        box=(r[4], r[5], r[6], r[7]), confidence=r[8], user_id=r[9], user_row=r[10],
        labels=json.loads(r[11]) if r[11] else {}, sha256=r[12],
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


def blobs_to_matrix(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(-1, dimension)


class Store:
    """Connections to one data dir's database, or to a PostgreSQL database shared by hosts:
    one per thread (and per process after fork)."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self._db: SQLiteDatabase | PostgreSQLDatabase
        if database_url is not None and is_postgres_url(database_url):
            db = open_database(database_url, PG_SCHEMA, timeout_s=BUSY_TIMEOUT_S, qmark=True)
            if not isinstance(db, PostgreSQLDatabase):  # pragma: no cover - a postgresql:// URL
                raise TypeError("a postgresql:// URL opened no PostgreSQL database")
            self._db = db
            self.path: Path | None = None
        else:
            if database_url is None:
                self.path = self.data_dir / DB_NAME
            else:  # sqlite:///path (InvalidParameterError for any other scheme)
                opened = open_database(database_url, SCHEMA)
                if not isinstance(opened, SQLiteDatabase):  # pragma: no cover - not a postgresql:// URL
                    raise TypeError("expected a SQLite database")
                self.path = opened.path
            self._db = SQLiteDatabase(self.path, SCHEMA, busy_timeout_s=BUSY_TIMEOUT_S, check_same_thread=False)
        self._local = threading.local()
        self._secret: bytes | None = None

    @property
    def postgres(self) -> bool:
        """True when the store lives in PostgreSQL (shared by hosts)."""
        return isinstance(self._db, PostgreSQLDatabase)

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    # -- connections ---------------------------------------------------------------------------
    def _connect(self, create: bool) -> Connection | None:
        if isinstance(self._db, PostgreSQLDatabase):
            conn = self._db.connect()  # (the schema is made on the first connection: always there)
            if not isinstance(conn, QmarkConnection):  # pragma: no cover - opened with qmark=True
                raise TypeError("expected a QmarkConnection")
            return conn
        if not self._db.exists() and not create:
            return None
        return self._db.connect()  # refuses a data dir open to other users

    @overload
    def connection(self, create: Literal[True]) -> Connection: ...

    @overload
    def connection(self, create: bool = False) -> Connection | None: ...

    def connection(self, create: bool = False) -> Connection | None:
        """This thread's connection; None when the database does not exist and ``create`` is False
        (SQLite only: a PostgreSQL store is created on its first connection)."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and getattr(local, "pid", None) != os.getpid():
            conn = None  # inherited through fork: never reuse
        if conn is not None and isinstance(conn, QmarkConnection) and conn.closed:
            conn = None  # (the server went away: a new connection)
        if conn is None:
            conn = self._connect(create)
            if conn is None:
                return None
            local.conn, local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            with contextlib.suppress(Exception):  # (a PostgreSQL connection may be broken already)
                conn.close()
        self._local.conn = None

    def _discard(self) -> None:
        """Forget this thread's (broken) connection: the next call opens a new one."""
        self.close()

    @contextlib.contextmanager
    def _pg_transaction(self, *, write: bool) -> Iterator[Connection]:
        """One PostgreSQL transaction on this thread's connection: a writer holds the store's
        advisory lock (one writer at a time, as SQLite); a reader reads one snapshot. A stale
        connection found at BEGIN (the server restarted) is replaced before anything runs; a
        server that cannot be reached, or that goes away meanwhile, is a ServiceUnavailableError."""
        import psycopg

        conn: QmarkConnection | None = None
        for attempt in range(1, PG_CONNECT_ATTEMPTS + 1):
            candidate = self.connection(create=True)  # ServiceUnavailableError when unreachable
            if not isinstance(candidate, QmarkConnection):  # pragma: no cover - a PostgreSQL store
                raise TypeError("a PostgreSQL store without a PostgreSQL connection")
            try:
                # (one round trip: the lock's key is a constant of this module, no parameter)
                candidate.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(WRITE_LOCK)})" if write
                                  else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            except psycopg.OperationalError as exc:
                self._discard()
                log.warning("database %s: connection lost at BEGIN (attempt %d of %d): %s",
                            self._where, attempt, PG_CONNECT_ATTEMPTS, _first_line(exc))
                if attempt == PG_CONNECT_ATTEMPTS:
                    raise ServiceUnavailableError(
                        f"the database {self._where} cannot be reached: {_first_line(exc)}") from None
                continue
            conn = candidate
            break
        if conn is None:  # pragma: no cover - the loop either breaks or raises
            raise ServiceUnavailableError(f"the database {self._where} cannot be reached")
        try:
            yield conn
        except BaseException as exc:
            if not conn.closed:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    self._discard()
            if isinstance(exc, psycopg.OperationalError):  # the server went away (or a deadlock)
                self._discard()
                raise ServiceUnavailableError(
                    f"the database {self._where} failed during the request ({_first_line(exc)}); "
                    "nothing was changed: retry") from None
            raise
        else:
            try:
                conn.execute("COMMIT")
            except psycopg.OperationalError as exc:
                self._discard()
                raise ServiceUnavailableError(
                    f"the database {self._where} failed at COMMIT ({_first_line(exc)}); the change may "
                    "not be stored: retry (a ClientRequestToken makes the retry safe)") from None

    @property
    def _where(self) -> str:
        return self._db.where if isinstance(self._db, PostgreSQLDatabase) else str(self.path)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection | None]:
        """A read transaction (one snapshot); yields None when the database does not exist yet."""
        if self.postgres:
            with self._pg_transaction(write=False) as conn:
                yield conn
            return
        sconn = self.connection(create=False)
        if sconn is None:
            yield None
            return
        with transaction(sconn, write=False):
            yield sconn

    @overload
    def write(self, create: Literal[True]) -> contextlib.AbstractContextManager[Connection]: ...

    @overload
    def write(self, create: bool = False) -> contextlib.AbstractContextManager[Connection | None]: ...

    @contextlib.contextmanager  # type: ignore[misc]  # mypy cannot see create=True always yields a connection
    def write(self, create: bool = False) -> Iterator[Connection | None]:
        """A write transaction: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); on PostgreSQL
        BEGIN and the store's advisory lock.

        Yields None when the database does not exist and ``create`` is False (every
        write but CreateCollection needs an existing collection: nothing to create).
        """
        if self.postgres:
            with self._pg_transaction(write=True) as conn:
                yield conn
            return
        sconn = self.connection(create=create)
        if sconn is None:
            yield None
            return
        with transaction(sconn, write=True):
            yield sconn

    @overload
    def secret(self, conn: Connection) -> bytes: ...

    @overload
    def secret(self, conn: Connection | None) -> bytes | None: ...

    def secret(self, conn: Connection | None) -> bytes | None:
        """The key that signs pagination tokens (None before the database exists); on PostgreSQL
        one key for every host."""
        if self._secret is None and conn is not None:
            key = PG_SECRET_KEY if self.postgres else "token_secret"
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            self._secret = bytes.fromhex(row[0])
        return self._secret

    def token_secret(self) -> bytes:
        """The key that signs pagination tokens, read in a transaction of its own (the SQLite
        database is created when missing)."""
        if self._secret is None:
            if self.postgres:
                with self._pg_transaction(write=False) as conn:
                    return self.secret(conn)
            return self.secret(self.connection(create=True))
        return self._secret

    # -- collections ---------------------------------------------------------------------------
    @staticmethod
    def find_collection(conn: Connection | None, name: str) -> CollectionRow | None:
        if conn is None:
            return None
        r = conn.execute(f"SELECT {_COLLECTION_COLS} FROM collections WHERE name = ?", (name,)).fetchone()
        return CollectionRow(*r) if r else None

    @classmethod
    def get_collection(cls, conn: Connection | None, name: str) -> CollectionRow:
        row = cls.find_collection(conn, name)
        if row is None:
            raise ResourceNotFoundError(f"collection {name!r} does not exist")
        return row

    @classmethod
    def require_collection(cls, conn: Connection | None,
                           name: str) -> tuple[Connection, CollectionRow]:
        """``(conn, the collection)``, as :meth:`get_collection`; the connection comes back typed
        as present (no database yet: no collection, ResourceNotFoundException)."""
        if conn is None:
            raise ResourceNotFoundError(f"collection {name!r} does not exist")
        return conn, cls.get_collection(conn, name)

    @staticmethod
    def collection_by_rowid(conn: Connection, rowid: int) -> CollectionRow | None:
        r = conn.execute(f"SELECT {_COLLECTION_COLS} FROM collections WHERE id = ?", (rowid,)).fetchone()
        return CollectionRow(*r) if r else None

    @staticmethod
    def insert_collection(conn: Connection, name: str, model: str, model_version: str, dimension: int,
                          tags: dict[str, str]) -> int:
        return _returned_id(
            conn,
            "INSERT INTO collections (name, model, model_version, dimension, created_at, tags) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (name, model, model_version, dimension, round(time.time(), 3), json.dumps(tags)),
        )

    @staticmethod
    def collection_tags(conn: Connection, rowid: int) -> dict[str, str]:
        r = conn.execute("SELECT tags FROM collections WHERE id = ?", (rowid,)).fetchone()
        tags: dict[str, str] = json.loads(r[0]) if r and r[0] else {}
        return tags

    @staticmethod
    def set_collection_tags(conn: Connection, rowid: int, tags: dict[str, str]) -> None:
        conn.execute("UPDATE collections SET tags = ? WHERE id = ?", (json.dumps(tags), rowid))

    @staticmethod
    def list_collections(conn: Connection | None, after: int, limit: int) -> list[CollectionRow]:
        if conn is None:
            return []
        rows = conn.execute(
            f"SELECT {_COLLECTION_COLS} FROM collections WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [CollectionRow(*r) for r in rows]

    @staticmethod
    def delete_collection(conn: Connection, rowid: int) -> None:
        conn.execute("DELETE FROM face_log WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM faces WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM images WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM users WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM collections WHERE id = ?", (rowid,))

    # -- the change log --------------------------------------------------------------------------
    @staticmethod
    def log_changes(conn: Connection, collection_rowid: int, face_rows: Sequence[int], face_delta: int) -> None:
        """Record added or deleted faces, move the collection's head and count, prune the log.

        The collection's row is updated (locked) before the log rows are added: on PostgreSQL the
        seqs of one collection are then drawn and committed in order, one transaction at a time,
        so a host that reads ``seq > last`` never skips a change committed later with a lower seq.
        """
        if not face_rows:
            return
        conn.execute("UPDATE collections SET face_count = face_count + ? WHERE id = ?",
                     (face_delta, collection_rowid))
        conn.executemany(
            "INSERT INTO face_log (collection_id, face_row) VALUES (?, ?)",
            [(collection_rowid, int(r)) for r in face_rows],
        )
        # under the row lock the collection's newest seq is the last one added here
        head, floor = conn.execute(
            "UPDATE collections SET head_seq = (SELECT MAX(seq) FROM face_log WHERE collection_id = ?) "
            "WHERE id = ? RETURNING head_seq, log_floor", (collection_rowid, collection_rowid),
        ).fetchall()[0]
        kept = conn.execute(
            "SELECT COUNT(*) FROM face_log WHERE collection_id = ? AND seq > ?", (collection_rowid, floor)
        ).fetchone()[0] if head - floor > 2 * LOG_KEEP else 0
        if kept > 2 * LOG_KEEP:
            cut = conn.execute(
                "SELECT seq FROM face_log WHERE collection_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                (collection_rowid, LOG_KEEP),
            ).fetchone()[0]
            conn.execute("DELETE FROM face_log WHERE collection_id = ? AND seq <= ?", (collection_rowid, cut))
            conn.execute("UPDATE collections SET log_floor = ? WHERE id = ?", (cut, collection_rowid))

    @staticmethod
    def changed_face_rows(conn: Connection, collection_rowid: int, after_seq: int) -> list[int]:
        rows = conn.execute(
            "SELECT DISTINCT face_row FROM face_log WHERE collection_id = ? AND seq > ?",
            (collection_rowid, after_seq),
        ).fetchall()
        return [r[0] for r in rows]

    # -- embeddings ------------------------------------------------------------------------------
    @staticmethod
    def embeddings(conn: Connection, collection_rowid: int, dimension: int,
                   face_rows: Sequence[int] | None = None, chunk: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the collection's faces, all or those of ``face_rows`` that exist."""
        ids: list[int] = []
        blobs: list[bytes] = []
        if face_rows is None:
            cur = conn.execute(
                "SELECT id, embedding FROM faces WHERE collection_id = ? ORDER BY id", (collection_rowid,)
            )
            for r in cur:
                ids.append(r[0])
                blobs.append(r[1])
        else:
            rows = [int(r) for r in face_rows]
            for i in range(0, len(rows), chunk):
                part = rows[i : i + chunk]
                q = ",".join("?" * len(part))
                for r in conn.execute(
                    f"SELECT id, embedding FROM faces WHERE collection_id = ? AND id IN ({q})",
                    (collection_rowid, *part),
                ):
                    ids.append(r[0])
                    blobs.append(r[1])
        return np.asarray(ids, dtype=np.int64), blobs_to_matrix(blobs, dimension)

    @staticmethod
    def face_rowids(conn: Connection, collection_rowid: int) -> np.ndarray:
        rows = conn.execute(
            "SELECT id FROM faces WHERE collection_id = ? ORDER BY id", (collection_rowid,)
        ).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    # -- faces -----------------------------------------------------------------------------------
    @staticmethod
    def faces_by_rowids(conn: Connection, rowids: Sequence[int], chunk: int = 500) -> dict[int, FaceRow]:
        out: dict[int, FaceRow] = {}
        rows = [int(r) for r in rowids]
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            q = ",".join("?" * len(part))
            for r in conn.execute(f"{_FACE_SELECT} WHERE f.id IN ({q})", part):
                fr = _face_row(r)
                out[fr.rowid] = fr
        return out

    @staticmethod
    def faces_by_face_ids(conn: Connection, collection_rowid: int, face_ids: Sequence[str],
                          chunk: int = 500) -> dict[str, FaceRow]:
        out: dict[str, FaceRow] = {}
        ids = list(face_ids)
        for i in range(0, len(ids), chunk):
            part = ids[i : i + chunk]
            q = ",".join("?" * len(part))
            for r in conn.execute(
                f"{_FACE_SELECT} WHERE f.collection_id = ? AND f.face_id IN ({q})", (collection_rowid, *part)
            ):
                fr = _face_row(r)
                out[fr.face_id] = fr
        return out

    @staticmethod
    def face_embedding(conn: Connection, face_rowid: int, dimension: int) -> np.ndarray:
        blob = conn.execute("SELECT embedding FROM faces WHERE id = ?", (face_rowid,)).fetchone()[0]
        vector: np.ndarray = blobs_to_matrix([blob], dimension)[0]
        return vector

    @staticmethod
    def list_faces(conn: Connection, collection_rowid: int, after: int, limit: int,
                   user_row: int | None, face_ids: Sequence[str] | None) -> list[FaceRow]:
        where = ["f.collection_id = ?", "f.id > ?"]
        args: list[Any] = [collection_rowid, after]
        if user_row is not None:
            where.append("f.user_row = ?")
            args.append(user_row)
        if face_ids is not None:
            where.append(f"f.face_id IN ({','.join('?' * len(face_ids))})")
            args.extend(face_ids)
        rows = conn.execute(
            f"{_FACE_SELECT} WHERE {' AND '.join(where)} ORDER BY f.id LIMIT ?", (*args, limit)
        ).fetchall()
        return [_face_row(r) for r in rows]

    @staticmethod
    def faces_created_before(conn: Connection, collection_rowid: int,
                             before: float) -> list[tuple[str, str | None]]:
        """(FaceId, UserId or None) of the collection's faces indexed before ``before``, oldest first."""
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT f.face_id, u.user_id FROM faces f LEFT JOIN users u ON u.id = f.user_row "
            "WHERE f.collection_id = ? AND f.created_at < ? ORDER BY f.id", (collection_rowid, before))]

    @staticmethod
    def find_image(conn: Connection, collection_rowid: int, sha256: str,
                   external_image_id: str | None) -> tuple[int, str, str] | None:
        """(image row, ImageId, unindexed faces as JSON) of an image already indexed, or None."""
        row: tuple[int, str, str] | None = conn.execute(
            "SELECT id, image_id, unindexed FROM images WHERE collection_id = ? AND sha256 = ? "
            "AND external_image_id = ? ORDER BY id LIMIT 1",
            (collection_rowid, sha256, external_image_id or ""),
        ).fetchone()
        return row

    @staticmethod
    def image_keys(conn: Connection | None, collection_rowid: int) -> set[tuple[str, str]]:
        """{(sha256, ExternalImageId or '')} of the images indexed in a collection."""
        if conn is None:
            return set()
        return set(conn.execute(
            "SELECT sha256, external_image_id FROM images WHERE collection_id = ?", (collection_rowid,)
        ).fetchall())

    @staticmethod
    def face_details(conn: Connection, image_row: int) -> list[tuple[int, str]]:
        return [(int(r[0]), str(r[1])) for r in conn.execute(
            "SELECT id, detail FROM faces WHERE image_row = ? ORDER BY id", (image_row,)
        )]

    @staticmethod
    def insert_image(conn: Connection, collection_rowid: int, image_id: str, sha256: str,
                     external_image_id: str | None, width: int, height: int, unindexed: list[dict[str, Any]],
                     labels: dict[str, str], source: str | None) -> int:
        return _returned_id(
            conn,
            "INSERT INTO images (collection_id, image_id, sha256, external_image_id, width, height, "
            "unindexed, labels, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (collection_rowid, image_id, sha256, external_image_id or "", int(width), int(height),
             json.dumps(unindexed), json.dumps(labels), source, round(time.time(), 3)),
        )

    @staticmethod
    def insert_face(conn: Connection, collection_rowid: int, face_id: str, image_row: int,
                    box: BoundingBox, confidence: float, quality: float, detail: dict[str, Any],
                    vector: np.ndarray, thumbnail: bytes = b"") -> int:
        row = _returned_id(
            conn,
            "INSERT INTO faces (collection_id, face_id, image_row, box_left, box_top, box_width, "
            "box_height, confidence, quality, detail, embedding, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (collection_rowid, face_id, image_row, float(box.left), float(box.top), float(box.width),
             float(box.height), float(confidence), None if quality is None else float(quality),
             json.dumps(detail), vector_to_blob(vector), round(time.time(), 3)),
        )
        if thumbnail:
            conn.execute("INSERT INTO face_thumbnails (face_row, jpeg) VALUES (?, ?)", (row, thumbnail))
        return row

    @staticmethod
    def face_thumbnail(conn: Connection, face_id: str) -> bytes | None:
        row = conn.execute(
            "SELECT t.jpeg FROM face_thumbnails t JOIN faces f ON f.id = t.face_row WHERE f.face_id = ?",
            (face_id,),
        ).fetchone()
        return bytes(row[0]) if row else None

    @staticmethod
    def delete_face_rows(conn: Connection, face_rows: Sequence[int]) -> None:
        """Delete faces, and their image rows once an image has no face left."""
        images = set()
        for r in (int(f) for f in face_rows):
            row = conn.execute("SELECT image_row FROM faces WHERE id = ?", (r,)).fetchone()
            if row:
                images.add(row[0])
            conn.execute("DELETE FROM faces WHERE id = ?", (r,))
        for img in images:
            if conn.execute("SELECT 1 FROM faces WHERE image_row = ? LIMIT 1", (img,)).fetchone() is None:
                conn.execute("DELETE FROM images WHERE id = ?", (img,))

    # -- users -----------------------------------------------------------------------------------
    @staticmethod
    def find_user(conn: Connection | None, collection_rowid: int, user_id: str) -> int | None:
        if conn is None:
            return None
        r = conn.execute(
            "SELECT id FROM users WHERE collection_id = ? AND user_id = ?", (collection_rowid, user_id)
        ).fetchone()
        return r[0] if r else None

    @staticmethod
    def insert_user(conn: Connection, collection_rowid: int, user_id: str) -> int:
        row = _returned_id(
            conn, "INSERT INTO users (collection_id, user_id, created_at) VALUES (?, ?, ?) RETURNING id",
            (collection_rowid, user_id, round(time.time(), 3)),
        )
        conn.execute("UPDATE collections SET user_count = user_count + 1 WHERE id = ?", (collection_rowid,))
        return row

    @staticmethod
    def delete_user(conn: Connection, collection_rowid: int, user_row: int) -> None:
        """Delete a user; its faces stay, disassociated."""
        conn.execute("UPDATE faces SET user_row = NULL WHERE user_row = ?", (user_row,))
        conn.execute("DELETE FROM users WHERE id = ?", (user_row,))
        conn.execute("UPDATE collections SET user_count = user_count - 1 WHERE id = ?", (collection_rowid,))

    @staticmethod
    def set_user(conn: Connection, face_rows: Sequence[int], user_row: int | None) -> None:
        conn.executemany("UPDATE faces SET user_row = ? WHERE id = ?",
                         [(None if user_row is None else int(user_row), int(r)) for r in face_rows])

    @staticmethod
    def user_face_rows(conn: Connection, user_row: int) -> list[int]:
        return [r[0] for r in conn.execute("SELECT id FROM faces WHERE user_row = ? ORDER BY id", (user_row,))]

    @staticmethod
    def list_users(conn: Connection, collection_rowid: int, after: int,
                   limit: int) -> list[tuple[int, str, int]]:
        """[(row id, UserId, face count)] in creation order."""
        return [(int(r[0]), str(r[1]), int(r[2])) for r in conn.execute(
            "SELECT u.id, u.user_id, (SELECT COUNT(*) FROM faces f WHERE f.user_row = u.id) "
            "FROM users u WHERE u.collection_id = ? AND u.id > ? ORDER BY u.id LIMIT ?",
            (collection_rowid, after, limit),
        )]

    @staticmethod
    def users_with_faces(conn: Connection, face_rows: Sequence[int]) -> dict[int, tuple[int, str]]:
        """{face row: (user row, UserId)} for those of ``face_rows`` that belong to a user."""
        out: dict[int, tuple[int, str]] = {}
        rows = [int(r) for r in face_rows]
        for i in range(0, len(rows), 500):
            part = rows[i : i + 500]
            q = ",".join("?" * len(part))
            for r in conn.execute(
                f"SELECT f.id, u.id, u.user_id FROM faces f JOIN users u ON u.id = f.user_row "
                f"WHERE f.id IN ({q})", part,
            ):
                out[r[0]] = (r[1], r[2])
        return out

    # -- idempotency -----------------------------------------------------------------------------
    @staticmethod
    def idempotent_response(conn: Connection, operation: str, token: str) -> tuple[str, str] | None:
        """(request, response) remembered for an idempotency token, or None once expired."""
        row: tuple[str, str] | None = conn.execute(
            "SELECT request, response FROM idempotency WHERE operation = ? AND token = ? AND created_at > ?",
            (operation, token, time.time() - IDEMPOTENCY_TTL_S),
        ).fetchone()
        return row

    def remember_response(self, conn: Connection, operation: str, token: str, request: str,
                          response: str) -> None:
        now = time.time()
        conn.execute("DELETE FROM idempotency WHERE created_at <= ?", (now - IDEMPOTENCY_TTL_S,))
        conn.execute(
            self.dialect.upsert("idempotency", ("operation", "token", "request", "response", "created_at"),
                                ("operation", "token")),
            (operation, token, request, response, now),
        )
