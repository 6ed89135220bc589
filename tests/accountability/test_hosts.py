"""Two hosts, one PostgreSQL database (issue 21): each Accountability has a data dir of its
own and shares the deployment's policies, leads, decisions, keys, probes and secrets."""

from __future__ import annotations

import threading

import pytest

from faceaudit import ConflictError
from faceaudit.accountability import (
    Accountability,
    CallerContext,
    Candidate,
    PolicyViolationError,
    SearchRecord,
    ThresholdPolicy,
)
from faceaudit.accountability._retention import DailyRetention, Retention
from faceaudit.accountability._review import Reviewer
from faceaudit.accountability._review_web import ReviewWeb
from faceaudit.accountability._store import RETENTION_LOCK
from faceaudit.service import KeyStore

ADMIN = CallerContext("AKADMIN", role="admin")
OPERATOR = CallerContext("AKOPER", role="operator", case_reference="case-17", purpose="robbery",
                         person="Olga")


def _crop(face_id: str) -> bytes:
    return b"\xff\xd8 crop of " + face_id.encode()


@pytest.fixture
def hosts(tmp_path, postgres_url):
    a = Accountability(tmp_path / "host-a", face_image=_crop, database_url=postgres_url)
    b = Accountability(tmp_path / "host-b", face_image=_crop, database_url=postgres_url)
    return a, b


def _search(acc, n=1, probe=b"probe-bytes", digest="ab" * 32):
    return acc.record(OPERATOR, SearchRecord(
        "SearchFacesByImage", "mugshots", "v1", 99.0, 10, digest,
        [Candidate(99.5 - i, face_id=f"face-{i}") for i in range(n)]), probe=probe)


def test_policy_set_on_b_refuses_on_a(hosts):
    a, b = hosts
    a.authorize(OPERATOR, "SearchFacesByImage", "mugshots", threshold=80, max_faces=5)  # no policy yet
    b.set_policy(ThresholdPolicy("mugshots", 99, 10, True, "law-enforcement"), ADMIN)
    with pytest.raises(PolicyViolationError, match="at least 99"):
        a.authorize(OPERATOR, "SearchFacesByImage", "mugshots", threshold=80, max_faces=5)
    assert a.policy("mugshots").set_at == b.policy("mugshots").set_at  # (full precision: not REAL)
    assert [r.kind for r in b.log.records()] == ["policy", "refused"]  # one log


def test_lead_from_a_decided_on_b_by_two_reviewers_one_per_host(hosts):
    a, b = hosts
    rec = _search(a)
    leads = b.leads("pending")
    assert [lead.search_seq for lead in leads] == [rec.seq]
    lead_id = leads[0].lead_id
    assert b.probe_path("ab" * 32).read_bytes() == b"probe-bytes"  # the probe came through the database
    assert b.missing_evidence(leads[0]) == ""
    first = b.decide(lead_id, Reviewer("AKALICE", "Alice"), "confirm")
    assert first.status == "pending"
    with pytest.raises(ConflictError, match="already decided"):
        a.decide(lead_id, Reviewer("AKALICE2", "ALICE"), "confirm")  # the same person on the other host
    second = a.decide(lead_id, Reviewer("AKBOB", "Bob"), "confirm")
    assert second.status == "confirmed"
    assert b.reviews.get(lead_id).status == "confirmed" and len(b.reviews.get(lead_id).decisions) == 2
    assert a.log.verify().ok


