"""SQLite storage: the source of truth of every collection.

One database file per data dir (``collections.sqlite3``), in WAL mode with
``synchronous=FULL`` (a committed transaction is on disk before COMMIT returns:
it survives kill -9 and power loss) and a busy timeout, so several processes
can read while one writes. Writes run in ``BEGIN IMMEDIATE`` transactions (one
writer at a time, waiting up to the busy timeout); reads run in a deferred
transaction, i.e. on one consistent snapshot.

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
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from faceaudit._db import Schema, SQLiteDatabase, statements, transaction
from faceaudit._errors import ResourceNotFoundError

if TYPE_CHECKING:
    from faceaudit.engine import BoundingBox

DB_NAME = "collections.sqlite3"
BUSY_TIMEOUT_S = 60.0
LOG_KEEP = 200_000
"""Change-log entries kept per collection; a process further behind rebuilds its index."""
IDEMPOTENCY_TTL_S = 24 * 3600.0

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


def _create(conn: sqlite3.Connection) -> None:
    """A new database: the latest schema and the secret that signs pagination tokens."""
    for stmt in statements(_SCHEMA):
        conn.execute(stmt)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('token_secret', ?)", (secrets.token_hex(32),))


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


def _rowid(cur: sqlite3.Cursor) -> int:
    """The row id of the row an INSERT on ``cur`` added (sqlite3 sets it after each INSERT)."""
    if cur.lastrowid is None:  # pragma: no cover - not after an INSERT
        raise RuntimeError("an INSERT left no row id")
    return cur.lastrowid


def _face_row(r: Sequence[Any]) -> FaceRow:
    return FaceRow(
        rowid=r[0], face_id=r[1], image_id=r[2], external_image_id=r[3] or None,
        box=(r[4], r[5], r[6], r[7]), confidence=r[8], user_id=r[9], user_row=r[10],
        labels=json.loads(r[11]) if r[11] else {}, sha256=r[12],
    )


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


def blobs_to_matrix(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(-1, dimension)


class Store:
    """Connections to one data dir's database: one per thread (and per process after fork)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self._db = SQLiteDatabase(self.path, SCHEMA, busy_timeout_s=BUSY_TIMEOUT_S, check_same_thread=False)
        self._local = threading.local()
        self._secret: bytes | None = None

    # -- connections ---------------------------------------------------------------------------
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self._db.exists() and not create:
            return None
        return self._db.connect()  # refuses a data dir open to other users

    @overload
    def connection(self, create: Literal[True]) -> sqlite3.Connection: ...

    @overload
    def connection(self, create: bool = False) -> sqlite3.Connection | None: ...

    def connection(self, create: bool = False) -> sqlite3.Connection | None:
        """This thread's connection; None when the database does not exist and ``create`` is False."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and getattr(local, "pid", None) != os.getpid():
            conn = None  # inherited through fork: never reuse
        if conn is None:
            conn = self._connect(create)
            if conn is None:
                return None
            local.conn, local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection | None]:
        """A read transaction (one snapshot); yields None when the database does not exist yet."""
        conn = self.connection(create=False)
        if conn is None:
            yield None
            return
        with transaction(conn, write=False):
            yield conn

    @overload
    def write(self, create: Literal[True]) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

    @overload
    def write(self, create: bool = False) -> contextlib.AbstractContextManager[sqlite3.Connection | None]: ...

    @contextlib.contextmanager  # type: ignore[misc]  # mypy cannot see create=True always yields a connection
    def write(self, create: bool = False) -> Iterator[sqlite3.Connection | None]:
        """A write transaction: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error).

        Yields None when the database does not exist and ``create`` is False (every
        write but CreateCollection needs an existing collection: nothing to create).
        """
        conn = self.connection(create=create)
        if conn is None:
            yield None
            return
        with transaction(conn, write=True):
            yield conn

    @overload
    def secret(self, conn: sqlite3.Connection) -> bytes: ...

    @overload
    def secret(self, conn: sqlite3.Connection | None) -> bytes | None: ...

    def secret(self, conn: sqlite3.Connection | None) -> bytes | None:
        """The key that signs pagination tokens (None before the database exists)."""
        if self._secret is None and conn is not None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'token_secret'").fetchone()
            self._secret = bytes.fromhex(row[0])
        return self._secret

    # -- collections ---------------------------------------------------------------------------
    @staticmethod
    def find_collection(conn: sqlite3.Connection | None, name: str) -> CollectionRow | None:
        if conn is None:
            return None
        r = conn.execute(f"SELECT {_COLLECTION_COLS} FROM collections WHERE name = ?", (name,)).fetchone()
        return CollectionRow(*r) if r else None

    @classmethod
    def get_collection(cls, conn: sqlite3.Connection | None, name: str) -> CollectionRow:
        row = cls.find_collection(conn, name)
        if row is None:
            raise ResourceNotFoundError(f"collection {name!r} does not exist")
        return row

    @classmethod
    def require_collection(cls, conn: sqlite3.Connection | None,
                           name: str) -> tuple[sqlite3.Connection, CollectionRow]:
        """``(conn, the collection)``, as :meth:`get_collection`; the connection comes back typed
        as present (no database yet: no collection, ResourceNotFoundException)."""
        if conn is None:
            raise ResourceNotFoundError(f"collection {name!r} does not exist")
        return conn, cls.get_collection(conn, name)

    @staticmethod
    def collection_by_rowid(conn: sqlite3.Connection, rowid: int) -> CollectionRow | None:
        r = conn.execute(f"SELECT {_COLLECTION_COLS} FROM collections WHERE id = ?", (rowid,)).fetchone()
        return CollectionRow(*r) if r else None

    @staticmethod
    def insert_collection(conn: sqlite3.Connection, name: str, model: str, model_version: str, dimension: int,
                          tags: dict[str, str]) -> int:
        cur = conn.execute(
            "INSERT INTO collections (name, model, model_version, dimension, created_at, tags) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, model, model_version, dimension, round(time.time(), 3), json.dumps(tags)),
        )
        return _rowid(cur)

    @staticmethod
    def collection_tags(conn: sqlite3.Connection, rowid: int) -> dict[str, str]:
        r = conn.execute("SELECT tags FROM collections WHERE id = ?", (rowid,)).fetchone()
        tags: dict[str, str] = json.loads(r[0]) if r and r[0] else {}
        return tags

    @staticmethod
    def set_collection_tags(conn: sqlite3.Connection, rowid: int, tags: dict[str, str]) -> None:
        conn.execute("UPDATE collections SET tags = ? WHERE id = ?", (json.dumps(tags), rowid))

    @staticmethod
    def list_collections(conn: sqlite3.Connection | None, after: int, limit: int) -> list[CollectionRow]:
        if conn is None:
            return []
        rows = conn.execute(
            f"SELECT {_COLLECTION_COLS} FROM collections WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [CollectionRow(*r) for r in rows]

    @staticmethod
    def delete_collection(conn: sqlite3.Connection, rowid: int) -> None:
        conn.execute("DELETE FROM face_log WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM faces WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM images WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM users WHERE collection_id = ?", (rowid,))
        conn.execute("DELETE FROM collections WHERE id = ?", (rowid,))

    # -- the change log --------------------------------------------------------------------------
    @staticmethod
    def log_changes(conn: sqlite3.Connection, collection_rowid: int, face_rows: Sequence[int], face_delta: int) -> None:
        """Record added or deleted faces, move the collection's head and count, prune the log."""
        if not face_rows:
            return
        conn.executemany(
            "INSERT INTO face_log (collection_id, face_row) VALUES (?, ?)",
            [(collection_rowid, int(r)) for r in face_rows],
        )
        head = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        conn.execute(
            "UPDATE collections SET head_seq = ?, face_count = face_count + ? WHERE id = ?",
            (head, face_delta, collection_rowid),
        )
        floor = conn.execute("SELECT log_floor FROM collections WHERE id = ?", (collection_rowid,)).fetchone()[0]
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
    def changed_face_rows(conn: sqlite3.Connection, collection_rowid: int, after_seq: int) -> list[int]:
        rows = conn.execute(
            "SELECT DISTINCT face_row FROM face_log WHERE collection_id = ? AND seq > ?",
            (collection_rowid, after_seq),
        ).fetchall()
        return [r[0] for r in rows]

    # -- embeddings ------------------------------------------------------------------------------
    @staticmethod
    def embeddings(conn: sqlite3.Connection, collection_rowid: int, dimension: int,
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
            rows = list(face_rows)
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
    def face_rowids(conn: sqlite3.Connection, collection_rowid: int) -> np.ndarray:
        rows = conn.execute(
            "SELECT id FROM faces WHERE collection_id = ? ORDER BY id", (collection_rowid,)
        ).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    # -- faces -----------------------------------------------------------------------------------
    @staticmethod
    def faces_by_rowids(conn: sqlite3.Connection, rowids: Sequence[int], chunk: int = 500) -> dict[int, FaceRow]:
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
    def faces_by_face_ids(conn: sqlite3.Connection, collection_rowid: int, face_ids: Sequence[str],
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
    def face_embedding(conn: sqlite3.Connection, face_rowid: int, dimension: int) -> np.ndarray:
        blob = conn.execute("SELECT embedding FROM faces WHERE id = ?", (face_rowid,)).fetchone()[0]
        vector: np.ndarray = blobs_to_matrix([blob], dimension)[0]
        return vector

    @staticmethod
    def list_faces(conn: sqlite3.Connection, collection_rowid: int, after: int, limit: int,
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
    def faces_created_before(conn: sqlite3.Connection, collection_rowid: int,
                             before: float) -> list[tuple[str, str | None]]:
        """(FaceId, UserId or None) of the collection's faces indexed before ``before``, oldest first."""
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT f.face_id, u.user_id FROM faces f LEFT JOIN users u ON u.id = f.user_row "
            "WHERE f.collection_id = ? AND f.created_at < ? ORDER BY f.id", (collection_rowid, before))]

    @staticmethod
    def find_image(conn: sqlite3.Connection, collection_rowid: int, sha256: str,
                   external_image_id: str | None) -> tuple[int, str, str] | None:
        """(image row, ImageId, unindexed faces as JSON) of an image already indexed, or None."""
        row: tuple[int, str, str] | None = conn.execute(
            "SELECT id, image_id, unindexed FROM images WHERE collection_id = ? AND sha256 = ? "
            "AND external_image_id = ? ORDER BY id LIMIT 1",
            (collection_rowid, sha256, external_image_id or ""),
        ).fetchone()
        return row

    @staticmethod
    def image_keys(conn: sqlite3.Connection | None, collection_rowid: int) -> set[tuple[str, str]]:
        """{(sha256, ExternalImageId or '')} of the images indexed in a collection."""
        if conn is None:
            return set()
        return set(conn.execute(
            "SELECT sha256, external_image_id FROM images WHERE collection_id = ?", (collection_rowid,)
        ).fetchall())

    @staticmethod
    def face_details(conn: sqlite3.Connection, image_row: int) -> list[tuple[int, str]]:
        return [(int(r[0]), str(r[1])) for r in conn.execute(
            "SELECT id, detail FROM faces WHERE image_row = ? ORDER BY id", (image_row,)
        )]

    @staticmethod
    def insert_image(conn: sqlite3.Connection, collection_rowid: int, image_id: str, sha256: str,
                     external_image_id: str | None, width: int, height: int, unindexed: list[dict[str, Any]],
                     labels: dict[str, str], source: str | None) -> int:
        cur = conn.execute(
            "INSERT INTO images (collection_id, image_id, sha256, external_image_id, width, height, "
            "unindexed, labels, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (collection_rowid, image_id, sha256, external_image_id or "", width, height,
             json.dumps(unindexed), json.dumps(labels), source, round(time.time(), 3)),
        )
        return _rowid(cur)

    @staticmethod
    def insert_face(conn: sqlite3.Connection, collection_rowid: int, face_id: str, image_row: int,
                    box: BoundingBox, confidence: float, quality: float, detail: dict[str, Any],
                    vector: np.ndarray, thumbnail: bytes = b"") -> int:
        cur = conn.execute(
            "INSERT INTO faces (collection_id, face_id, image_row, box_left, box_top, box_width, "
            "box_height, confidence, quality, detail, embedding, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (collection_rowid, face_id, image_row, box.left, box.top, box.width, box.height,
             confidence, quality, json.dumps(detail), vector_to_blob(vector), round(time.time(), 3)),
        )
        row = _rowid(cur)
        if thumbnail:
            conn.execute("INSERT INTO face_thumbnails (face_row, jpeg) VALUES (?, ?)", (row, thumbnail))
        return row

    @staticmethod
    def face_thumbnail(conn: sqlite3.Connection, face_id: str) -> bytes | None:
        row = conn.execute(
            "SELECT t.jpeg FROM face_thumbnails t JOIN faces f ON f.id = t.face_row WHERE f.face_id = ?",
            (face_id,),
        ).fetchone()
        return bytes(row[0]) if row else None

    @staticmethod
    def delete_face_rows(conn: sqlite3.Connection, face_rows: Sequence[int]) -> None:
        """Delete faces, and their image rows once an image has no face left."""
        images = set()
        for r in face_rows:
            row = conn.execute("SELECT image_row FROM faces WHERE id = ?", (r,)).fetchone()
            if row:
                images.add(row[0])
            conn.execute("DELETE FROM faces WHERE id = ?", (r,))
        for img in images:
            if conn.execute("SELECT 1 FROM faces WHERE image_row = ? LIMIT 1", (img,)).fetchone() is None:
                conn.execute("DELETE FROM images WHERE id = ?", (img,))

    # -- users -----------------------------------------------------------------------------------
    @staticmethod
    def find_user(conn: sqlite3.Connection | None, collection_rowid: int, user_id: str) -> int | None:
        if conn is None:
            return None
        r = conn.execute(
            "SELECT id FROM users WHERE collection_id = ? AND user_id = ?", (collection_rowid, user_id)
        ).fetchone()
        return r[0] if r else None

    @staticmethod
    def insert_user(conn: sqlite3.Connection, collection_rowid: int, user_id: str) -> int:
        cur = conn.execute(
            "INSERT INTO users (collection_id, user_id, created_at) VALUES (?, ?, ?)",
            (collection_rowid, user_id, round(time.time(), 3)),
        )
        conn.execute("UPDATE collections SET user_count = user_count + 1 WHERE id = ?", (collection_rowid,))
        return _rowid(cur)

    @staticmethod
    def delete_user(conn: sqlite3.Connection, collection_rowid: int, user_row: int) -> None:
        """Delete a user; its faces stay, disassociated."""
        conn.execute("UPDATE faces SET user_row = NULL WHERE user_row = ?", (user_row,))
        conn.execute("DELETE FROM users WHERE id = ?", (user_row,))
        conn.execute("UPDATE collections SET user_count = user_count - 1 WHERE id = ?", (collection_rowid,))

    @staticmethod
    def set_user(conn: sqlite3.Connection, face_rows: Sequence[int], user_row: int | None) -> None:
        conn.executemany("UPDATE faces SET user_row = ? WHERE id = ?", [(user_row, int(r)) for r in face_rows])

    @staticmethod
    def user_face_rows(conn: sqlite3.Connection, user_row: int) -> list[int]:
        return [r[0] for r in conn.execute("SELECT id FROM faces WHERE user_row = ? ORDER BY id", (user_row,))]

    @staticmethod
    def list_users(conn: sqlite3.Connection, collection_rowid: int, after: int,
                   limit: int) -> list[tuple[int, str, int]]:
        """[(row id, UserId, face count)] in creation order."""
        return [(int(r[0]), str(r[1]), int(r[2])) for r in conn.execute(
            "SELECT u.id, u.user_id, (SELECT COUNT(*) FROM faces f WHERE f.user_row = u.id) "
            "FROM users u WHERE u.collection_id = ? AND u.id > ? ORDER BY u.id LIMIT ?",
            (collection_rowid, after, limit),
        )]

    @staticmethod
    def users_with_faces(conn: sqlite3.Connection, face_rows: Sequence[int]) -> dict[int, tuple[int, str]]:
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
    def idempotent_response(conn: sqlite3.Connection, operation: str, token: str) -> tuple[str, str] | None:
        """(request, response) remembered for an idempotency token, or None once expired."""
        row: tuple[str, str] | None = conn.execute(
            "SELECT request, response FROM idempotency WHERE operation = ? AND token = ? AND created_at > ?",
            (operation, token, time.time() - IDEMPOTENCY_TTL_S),
        ).fetchone()
        return row

    @staticmethod
    def remember_response(conn: sqlite3.Connection, operation: str, token: str, request: str,
                          response: str) -> None:
        now = time.time()
        conn.execute("DELETE FROM idempotency WHERE created_at <= ?", (now - IDEMPOTENCY_TTL_S,))
        conn.execute(
            "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)", (operation, token, request, response, now)
        )
