"""The in-memory index as a cache of SQLite: catch-up, rebuild, snapshots, never stale or corrupt."""

import sqlite3

import numpy as np
import pytest

from faceaudit.collections import FaceCollections, _store
from tests.collections.conftest import synthetic_image

pytestmark = pytest.mark.usefixtures("on_both_databases")  # SQLite and PostgreSQL


@pytest.fixture
def two(tmp_path, sface_engine):
    """Two backends (as two processes would be) on one data dir with 300 synthetic faces."""
    a = FaceCollections(tmp_path, engines={"sface": sface_engine}, snapshot_min_faces=0)
    a.create_collection(collection_id="s")
    rng = np.random.default_rng(3)
    faces = []
    for _ in range(3):
        r = a._store_prepared("s", synthetic_image(100, sface_engine.model_version, rng))
        faces += [x.face.face_id for x in r.face_records]
    b = FaceCollections(tmp_path, engines={"sface": sface_engine}, snapshot_min_faces=0)
    return a, b, faces, rng


def ids_of(result):
    return [m.face.face_id for m in result.face_matches]


@pytest.mark.sqlite_only
def test_sqlite_settings(tmp_path):
    fc = FaceCollections(tmp_path)
    fc.create_collection(collection_id="x")
    conn = fc._store.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


@pytest.mark.sqlite_only
def test_embeddings_are_float32_blobs(two):
    a, _, _faces, _ = two
    con = sqlite3.connect(str(a.data_dir / "collections.sqlite3"))
    blob, = con.execute("SELECT embedding FROM faces LIMIT 1").fetchone()
    v = np.frombuffer(blob, "<f4")
    assert v.shape == (128,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_other_processes_changes_are_seen_at_the_next_search(two, sface_engine):
    a, b, faces, rng = two
    r0 = b.search_faces(collection_id="s", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert len(r0.face_matches) == 299
    # a adds and deletes; b catches up from the change log, without a rebuild
    rebuilds = b._cache.stats["rebuilds"]
    new = a._store_prepared("s", synthetic_image(10, sface_engine.model_version, rng))
    a.delete_faces(collection_id="s", face_ids=faces[1:51])
    r1 = b.search_faces(collection_id="s", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    got = set(ids_of(r1))
    assert len(got) == 299 - 50 + 10
    assert not got & set(faces[1:51]) and {x.face.face_id for x in new.face_records} <= got
    assert b._cache.stats["rebuilds"] == rebuilds and b._cache.stats["catch_ups"] >= 1
    assert b.verify_index("s") and a.verify_index("s")
    # and both answer the same
    ra = a.search_faces(collection_id="s", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert ids_of(ra) == ids_of(r1)


def test_snapshot_is_loaded_verified_and_caught_up(two, sface_engine):
    a, _, faces, _rng = two
    assert a.verify_index("s")  # first use: rebuild from SQLite, snapshot written
    snap = a._cache.snapshot_path(a._collection_row("s").rowid)
    assert snap.exists()
    a.delete_faces(collection_id="s", face_ids=faces[:5])  # the snapshot is now behind
    c = FaceCollections(a.data_dir, engines={"sface": sface_engine})
    assert c.verify_index("s")
    assert c._cache.stats == {"rebuilds": 0, "snapshot_loads": 1, "catch_ups": 1}
    assert c.describe_collection(collection_id="s").face_count == 295


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_ids", "foreign"])
def test_a_damaged_or_wrong_snapshot_is_never_used(two, sface_engine, damage):
    a, _, faces, _ = two
    row = a._collection_row("s")
    a.checkpoint_index("s")
    snap = a._cache.snapshot_path(row.rowid)
    if damage == "truncate":
        snap.write_bytes(snap.read_bytes()[: snap.stat().st_size // 2])
    elif damage == "garbage":
        snap.write_bytes(b"PK\x03\x04" + b"\x00" * 1000)
    else:
        with np.load(snap) as data:
            ids, vectors, meta = data["ids"], data["vectors"], str(data["meta"])
        if damage == "wrong_ids":  # same seq and count, one id swapped: caught by the id check
            ids = ids.copy()
            ids[0] = 10**9
        else:
            meta = meta.replace(f'"collection": {row.rowid}', '"collection": 999')
        np.savez(snap.open("wb"), ids=ids, vectors=vectors, meta=np.array(meta))
    c = FaceCollections(a.data_dir, engines={"sface": sface_engine}, snapshot_min_faces=10**9)
    assert c.verify_index("s")
    assert c._cache.stats["rebuilds"] == 1 and c._cache.stats["snapshot_loads"] == 0
    r = c.search_faces(collection_id="s", face_id=faces[0], face_match_threshold=0, max_faces=4096)
    assert len(r.face_matches) == 299


def test_an_index_that_drifted_is_rebuilt(two):
    a, _, _faces, _ = two
    assert a.verify_index("s")
    row = a._collection_row("s")
    a._cache._entries[row.rowid].index.remove(np.array([a._cache._entries[row.rowid].index.ids()[0]]))
    before = a._cache.stats["rebuilds"]
    assert a.verify_index("s")  # count check: 299 != 300, rebuilt
    assert a._cache.stats["rebuilds"] == before + 1


@pytest.mark.sqlite_only
def test_a_process_behind_a_pruned_log_rebuilds(two, monkeypatch, sface_engine):
    a, b, _faces, rng = two
    assert b.verify_index("s")
    monkeypatch.setattr(_store, "LOG_KEEP", 5)
    for _ in range(3):  # 30 more changes: the log is pruned past b's position
        a._store_prepared("s", synthetic_image(10, sface_engine.model_version, rng))
    row = a._collection_row("s")
    assert row.log_floor > 300
    con = sqlite3.connect(str(a.data_dir / "collections.sqlite3"))
    assert con.execute("SELECT COUNT(*) FROM face_log").fetchone()[0] <= 11
    before = b._cache.stats["rebuilds"]
    assert b.verify_index("s")
    assert b._cache.stats["rebuilds"] == before + 1
    assert b.describe_collection(collection_id="s").face_count == 330


def test_deleted_and_recreated_collection_is_not_served_from_the_old_index(two, sface_engine):
    a, b, _faces, rng = two
    assert b.verify_index("s")
    a.delete_collection(collection_id="s")
    a.create_collection(collection_id="s")
    r = a._store_prepared("s", synthetic_image(2, sface_engine.model_version, rng))
    got = b.search_faces(collection_id="s", face_id=r.face_records[0].face.face_id, face_match_threshold=0)
    assert ids_of(got) == [r.face_records[1].face.face_id]
