"""The FAISS flat, HNSW and fast-scan indexes against the numpy oracle, on random unit vectors."""

import numpy as np
import pytest

from faceaudit.collections import (
    FaissIndex,
    FastScanIndex,
    FastScanParams,
    HnswIndex,
    HnswParams,
    NumpyIndex,
    VectorIndex,
    make_index,
)


def unit(rng, n, d=128):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def assert_same(a_hits, b_hits, tol=1e-5):
    """Same candidates and scores; near-ties (|score difference| < tol, float32 rounding of two
    different summation orders) may come in either order."""
    assert len(a_hits) == len(b_hits)
    for (ia, sa), (ib, sb) in zip(a_hits, b_hits, strict=True):
        assert len(ia) == len(ib)
        assert list(sa) == sorted(sa, reverse=True)
        np.testing.assert_allclose(sa, sb, atol=tol)
        da, db = dict(zip(ia.tolist(), sa.tolist(), strict=True)), dict(zip(ib.tolist(), sb.tolist(), strict=True))
        for i in set(da) & set(db):
            assert abs(da[i] - db[i]) < tol
        for i in set(da) ^ set(db):  # only at the k-th place, by a near-tie
            assert abs(da.get(i, db.get(i)) - sa[-1]) < tol
        for p, (x, y) in enumerate(zip(ia.tolist(), ib.tolist(), strict=True)):
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
    assert isinstance(HnswIndex(8), VectorIndex)
    assert isinstance(make_index("faiss", 8), FaissIndex) and isinstance(make_index("numpy", 8), NumpyIndex)
    assert isinstance(make_index("hnsw", 8), HnswIndex)
    assert isinstance(FastScanIndex(128), VectorIndex) and isinstance(make_index("fastscan", 128), FastScanIndex)
    with pytest.raises(ValueError):
        make_index("ivf", 8)


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
    rng, _ids, _vecs, f, n = pair
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


GRAPH = HnswParams(exact_below=0)  # always search the graph, however small


def graph_index(d):
    return HnswIndex(d, GRAPH)


def scan_index(d):
    return FastScanIndex(d, FastScanParams(subquantizers=d, exact_below=0))


@pytest.mark.parametrize("cls", [FaissIndex, NumpyIndex, HnswIndex, graph_index, scan_index])
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


@pytest.mark.parametrize("cls", [FaissIndex, NumpyIndex, HnswIndex, graph_index, scan_index])
def test_ties_break_on_the_lower_id(cls):
    idx = cls(2)
    idx.add([30, 10, 20], np.array([[1, 0], [1, 0], [0, 1]], np.float32))
    (ids, _scores), = idx.search(np.array([[1, 0]], np.float32), 1)
    assert ids.tolist() == [10]
    (ids, _), = idx.search(np.array([[1, 0]], np.float32), 3)
    assert ids.tolist() == [10, 30, 20]


def fill(index, ids, vecs):
    for lo in range(0, len(ids), 700):
        index.add(ids[lo:lo + 700], vecs[lo:lo + 700])
    return index


def test_hnsw_with_a_wide_search_is_exact(pair):
    """efSearch >= the collection size: the graph search visits every face, so the candidates
    (not only the scores) are the oracle's."""
    rng, ids, vecs, _, n = pair
    h = fill(HnswIndex(128, HnswParams(exact_below=0, ef_search=4096)), ids, vecs)
    assert h.count == 3000 and sorted(h.ids().tolist()) == sorted(ids.tolist())
    q = unit(rng, 20)
    for k in (1, 10, 80):
        assert_same(h.search(q, k), n.search(q, k))
    for min_score in (0.2, 0.3):
        assert_same(h.search(q, 1000, min_score), n.search(q, 1000, min_score))


