"""The FAISS index against the numpy oracle, on random unit vectors."""

import numpy as np
import pytest

from faceaudit.collections import FaissIndex, NumpyIndex, VectorIndex, make_index


def unit(rng, n, d=128):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def assert_same(a_hits, b_hits, tol=1e-5):
    """Same candidates and scores; near-ties (|score difference| < tol, float32 rounding of two
    different summation orders) may come in either order."""
    assert len(a_hits) == len(b_hits)
    for (ia, sa), (ib, sb) in zip(a_hits, b_hits):
        assert len(ia) == len(ib)
        assert list(sa) == sorted(sa, reverse=True)
        np.testing.assert_allclose(sa, sb, atol=tol)
        da, db = dict(zip(ia.tolist(), sa.tolist())), dict(zip(ib.tolist(), sb.tolist()))
        for i in set(da) & set(db):
            assert abs(da[i] - db[i]) < tol
        for i in set(da) ^ set(db):  # only at the k-th place, by a near-tie
            assert abs(da.get(i, db.get(i)) - sa[-1]) < tol
        for p, (x, y) in enumerate(zip(ia.tolist(), ib.tolist())):
            if x != y:
                assert abs(sa[p] - db.get(x, sa[p])) < tol


@pytest.fixture
def pair():
    rng = np.random.default_rng(7)
    ids = rng.choice(10**12, size=3000, replace=False).astype(np.int64)
    vecs = unit(rng, 3000)
    f, n = FaissIndex(128), NumpyIndex(128)
    for lo in range(0, 3000, 700):  # several add() calls
        f.add(ids[lo:lo + 700], vecs[lo:lo + 700])
        n.add(ids[lo:lo + 700], vecs[lo:lo + 700])
    return rng, ids, vecs, f, n


def test_both_implement_the_interface():
    assert isinstance(FaissIndex(8), VectorIndex) and isinstance(NumpyIndex(8), VectorIndex)
    assert isinstance(make_index("faiss", 8), FaissIndex) and isinstance(make_index("numpy", 8), NumpyIndex)
    with pytest.raises(ValueError):
        make_index("hnsw", 8)


def test_same_ids_and_scores_as_the_oracle(pair):
    rng, ids, vecs, f, n = pair
    assert f.count == n.count == 3000
    assert sorted(f.ids().tolist()) == sorted(n.ids().tolist()) == sorted(ids.tolist())
    q = unit(rng, 25)
    for k in (1, 10, 80, 3000, 5000):
        assert_same(f.search(q, k), n.search(q, k))
    # a stored vector finds itself first with score 1
    hits = f.search(vecs[:3], 1)
    assert [h[0][0] for h in hits] == ids[:3].tolist()
    np.testing.assert_allclose([h[1][0] for h in hits], 1.0, atol=1e-5)


def test_min_score_filters_like_the_oracle(pair):
    rng, ids, vecs, f, n = pair
    q = unit(rng, 10)
    for min_score in (-1.0, 0.0, 0.2, 0.3, 1.01):
        fh, nh = f.search(q, 4096, min_score), n.search(q, 4096, min_score)
        assert_same(fh, nh)
        assert all((h[1] >= min_score).all() for h in fh)
    assert all(len(h[0]) == 0 for h in f.search(q, 10, 1.01))


def test_same_after_removals_and_readds(pair):
    rng, ids, vecs, f, n = pair
    gone = rng.choice(ids, size=900, replace=False)
    assert f.remove(gone) == n.remove(gone) == 900
    assert f.remove(gone) == n.remove(gone) == 0  # absent ids are ignored
    assert f.count == n.count == 2100
    assert sorted(f.ids().tolist()) == sorted(n.ids().tolist())
    q = unit(rng, 20)
    assert_same(f.search(q, 50), n.search(q, 50))
    assert not set(np.concatenate([h[0] for h in f.search(q, 2100)]).tolist()) & set(gone.tolist())
    back = gone[:100]
    where = {int(i): j for j, i in enumerate(ids)}
    bv = vecs[[where[int(i)] for i in back]]
    f.add(back, bv)
    n.add(back, bv)
    assert_same(f.search(q, 2200), n.search(q, 2200))


@pytest.mark.parametrize("cls", [FaissIndex, NumpyIndex])
def test_contract_edges(cls):
    idx = cls(4)
    assert idx.count == 0 and idx.ids().tolist() == []
    assert [len(h[0]) for h in idx.search(np.ones((2, 4), np.float32) / 2, 5)] == [0, 0]
    idx.add([1, 2], np.eye(4, dtype=np.float32)[:2])
    with pytest.raises(ValueError):
        idx.add([2], np.eye(4, dtype=np.float32)[:1])  # already present
    with pytest.raises(ValueError):
        idx.add([3, 3], np.eye(4, dtype=np.float32)[2:4])  # duplicate in one call
    with pytest.raises(ValueError):
        idx.add([5], np.ones((1, 3), np.float32))  # wrong dimension
    (ids, scores), = idx.search(np.eye(4, dtype=np.float32)[:1], 10)
    assert ids.tolist() == [1, 2] and scores.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("cls", [FaissIndex, NumpyIndex])
def test_ties_break_on_the_lower_id(cls):
    idx = cls(2)
    idx.add([30, 10, 20], np.array([[1, 0], [1, 0], [0, 1]], np.float32))
    (ids, scores), = idx.search(np.array([[1, 0]], np.float32), 1)
    assert ids.tolist() == [10]
    (ids, _), = idx.search(np.array([[1, 0]], np.float32), 3)
    assert ids.tolist() == [10, 30, 20]
