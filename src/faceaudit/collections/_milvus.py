"""Milvus as the vector store: one Milvus collection per face collection.

``pymilvus`` (the optional ``milvus`` extra) talks to a Milvus standalone or
cluster server (``http://host:19530``) or, given a file path, starts the
embedded milvus-lite engine on that file (tests, small deployments; one process
per file). Each face collection maps to the Milvus collection
``faceaudit_<data dir hash>_c<collection row id>`` with an INT64 primary key
(the face's SQLite row id) and a FLOAT_VECTOR field scored by inner product
with a FLAT (exact) index, so results equal the local flat index's.

SQLite stays the truth. On first use in a process :meth:`MilvusIndex.reconcile`
compares the ids Milvus holds with SQLite's and repairs the difference (deletes
stale extra ids, upserts the missing faces from SQLite); afterwards the change log
is replayed as for a local index. Upserts and deletes are idempotent, so two
processes replaying the same changes agree.

Several hosts share one Milvus collection (one database, one server). Each host writes
into Milvus every change it has read from the database's change log before it searches
(deletes of every touched id, then upserts of those that still exist), so a search needs
only to see this process's own writes: searches ask for Session consistency (read your
writes; about 30 ms at 20,000 faces on the test server where Strong waits for the
server's 200 ms time tick on every search, docs/scaling.md). The id listing that
reconciles with the database asks for Strong, whatever level the collection was created
with. Hits are kept to the ids this process knows (the database snapshot it synced to),
so a face another host has just added, or deleted but not yet removed from Milvus,
never reaches a result ahead of the database. A Milvus server that cannot be reached, or that
fails a request, raises :class:`~faceaudit.ServiceUnavailableError` (HTTP 503) naming
the server; nothing is lost: the database stays the truth and the next request that
reaches Milvus brings it up to date.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from faceaudit._errors import ServiceUnavailableError
from faceaudit._paths import private_dir
from faceaudit.collections._index import Hits, _as_ids, _as_vectors, _new_entries, _no_hits, _order

log = logging.getLogger(__name__)

MAX_TOPK = 16_384
"""Milvus's largest ``limit`` for one search."""
BATCH = 10_000
"""Rows per insert/upsert/delete request."""
COLLECTION_NOT_LOADED = 101
"""Milvus's error code for a search or query on a collection not loaded into memory."""
CONSISTENCY = "Strong"
"""The id listing (and the collection's own level): sees every write acknowledged before it, from any host."""
SEARCH_CONSISTENCY = "Session"
"""Searches: see every write of this process (each host writes what it has synced before searching)."""


