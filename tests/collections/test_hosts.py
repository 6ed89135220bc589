"""Several hosts on one PostgreSQL database (issue 21): each keeps its own data dir and in-memory
index, the database is the one truth, and every host's index follows the change log."""

import threading

import numpy as np
import psycopg
import pytest

from faceaudit import ServiceUnavailableError
from faceaudit.collections import FaceCollections
from tests.collections.conftest import synthetic_image
from tests.conftest import portrait_2014, portrait_2018


@pytest.fixture
def hosts(tmp_path, sface_engine, postgres_url):
    """Two FaceCollections with separate data dirs on one PostgreSQL database (two hosts)."""
    a = FaceCollections(tmp_path / "a", engines={"sface": sface_engine}, database_url=postgres_url)
    b = FaceCollections(tmp_path / "b", engines={"sface": sface_engine}, database_url=postgres_url)
    yield a, b
    a.close()
    b.close()


def _ids(result):
    return [m.face.face_id for m in result.face_matches]


def test_a_face_indexed_on_one_host_is_found_and_deleted_on_the_other(hosts):
    a, b = hosts
    a.create_collection(collection_id="c")
    assert b.describe_collection(collection_id="c").face_count == 0
    assert b.search_faces_by_image(collection_id="c", image=portrait_2018("C000141").read_bytes()).face_matches == ()
    face = a.index_faces(collection_id="c", image=portrait_2014("C000141").read_bytes(),
                         external_image_id="C000141").face_records[0].face.face_id
    a.index_faces(collection_id="c", image=portrait_2014("C000127").read_bytes(), external_image_id="C000127")
    found = b.search_faces_by_image(collection_id="c", image=portrait_2018("C000141").read_bytes())
    assert _ids(found)[0] == face
    assert b.describe_collection(collection_id="c").face_count == 2
    a.delete_faces(collection_id="c", face_ids=[face])
    found = b.search_faces_by_image(collection_id="c", image=portrait_2018("C000141").read_bytes())
    assert face not in _ids(found)
    assert b.verify_index("c") and a.verify_index("c")
    # a pagination token made on one host is good on the other (one shared secret)
    for n in ("d", "e"):
        b.create_collection(collection_id=n)
    token = a.list_collections(max_results=1).next_token
    assert b.list_collections(next_token=token).collection_ids == ("d", "e")


def test_idempotent_writes_are_shared_by_the_hosts(hosts):
    a, b = hosts
    a.create_collection(collection_id="c")
    first = a.create_user(collection_id="c", user_id="u1", client_request_token="tok-1")
    again = b.create_user(collection_id="c", user_id="u1", client_request_token="tok-1")
    assert again.to_rekognition() == first.to_rekognition()
    assert b.describe_collection(collection_id="c").user_count == 1


