"""A single-host data dir's accountability store and access keys copied into PostgreSQL (issue 21):
every row, the kept probes and the review-session key; the leads follow the PostgreSQL log by seq."""

from __future__ import annotations

import psycopg
import pytest

from faceaudit import ConflictError
from faceaudit.accountability import (
    Accountability,
    CallerContext,
    Candidate,
    Retention,
    SearchLog,
    SearchRecord,
    ThresholdPolicy,
    copy_accountability,
)
from faceaudit.accountability._log import _canonical
from faceaudit.accountability._review import Reviewer
from faceaudit.accountability._review_web import ReviewWeb
from faceaudit.service import KeyStore, copy_keys

ADMIN = CallerContext("AKADMIN", role="admin")
OPERATOR = CallerContext("AKOPER", case_reference="case-1", person="Olga")


def _search(acc, digest, n=2):
    return acc.record(OPERATOR, SearchRecord("SearchFacesByImage", "mugshots", "v1", 99.0, 10, digest,
                                             [Candidate(99.5 - i, face_id=f"face-{i}") for i in range(n)]),
                      probe=digest.encode())


def _copy_log(data_dir, url):
    """What `faceaudit db migrate` does first: the same records into the PostgreSQL log."""
    Accountability(data_dir / "elsewhere", database_url=url).log.head()  # (its tables)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        last = None
        for rec in SearchLog(data_dir / "search-log.jsonl").records():
            conn.execute("INSERT INTO search_log (seq, kind, hash, record) VALUES (%s, %s, %s, %s)",
                         (rec.seq, rec.kind, rec.hash, _canonical(rec.to_json()).decode()))
            last = rec
        conn.execute("UPDATE search_log_head SET seq = %s, hash = %s WHERE id = 1", (last.seq, last.hash))


@pytest.fixture
def single_host(tmp_path):
    d = tmp_path / "data"
    acc = Accountability(d, face_image=lambda face_id: b"crop")
    acc.set_policy(ThresholdPolicy("mugshots", 99, 10), ADMIN)
    Retention(acc).set(ADMIN, "mugshots", 30, legal_hold=True)
    _search(acc, "ab" * 32)
    _search(acc, "cd" * 32, n=1)
    lead = acc.leads("pending")[-1]
    acc.decide(lead.lead_id, Reviewer("AKALICE", "Alice"), "confirm")
    acc.open_session("AKALICE", 600)
    ReviewWeb(d, acc, None)._session_secret()  # (review-session.key)
    keys = KeyStore(d)
    kept, gone = keys.create("reviewer", person="Alice"), keys.create()
    keys.revoke(gone.access_key_id)
    return d, acc, lead, kept


def test_everything_copied_and_leads_follow_the_database_log(single_host, postgres_url):
    d, old, lead, kept = single_host
    _copy_log(d, postgres_url)
    report = copy_accountability(d, postgres_url)
    assert (report.count("policies"), report.count("retention"), report.count("leads"),
            report.count("decisions"), report.count("review_sessions"), report.count("lead_sync")) == (1, 1, 3, 1, 1, 1)
    assert report.probes == 2 and report.session_key
    assert copy_keys(d, postgres_url) == 2

    new = Accountability(d.parent / "host-b", face_image=lambda face_id: b"crop", database_url=postgres_url)
    assert new.policy("mugshots") == old.policy("mugshots")
    assert Retention(new).rules() == Retention(old).rules()
    assert new.leads() == old.leads()  # no lead made twice from the copied log
    assert new.reviews.get(lead.lead_id).decisions == old.reviews.get(lead.lead_id).decisions
    assert new.probe_path("ab" * 32).read_bytes() == ("ab" * 32).encode()
    assert new.session_signing_key() == (d / "review-session.key").read_bytes()
    assert ReviewWeb(d.parent / "host-b", new, None)._sign("x") == ReviewWeb(d, old, None)._sign("x")
    keys = KeyStore(d.parent / "host-b", database_url=postgres_url)
    assert keys.list() == KeyStore(d).list()
    assert keys.lookup(kept.access_key_id).secret == kept.secret

    second = new.decide(lead.lead_id, Reviewer("AKBOB", "Bob"), "confirm")  # a decision on the copy
    assert second.status == "confirmed"
    rec = _search(new, "ef" * 32, n=1)  # a new search: its lead, once
    assert [x.search_seq for x in new.leads("pending")].count(rec.seq) == 1
    assert new.log.verify().ok


def test_a_target_holding_data_is_refused(single_host, postgres_url):
    d, *_ = single_host
    copy_accountability(d, postgres_url)
    with pytest.raises(ConflictError, match="already holds"):
        copy_accountability(d, postgres_url)
    copy_keys(d, postgres_url)
    with pytest.raises(ConflictError, match="already holds"):
        copy_keys(d, postgres_url)
