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

Two implementations: :class:`FaissIndex` (``IndexIDMap2`` over ``IndexFlatIP``,
exact) and :class:`NumpyIndex` (brute force, the test oracle).
"""

from __future__ import annotations

from typing import Dict, List, Protocol, Tuple, runtime_checkable

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
        ids = _as_ids(ids)
        vectors = _as_vectors(vectors, self.dimension)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if not len(ids):
            return
        _check_new(ids, self.ids() if self.count else np.zeros(0, np.int64))
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


INDEX_KINDS = {"faiss": FaissIndex, "numpy": NumpyIndex}


def make_index(kind: str, dimension: int) -> VectorIndex:
    """A new empty index of ``kind`` ("faiss" or "numpy")."""
    try:
        return INDEX_KINDS[kind](dimension)
    except KeyError:
        raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(INDEX_KINDS)}") from None