def test_hnsw_scores_are_exact_and_recall_grows_with_ef_search(pair):
    """A narrow graph search misses candidates but never mis-scores one: each returned score
    is the exact inner product. Recall of the oracle's top 10 grows with efSearch and is
    complete at the default on 3,000 random vectors (the hard case for a graph)."""
    rng, ids, vecs, _, n = pair
    where = {int(i): j for j, i in enumerate(ids)}
    q = unit(rng, 50)
    truth = n.search(q, 10)
    recall = {}
    for ef in (16, HnswParams().ef_search):
        h = fill(HnswIndex(128, HnswParams(exact_below=0, ef_search=ef)), ids, vecs)
        found = 0
        for qi, (hi, hs), (ni, _) in zip(q, h.search(q, 10), truth, strict=True):
            np.testing.assert_allclose(hs, vecs[[where[int(i)] for i in hi]] @ qi, atol=1e-6)
            assert list(hs) == sorted(hs, reverse=True)
            found += len(set(hi.tolist()) & set(ni.tolist()))
        recall[ef] = found / 500
    assert recall[16] < recall[HnswParams().ef_search]
    assert recall[HnswParams().ef_search] >= 0.99


def test_hnsw_tombstones_and_rebuild(pair):
    """Removed faces never come back (tombstones), re-added faces do, and past
    max_dead_fraction the graph is rebuilt from the live vectors."""
    rng, ids, vecs, _, n = pair
    h = fill(HnswIndex(128, HnswParams(exact_below=0, ef_search=4096, max_dead_fraction=0.25)), ids, vecs)
    q = unit(rng, 10)
    gone = rng.choice(ids, size=500, replace=False)
    assert h.remove(gone) == n.remove(gone) == 500
    assert h.remove(gone) == 0
    assert h._index.ntotal == 3000  # tombstones, not yet rebuilt
    assert h.count == n.count == 2500 and sorted(h.ids().tolist()) == sorted(n.ids().tolist())
    assert_same(h.search(q, 80), n.search(q, 80))
    assert not set(np.concatenate([x[0] for x in h.search(q, 1000)]).tolist()) & set(gone.tolist())
    where = {int(i): j for j, i in enumerate(ids)}
    back = gone[:100]
    bv = vecs[[where[int(i)] for i in back]]
    h.add(back, bv)
    n.add(back, bv)
    assert h.count == 2600
    assert_same(h.search(q, 80), n.search(q, 80))
    more = rng.choice(np.setdiff1d(ids, gone[100:]), size=400, replace=False)
    assert h.remove(more) == n.remove(more) == 400
    assert h._index.ntotal == h.count == 2200  # past a quarter dead: rebuilt
    assert_same(h.search(q, 80), n.search(q, 80))
    # the selector follows the tombstones
    assert_same(h.search(q, 2200), n.search(q, 2200))


def test_hnsw_params_are_checked():
    with pytest.raises(ValueError):
        HnswParams(m=2)
    with pytest.raises(ValueError):
        HnswParams(max_dead_fraction=1.0)


SCAN = FastScanParams(exact_below=0)  # codes from the first 1,024 faces on


def test_fastscan_scores_are_exact_and_recall_grows_with_refine(pair):
    """The 4-bit codes only propose candidates: every returned score is the exact inner product.
    Recall of the oracle's top 10 on 3,000 random vectors (no structure: the hard case) grows
    with ``refine`` and is complete at the default."""
    rng, ids, vecs, _, n = pair
    where = {int(i): j for j, i in enumerate(ids)}
    q = unit(rng, 50)
    truth = n.search(q, 10)
    recall = {}
    for refine in (1, FastScanParams().refine):
        idx = fill(FastScanIndex(128, FastScanParams(exact_below=0, refine=refine)), ids, vecs)
        assert idx._codes is not None and idx._codes.ntotal == 3000
        found = 0
        for qi, (hi, hs), (ni, _) in zip(q, idx.search(q, 10), truth, strict=True):
            np.testing.assert_allclose(hs, vecs[[where[int(i)] for i in hi]] @ qi, atol=1e-6)
            assert list(hs) == sorted(hs, reverse=True) and len(hi) == 10
            found += len(set(hi.tolist()) & set(ni.tolist()))
        recall[refine] = found / 500
    assert recall[1] < recall[FastScanParams().refine]
    assert recall[FastScanParams().refine] >= 0.99


