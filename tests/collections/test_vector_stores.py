"""Per-collection fast scan and HNSW, and the Milvus vector store, give the numpy oracle's results."""

import os

import numpy as np
import pytest

from faceaudit import InvalidParameterError
from faceaudit.collections import (
    INDEX_TAG,
    FaceCollections,
    FastScanParams,
    HnswParams,
    IndexKind,
    SearchConfig,
    VectorStore,
)
from tests.collections.conftest import synthetic_image
from tests.conftest import MEMBERS, portrait_2018

# the graph is searched even on a test-sized collection (efSearch >= its size: exact)
GRAPH = HnswParams(exact_below=0)
SCAN = FastScanParams(exact_below=0, refine=8)  # codes from 1,024 faces on; few proposals


def matches(result):
    return [(m.face.face_id, m.similarity) for m in result.face_matches]


def assert_same_matches(a, b):
    assert [f for f, _ in matches(a)] == [f for f, _ in matches(b)]
    assert [s for _, s in matches(a)] == pytest.approx([s for _, s in matches(b)], abs=1e-3)


def fill(fc, name, n, rng, engine, per_image=100):
    faces = []
    for lo in range(0, n, per_image):
        r = fc._store_prepared(name, synthetic_image(min(per_image, n - lo), engine.model_version, rng))
        faces += [x.face.face_id for x in r.face_records]
    return faces


def kind_of(fc, name):
    rowid = fc._collection_row(name).rowid
    return fc._cache._entries[rowid].kind


def test_config_from_env_and_tag_rules():
    assert SearchConfig.from_env({}) == SearchConfig()
    c = SearchConfig.from_env({"FACEAUDIT_VECTOR_STORE": "milvus", "FACEAUDIT_MILVUS_URI": "http://m:19530",
                               "FACEAUDIT_HNSW_ABOVE": "1000"})
    assert (c.vector_store, c.milvus_uri, c.hnsw_above) == (VectorStore.MILVUS, "http://m:19530", 1000)
    assert SearchConfig.from_env(c.to_env()) == c
    for bad in ({"FACEAUDIT_VECTOR_STORE": "redis"}, {"FACEAUDIT_HNSW_ABOVE": "many"},
                {"FACEAUDIT_HNSW_ABOVE": "-1"}):
        with pytest.raises(InvalidParameterError):
            SearchConfig.from_env(bad)
    c = SearchConfig(hnsw_above=10)
    assert c.kind_for({}, 10) is IndexKind.FLAT and c.kind_for({}, 11) is IndexKind.HNSW
    assert c.kind_for({INDEX_TAG: "flat"}, 10**6) is IndexKind.FLAT  # the tag wins
    assert SearchConfig().kind_for({INDEX_TAG: "hnsw"}, 1) is IndexKind.HNSW
    assert SearchConfig().kind_for({INDEX_TAG: "FastScan"}, 1) is IndexKind.FASTSCAN
    c = SearchConfig.from_env({"FACEAUDIT_FASTSCAN_ABOVE": "100", "FACEAUDIT_HNSW_ABOVE": "1000"})
    assert SearchConfig.from_env(c.to_env()) == c
    # flat, then the fast scan past 100 faces, then HNSW past 1,000
    assert [c.kind_for({}, n) for n in (100, 101, 1000, 1001)] == [
        IndexKind.FLAT, IndexKind.FASTSCAN, IndexKind.FASTSCAN, IndexKind.HNSW]
    with pytest.raises(InvalidParameterError):
        SearchConfig.from_env({"FACEAUDIT_FASTSCAN_ABOVE": "-5"})


def test_index_tag_is_validated(tmp_path):
    fc = FaceCollections(tmp_path)
    with pytest.raises(InvalidParameterError):
        fc.create_collection(collection_id="x", tags={INDEX_TAG: "ivf"})
    fc.create_collection(collection_id="x", tags={INDEX_TAG: "HNSW"})
    assert fc._store.collection_tags(fc._store.connection(), fc._collection_row("x").rowid) == {INDEX_TAG: "hnsw"}


