"""Vector indexes: inner-product search over L2-normalised embeddings, exact or approximate.

An index is a cache of the embeddings held in SQLite, keyed by the faces' int64
row ids; it can always be rebuilt from SQLite. Every index implements one small
interface (exact, approximate and distributed ones alike):

- ``add(ids, vectors)``: new ids only (an id already present raises ValueError);
- ``remove(ids)``: absent ids are ignored; returns how many were removed;
- ``search(queries, k, min_score)``: for each query, up to ``k`` (id, score)
  pairs with score >= ``min_score``, highest score first (ties: lower id first);
  score is the inner product, i.e. cosine for unit vectors (-1..1, higher is
  more alike);
- ``count`` and ``ids()``.

Implementations: :class:`FaissIndex` (``IndexIDMap2`` over ``IndexFlatIP``,
exact, the default), :class:`NumpyIndex` (brute force, the test oracle),
:class:`FastScanIndex` (4-bit codes scanned for every face: approximate
candidates, exact scores), :class:`HnswIndex` (FAISS HNSW graph: approximate
candidates, exact scores) and, in ``_milvus.py``,
:class:`~faceaudit.collections._milvus.MilvusIndex` (a Milvus collection with a
FLAT index: exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Hits = tuple[np.ndarray, np.ndarray]
"""One query's result: (ids int64, scores float32), highest score first."""


@runtime_checkable
class VectorIndex(Protocol):
    dimension: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, queries: np.ndarray, k: int, min_score: float = -np.inf) -> list[Hits]: ...

    @property
    def count(self) -> int: ...

    def ids(self) -> np.ndarray: ...


def _as_ids(ids: npt.ArrayLike) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _as_vectors(vectors: npt.ArrayLike, dimension: int) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if v.ndim == 1:
        v = v.reshape(1, -1)
    if v.ndim != 2 or v.shape[1] != dimension:
        raise ValueError(f"vectors must have shape (n, {dimension}), got {v.shape}")
    return v


def _check_new(ids: np.ndarray, present: np.ndarray) -> None:
    if len(np.unique(ids)) != len(ids):
        raise ValueError("duplicate ids in one add()")
    if present.size and np.isin(ids, present).any():
        raise ValueError("add(): some ids are already in the index")