def _where(uri: str) -> str:
    """``uri`` without credentials, for messages."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@contextlib.contextmanager
def milvus_errors(where: str) -> Iterator[None]:
    """Turn a failed Milvus call into :class:`ServiceUnavailableError` (HTTP 503).

    The server down or unreachable, a timeout, a rate limit or a failure the server reports
    are all the vector store being unavailable to this request. pymilvus's ``ParamError``
    (the request itself is malformed: a bug here, not the store's state) is let through.
    """
    from pymilvus.exceptions import MilvusException, ParamError

    try:
        yield
    except ParamError:
        raise
    except MilvusException as exc:
        raise ServiceUnavailableError(
            f"the Milvus vector store at {where} failed or cannot be reached (code {exc.code}: "
            f"{exc.message or type(exc).__name__}); retry when it is back: the faces stored are kept in "
            f"the database and reach Milvus again on the next search") from exc
    except Exception as exc:
        grpc = importlib.import_module("grpc")  # pymilvus's transport (no type information)
        if isinstance(exc, (grpc.RpcError, ConnectionError, TimeoutError)):
            raise ServiceUnavailableError(
                f"the Milvus vector store at {where} cannot be reached ({type(exc).__name__}: {exc}); retry "
                f"when it is back: the faces stored are kept in the database and reach Milvus again on "
                f"the next search") from exc
        raise


def _member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """``np.isin(ids, sorted_ids)`` for a sorted ``sorted_ids`` in O(len(ids) log n) (np.isin sorts
    both: 7 ms a search at 1M faces)."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.asarray(sorted_ids[at] == ids, dtype=bool)


class GuardedClient:
    """A ``pymilvus.MilvusClient`` whose every call raises :class:`ServiceUnavailableError` when
    Milvus fails (see :func:`milvus_errors`); other attributes pass through."""

    def __init__(self, client: Any, where: str) -> None:
        self._client = client
        self.where = where

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with milvus_errors(self.where):
                return attr(*args, **kwargs)

        return call


def milvus_client(uri: str) -> Any:
    """A :class:`GuardedClient` over a ``pymilvus.MilvusClient`` for ``uri`` (ImportError with the
    extra to install when absent; :class:`ServiceUnavailableError` when the server cannot be reached).

    Typed ``Any``: pymilvus has no type information."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - exercised where the extra is absent
        raise ImportError(
            "the Milvus vector store needs pymilvus (and milvus-lite for a local file): "
            "pip install 'faceaudit[milvus]'"
        ) from exc
    if "://" not in uri:  # milvus-lite: the file holds embeddings, so its folder is private (0700)
        private_dir(Path(uri).parent, check=False)
        # milvus-lite writes its own folder tree at ``uri`` from this process, whenever it likes: the
        # process keeps umask 077 from here on so those files are 0600/0700 like the rest of the data
        # dir (a process-wide setting, on purpose); older ones are made so here
        for root, dirs, files in os.walk(uri):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o700)
            for name in files:
                os.chmod(os.path.join(root, name), 0o600)
        if os.path.isdir(uri):
            os.chmod(uri, 0o700)
        os.umask(os.umask(0o077) | 0o077)
    where = _where(uri)
    with milvus_errors(where):
        return GuardedClient(MilvusClient(uri), where)


def database_scope(database_url: str) -> str:
    """The :func:`collection_name` scope of a deployment on the database ``database_url``: its
    scheme, host, port and database name (no user, password or options), so hosts that reach one
    database under one name share its Milvus collections."""
    parts = urlsplit(database_url)
    host = (parts.hostname or "").lower()
    port = parts.port or ""
    return f"{parts.scheme.split('+')[0]}://{host}:{port}{parts.path}"


def collection_name(scope: Path | str, collection_rowid: int) -> str:
    """The Milvus collection of one face collection: unique per deployment and collection row id.

    ``scope`` names the deployment whose database holds the collection: its data dir (a
    :class:`~pathlib.Path`: SQLite files; the name every existing deployment has), or a string
    every host of a deployment sharing one database gives alike (e.g. an identity kept in that
    database), so that all of them use one Milvus collection.
    """
    key = str(scope.resolve()) if isinstance(scope, Path) else str(scope)
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"faceaudit_{tag}_c{int(collection_rowid)}"


class MilvusIndex:
    """A :class:`~faceaudit.collections.VectorIndex` kept in a Milvus collection.

    The ids present are mirrored in memory (8 bytes per face) so that ``count``,
    ``ids()`` and the new-id check cost no round trip.
    """

    def __init__(self, client: Any, name: str, dimension: int) -> None:
        self._client = client
        self.name = name
        self.dimension = int(dimension)
        self._ensure_collection()
        self._ids = self._fetch_ids()

    # -- the Milvus collection -------------------------------------------------------------------
    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        c = self._client
        if c.has_collection(self.name):
            fields = {f["name"]: f for f in c.describe_collection(self.name)["fields"]}
            dim = int(fields.get("vector", {}).get("params", {}).get("dim", -1))
            if dim == self.dimension and "id" in fields:
                c.load_collection(self.name)
                return
            log.warning("Milvus collection %s has the wrong shape: recreating it", self.name)
            c.drop_collection(self.name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        params = c.prepare_index_params()
        params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        c.create_collection(self.name, schema=schema, index_params=params, consistency_level=CONSISTENCY)

    def _fetch_ids(self) -> np.ndarray:
        it = self._loaded(lambda: self._client.query_iterator(
            self.name, batch_size=BATCH, filter="", output_fields=["id"], consistency_level=CONSISTENCY))
        ids: list[int] = []
        with milvus_errors(getattr(self._client, "where", "Milvus")):
            try:
                while True:
                    page = it.next()
                    if not page:
                        break
                    ids.extend(int(r["id"]) for r in page)
            finally:
                it.close()
        return np.unique(np.asarray(ids, dtype=np.int64))

    def _loaded(self, call: Callable[[], Any]) -> Any:
        """``call()``, loading the collection first when the server says it is not loaded (after a
        restart of the server the collections come back unloaded until someone loads them)."""
        try:
            return call()
        except ServiceUnavailableError as exc:
            if getattr(exc.__cause__, "code", None) != COLLECTION_NOT_LOADED:
                raise
        log.info("Milvus collection %s is not loaded (the server restarted?): loading it", self.name)
        self._client.load_collection(self.name)
        return call()

    def reconcile(self, want_ids: np.ndarray,
                  load: Callable[[list[int]], tuple[np.ndarray, np.ndarray]]) -> int:
        """Make Milvus hold ``want_ids`` (the database's, in this process's snapshot); ``load(ids) ->
        (ids, vectors)``.

        Missing faces are upserted. Extra ids up to the snapshot's largest id are deleted (a face
        deleted while no process replayed it, a restored backup). Extra ids above it may be faces
        another host stored after this snapshot was taken: they are left in Milvus (deleting them
        would hide them from that host's searches) and kept out of this process's ids, so its
        searches skip them until its change log brings them. Returns how many ids were deleted or
        added (0 when Milvus already agreed).
        """
        want = np.unique(_as_ids(want_ids))
        extra = np.setdiff1d(self._ids, want)
        newer = extra[extra > (want[-1] if len(want) else 0)]
        stale = np.setdiff1d(extra, newer)
        missing = np.setdiff1d(want, self._ids)
        if len(stale) or len(missing):
            log.warning("Milvus collection %s disagrees with the database (%d extra, %d missing faces): "
                        "repairing", self.name, len(stale), len(missing))
        self.remove(stale)
        self._ids = np.setdiff1d(self._ids, newer)
        for lo in range(0, len(missing), BATCH):
            ids, vectors = load(missing[lo:lo + BATCH].tolist())
            self.add(ids, vectors)
        return int(len(stale) + len(missing))

    # -- VectorIndex -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(len(self._ids))

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids, vectors = _new_entries(ids, vectors, self.dimension, lambda: self._ids)
        if not len(ids):
            return
        for lo in range(0, len(ids), BATCH):
            batch = zip(ids[lo:lo + BATCH], vectors[lo:lo + BATCH], strict=True)
            rows = [{"id": int(i), "vector": v} for i, v in batch]
            self._client.upsert(self.name, rows)
        self._ids = np.union1d(self._ids, ids)

    def remove(self, ids: npt.ArrayLike) -> int:
        """Delete ``ids`` from Milvus, also those this process never held (another host may have
        added them there); returns how many of them this process held."""
        wanted = np.unique(_as_ids(ids))
        for lo in range(0, len(wanted), BATCH):
            self._client.delete(self.name, ids=wanted[lo:lo + BATCH].tolist())
        present = np.intersect1d(wanted, self._ids)
        self._ids = np.setdiff1d(self._ids, present)
        return int(len(present))

    def search(self, queries: npt.ArrayLike, k: int, min_score: float = -np.inf) -> list[Hits]:
        q = _as_vectors(queries, self.dimension)
        n = self.count
        k = int(k)
        if n == 0 or k <= 0:
            return _no_hits(q)
        # one extra candidate so that a tie at the k-th place is resolved like the oracle
        want = min(k + 1, n)
        limit = min(want, MAX_TOPK)
        while True:
            res = self._loaded(functools.partial(
                self._client.search, self.name, data=[row for row in q], limit=limit,
                search_params={"metric_type": "IP"}, output_fields=["id"], consistency_level=SEARCH_CONSISTENCY))
            out, short = [], False
            for hits in res:
                ids = np.asarray([int(h["id"]) for h in hits], dtype=np.int64)
                scores = np.asarray([float(h["distance"]) for h in hits], dtype=np.float32)
                known = _member(ids, self._ids)  # not yet (or no longer) in this process's snapshot: not a hit
                # ids this process does not know took places: ask for more, or a hit could be lost
                short |= len(ids) == limit and int(known.sum()) < want
                out.append(_order(ids[known], scores[known], min_score, k))
            if not short or limit >= MAX_TOPK:
                return out
            limit = min(limit * 4, MAX_TOPK)
