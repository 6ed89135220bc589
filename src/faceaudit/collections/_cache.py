"""Each process's in-memory vector indexes, kept in step with SQLite.

SQLite is the truth; an index is a cache. Every face added or deleted appends a
row to ``face_log`` and moves the collection's ``head_seq`` in the same
transaction. Before each search, inside the search's read transaction, the
cache compares the seq its index reflects with ``head_seq``:

- equal: the index is current;
- behind, and the missing log entries are still kept: replay them (remove every
  touched face id, then add back those that still exist: embeddings never
  change, so this is idempotent);
- otherwise (first use, log pruned past us, count mismatch): load the index
  snapshot if one is usable, replay the log since it, and verify the ids against
  SQLite; or rebuild from SQLite.

After every sync the index's count must equal the collection's ``face_count``;
a mismatch rebuilds from SQLite. So a crash (even in the middle of writing a
snapshot) never leaves a wrong index: at worst a slower first search.

Snapshots (``<data dir>/index/c<collection row id>.npz``: ids, vectors and the
seq they reflect) make the first search of a large collection cheap. They are
written atomically (temporary file, fsync, rename) by :meth:`checkpoint` and
after a rebuild of at least ``snapshot_min_faces`` faces.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from faceaudit._paths import private_dir
from faceaudit.collections._index import VectorIndex, make_index
from faceaudit.collections._store import CollectionRow, Store

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "index"


@dataclass
class _Entry:
    index: VectorIndex
    seq: int
    lock: threading.RLock = field(default_factory=threading.RLock)


class IndexCache:
    """Per-collection indexes of one process (thread-safe: hold :meth:`lock` while using one)."""

    def __init__(self, data_dir: Path, kind: str = "faiss", snapshot_min_faces: int = 50_000) -> None:
        self.data_dir = Path(data_dir)
        self.kind = kind
        self.snapshot_min_faces = snapshot_min_faces
        self._entries: Dict[int, _Entry] = {}
        self._locks: Dict[int, threading.RLock] = {}
        self._guard = threading.Lock()
        self.stats = {"rebuilds": 0, "snapshot_loads": 0, "catch_ups": 0}

    def lock(self, collection_rowid: int) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(collection_rowid, threading.RLock())

    def snapshot_path(self, collection_rowid: int) -> Path:
        return self.data_dir / SNAPSHOT_DIR / f"c{collection_rowid}.npz"

    def drop(self, collection_rowid: int, remove_snapshot: bool = False) -> None:
        with self._guard:
            self._entries.pop(collection_rowid, None)
        if remove_snapshot:
            try:
                self.snapshot_path(collection_rowid).unlink()
            except OSError:
                pass

    # -- sync ------------------------------------------------------------------------------------
    def synced(self, conn, coll: CollectionRow) -> VectorIndex:
        """The collection's index, brought up to ``coll.head_seq``.

        Call inside a read (or write) transaction in which ``coll`` was read, holding
        ``self.lock(coll.rowid)``.
        """
        entry = self._entries.get(coll.rowid)
        if entry is None:
            self._forget_deleted(conn)
            entry = self._open(conn, coll)
        elif entry.seq != coll.head_seq:
            if coll.log_floor <= entry.seq < coll.head_seq:
                self._catch_up(conn, coll, entry)
            else:
                entry = self._rebuild(conn, coll)
        if entry.index.count != coll.face_count:
            log.warning(
                "index of collection %s holds %d faces, SQLite %d: rebuilding",
                coll.name, entry.index.count, coll.face_count,
            )
            entry = self._rebuild(conn, coll)
        return entry.index

    def _forget_deleted(self, conn) -> None:
        live = {r[0] for r in conn.execute("SELECT id FROM collections")}
        with self._guard:
            for rowid in [r for r in self._entries if r not in live]:
                del self._entries[rowid]

    def _catch_up(self, conn, coll: CollectionRow, entry: _Entry) -> None:
        touched = Store.changed_face_rows(conn, coll.rowid, entry.seq)
        entry.index.remove(np.asarray(touched, dtype=np.int64))
        ids, vectors = Store.embeddings(conn, coll.rowid, coll.dimension, touched)
        entry.index.add(ids, vectors)
        entry.seq = coll.head_seq
        self.stats["catch_ups"] += 1

    def _rebuild(self, conn, coll: CollectionRow) -> _Entry:
        index = make_index(self.kind, coll.dimension)
        ids, vectors = Store.embeddings(conn, coll.rowid, coll.dimension)
        index.add(ids, vectors)
        entry = _Entry(index=index, seq=coll.head_seq)
        with self._guard:
            self._entries[coll.rowid] = entry
        self.stats["rebuilds"] += 1
        if index.count >= self.snapshot_min_faces:
            self._write_snapshot(coll, ids, vectors)
        return entry

    def _open(self, conn, coll: CollectionRow) -> _Entry:
        loaded = self._read_snapshot(coll)
        if loaded is None:
            return self._rebuild(conn, coll)
        ids, vectors, seq = loaded
        index = make_index(self.kind, coll.dimension)
        index.add(ids, vectors)
        entry = _Entry(index=index, seq=seq)
        if seq != coll.head_seq:
            self._catch_up(conn, coll, entry)
        if not np.array_equal(np.sort(index.ids()), Store.face_rowids(conn, coll.rowid)):
            log.warning("index snapshot of collection %s disagrees with SQLite: rebuilding", coll.name)
            return self._rebuild(conn, coll)
        with self._guard:
            self._entries[coll.rowid] = entry
        self.stats["snapshot_loads"] += 1
        return entry

    # -- snapshots -------------------------------------------------------------------------------
    def checkpoint(self, conn, coll: CollectionRow) -> Path:
        """Write the collection's snapshot from SQLite (the batch indexer calls this at the end)."""
        ids, vectors = Store.embeddings(conn, coll.rowid, coll.dimension)
        return self._write_snapshot(coll, ids, vectors)

    def _write_snapshot(self, coll: CollectionRow, ids: np.ndarray, vectors: np.ndarray) -> Optional[Path]:
        path = self.snapshot_path(coll.rowid)
        meta = json.dumps({"collection": coll.rowid, "seq": coll.head_seq,
                           "model_version": coll.model_version, "count": int(len(ids))})
        try:
            private_dir(path.parent, check=False)
            fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, ids=ids.astype(np.int64), vectors=vectors.astype(np.float32),
                             meta=np.array(meta))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:  # a read-only data dir still serves searches
            log.warning("cannot write index snapshot %s: %s", path, exc)
            return None
        return path

    def _read_snapshot(self, coll: CollectionRow):
        path = self.snapshot_path(coll.rowid)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                ids = np.asarray(data["ids"], dtype=np.int64)
                vectors = np.asarray(data["vectors"], dtype=np.float32)
        except Exception as exc:  # corrupt or truncated: rebuild
            log.warning("unreadable index snapshot %s (%s): rebuilding", path, exc)
            return None
        if (
            meta.get("collection") != coll.rowid
            or meta.get("model_version") != coll.model_version
            or vectors.shape != (len(ids), coll.dimension)
            or meta.get("count") != len(ids)
            or not coll.log_floor <= int(meta.get("seq", -1)) <= coll.head_seq
        ):
            log.info("index snapshot %s is stale or foreign: rebuilding", path)
            return None
        return ids, vectors, int(meta["seq"])
