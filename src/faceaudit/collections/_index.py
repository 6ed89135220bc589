"""Vector indexes: exact inner-product search over L2-normalised embeddings.

An index is a cache of the embeddings held in SQLite, keyed by the faces' int64
row ids; it can always be rebuilt from SQLite. The interface is small so that an
approximate (HNSW) or distributed index can be added later:

- ``add(ids, vectors)``: new ids only (an id already present raises ValueError);
- ``remove(ids)``: absent ids are ignored; returns how many were removed;
- ``search(queries, k, min_score)``: for each query, up to ``k`` (id, score)
  pairs with score >= ``min_score``, highest score first (ties: lower id first);
  score is the inner product, i.e. cosine for unit vectors (-1..1, higher is
  more alike);
- ``count`` and ``ids()``.

Implementations: :class:`FaissIndex` (``IndexIDMap2`` over ``IndexFlatIP``,
exact, the default), :class:`NumpyIndex` (brute force, the test oracle),
:class:`HnswIndex` (FAISS HNSW graph: approximate candidates, exact scores) and,
in ``_milvus.py``, :class:`~faceaudit.collections._milvus.MilvusIndex` (a Milvus
collection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

Hits = Tuple[np.ndarray, np.ndarray]
"""One query's result: (ids int64, scores float32), highest score first."""


@runtime_checkable
class VectorIndex(Protocol):
    dimension: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, queries: np.ndarray, k: int, min_score: float = -np.inf) -> List[Hits]: ...

    @property
    def count(self) -> int: ...

    def ids(self) -> np.ndarray: ...


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _as_vectors(vectors, dimension: int) -> np.ndarray:
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


def _new_entries(ids, vectors, dimension: int, present: Callable[[], np.ndarray]):
    """``(ids, vectors)`` of one add(), converted and checked: same lengths, no duplicates, none
    already present (``present()`` is only asked when there is something to add)."""
    ids = _as_ids(ids)
    vectors = _as_vectors(vectors, dimension)
    if len(ids) != len(vectors):
        raise ValueError("ids and vectors differ in length")
    if len(ids):
        _check_new(ids, present())
    return ids, vectors


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
        self._pos: Dict[int, int] = {}

    @property
    def count(self) -> int:
        return self._n

    def ids(self) -> np.ndarray:
        return self._ids[: self._n].copy()

    def add(self, ids, vectors) -> None:
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

    def remove(self, ids) -> int:
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

    def search(self, queries, k: int, min_score: float = -np.inf) -> List[Hits]:
        q = _as_vectors(queries, self.dimension)
        k = int(k)
        if self._n == 0 or k <= 0:
            empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
            return [empty for _ in range(len(q))]
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

    def add(self, ids, vectors) -> None:
        ids, vectors = _new_entries(ids, vectors, self.dimension, self.ids)
        if not len(ids):
            return
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids) -> int:
        ids = _as_ids(ids)
        if not len(ids) or not self.count:
            return 0
        return int(self._index.remove_ids(self._faiss.IDSelectorBatch(ids)))

    def search(self, queries, k: int, min_score: float = -np.inf) -> List[Hits]:
        q = _as_vectors(queries, self.dimension)
        n = self.count
        k = int(k)
        if n == 0 or k <= 0:
            empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
            return [empty for _ in range(len(q))]
        # one extra candidate so that a tie at the k-th place is resolved like the oracle
        kk = min(k + 1, n)
        scores, ids = self._index.search(q, kk)
        out = []
        for j in range(q.shape[0]):
            valid = ids[j] >= 0
            out.append(_order(ids[j][valid], scores[j][valid], min_score, k))
        return out


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


