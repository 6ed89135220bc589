"""Each process's in-memory vector indexes, kept in step with the database.

The database (the data dir's SQLite file, or PostgreSQL shared by several hosts) is the
truth; an index is a cache, one per process and host. Every face added or deleted appends a
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

Which index a collection gets is decided by the process's
:class:`~faceaudit.collections._search_config.SearchConfig`: flat or HNSW per
collection (a tag, or HNSW past ``hnsw_above`` faces: a collection that grows
past it is switched at its next search), or a Milvus collection for every face
collection when the vector store is Milvus. For Milvus, "rebuild" means
reconcile: the ids Milvus holds are compared with SQLite's and the difference
repaired.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceaudit._paths import private_dir
from faceaudit.collections._index import FastScanIndex, HnswIndex, VectorIndex, make_index
from faceaudit.collections._search_config import IndexKind, SearchConfig, VectorStore
from faceaudit.collections._store import CollectionRow, Connection, Store

if TYPE_CHECKING:
    from faceaudit.collections._milvus import MilvusIndex

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "index"


@dataclass
class _Entry:
    index: VectorIndex
    seq: int
    kind: IndexKind = IndexKind.FLAT
    lock: threading.RLock = field(default_factory=threading.RLock)


class IndexCache:
    """Per-collection indexes of one process (thread-safe: hold :meth:`lock` while using one)."""

    def __init__(self, data_dir: Path, kind: str = "faiss", snapshot_min_faces: int = 50_000,
                 config: SearchConfig | None = None, milvus_scope: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        # whose Milvus collections: the data dir's, or those of the database every host shares
        self.milvus_scope: Path | str = milvus_scope or self.data_dir
        self.kind = kind
        """The exact flat implementation: "faiss" or "numpy" (the oracle, for tests)."""
        self.config = config or SearchConfig()
        self.snapshot_min_faces = snapshot_min_faces
        self._entries: dict[int, _Entry] = {}
        self._locks: dict[int, threading.RLock] = {}
        self._guard = threading.Lock()
        self._milvus: Any = None  # a pymilvus.MilvusClient (pymilvus has no type information)
        self._milvus_pid: int | None = None
        self.stats = {"rebuilds": 0, "snapshot_loads": 0, "catch_ups": 0}

    @property
    def milvus(self) -> bool:
        return self.config.vector_store is VectorStore.MILVUS

    def _milvus_client(self) -> Any:
        if self._milvus is None or self._milvus_pid != os.getpid():  # never reuse a client across fork
            from faceaudit.collections._milvus import milvus_client

            self._milvus = milvus_client(self.config.milvus_uri or str(self.data_dir / "milvus.db"))
            self._milvus_pid = os.getpid()
        return self._milvus

    def _milvus_index(self, coll: CollectionRow) -> MilvusIndex:
        from faceaudit.collections._milvus import MilvusIndex, collection_name

        return MilvusIndex(self._milvus_client(), collection_name(self.milvus_scope, coll.rowid), coll.dimension)

    def kind_of(self, conn: Connection, coll: CollectionRow) -> IndexKind:
        """The local index kind this collection should have now.

        Flat for the Milvus store, and for the numpy oracle (tests), whatever the tag.
        """
        if self.milvus or self.kind == "numpy":
            return IndexKind.FLAT
        # read in the search's transaction: TagResource may change faceaudit:index at any time
        return self.config.kind_for(Store.collection_tags(conn, coll.rowid), coll.face_count)

    def _new_index(self, coll: CollectionRow, kind: IndexKind) -> VectorIndex:
        if kind is IndexKind.HNSW:
            return HnswIndex(coll.dimension, self.config.hnsw)
        if kind is IndexKind.FASTSCAN:
            return FastScanIndex(coll.dimension, self.config.fastscan)
        return make_index(self.kind, coll.dimension)

    def lock(self, collection_rowid: int) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(collection_rowid, threading.RLock())

    def snapshot_path(self, collection_rowid: int) -> Path:
        return self.data_dir / SNAPSHOT_DIR / f"c{collection_rowid}.npz"

    def drop(self, collection_rowid: int, remove_snapshot: bool = False) -> None:
        with self._guard:
            self._entries.pop(collection_rowid, None)
        if remove_snapshot and self.milvus:  # the collection is gone from SQLite: its vectors go too
            from faceaudit.collections._milvus import collection_name

            self._milvus_client().drop_collection(collection_name(self.milvus_scope, collection_rowid))
        if remove_snapshot:
            with contextlib.suppress(OSError):
                self.snapshot_path(collection_rowid).unlink()

    # -- sync ------------------------------------------------------------------------------------
    def synced(self, conn: Connection, coll: CollectionRow) -> VectorIndex:
        """The collection's index, brought up to ``coll.head_seq``.

        Call inside a read (or write) transaction in which ``coll`` was read, holding
        ``self.lock(coll.rowid)``.
        """
        entry = self._entries.get(coll.rowid)
        want = self.kind_of(conn, coll)
        if entry is None:
            self._forget_deleted(conn)
            entry = self._open(conn, coll, want)
        elif entry.kind is not want:  # grew past --fastscan-above / --hnsw-above, or re-tagged
            log.info("collection %s (%d faces): switching its index from %s to %s",
                     coll.name, coll.face_count, entry.kind.value, want.value)
            entry = self._rebuild(conn, coll, want)
        elif entry.seq != coll.head_seq:
            if coll.log_floor <= entry.seq < coll.head_seq:
                self._catch_up(conn, coll, entry)
            else:
                entry = self._rebuild(conn, coll, want)
        if entry.index.count != coll.face_count:
            log.warning(
                "index of collection %s holds %d faces, SQLite %d: rebuilding",
                coll.name, entry.index.count, coll.face_count,
            )
            entry = self._rebuild(conn, coll, want)
        return entry.index

    def _forget_deleted(self, conn: Connection) -> None:
        live = {r[0] for r in conn.execute("SELECT id FROM collections")}
        with self._guard:
            for rowid in [r for r in self._entries if r not in live]:
                del self._entries[rowid]

    def _catch_up(self, conn: Connection, coll: CollectionRow, entry: _Entry) -> None:
        touched = Store.changed_face_rows(conn, coll.rowid, entry.seq)
        entry.index.remove(np.asarray(touched, dtype=np.int64))
        ids, vectors = Store.embeddings(conn, coll.rowid, coll.dimension, touched)
        entry.index.add(ids, vectors)
        entry.seq = coll.head_seq
        self.stats["catch_ups"] += 1

    def _rebuild(self, conn: Connection, coll: CollectionRow, kind: IndexKind) -> _Entry:
        if self.milvus:
            return self._reconcile_milvus(conn, coll)
        index = self._new_index(coll, kind)
        ids, vectors = Store.embeddings(conn, coll.rowid, coll.dimension)
        index.add(ids, vectors)
        entry = _Entry(index=index, seq=coll.head_seq, kind=kind)
        with self._guard:
            self._entries[coll.rowid] = entry
        self.stats["rebuilds"] += 1
        if index.count >= self.snapshot_min_faces:
            self._write_snapshot(coll, ids, vectors, graph=self._graph_of(index))
        return entry

    @staticmethod
    def _graph_of(index: VectorIndex) -> np.ndarray | None:
        """What an approximate index keeps in the snapshot: the HNSW graph, the fast-scan codes."""
        return index.graph_bytes() if isinstance(index, (HnswIndex, FastScanIndex)) else None

    def _reconcile_milvus(self, conn: Connection, coll: CollectionRow) -> _Entry:
        """The Milvus collection, made to hold exactly SQLite's faces (repairs counted as rebuilds)."""
        index = self._milvus_index(coll)
        repaired = index.reconcile(
            Store.face_rowids(conn, coll.rowid),
            lambda ids: Store.embeddings(conn, coll.rowid, coll.dimension, ids),
        )
        if repaired:
            self.stats["rebuilds"] += 1
        entry = _Entry(index=index, seq=coll.head_seq, kind=IndexKind.FLAT)
        with self._guard:
            self._entries[coll.rowid] = entry
        return entry

    def _open(self, conn: Connection, coll: CollectionRow, kind: IndexKind) -> _Entry:
        if self.milvus:
            return self._reconcile_milvus(conn, coll)
        loaded = self._read_snapshot(coll)
        if loaded is None:
            return self._rebuild(conn, coll, kind)
        ids, vectors, seq, graph = loaded
        index: VectorIndex | None = None
        if kind in (IndexKind.HNSW, IndexKind.FASTSCAN) and graph is not None:  # as built: no rebuild
            try:
                if kind is IndexKind.HNSW:
                    index = HnswIndex.from_graph(graph, ids, coll.dimension, self.config.hnsw)
                else:
                    index = FastScanIndex.from_graph(graph, ids, vectors, coll.dimension, self.config.fastscan)
            except (ValueError, RuntimeError) as exc:
                log.warning("unusable %s index in the snapshot of collection %s (%s): rebuilding it",
                            kind.value, coll.name, exc)
        if index is None:
            index = self._new_index(coll, kind)
            index.add(ids, vectors)
            if kind in (IndexKind.HNSW, IndexKind.FASTSCAN) and index.count >= self.snapshot_min_faces:
                coll_at = dataclasses.replace(coll, head_seq=seq)  # the graph reflects the snapshot's seq
                self._write_snapshot(coll_at, ids, vectors, graph=self._graph_of(index))
        entry = _Entry(index=index, seq=seq, kind=kind)
        if seq != coll.head_seq:
            self._catch_up(conn, coll, entry)
        if not np.array_equal(np.sort(index.ids()), Store.face_rowids(conn, coll.rowid)):
            log.warning("index snapshot of collection %s disagrees with SQLite: rebuilding", coll.name)
            return self._rebuild(conn, coll, kind)
        with self._guard:
            self._entries[coll.rowid] = entry
        self.stats["snapshot_loads"] += 1
        return entry

    # -- snapshots -------------------------------------------------------------------------------
    def checkpoint(self, conn: Connection, coll: CollectionRow) -> Path | None:
        """Write the collection's snapshot from SQLite (the batch indexer calls this at the end); None when
        it cannot be written (a read-only data dir)."""
        ids, vectors = Store.embeddings(conn, coll.rowid, coll.dimension)
        return self._write_snapshot(coll, ids, vectors)

    def _write_snapshot(self, coll: CollectionRow, ids: np.ndarray, vectors: np.ndarray,
                        graph: np.ndarray | None = None) -> Path | None:
        """ids and vectors at ``coll.head_seq``, and the HNSW graph of exactly those ids when given."""
        path = self.snapshot_path(coll.rowid)
        extra: dict[str, Any] = {} if graph is None else {"graph": graph}
        meta = json.dumps({"collection": coll.rowid, "seq": coll.head_seq,
                           "model_version": coll.model_version, "count": int(len(ids))})
        try:
            private_dir(path.parent, check=False)
            fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, ids=ids.astype(np.int64), vectors=vectors.astype(np.float32),
                             meta=np.array(meta), **extra)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:  # a read-only data dir still serves searches
            log.warning("cannot write index snapshot %s: %s", path, exc)
            return None
        return path

    def _read_snapshot(self, coll: CollectionRow) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None] | None:
        """(ids, vectors, seq, graph or None) of the collection's snapshot when it is current, else None."""
        path = self.snapshot_path(coll.rowid)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                ids = np.asarray(data["ids"], dtype=np.int64)
                vectors = np.asarray(data["vectors"], dtype=np.float32)
                graph = np.asarray(data["graph"], dtype=np.uint8) if "graph" in data.files else None
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
        return ids, vectors, int(meta["seq"]), graph