def test_hnsw_tagged_collection_gives_the_oracles_results(tmp_path, sface_engine):
    engines = {"sface": sface_engine}
    fc = FaceCollections(tmp_path, engines=engines, search_config=SearchConfig(hnsw=GRAPH))
    fc.create_collection(collection_id="h", tags={INDEX_TAG: "hnsw"})
    rng = np.random.default_rng(5)
    faces = fill(fc, "h", 200, rng, sface_engine)
    oracle = FaceCollections(tmp_path, index="numpy", engines=engines)
    for fid in faces[:5]:
        for threshold in (0, 50):
            a = fc.search_faces(collection_id="h", face_id=fid, face_match_threshold=threshold, max_faces=50)
            b = oracle.search_faces(collection_id="h", face_id=fid, face_match_threshold=threshold, max_faces=50)
            assert_same_matches(a, b)
    assert kind_of(fc, "h") is IndexKind.HNSW and kind_of(oracle, "h") is IndexKind.FLAT
    # deletions reach the graph as tombstones
    fc.delete_faces(collection_id="h", face_ids=faces[1:41])
    a = fc.search_faces(collection_id="h", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    b = oracle.search_faces(collection_id="h", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert_same_matches(a, b)
    assert len(a.face_matches) == 159


def test_switches_to_hnsw_past_the_size_the_operator_set(tmp_path, sface_engine):
    engines = {"sface": sface_engine}
    fc = FaceCollections(tmp_path, engines=engines, search_config=SearchConfig(hnsw_above=150, hnsw=GRAPH))
    fc.create_collection(collection_id="g")
    fc.create_collection(collection_id="pinned", tags={INDEX_TAG: "flat"})
    rng = np.random.default_rng(6)
    faces = fill(fc, "g", 100, rng, sface_engine)
    fill(fc, "pinned", 200, rng, sface_engine)
    fc.search_faces(collection_id="g", face_id=faces[0])
    assert kind_of(fc, "g") is IndexKind.FLAT
    fill(fc, "g", 100, rng, sface_engine)
    oracle = FaceCollections(tmp_path, index="numpy", engines=engines)
    a = fc.search_faces(collection_id="g", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert kind_of(fc, "g") is IndexKind.HNSW
    assert_same_matches(a, oracle.search_faces(collection_id="g", face_id=faces[0], face_match_threshold=0,
                                               max_faces=4096))
    fc.search_faces(collection_id="pinned", face_id=fc.list_faces(collection_id="pinned").faces[0].face_id)
    assert kind_of(fc, "pinned") is IndexKind.FLAT


def test_fastscan_collection_gives_the_oracles_results_and_follows_deletions(tmp_path, sface_engine):
    """A collection past --fastscan-above: 1,300 faces, so the 4-bit codes are trained and used
    (a few proposals per candidate); the candidates at the thresholds that matter and every
    score equal the oracle's, and deleted faces never come back."""
    engines = {"sface": sface_engine}
    fc = FaceCollections(tmp_path, engines=engines, search_config=SearchConfig(fastscan_above=1000, fastscan=SCAN))
    fc.create_collection(collection_id="s")
    rng = np.random.default_rng(8)
    faces = fill(fc, "s", 1300, rng, sface_engine)
    oracle = FaceCollections(tmp_path, index="numpy", engines=engines)
    for fid in faces[:5]:
        for threshold in (50, 80):
            a = fc.search_faces(collection_id="s", face_id=fid, face_match_threshold=threshold, max_faces=20)
            b = oracle.search_faces(collection_id="s", face_id=fid, face_match_threshold=threshold, max_faces=20)
            assert_same_matches(a, b)
    assert kind_of(fc, "s") is IndexKind.FASTSCAN
    index = fc._cache._entries[fc._collection_row("s").rowid].index
    assert index._codes is not None and index._codes.ntotal == 1300
    fc.delete_faces(collection_id="s", face_ids=faces[1:101])
    a = fc.search_faces(collection_id="s", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    b = oracle.search_faces(collection_id="s", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert_same_matches(a, b)
    assert len(a.face_matches) == 1199


def test_hnsw_collection_on_real_photos(gallery, sface_engine, tmp_path):
    """The test gallery (real portraits and mugshots), searched through a graph, gives flat's results."""
    fc, _ = gallery
    hnsw = FaceCollections(fc.data_dir, engines={"sface": sface_engine},
                           search_config=SearchConfig(hnsw_above=0, hnsw=GRAPH))
    for m in MEMBERS[:4]:
        data = portrait_2018(m).read_bytes()
        a = hnsw.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=0)
        b = fc.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=0)
        assert_same_matches(a, b)
    assert kind_of(hnsw, "gallery") is IndexKind.HNSW


# -- Milvus ---------------------------------------------------------------------------------------
def _milvus_missing():
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


MISSING = _milvus_missing()
if MISSING and os.environ.get("CI") == "true":  # CI installs the milvus extra: never skip there
    raise ImportError(f"the milvus extra is not installed: {MISSING}")
milvus = pytest.mark.skipif(MISSING is not None, reason=f"pymilvus/milvus-lite not installed (the milvus extra): "
                                                        f"{MISSING}")


def test_milvus_collection_names_are_one_per_deployment_and_collection(tmp_path):
    """A data dir keeps the name it always had; hosts sharing one database pass one scope string and
    so share one Milvus collection."""
    import hashlib

    from faceaudit.collections._milvus import collection_name, database_scope

    name = collection_name(tmp_path, 3)
    assert database_scope("postgresql://u:secret@DB.example:5432/face?sslmode=require") == \
        database_scope("postgresql+psycopg://other@db.example:5432/face") == "postgresql://db.example:5432/face"
    assert name == f"faceaudit_{hashlib.sha256(str(tmp_path.resolve()).encode()).hexdigest()[:12]}_c3"
    assert collection_name(tmp_path / "x" / "..", 3) == name
    assert collection_name("deployment-1", 3) == collection_name("deployment-1", 3)
    assert len({collection_name("deployment-1", 3), collection_name("deployment-2", 3),
                collection_name("deployment-1", 4), name}) == 4


@pytest.fixture(params=["lite", "server"])
def milvus_config(request, tmp_path):
    """The Milvus store on milvus-lite (a file) and on a real Milvus standalone server (tests/_milvus.py)."""
    if request.param == "lite":
        return SearchConfig(vector_store=VectorStore.MILVUS, milvus_uri=str(tmp_path / "milvus" / "m.db"))
    return SearchConfig(vector_store=VectorStore.MILVUS, milvus_uri=request.getfixturevalue("milvus_uri"))


@milvus
def test_milvus_gives_the_oracles_results(tmp_path, sface_engine, milvus_config):
    engines = {"sface": sface_engine}
    fc = FaceCollections(tmp_path / "data", engines=engines, search_config=milvus_config)
    fc.create_collection(collection_id="m")
    rng = np.random.default_rng(8)
    faces = fill(fc, "m", 300, rng, sface_engine)
    oracle = FaceCollections(tmp_path / "data", index="numpy", engines=engines)
    for fid in faces[:4]:
        for threshold, k in ((0, 80), (45, 4096)):
            a = fc.search_faces(collection_id="m", face_id=fid, face_match_threshold=threshold, max_faces=k)
            b = oracle.search_faces(collection_id="m", face_id=fid, face_match_threshold=threshold, max_faces=k)
            assert_same_matches(a, b)
    # changes are replayed into Milvus
    fc.delete_faces(collection_id="m", face_ids=faces[1:51])
    new = fill(fc, "m", 20, rng, sface_engine)
    a = fc.search_faces(collection_id="m", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    b = oracle.search_faces(collection_id="m", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert_same_matches(a, b)
    got = {f for f, _ in matches(a)}
    assert len(got) == 269 and set(new) <= got and not got & set(faces[1:51])
    assert fc.verify_index("m")
    fc._cache._milvus.close()


@milvus
def test_milvus_is_repaired_from_sqlite_when_they_disagree(tmp_path, sface_engine, milvus_config):
    from faceaudit.collections._milvus import collection_name

    engines = {"sface": sface_engine}
    fc = FaceCollections(tmp_path / "data", engines=engines, search_config=milvus_config)
    fc.create_collection(collection_id="m")
    rng = np.random.default_rng(9)
    faces = fill(fc, "m", 200, rng, sface_engine)
    assert fc.verify_index("m")
    rowid = fc._collection_row("m").rowid
    client, name = fc._cache._milvus, collection_name(fc.data_dir, rowid)
    # Milvus loses 30 faces and gains one SQLite never had (e.g. restored from an old backup)
    lost = fc._cache._entries[rowid].index.ids()[:30].tolist()
    client.delete(name, ids=lost)
    client.upsert(name, [{"id": 10**9, "vector": np.ones(128, np.float32) / np.sqrt(128)}])
    # a new process reconciles on first use
    fresh = FaceCollections(tmp_path / "data", engines=engines, search_config=milvus_config)
    fresh._cache._milvus = client  # milvus-lite: one server per file and process
    fresh._cache._milvus_pid = os.getpid()
    assert fresh.verify_index("m")
    assert fresh._cache.stats["rebuilds"] == 1
    oracle = FaceCollections(tmp_path / "data", index="numpy", engines=engines)
    a = fresh.search_faces(collection_id="m", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    b = oracle.search_faces(collection_id="m", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert_same_matches(a, b)
    assert len(a.face_matches) == 199
    # deleting the collection drops its Milvus collection
    fresh.delete_collection(collection_id="m")
    assert not client.has_collection(name)
    client.close()


def test_hnsw_graph_is_kept_in_the_snapshot(tmp_path, sface_engine, monkeypatch):
    """A new process loads the graph as built (no graph build at start), then catches up."""
    from faceaudit.collections import HnswIndex

    engines = {"sface": sface_engine}
    config = SearchConfig(hnsw=GRAPH)
    a = FaceCollections(tmp_path, engines=engines, search_config=config, snapshot_min_faces=0)
    a.create_collection(collection_id="h", tags={INDEX_TAG: "hnsw"})
    rng = np.random.default_rng(11)
    faces = fill(a, "h", 300, rng, sface_engine)
    a.search_faces(collection_id="h", face_id=faces[0])  # builds the graph, writes the snapshot
    with np.load(a._cache.snapshot_path(a._collection_row("h").rowid)) as z:
        assert "graph" in z.files and len(z["ids"]) == 300
    a.delete_faces(collection_id="h", face_ids=faces[:10])  # after the snapshot: replayed

    def no_build(self, ids, vectors):
        if len(ids):
            raise AssertionError("the graph was rebuilt instead of loaded")

    monkeypatch.setattr(HnswIndex, "add", no_build)
    b = FaceCollections(tmp_path, engines=engines, search_config=config, snapshot_min_faces=0)
    got = b.search_faces(collection_id="h", face_id=faces[20], face_match_threshold=0, max_faces=4096)
    assert b._cache.stats == {"rebuilds": 0, "snapshot_loads": 1, "catch_ups": 1}
    assert kind_of(b, "h") is IndexKind.HNSW
    monkeypatch.undo()
    oracle = FaceCollections(tmp_path, index="numpy", engines=engines)
    assert_same_matches(got, oracle.search_faces(collection_id="h", face_id=faces[20], face_match_threshold=0,
                                                 max_faces=4096))
    assert len(got.face_matches) == 289


def test_fastscan_codes_are_kept_in_the_snapshot(tmp_path, sface_engine, monkeypatch):
    """A new process loads the codes as trained and encoded (no training at start), then catches up."""
    from faceaudit.collections import FastScanIndex

    engines = {"sface": sface_engine}
    config = SearchConfig(fastscan=SCAN)
    a = FaceCollections(tmp_path, engines=engines, search_config=config, snapshot_min_faces=0)
    a.create_collection(collection_id="s", tags={INDEX_TAG: "fastscan"})
    rng = np.random.default_rng(12)
    faces = fill(a, "s", 1200, rng, sface_engine)
    a.search_faces(collection_id="s", face_id=faces[0])  # trains and encodes, writes the snapshot
    with np.load(a._cache.snapshot_path(a._collection_row("s").rowid)) as z:
        assert "graph" in z.files and len(z["ids"]) == 1200
    a.delete_faces(collection_id="s", face_ids=faces[:10])  # after the snapshot: replayed

    def no_training(self):
        raise AssertionError("the codes were trained again instead of loaded")

    monkeypatch.setattr(FastScanIndex, "_encode_all", no_training)
    b = FaceCollections(tmp_path, engines=engines, search_config=config, snapshot_min_faces=0)
    got = b.search_faces(collection_id="s", face_id=faces[20], face_match_threshold=50, max_faces=20)
    assert b._cache.stats == {"rebuilds": 0, "snapshot_loads": 1, "catch_ups": 1}
    assert kind_of(b, "s") is IndexKind.FASTSCAN
    monkeypatch.undo()
    oracle = FaceCollections(tmp_path, index="numpy", engines=engines)
    assert_same_matches(got, oracle.search_faces(collection_id="s", face_id=faces[20], face_match_threshold=50,
                                                 max_faces=20))
    # the loaded codes propose what the built ones do: the same top 20 at any threshold
    built = a.search_faces(collection_id="s", face_id=faces[20], face_match_threshold=0, max_faces=20)
    loaded = b.search_faces(collection_id="s", face_id=faces[20], face_match_threshold=0, max_faces=20)
    assert_same_matches(loaded, built)
    assert len(loaded.face_matches) == 20


def test_tag_resource_switches_the_index_at_the_next_search(tmp_path, sface_engine):
    engines = {"sface": sface_engine}
    fc = FaceCollections(tmp_path, engines=engines, search_config=SearchConfig(hnsw=GRAPH))
    fc.create_collection(collection_id="t")
    faces = fill(fc, "t", 100, np.random.default_rng(12), sface_engine)
    fc.search_faces(collection_id="t", face_id=faces[0])
    assert kind_of(fc, "t") is IndexKind.FLAT
    arn = fc.collection_arn("t")
    with pytest.raises(InvalidParameterError):
        fc.tag_resource(resource_arn=arn, tags={INDEX_TAG: "ivf"})
    fc.tag_resource(resource_arn=arn, tags={INDEX_TAG: "hnsw"})
    a = fc.search_faces(collection_id="t", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert kind_of(fc, "t") is IndexKind.HNSW
    oracle = FaceCollections(tmp_path, index="numpy", engines=engines)
    assert_same_matches(a, oracle.search_faces(collection_id="t", face_id=faces[0], face_match_threshold=0,
                                               max_faces=4096))
    fc.untag_resource(resource_arn=arn, tag_keys=[INDEX_TAG])
    fc.search_faces(collection_id="t", face_id=faces[0])
    assert kind_of(fc, "t") is IndexKind.FLAT