def test_two_hosts_catching_up_at_once_make_each_lead_once(hosts):
    a, b = hosts
    for i in range(5):
        a.log.append("search", {"access_key_id": "AKOPER", "operation": "SearchFaces", "collection_id": "c",
                                "threshold": 99.0, "candidates": [{"similarity": 99.5, "face_id": f"f{i}"}]})
    made: list[int] = []
    threads = [threading.Thread(target=lambda acc=acc: made.append(acc.reviews.catch_up())) for acc in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(made) == [0, 5]
    assert len(a.leads()) == len(b.leads()) == 5


def test_concurrent_confirmations_on_two_hosts_confirm_once(hosts):
    """Two different people confirming at the same moment on two hosts: both decisions are
    recorded and the lead is confirmed (the lead row is locked: neither reads a stale count)."""
    a, b = hosts
    _search(a)
    lead_id = a.leads()[0].lead_id
    results: list[str] = []
    barrier = threading.Barrier(2)

    def decide(acc, who):
        barrier.wait()
        results.append(acc.decide(lead_id, Reviewer(f"AK{who}", who), "confirm").status)

    threads = [threading.Thread(target=decide, args=(a, "Alice")), threading.Thread(target=decide, args=(b, "Bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["confirmed", "pending"]
    assert a.reviews.get(lead_id).status == "confirmed"


def test_key_created_on_a_authenticates_on_b_and_revoked_on_b_refused_on_a(tmp_path, postgres_url, caplog):
    ka = KeyStore(tmp_path / "host-a", database_url=postgres_url)
    kb = KeyStore(tmp_path / "host-b", database_url=postgres_url)
    key = ka.create("reviewer", "desk 4", person="Alice")
    found = kb.lookup(key.access_key_id)
    assert found is not None and found.active and found.secret == key.secret and found.person == "Alice"
    assert [k.access_key_id for k in kb.list()] == [key.access_key_id]
    kb.revoke(key.access_key_id)
    again = ka.lookup(key.access_key_id)
    assert again is not None and not again.active and again.revoked is not None
    assert not (tmp_path / "host-a" / "access-keys.json").exists()  # no secret on either host's disk
    assert key.secret not in caplog.text


def test_review_session_key_and_sessions_are_shared(hosts):
    a, b = hosts
    assert a.session_signing_key() == b.session_signing_key() and len(a.session_signing_key()) == 32
    session = a.open_session("AKALICE", 600)
    assert b.session_key(session) == "AKALICE"
    web_a, web_b = ReviewWeb(a.data_dir, a, None), ReviewWeb(b.data_dir, b, None)
    assert web_a._sign("session:" + session) == web_b._sign("session:" + session)  # a cookie from a works on b
    assert not (a.data_dir / "review-session.key").exists()
    b.end_session(session)
    assert a.session_key(session) is None


def test_the_service_extension_uses_the_database(tmp_path, postgres_url):
    from faceaudit.accountability import AccountabilityExtension

    KeyStore(tmp_path / "host-a", database_url=postgres_url).create("reviewer", person="Alice")
    ext = AccountabilityExtension(tmp_path / "host-b", database_url=postgres_url)
    assert ext.acc.database_url == postgres_url
    (key,) = ext._key_store().list()
    assert ext._person(key.access_key_id) == "Alice"


def test_retention_deletes_the_probe_for_every_host(hosts):
    a, b = hosts
    _search(a, n=0)
    assert b.probe_path("ab" * 32) is not None
    Retention(a).set(ADMIN, "mugshots", 1)
    report = Retention(a).apply(ADMIN, now=10.0 ** 10)
    assert report.probes == ("ab" * 32,)
    assert b.probe_path("ab" * 32) is None and a.probe_path("ab" * 32) is None
    assert not (b.data_dir / "probes" / "ab" / ("ab" * 32)).exists()  # b's own copy went too


def test_every_host_sweeps_its_copies_of_deleted_probes(hosts):
    a, b = hosts
    _search(a, n=0)
    copy = b.probe_path("ab" * 32)  # (b made a copy: `faceaudit leads show` names it)
    assert copy.read_bytes() == b"probe-bytes" and b.probe_bytes("ab" * 32) == b"probe-bytes"
    a.delete_probe("ab" * 32)  # retention on a
    assert copy.exists() and b.probe_bytes("ab" * 32) is None and not b.has_probe("ab" * 32)
    assert DailyRetention(b.data_dir, database_url=b.database_url).run_once() is not None
    assert not copy.exists()


def test_one_retention_runner_per_deployment(tmp_path, postgres_url):
    import psycopg

    a = DailyRetention(tmp_path / "host-a", database_url=postgres_url)
    b = DailyRetention(tmp_path / "host-b", database_url=postgres_url)
    Accountability(tmp_path / "host-a", database_url=postgres_url)  # (the schema)
    with psycopg.connect(postgres_url, autocommit=True) as other:  # a host applying right now
        other.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK,))
        assert a.run_once() is None
    assert a.run_once() is not None  # the lock is free: a runs ...
    assert b.run_once() is None  # ... and b finds the day's run done


def test_a_manual_retention_run_waits_for_the_other_hosts(hosts, postgres_url):
    import psycopg

    a, _ = hosts
    with psycopg.connect(postgres_url, autocommit=True) as other:  # a host applying right now
        other.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK,))
        with pytest.raises(ConflictError, match="another host"):
            Retention(a).apply(ADMIN)
    assert Retention(a).apply(ADMIN).faces == {}