def test_fastscan_is_exact_when_asked_for_most_of_the_collection(pair):
    rng, ids, vecs, _, n = pair
    idx = fill(FastScanIndex(128, SCAN), ids, vecs)
    q = unit(rng, 10)
    assert_same(idx.search(q, 2000), n.search(q, 2000))  # 2001 * 64 proposals > half: every face scored
    for min_score in (0.2, 0.3):
        assert_same(idx.search(q, 1500, min_score), n.search(q, 1500, min_score))


def test_fastscan_below_the_codebook_size_is_exact(pair):
    rng, ids, vecs, _, _n = pair
    small_n = NumpyIndex(128)
    idx = FastScanIndex(128)  # default exact_below 10,000
    fill(idx, ids[:900], vecs[:900])
    fill(small_n, ids[:900], vecs[:900])
    assert idx._codes is None
    q = unit(rng, 10)
    assert_same(idx.search(q, 80), small_n.search(q, 80))


def test_fastscan_tombstones_compaction_and_retraining(pair):
    """Removed faces never come back, re-added ones do; past max_dead_fraction the codes are
    rebuilt from the live faces; codebooks are trained again when the index has grown."""
    rng, ids, vecs, _, n = pair
    params = FastScanParams(exact_below=0, refine=256, max_dead_fraction=0.25, retrain_growth=2.0)
    idx = FastScanIndex(128, params)
    idx.add(ids[:1100], vecs[:1100])
    assert idx._trained_on == 1100
    idx.add(ids[1100:], vecs[1100:])  # 3,000 > 2 x 1,100: trained again on every face
    assert idx._trained_on == 3000 and idx._codes.ntotal == 3000
    q = unit(rng, 10)
    gone = rng.choice(ids, size=500, replace=False)
    assert idx.remove(gone) == n.remove(gone) == 500
    assert idx.remove(gone) == 0
    assert idx._codes.ntotal == 3000 and idx.count == n.count == 2500  # tombstones
    assert sorted(idx.ids().tolist()) == sorted(n.ids().tolist())
    assert_same(idx.search(q, 10), n.search(q, 10))
    assert not set(np.concatenate([x[0] for x in idx.search(q, 1000)]).tolist()) & set(gone.tolist())
    where = {int(i): j for j, i in enumerate(ids)}
    back = gone[:100]
    bv = vecs[[where[int(i)] for i in back]]
    idx.add(back, bv)
    n.add(back, bv)
    assert idx.count == 2600
    assert_same(idx.search(q, 10), n.search(q, 10))
    more = rng.choice(np.setdiff1d(ids, gone[100:]), size=400, replace=False)
    assert idx.remove(more) == n.remove(more) == 400
    assert idx._codes.ntotal == idx.count == 2200  # past a quarter dead: rebuilt
    assert_same(idx.search(q, 10), n.search(q, 10))
    assert_same(idx.search(q, 2200), n.search(q, 2200))


def test_fastscan_params_are_checked():
    with pytest.raises(ValueError):
        FastScanParams(refine=0)
    with pytest.raises(ValueError):
        FastScanParams(retrain_growth=1.0)
    with pytest.raises(ValueError):
        FastScanIndex(100, FastScanParams(subquantizers=64))  # 100 does not divide into 64 parts


def test_fastscan_codes_round_trip_and_refuse_a_mismatch(pair):
    rng, ids, vecs, _, _n = pair
    idx = fill(FastScanIndex(128, SCAN), ids, vecs)
    blob = idx.graph_bytes()
    again = FastScanIndex.from_graph(blob, ids, vecs, 128, SCAN)
    q = unit(rng, 10)
    for (ia, sa), (ib, sb) in zip(idx.search(q, 10), again.search(q, 10), strict=True):
        assert ia.tolist() == ib.tolist() and np.array_equal(sa, sb)
    with pytest.raises(ValueError):
        FastScanIndex.from_graph(blob, ids[:-1], vecs[:-1], 128, SCAN)
    idx.remove(ids[:1])
    assert idx.graph_bytes() is None  # tombstones: the codes no longer match the ids
    assert FastScanIndex(128).graph_bytes() is None  # nothing trained yet
