"""Shared machinery of :class:`~faceaudit.collections.FaceCollections`: storage, engines, search.

The operations themselves live in ``_ops_*.py`` mixins, one module per group.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Protocol,
    Self,
    TypeVar,
)

import numpy as np

from faceaudit._db import is_postgres_url
from faceaudit._errors import (
    ConflictError,
    IdempotentParameterMismatchError,
    InvalidParameterError,
    ModelError,
    ResourceNotFoundError,
)
from faceaudit._paths import resolve_data_dir
from faceaudit.collections._cache import IndexCache
from faceaudit.collections._milvus import database_scope
from faceaudit.collections._results import Face, FaceMatch
from faceaudit.collections._search_config import SearchConfig
from faceaudit.collections._store import CollectionRow, Connection, FaceRow, Store
from faceaudit.engine import BoundingBox, FaceEngine, ModelSpec, get_model

if TYPE_CHECKING:
    from faceaudit.collections._objects import ObjectStore
    from faceaudit.collections._video import VideoLimits

class _WireResult(Protocol):
    def to_rekognition(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_WireResult)

DEFAULT_REGION = "local"
_request_region: contextvars.ContextVar[str | None] = contextvars.ContextVar("region", default=None)
DEFAULT_ACCOUNT_ID = "000000000000"
MAX_FACES_PER_COLLECTION = 20_000_000
"""Rekognition's limit: up to 20 million faces per collection."""


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    """The options of a :class:`~faceaudit.collections.FaceCollections` that are not Rekognition's,
    typed, as one object the service is configured with (``ServiceConfig.backend_options``).

    :meth:`from_mapping` refuses an option it does not know (InvalidParameterError): a typo such
    as ``video_worker`` must not be silently ignored.
    """

    database_url: str | None = None
    """Where the collections and stored-video jobs live: None, the data dir's SQLite files; ``postgresql://...``, a
    PostgreSQL database shared by several hosts (each keeps its in-memory index in step with it)."""
    search_config: SearchConfig | None = None
    """Vector store and index choices; None: the environment's settings (``faceaudit._settings``)."""
    objects: ObjectStore | None = None
    """Where S3Object videos are read; None: S3Object videos are refused."""
    video_workers: int = 1
    """Worker threads per process that run stored-video jobs (>= 1)."""
    video_limits: VideoLimits | None = None
    """Limits a stored video must respect; None: the defaults of :class:`VideoLimits`."""
    video_observer: Callable[..., None] | None = None
    """Called with each finished face search before its job SUCCEEDS (the search log's record)."""
    video_sample_fps: float | None = None
    """Frames analysed per second of stored video; None: the default (2)."""

    def __post_init__(self) -> None:
        if isinstance(self.video_workers, bool) or not isinstance(self.video_workers, int) or self.video_workers < 1:
            raise InvalidParameterError(f"video_workers must be an integer >= 1, got {self.video_workers!r}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> BackendOptions:
        """The options of a mapping of option name -> value (None: the default); an unknown
        name is an InvalidParameterError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidParameterError(
                f"unknown backend option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in options.items() if v is not None})

    def replace(self, **changes: Any) -> BackendOptions:
        """These options with ``changes`` (unknown names: InvalidParameterError)."""
        return BackendOptions.from_mapping({**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                                            **changes})

    def keywords(self) -> dict[str, Any]:
        """The keyword arguments of ``FaceCollections(data_dir, **keywords)``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class Backend:
    """Storage, engines and the search shared by every operation (exact with the flat index and
    Milvus, approximate candidates with the fast scan and HNSW)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        database_url: str | None = None,
        index: str = "faiss",
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        engines: dict[str, FaceEngine] | None = None,
        snapshot_min_faces: int = 50_000,
        search_config: SearchConfig | None = None,
        objects: ObjectStore | None = None,
        video_workers: int = 1,
        video_limits: VideoLimits | None = None,
        video_observer: Callable[..., None] | None = None,
        video_sample_fps: float | None = None,
    ) -> None:
        self.data_dir: Path = resolve_data_dir(data_dir)
        self.region = region
        self.account_id = account_id
        self._store = Store(self.data_dir, database_url)
        self.database_url = database_url  # (the stored-video jobs live there too: see _ops_video)
        # vector store and per-collection index choices; default: the environment's settings
        self._cache = IndexCache(self.data_dir, kind=index, snapshot_min_faces=snapshot_min_faces,
                                 config=search_config or SearchConfig.from_env(),
                                 milvus_scope=database_scope(database_url)
                                 if database_url is not None and is_postgres_url(database_url) else None)
        self._engines: dict[str, FaceEngine] = {}
        for engine in (engines or {}).values():
            self._engines[engine.spec.name] = engine
        self._engine_lock = threading.Lock()
        # stored video (see _ops_video): where S3Object videos are read, how many worker threads
        # run jobs, the limits a video must respect, and who is told of each face search
        self.objects = objects
        self.video_workers = video_workers
        self.video_limits = video_limits
        self.video_observer = video_observer
        self.video_sample_fps = video_sample_fps

    def close(self) -> None:
        """Close this thread's database connection (the object stays usable)."""
        self._store.close()

    def check_health(self) -> None:
        """Readiness: one query to the database and, with Milvus, one call to its server (an
        exception when either does not answer). Reads nothing of the collections themselves."""
        with self._store.read() as conn:
            if conn is not None:  # no database yet: nothing to reach (it is made on first write)
                conn.execute("SELECT 1").fetchone()
        if self._cache.milvus:
            self._cache._milvus_client().list_collections()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- naming ----------------------------------------------------------------------------------
    def collection_arn(self, name: str) -> str:
        """The collection's ARN, in the region of :meth:`in_region` (the region a request was
        signed for) or else the backend's own ``region``."""
        region = _request_region.get() or self.region
        return f"arn:aws:rekognition:{region}:{self.account_id}:collection/{name}"

    @contextlib.contextmanager
    def in_region(self, region: str | None) -> Iterator[None]:
        """ARNs made inside this block name ``region`` (per thread and task: the HTTP service
        serves each request in the region its signature was scoped to, as AWS does)."""
        token = _request_region.set(region or None)
        try:
            yield
        finally:
            _request_region.reset(token)

    def collection_of_arn(self, arn: str) -> str:
        """The collection name of a collection ARN of this account (any region);
        ResourceNotFoundException for anything else."""
        parts = str(arn).split(":", 5)
        if (len(parts) != 6 or parts[:3] != ["arn", "aws", "rekognition"] or parts[4] != self.account_id
                or not parts[5].startswith("collection/")):
            raise ResourceNotFoundError(f"no such resource: {str(arn)[:200]!r}")
        return parts[5][len("collection/"):]

    # -- engines ---------------------------------------------------------------------------------
    def _spec(self, coll: CollectionRow) -> ModelSpec:
        try:
            spec = get_model(coll.model)
        except Exception:
            spec = None
        if spec is None or spec.version != coll.model_version:
            raise ModelError(
                f"collection {coll.name!r} is pinned to FaceModelVersion {coll.model_version}, "
                "which this faceaudit does not provide; its embeddings cannot be compared with another model's"
            )
        return spec

    def _engine(self, coll: CollectionRow) -> FaceEngine:
        spec = self._spec(coll)
        with self._engine_lock:
            engine = self._engines.get(spec.name)
            if engine is None:
                engine = self._engines[spec.name] = FaceEngine(spec.name)
        return engine

    def _collection_row(self, name: str) -> CollectionRow:
        """The row of collection ``name`` (ResourceNotFoundError), read in its own transaction."""
        with self._store.read() as conn:
            return self._store.get_collection(conn, name)

    @staticmethod
    def _check_pin(coll: CollectionRow, engine: FaceEngine) -> None:
        if coll.model_version != engine.model_version:  # re-created with another model meanwhile
            raise ConflictError(f"collection {coll.name!r} changed its model during the request; retry")

    # -- rows to results -------------------------------------------------------------------------
    @staticmethod
    def _face(row: FaceRow, coll: CollectionRow) -> Face:
        return Face(
            face_id=row.face_id,
            bounding_box=BoundingBox(*row.box),
            image_id=row.image_id,
            external_image_id=row.external_image_id,
            confidence=row.confidence,
            index_faces_model_version=coll.model_version,
            user_id=row.user_id,
            labels=row.labels,
            image_sha256=row.sha256,
        )

    # -- search ----------------------------------------------------------------------------------
    def _similarities(self, coll: CollectionRow, cosines: np.ndarray) -> list[float]:
        scale = self._spec(coll).scale
        return [round(float(v), 4) for v in scale.to_similarity_array(np.asarray(cosines).reshape(-1))]

    def _search(
        self,
        conn: Connection,
        coll: CollectionRow,
        queries: np.ndarray,
        k: int,
        threshold: float,
        exclude: Iterable[int] = (),
    ) -> list[list[tuple[int, float]]]:
        """For each query vector: up to ``k`` (face row id, similarity) with similarity >= threshold.

        Highest similarity first; every similarity is exact. The candidates are
        exact with the flat index and Milvus, and approximate (measured recall) with
        the fast scan and HNSW (see ``_search_config``). Runs inside the caller's read transaction,
        so the hits exist in that snapshot.
        """
        scale = self._spec(coll).scale
        exclude = set(int(e) for e in exclude)
        min_cos = scale.to_cosine(threshold) - 1e-6
        q = np.asarray(queries, dtype=np.float32).reshape(-1, coll.dimension)
        with self._cache.lock(coll.rowid):
            index = self._cache.synced(conn, coll)
            hits = index.search(q, k + len(exclude), min_cos)
        out = []
        for ids, scores in hits:
            found = []
            # one vectorised mapping per query (same arithmetic as to_similarity, element by element)
            for i, s in zip(ids.tolist(), scale.to_similarity_array(scores).tolist(), strict=True):
                if i in exclude:
                    continue
                sim = round(s, 4)
                if sim >= threshold:
                    found.append((i, sim))
            out.append(found[:k])
        return out

    def _search_users(
        self,
        conn: Connection,
        coll: CollectionRow,
        queries: np.ndarray,
        max_users: int,
        threshold: float,
        exclude_faces: Iterable[int] = (),
        exclude_user: int | None = None,
    ) -> list[tuple[str, float]]:
        """Users ranked by their best face's similarity to any query: [(UserId, similarity)].

        Searches with a growing k until ``max_users`` users are found or no face
        at or above the threshold is left, so the ranking is exact over the faces the
        index proposes (all of them with the flat index and Milvus).
        """
        best: dict[str, float] = {}
        total = coll.face_count
        for q in np.asarray(queries, dtype=np.float32).reshape(-1, coll.dimension):
            k = max(64, 4 * max_users)
            while True:
                hits = self._search(conn, coll, q, k, threshold, exclude_faces)[0]
                owners = self._store.users_with_faces(conn, [h[0] for h in hits])
                seen: dict[str, float] = {}
                for row, sim in hits:
                    owner = owners.get(row)
                    if owner is None or owner[0] == exclude_user:
                        continue
                    seen.setdefault(owner[1], sim)
                if len(seen) >= max_users or len(hits) < k or k >= total:
                    break
                k *= 4
            for uid, sim in list(seen.items())[:max_users]:
                best[uid] = max(sim, best.get(uid, -1.0))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:max_users]

    # -- idempotency -----------------------------------------------------------------------------
    def _idempotent(self, conn: Connection, operation: str, token: str | None, request: dict[str, Any],
                    run: Callable[[], R], restore: Callable[[dict[str, Any]], R]) -> R:
        """Run a write once per ClientRequestToken: a retry gets the first response back."""
        if token is None:
            return run()
        req = json.dumps(request, sort_keys=True)
        prior = self._store.idempotent_response(conn, operation, token)
        if prior is not None:
            if prior[0] != req:
                raise IdempotentParameterMismatchError(
                    f"ClientRequestToken {token!r} was used with different parameters"
                )
            return restore(json.loads(prior[1]))
        result = run()
        self._store.remember_response(conn, operation, token, req, json.dumps(result.to_rekognition()))
        return result

    # -- maintenance (not Rekognition operations) -------------------------------------------------
    def checkpoint_index(self, collection_id: str) -> Path | None:
        """Write the collection's index snapshot, so other processes load it fast."""
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, collection_id)
            return self._cache.checkpoint(conn, coll)

    def index_kind(self, collection_id: str) -> str:
        """Which index serves the collection's searches in this process now: ``flat`` (exact),
        ``fastscan`` or ``hnsw`` (approximate candidates, exact similarities), or ``milvus``
        (the Milvus vector store, a FLAT index: exact). ResourceNotFoundException when absent."""
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, collection_id)
            if self._cache.milvus:
                return "milvus"
            return self._cache.kind_of(conn, coll).value

    def face_thumbnail(self, face_id: str) -> bytes | None:
        """The JPEG face crop kept for human review of a candidate, or None.

        A crop is kept for every face indexed (deleted with the face) so that a reviewer
        can see the candidate beside the probe; the full image is never stored.
        """
        with self._store.read() as conn:
            if conn is None:
                return None
            return self._store.face_thumbnail(conn, face_id)

    def verify_index(self, collection_id: str) -> bool:
        """Sync this process's index and check its ids against SQLite, in one snapshot."""
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, collection_id)
            with self._cache.lock(coll.rowid):
                index = self._cache.synced(conn, coll)
                ids = np.sort(index.ids())
            return bool(np.array_equal(ids, self._store.face_rowids(conn, coll.rowid)))

    def _face_rows(self, conn: Connection, rowids: Sequence[int]) -> dict[int, FaceRow]:
        return self._store.faces_by_rowids(conn, rowids)

    def _matches(self, conn: Connection, coll: CollectionRow,
                 hits: Sequence[tuple[int, float]]) -> tuple[FaceMatch, ...]:
        """(face row, similarity) hits as FaceMatches, in the order given."""
        rows = self._face_rows(conn, [h[0] for h in hits])
        return tuple(FaceMatch(similarity=sim, face=self._face(rows[r], coll)) for r, sim in hits)