class HnswIndex:
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

    def __init__(self, dimension: int, params: Optional[HnswParams] = None) -> None:
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
        self._selector = None

    @property
    def count(self) -> int:
        return int(len(self._pos_ids) - self._dead)

    def ids(self) -> np.ndarray:
        return self._pos_ids[self._alive].copy()

    def _vectors(self) -> np.ndarray:
        """The graph's stored vectors (a view: valid until the next add), one row per node."""
        n = int(self._index.ntotal)
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        storage = self._faiss.downcast_index(self._index.storage)
        return self._faiss.rev_swig_ptr(storage.get_xb(), n * self.dimension).reshape(n, self.dimension)

    def add(self, ids, vectors) -> None:
        ids, vectors = _new_entries(ids, vectors, self.dimension, self.ids)
        if not len(ids):
            return
        self._index.add(vectors)
        self._pos_ids = np.concatenate([self._pos_ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])

    def remove(self, ids) -> int:
        ids = _as_ids(ids)
        if not len(ids) or not self.count:
            return 0
        hit = self._alive & np.isin(self._pos_ids, ids)
        removed = int(hit.sum())
        if removed:
            self._alive[hit] = False
            self._dead += removed
            self._selector = None
            if self._dead > self.params.max_dead_fraction * len(self._pos_ids):
                self._compact()
        return removed

    def _compact(self) -> None:
        """Rebuild the graph from the live vectors (drops every tombstone)."""
        ids = self._pos_ids[self._alive]
        vectors = self._vectors()[self._alive].copy()
        self._reset()
        self.add(ids, vectors)

    def graph_bytes(self) -> Optional[np.ndarray]:
        """The serialised graph (uint8) when it holds exactly :meth:`ids` in order (no tombstones)."""
        if self._dead:
            return None
        return self._faiss.serialize_index(self._index)

    @classmethod
    def from_graph(cls, graph: np.ndarray, ids: np.ndarray, dimension: int,
                   params: Optional[HnswParams] = None) -> "HnswIndex":
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

    def _search_params(self, ef: int):
        p = self._faiss.SearchParametersHNSW()
        p.efSearch = int(ef)
        if self._dead:
            if self._selector is None:
                dead = np.flatnonzero(~self._alive).astype(np.int64)
                inner = self._faiss.IDSelectorBatch(dead)
                self._selector = (inner, self._faiss.IDSelectorNot(inner))  # keep both alive
            p.sel = self._selector[1]
        return p

    def search(self, queries, k: int, min_score: float = -np.inf) -> List[Hits]:
        q = _as_vectors(queries, self.dimension)
        n = self.count
        k = int(k)
        if n == 0 or k <= 0:
            empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
            return [empty for _ in range(len(q))]
        vectors = self._vectors()
        kk = min(k + 1, n)  # one extra so a tie at the k-th place is resolved like the oracle
        if n < self.params.exact_below or kk >= n // 2:
            # small, or asked for most of it: score every live face (exact, and as fast)
            live = np.flatnonzero(self._alive)
            scores = vectors[live] @ q.T
            out = []
            for j in range(len(q)):
                s = scores[:, j]
                part = np.argpartition(-s, kk - 1)[:kk] if kk < len(s) else np.arange(len(s))
                kth = s[part].min()
                part = np.flatnonzero(s >= kth)
                out.append(_order(self._pos_ids[live[part]], s[part], min_score, k))
            return out
        _, nodes = self._index.search(q, kk, params=self._search_params(max(self.params.ef_search, kk)))
        out = []
        for j in range(len(q)):
            found = nodes[j][nodes[j] >= 0]
            # exact re-scoring from the stored vectors: the graph only proposes candidates
            exact = (vectors[found] @ q[j]).astype(np.float32)
            out.append(_order(self._pos_ids[found], exact, min_score, k))
        return out


INDEX_KINDS = {"faiss": FaissIndex, "numpy": NumpyIndex, "hnsw": HnswIndex}


def make_index(kind: str, dimension: int) -> VectorIndex:
    """A new empty local index of ``kind`` ("faiss" (exact flat), "numpy" or "hnsw")."""
    try:
        return INDEX_KINDS[kind](dimension)
    except KeyError:
        raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(INDEX_KINDS)}") from None