def _new_entries(ids: npt.ArrayLike, vectors: npt.ArrayLike, dimension: int,
                 present: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` of one add(), converted and checked: same lengths, no duplicates, none
    already present (``present()`` is only asked when there is something to add)."""
    id_array = _as_ids(ids)
    vector_array = _as_vectors(vectors, dimension)
    if len(id_array) != len(vector_array):
        raise ValueError("ids and vectors differ in length")
    if len(id_array):
        _check_new(id_array, present())
    return id_array, vector_array


def _order(ids: np.ndarray, scores: np.ndarray, min_score: float, k: int) -> Hits:
    keep = scores >= min_score
    ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores.astype(np.float64)))[:k]
    return ids[order], scores[order]


class NumpyIndex:
    """Brute-force exact search with numpy (the oracle for :class:`FaissIndex`)."""

    def __init__(self, dimension: int) -> None:
        self.dimension = int(dimension)
        self._vectors = np.zeros((0, self.dimension), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._pos: dict[int, int] = {}

    @property
    def count(self) -> int:
        return self._n

    def ids(self) -> np.ndarray:
        return self._ids[: self._n].copy()

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids = _as_ids(ids)
        vectors = _as_vectors(vectors, self.dimension)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(np.unique(ids)) != len(ids) or any(int(i) in self._pos for i in ids):
            raise ValueError("add(): duplicate or existing ids")
        need = self._n + len(ids)
        if need > len(self._ids):
            cap = max(need, 2 * len(self._ids), 1024)
            vec = np.zeros((cap, self.dimension), dtype=np.float32)
            vec[: self._n] = self._vectors[: self._n]
            idx = np.zeros(cap, dtype=np.int64)
            idx[: self._n] = self._ids[: self._n]
            self._vectors, self._ids = vec, idx
        self._vectors[self._n : need] = vectors
        self._ids[self._n : need] = ids
        for j, i in enumerate(ids.tolist()):
            self._pos[i] = self._n + j
        self._n = need

    def remove(self, ids: npt.ArrayLike) -> int:
        removed = 0
        for i in _as_ids(ids).tolist():
            p = self._pos.pop(i, None)
            if p is None:
                continue
            last = self._n - 1
            if p != last:  # move the last row into the hole
                self._vectors[p] = self._vectors[last]
                moved = int(self._ids[last])
                self._ids[p] = moved
                self._pos[moved] = p
            self._n = last
            removed += 1
        return removed

    def search(self, queries: npt.ArrayLike, k: int, min_score: float = -np.inf) -> list[Hits]:
        q = _as_vectors(queries, self.dimension)
        k = int(k)
        if self._n == 0 or k <= 0:
            return _no_hits(q)
        scores = self._vectors[: self._n] @ q.T  # (n, nq)
        ids = self._ids[: self._n]
        out = []
        for j in range(q.shape[0]):
            s = scores[:, j]
            if k < self._n:
                part = np.argpartition(-s, k - 1)[:k]
                # include every row tied with the k-th score so the tie-break is exact
                kth = s[part].min()
                part = np.flatnonzero(s >= kth)
            else:
                part = np.arange(self._n)
            out.append(_order(ids[part], s[part], min_score, k))
        return out


class FaissIndex:
    """Exact inner-product search with FAISS: ``IndexIDMap2(IndexFlatIP(d))``."""

    def __init__(self, dimension: int) -> None:
        import faiss

        self._faiss = faiss
        self.dimension = int(dimension)
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        return self._faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids, vectors = _new_entries(ids, vectors, self.dimension, self.ids)
        if not len(ids):
            return
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: npt.ArrayLike) -> int:
        ids = _as_ids(ids)
        if not len(ids) or not self.count:
            return 0
        return int(self._index.remove_ids(self._faiss.IDSelectorBatch(ids)))

    def search(self, queries: npt.ArrayLike, k: int, min_score: float = -np.inf) -> list[Hits]:
        q = _as_vectors(queries, self.dimension)
        n = self.count
        k = int(k)
        if n == 0 or k <= 0:
            return _no_hits(q)
        # one extra candidate so that a tie at the k-th place is resolved like the oracle
        kk = min(k + 1, n)
        scores, ids = self._index.search(q, kk)
        out = []
        for j in range(q.shape[0]):
            valid = ids[j] >= 0
            out.append(_order(ids[j][valid], scores[j][valid], min_score, k))
        return out


def _no_hits(q: np.ndarray) -> list[Hits]:
    """One empty result per query (an empty index, or k <= 0)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
    return [empty for _ in range(len(q))]


def _exact_search(vectors: np.ndarray, alive: np.ndarray, pos_ids: np.ndarray, q: np.ndarray, k: int,
                  min_score: float) -> list[Hits]:
    """Every live row scored exactly: what an approximate index does when it is small or asked
    for most of itself (``vectors``/``alive``/``pos_ids``: one row per position)."""
    live = np.flatnonzero(alive)
    kk = min(k + 1, len(live))
    scores = vectors[live] @ q.T
    out = []
    for j in range(len(q)):
        s = scores[:, j]
        part = np.argpartition(-s, kk - 1)[:kk] if kk < len(s) else np.arange(len(s))
        kth = s[part].min()
        part = np.flatnonzero(s >= kth)
        out.append(_order(pos_ids[live[part]], s[part], min_score, k))
    return out


class _Tombstones:
    """Positions ``0..n-1`` mapped to face ids, with removed faces kept as tombstones (excluded
    from every search) until they pass ``params.max_dead_fraction``; then :meth:`_compact`."""

    _pos_ids: np.ndarray
    _alive: np.ndarray
    _dead: int
    params: Any

    @property
    def count(self) -> int:
        return int(len(self._pos_ids) - self._dead)

    def ids(self) -> np.ndarray:
        live: np.ndarray = self._pos_ids[self._alive].copy()
        return live

    def remove(self, ids: npt.ArrayLike) -> int:
        ids = _as_ids(ids)
        if not len(ids) or not self.count:
            return 0
        hit = self._alive & np.isin(self._pos_ids, ids)
        removed = int(hit.sum())
        if removed:
            self._alive[hit] = False
            self._dead += removed
            self._removed()
            if self._dead > self.params.max_dead_fraction * len(self._pos_ids):
                self._compact()
        return removed

    def _removed(self) -> None:
        """Called after tombstones were added (before any compaction)."""

    def _compact(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class HnswParams:
    """Parameters of :class:`HnswIndex` (FAISS ``IndexHNSWFlat``, inner product).

    ``m``: graph neighbours per node (memory: about 8 * m bytes per face on top of
    the 512-byte vector); ``ef_construction``: candidate list while building (build
    time); ``ef_search``: candidate list while searching (recall against latency;
    raised to k + 1 when a search asks for more); ``exact_below``: collections with
    fewer live faces than this are scored exactly (flat is as fast there);
    ``max_dead_fraction``: deleted faces stay in the graph as tombstones (filtered
    out of every search) until they exceed this fraction, then the graph is rebuilt.
    Defaults are tuned with ``scripts/bench_scale.py`` (docs/scaling.md).
    """

    m: int = 32
    ef_construction: int = 80
    ef_search: int = 2048
    exact_below: int = 10_000
    max_dead_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.m < 4 or self.ef_construction < 8 or self.ef_search < 8 or self.exact_below < 0:
            raise ValueError("HNSW parameters: m >= 4, ef_construction >= 8, ef_search >= 8, exact_below >= 0")
        if not 0.0 < self.max_dead_fraction < 1.0:
            raise ValueError("HNSW max_dead_fraction must be in (0, 1)")


class HnswIndex(_Tombstones):
    """Approximate candidates from a FAISS HNSW graph, scored exactly.

    The graph (``IndexHNSWFlat``, inner product) proposes ``max(k + 1, ef_search)``
    candidates; each is then re-scored as the exact inner product with its stored
    vector, so every score (and so every Similarity) equals flat's, and only
    recall is approximate: a face the graph does not reach is missing, never
    mis-scored. Measured recall of flat's candidates: docs/scaling.md.

    HNSW in FAISS cannot remove vectors: a removed face becomes a tombstone
    (excluded from every search by an ``IDSelector``) and the graph is rebuilt
    from the live vectors once tombstones pass ``max_dead_fraction``. A face
    removed and added again gets a new graph node.
    """

    def __init__(self, dimension: int, params: HnswParams | None = None) -> None:
        import faiss

        self._faiss = faiss
        self.dimension = int(dimension)
        self.params = params or HnswParams()
        self._reset()

    def _reset(self) -> None:
        faiss = self._faiss
        self._index = faiss.IndexHNSWFlat(self.dimension, self.params.m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = self.params.ef_construction
        self._pos_ids = np.zeros(0, dtype=np.int64)  # graph node -> face id
        self._alive = np.zeros(0, dtype=bool)
        self._dead = 0
        self._selector: tuple[Any, Any] | None = None  # (IDSelectorBatch, IDSelectorNot of it)

    def _vectors(self) -> np.ndarray:
        """The graph's stored vectors (a view: valid until the next add), one row per node."""
        n = int(self._index.ntotal)
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        storage = self._faiss.downcast_index(self._index.storage)
        xb = storage.get_xb()  # type: ignore[attr-defined]  # faiss's stubs type the downcast as the base Index
        vectors: np.ndarray = self._faiss.rev_swig_ptr(xb, n * self.dimension).reshape(n, self.dimension)
        return vectors

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids, vectors = _new_entries(ids, vectors, self.dimension, self.ids)
        if not len(ids):
            return
        self._index.add(vectors)
        self._pos_ids = np.concatenate([self._pos_ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])

    def _removed(self) -> None:
        self._selector = None  # the search filter follows the tombstones

    def _compact(self) -> None:
        """Rebuild the graph from the live vectors (drops every tombstone)."""
        ids = self._pos_ids[self._alive]
        vectors = self._vectors()[self._alive].copy()
        self._reset()
        self.add(ids, vectors)

    def graph_bytes(self) -> np.ndarray | None:
        """The serialised graph (uint8) when it holds exactly :meth:`ids` in order (no tombstones)."""
        if self._dead:
            return None
        return self._faiss.serialize_index(self._index)

    @classmethod
    def from_graph(cls, graph: np.ndarray, ids: np.ndarray, dimension: int,
                   params: HnswParams | None = None) -> HnswIndex:
        """An index from :meth:`graph_bytes` and the ids of its nodes (ValueError if they disagree)."""
        self = cls(dimension, params)
        index = self._faiss.deserialize_index(np.ascontiguousarray(graph, dtype=np.uint8))
        if not isinstance(index, self._faiss.IndexHNSWFlat) or index.d != self.dimension \
                or index.ntotal != len(ids) or index.metric_type != self._faiss.METRIC_INNER_PRODUCT:
            raise ValueError("the HNSW graph does not match its ids")
        self._index = index
        self._pos_ids = _as_ids(ids).copy()
        self._alive = np.ones(len(ids), dtype=bool)
        return self

    def _search_params(self, ef: int) -> Any:
        """faiss ``SearchParametersHNSW`` with ``ef`` and the tombstone filter."""
        p = self._faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in faiss's bundled stubs
        p.efSearch = int(ef)
        if self._dead:
            if self._selector is None:
                dead = np.flatnonzero(~self._alive).astype(np.int64)
                inner = self._faiss.IDSelectorBatch(dead)
                self._selector = (inner, self._faiss.IDSelectorNot(inner))  # keep both alive
            p.sel = self._selector[1]
        return p

    def search(self, queries: npt.ArrayLike, k: int, min_score: float = -np.inf) -> list[Hits]:
        q = _as_vectors(queries, self.dimension)
        n = self.count
        k = int(k)
        if n == 0 or k <= 0:
            return _no_hits(q)
        vectors = self._vectors()
        kk = min(k + 1, n)  # one extra so a tie at the k-th place is resolved like the oracle
        if n < self.params.exact_below or kk >= n // 2:
            # small, or asked for most of it: score every live face (exact, and as fast)
            return _exact_search(vectors, self._alive, self._pos_ids, q, k, min_score)
        _, nodes = self._index.search(q, kk, params=self._search_params(max(self.params.ef_search, kk)))
        out = []
        for j in range(len(q)):
            found = nodes[j][nodes[j] >= 0]
            # exact re-scoring from the stored vectors: the graph only proposes candidates
            exact = (vectors[found] @ q[j]).astype(np.float32)
            out.append(_order(self._pos_ids[found], exact, min_score, k))
        return out


@dataclass(frozen=True)
class FastScanParams:
    """Parameters of :class:`FastScanIndex`.

    ``subquantizers``: product-quantisation codes of that many 4-bit parts (``dimension`` must
    divide by it; 64 on 128-d faces: 2 dimensions per part, 32 bytes per face); ``refine``:
    the scan proposes ``refine * (k + 1)`` candidates, each re-scored exactly (recall against
    latency); ``exact_below``: collections with fewer live faces than this are scored exactly
    (no codebook is trained on so few); ``train_size``: faces sampled to train the codebooks;
    ``retrain_growth``: the codebooks are trained again once the index has grown this many
    times since they were; ``max_dead_fraction``: removed faces stay as tombstones until they
    pass this fraction, then the codes are rebuilt from the live faces.
    Defaults are tuned with ``scripts/bench_scale.py`` (docs/scaling.md).
    """

    subquantizers: int = 64
    refine: int = 64
    exact_below: int = 10_000
    train_size: int = 100_000
    retrain_growth: float = 4.0
    max_dead_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.subquantizers < 1 or self.refine < 1 or self.exact_below < 0 or self.train_size < 1024:
            raise ValueError("fast-scan parameters: subquantizers >= 1, refine >= 1, exact_below >= 0, "
                             "train_size >= 1024")
        if self.retrain_growth <= 1.0 or not 0.0 < self.max_dead_fraction < 1.0:
            raise ValueError("fast-scan retrain_growth must be > 1 and max_dead_fraction in (0, 1)")


MIN_CODEBOOK_FACES = 1024
"""Below this many faces a fast-scan index scores exactly: 4-bit codebooks (16 centroids per
part) need a few hundred training points at least."""


class FastScanIndex(_Tombstones):
    """Every face scanned through 4-bit product-quantisation codes, the best candidates scored exactly.

    FAISS's ``IndexPQFastScan`` (inner product) scores every stored code against the query
    with SIMD table look-ups (32 bytes per face instead of 512), and proposes the
    ``refine * (k + 1)`` best; each is then re-scored as the exact inner product with its
    stored vector, so every score (and Similarity) equals flat's and only recall is
    approximate. Unlike a graph, nothing is skipped unseen: a face is missed only when the
    code's error pushes it below hundreds of strangers, so recall holds in spaces of high
    intrinsic dimension where HNSW loses candidates (measured in docs/scaling.md). The codes
    build in seconds per million faces; :meth:`graph_bytes` / :meth:`from_graph` keep them in
    the collection's snapshot so that a new process neither trains nor encodes.
    """

    def __init__(self, dimension: int, params: FastScanParams | None = None) -> None:
        import faiss

        self._faiss = faiss
        self.dimension = int(dimension)
        self.params = params or FastScanParams()
        if self.dimension % self.params.subquantizers:
            raise ValueError(f"dimension {self.dimension} does not divide into "
                             f"{self.params.subquantizers} subquantizers")
        self._vecs = np.zeros((0, self.dimension), dtype=np.float32)  # capacity rows; _size used
        self._size = 0
        self._pos_ids = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._dead = 0
        self._codes = None  # the trained IndexPQFastScan over positions 0.._coded-1, or None
        self._trained_on = 0

    def _vectors(self) -> np.ndarray:
        return self._vecs[: self._size]

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids, vectors = _new_entries(ids, vectors, self.dimension, self.ids)
        if not len(ids):
            return
        need = self._size + len(ids)
        if need > len(self._vecs):
            grown = np.zeros((max(need, 2 * len(self._vecs), 1024), self.dimension), dtype=np.float32)
            grown[: self._size] = self._vecs[: self._size]
            self._vecs = grown
        self._vecs[self._size:need] = vectors
        self._size = need
        self._pos_ids = np.concatenate([self._pos_ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
        if self._codes is None:
            if self.count >= max(self.params.exact_below, MIN_CODEBOOK_FACES):
                self._encode_all()
        elif self._size > self.params.retrain_growth * self._trained_on:
            self._encode_all()
        else:
            self._codes.add(np.ascontiguousarray(vectors))

    def _encode_all(self) -> None:
        """Train the codebooks on a sample of the stored faces and encode every position."""
        faiss = self._faiss
        vectors = self._vectors()
        rng = np.random.default_rng(0)  # the same faces give the same codebooks
        sample = vectors if self._size <= self.params.train_size else \
            vectors[np.sort(rng.choice(self._size, self.params.train_size, replace=False))]
        codes = faiss.IndexPQFastScan(self.dimension, self.params.subquantizers, 4, faiss.METRIC_INNER_PRODUCT)
        codes.train(np.ascontiguousarray(sample))
        codes.add(np.ascontiguousarray(vectors))
        self._codes, self._trained_on = codes, self._size

    def graph_bytes(self) -> np.ndarray | None:
        """The serialised codes (uint8) when they cover exactly :meth:`ids` in order (no
        tombstones), for the snapshot; None while the collection is scored exactly."""
        if self._dead or self._codes is None or self._codes.ntotal != self._size:
            return None
        return self._faiss.serialize_index(self._codes)

    @classmethod
    def from_graph(cls, codes: np.ndarray, ids: np.ndarray, vectors: np.ndarray, dimension: int,
                   params: FastScanParams | None = None) -> FastScanIndex:
        """An index from :meth:`graph_bytes` and the ids and vectors it was built from, without
        training or encoding again (ValueError if they disagree)."""
        self = cls(dimension, params)
        index = self._faiss.deserialize_index(np.ascontiguousarray(codes, dtype=np.uint8))
        ids, vectors = _new_entries(ids, vectors, self.dimension, lambda: np.zeros(0, np.int64))
        if not isinstance(index, self._faiss.IndexPQFastScan) or index.d != self.dimension \
                or index.ntotal != len(ids) or index.metric_type != self._faiss.METRIC_INNER_PRODUCT:
            raise ValueError("the fast-scan codes do not match their ids")
        self._vecs = np.ascontiguousarray(vectors, dtype=np.float32).copy()
        self._size = len(ids)
        self._pos_ids = ids.copy()
        self._alive = np.ones(len(ids), dtype=bool)
        self._codes, self._trained_on = index, len(ids)
        return self

    def _compact(self) -> None:
        """Drop the tombstones: keep the live faces and encode them again."""
        keep = self._alive.copy()
        self._vecs = np.ascontiguousarray(self._vectors()[keep])
        self._size = len(self._vecs)
        self._pos_ids = self._pos_ids[keep]
        self._alive = np.ones(self._size, dtype=bool)
        self._dead = 0
        self._codes, self._trained_on = None, 0
        if self._size >= max(self.params.exact_below, MIN_CODEBOOK_FACES):
            self._encode_all()

    def search(self, queries: npt.ArrayLike, k: int, min_score: float = -np.inf) -> list[Hits]:
        q = _as_vectors(queries, self.dimension)
        n = self.count
        k = int(k)
        if n == 0 or k <= 0:
            return _no_hits(q)
        vectors = self._vectors()
        kk = min(k + 1, n)  # one extra so a tie at the k-th place is resolved like the oracle
        # tombstones take places among the proposals in proportion: ask for that many more
        proposals = -(-kk * self.params.refine * self._size // n)
        if self._codes is None or proposals >= self._size // 2:
            return _exact_search(vectors, self._alive, self._pos_ids, q, k, min_score)
        _, positions = self._codes.search(q, proposals)
        out = []
        for j in range(len(q)):
            found = positions[j][positions[j] >= 0]
            found = found[self._alive[found]]
            # exact re-scoring from the stored vectors: the codes only propose candidates
            exact = (vectors[found] @ q[j]).astype(np.float32)
            out.append(_order(self._pos_ids[found], exact, min_score, k))
        return out


INDEX_KINDS: dict[str, Callable[[int], VectorIndex]] = {
    "faiss": FaissIndex, "numpy": NumpyIndex, "hnsw": HnswIndex, "fastscan": FastScanIndex,
}


def make_index(kind: str, dimension: int) -> VectorIndex:
    """A new empty local index of ``kind`` ("faiss" (exact flat), "numpy", "hnsw" or "fastscan")."""
    try:
        return INDEX_KINDS[kind](dimension)
    except KeyError:
        raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(INDEX_KINDS)}") from None