@pytest.mark.parametrize("kind", ["flat", "hnsw", "fastscan"])
def test_concurrent_writers_on_two_hosts_leave_no_gap_a_third_host_misses(tmp_path, sface_engine, postgres_url,
                                                                        kind):
    hosts = [FaceCollections(tmp_path / f"h{i}", engines={"sface": sface_engine}, database_url=postgres_url)
             for i in range(3)]
    a, b, watcher = hosts
    a.create_collection(collection_id="c", tags={"faceaudit:index": kind})
    assert watcher.verify_index("c")  # the watcher's index exists before the writes
    rebuilds = watcher._cache.stats["rebuilds"]
    per_thread, faces_per_image = 12, 3
    results: list[list[str]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write(host: FaceCollections, seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine: list[str] = []
        try:
            for _ in range(per_thread):
                r = host._store_prepared("c", synthetic_image(faces_per_image, sface_engine.model_version, rng))
                mine += [x.face.face_id for x in r.face_records]
        except BaseException as exc:  # reported below
            errors.append(exc)
        results.append(mine)

    threads = [threading.Thread(target=write, args=(h, i)) for i, h in enumerate((a, b, a, b))]
    for t in threads:
        t.start()
    syncs = 0
    while any(t.is_alive() for t in threads) or not done.is_set():
        if not any(t.is_alive() for t in threads):
            done.set()  # one more sync after the last write
        rng = np.random.default_rng(syncs)
        probe = rng.standard_normal((1, 128)).astype(np.float32)
        with watcher._store.read() as conn:  # catch up from the change log, as a search does
            conn, coll = watcher._store.require_collection(conn, "c")
            with watcher._cache.lock(coll.rowid):
                index = watcher._cache.synced(conn, coll)
                assert index.count == coll.face_count
                index.search(probe, 1, -1.0)
        syncs += 1
    for t in threads:
        t.join()
    assert not errors
    made = [f for r in results for f in r]
    assert len(made) == len(set(made)) == 4 * per_thread * faces_per_image  # unique FaceIds
    assert watcher.describe_collection(collection_id="c").face_count == len(made)
    assert watcher.verify_index("c")
    # the watcher followed by replaying the log only: a skipped entry would have been a count
    # mismatch, i.e. a rebuild
    assert watcher._cache.stats["rebuilds"] == rebuilds
    assert watcher._cache.stats["catch_ups"] >= 1
    with psycopg.connect(postgres_url) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM face_log ORDER BY seq")]
        head = conn.execute("SELECT head_seq FROM collections WHERE name = 'c'").fetchone()[0]
    assert len(seqs) == len(made) and head == seqs[-1]
    for h in hosts:
        h.close()


def test_a_restarted_host_rebuilds_from_the_database(tmp_path, sface_engine, postgres_url):
    a = FaceCollections(tmp_path / "a", engines={"sface": sface_engine}, database_url=postgres_url)
    a.create_collection(collection_id="c")
    rng = np.random.default_rng(1)
    a._store_prepared("c", synthetic_image(20, sface_engine.model_version, rng))
    b = FaceCollections(tmp_path / "b", engines={"sface": sface_engine}, database_url=postgres_url)
    assert b.verify_index("c")
    b.close()
    a._store_prepared("c", synthetic_image(5, sface_engine.model_version, rng))
    again = FaceCollections(tmp_path / "b", engines={"sface": sface_engine}, database_url=postgres_url)
    assert again.verify_index("c") and again.describe_collection(collection_id="c").face_count == 25


def test_a_lost_connection_is_reopened_and_an_unreachable_server_is_a_503(tmp_path, sface_engine, postgres_url,
                                                                          postgres_server):
    a = FaceCollections(tmp_path / "a", engines={"sface": sface_engine}, database_url=postgres_url)
    a.create_collection(collection_id="c")
    database = postgres_url.rsplit("/", 1)[1]

    def drop_sessions() -> int:  # the server ends every session of the test's database
        with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
            return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = %s", (database,)).fetchall())

    assert drop_sessions()
    a.create_collection(collection_id="d")  # the dead connection is replaced at BEGIN
    assert a.list_collections().collection_ids == ("c", "d")
    with pytest.raises(ServiceUnavailableError), a._store.write() as conn:  # lost during a request: 503
        assert drop_sessions()
        conn.execute("SELECT 1")
    assert a.list_collections().collection_ids == ("c", "d")  # and the next call works again
    nowhere = FaceCollections(tmp_path / "n", database_url="postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(ServiceUnavailableError) as info:
        nowhere.list_collections()
    assert info.value.http_status == 503


def test_writers_on_two_hosts_take_turns(hosts, postgres_url):
    """A write transaction holds the store's lock (as SQLite's BEGIN IMMEDIATE): another host's
    write waits for its COMMIT, then sees what it wrote."""
    from faceaudit import ResourceAlreadyExistsError
    from faceaudit.engine import get_model
    from tests.conftest import wait_until

    a, b = hosts
    spec = get_model("sface")
    outcome: list[BaseException] = []

    def other_host() -> None:
        try:
            b.create_collection(collection_id="c")
        except BaseException as exc:  # expected: the collection exists by then
            outcome.append(exc)

    database = postgres_url.rsplit("/", 1)[1]
    thread = threading.Thread(target=other_host)
    with a._store.write(create=True) as conn:
        thread.start()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            wait_until(lambda: admin.execute(
                "SELECT 1 FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND s.datname = %s", (database,)).fetchone(),
                "the other host's write waiting for the lock")
        a._store.insert_collection(conn, "c", spec.name, spec.version, spec.dimension, {})
    thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], ResourceAlreadyExistsError)