def test_an_unreachable_database_is_a_503_not_a_traceback(tmp_path):
    from faceaudit._errors import ServiceUnavailableError

    url = "postgresql://nobody@127.0.0.1:1/faceaudit"  # (nothing listens on port 1)
    acc = Accountability(tmp_path / "host", database_url=url)
    with pytest.raises(ServiceUnavailableError, match="cannot be reached"):
        acc.policy("mugshots")
    with pytest.raises(ServiceUnavailableError):
        KeyStore(tmp_path / "host", database_url=url).lookup("FAKIANYTHING")
    assert ServiceUnavailableError.http_status == 503


def test_a_dropped_connection_reconnects(hosts, postgres_url):
    """The server ends a host's sessions (a restart, a failover): reads and writes reconnect by
    themselves; a write transaction cut in the middle is a 503 (rolled back), the next one works."""
    import psycopg

    a, b = hosts
    b.set_policy(ThresholdPolicy("mugshots", 99), ADMIN)
    assert a.policy("mugshots").min_face_match_threshold == 99  # a's connection is open
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert a.policy("mugshots").min_face_match_threshold == 99
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    session = a.open_session("AKALICE", 60)  # a write on a dropped connection: BEGIN again
    assert a.session_key(session) == "AKALICE"
    from faceaudit._errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError), a._store.write() as conn, \
            psycopg.connect(postgres_url, autocommit=True) as admin:
        conn.execute("UPDATE review_sessions SET notice = 'half done' WHERE session_id = ?", (session,))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        conn.execute("UPDATE review_sessions SET ended = 1 WHERE session_id = ?", (session,))
    assert a.take_notice(session) == "" and a.session_key(session) == "AKALICE"  # nothing of it kept


def test_key_lookups_survive_a_dropped_connection(tmp_path, postgres_url):
    import psycopg

    keys = KeyStore(tmp_path / "host-a", database_url=postgres_url)
    key = keys.create("operator")
    assert keys.lookup(key.access_key_id) is not None
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert keys.lookup(key.access_key_id).secret == key.secret


def _host_searches(data_dir: str, url: str, host: str, n: int) -> None:
    acc = Accountability(data_dir, database_url=url)
    ctx = CallerContext(f"AK{host}", case_reference="case-9", person=f"Operator {host}")
    for i in range(n):
        digest = f"{host}{i:03d}".encode().hex().ljust(64, "0")
        acc.record(ctx, SearchRecord("SearchFacesByImage", "mugshots", "v1", 99.0, 10, digest,
                                     [Candidate(99.5, face_id=f"{host}-{i}"), Candidate(99.1, face_id=f"{host}-{i}b")]),
                   probe=digest.encode())


def test_two_host_processes_searching_at_once_make_every_lead_once(tmp_path, postgres_url):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_host_searches, args=(str(tmp_path / f"host-{h}"), postgres_url, h, 15))
             for h in ("A", "B")]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    acc = Accountability(tmp_path / "host-c", database_url=postgres_url)
    leads = acc.leads(limit=1000)
    assert len(leads) == 60 and len({lead.lead_id for lead in leads}) == 60
    assert sorted({lead.candidate_face_id for lead in leads}) == sorted(
        f"{h}-{i}{s}" for h in "AB" for i in range(15) for s in ("", "b"))
    result = acc.log.verify()
    assert result.ok and result.records == 30


def test_the_store_takes_only_postgresql(tmp_path):
    from faceaudit import InvalidParameterError
    from faceaudit.accountability._store import Store

    with pytest.raises(InvalidParameterError, match="PostgreSQL"):
        Store(tmp_path / "accountability.db", f"sqlite:///{tmp_path}/x.db")
