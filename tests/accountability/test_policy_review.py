import pytest

from faceaudit import AccessDeniedError, ConflictError, InvalidParameterError, ResourceNotFoundError
from faceaudit.accountability import (
    Accountability,
    CallerContext,
    Candidate,
    PolicyViolationError,
    SearchRecord,
    ThresholdPolicy,
)

ADMIN = CallerContext("AKADMIN", role="admin")
OPERATOR = CallerContext("AKOPER", role="operator", case_reference="case-17", purpose="robbery")


@pytest.fixture
def acc(tmp_path, database_url):
    return Accountability(tmp_path, face_image=lambda face_id: b"\xff\xd8 crop of " + face_id.encode(),
                          database_url=database_url)


def test_operator_cannot_set_policy(acc):
    with pytest.raises(AccessDeniedError):
        acc.set_policy(ThresholdPolicy("mugshots", min_face_match_threshold=99), OPERATOR)
    assert acc.policy("mugshots").min_face_match_threshold is None


def test_policy_refuses_low_threshold_and_logs_refusal(acc):
    acc.set_policy(ThresholdPolicy("mugshots", 99, 10, True, "law-enforcement"), ADMIN)
    with pytest.raises(PolicyViolationError, match="at least 99"):
        acc.authorize(OPERATOR, "SearchFacesByImage", "mugshots", threshold=80, max_faces=5)
    with pytest.raises(PolicyViolationError, match="at most 10"):
        acc.authorize(OPERATOR, "SearchFacesByImage", "mugshots", threshold=99, max_faces=50)
    with pytest.raises(PolicyViolationError, match="case reference"):
        acc.authorize(CallerContext("AKOPER"), "SearchFaces", "mugshots", threshold=99, max_faces=5)
    acc.authorize(OPERATOR, "SearchFacesByImage", "mugshots", threshold=99.5, max_faces=5)
    kinds = [r.kind for r in acc.log.records()]
    assert kinds == ["policy", "refused", "refused", "refused"]
    refused = list(acc.log.records())[1].data
    assert refused["threshold"] == 80 and refused["access_key_id"] == "AKOPER"
    assert PolicyViolationError.aws_code == "AccessDeniedException"


def test_policy_ranges(acc):
    with pytest.raises(InvalidParameterError):
        acc.set_policy(ThresholdPolicy("c", min_face_match_threshold=120), ADMIN)


def _search(acc, n=2):
    rec = acc.record(OPERATOR, SearchRecord(
        "SearchFacesByImage", "mugshots", "v1", 99.0, 10, "ab" * 32,
        [Candidate(99.5 - i, face_id=f"face-{i}") for i in range(n)],
    ), probe=b"probe-bytes")
    return rec


def test_search_logged_with_candidates_and_leads(acc):
    rec = _search(acc)
    assert rec.data["candidates"][0] == {"similarity": 99.5, "face_id": "face-0"}
    assert rec.data["case_reference"] == "case-17"
    leads = acc.leads("pending")
    assert len(leads) == 2 and {lead.search_seq for lead in leads} == {rec.seq}
    assert acc.probe_path("ab" * 32).read_bytes() == b"probe-bytes"


def test_lead_needs_two_distinct_reviewers(acc):
    _search(acc, 1)
    lead = acc.leads()[0]
    after_one = acc.decide(lead.lead_id, "alice", "confirm")
    assert after_one.status == "pending"
    with pytest.raises(ConflictError, match="different person"):
        acc.decide(lead.lead_id, "alice", "confirm")
    after_two = acc.decide(lead.lead_id, "bob", "confirm", "matches tattoo in case file")
    assert after_two.status == "confirmed"
    assert [d.reviewer for d in after_two.decisions] == ["alice", "bob"]
    with pytest.raises(ConflictError):
        acc.decide(lead.lead_id, "carol", "reject")
    reviews = [r for r in acc.log.records() if r.kind == "review"]
    assert [r.data["status_after"] for r in reviews] == ["pending", "confirmed"]
    assert acc.log.verify().ok


def test_one_rejection_rejects(acc):
    _search(acc, 1)
    lead = acc.leads()[0]
    acc.decide(lead.lead_id, "alice", "confirm")
    assert acc.decide(lead.lead_id, "bob", "reject").status == "rejected"


def test_review_bad_input(acc):
    _search(acc, 1)
    lead = acc.leads()[0]
    with pytest.raises(InvalidParameterError):
        acc.decide(lead.lead_id, "alice", "maybe")
    with pytest.raises(InvalidParameterError):
        acc.decide(lead.lead_id, "  ", "confirm")
    with pytest.raises(ResourceNotFoundError):
        acc.decide("no-such-lead", "alice", "confirm")
    with pytest.raises(InvalidParameterError):
        acc.leads("weird")


def test_same_probe_kept_concurrently_by_many_threads(acc):
    import hashlib
    import os
    import threading

    data = b"probe-bytes" * 1000
    digest = hashlib.sha256(data).hexdigest()
    errors = []

    def keep():
        try:
            for _ in range(20):
                acc._keep_probe(digest, data)
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=keep) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    path = acc.probe_path(digest)
    assert path.read_bytes() == data and os.stat(path).st_mode & 0o077 == 0
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temporary files left


def test_review_page_says_what_the_threshold_promises_and_what_was_measured():
    from faceaudit.accountability._review_page import measured_fmr
    from faceaudit.engine import get_model

    cal = get_model("sface").calibrated()
    at_80 = cal.fmr(80.0)
    text = measured_fmr("sface", 80.0)
    assert text.startswith("Similarity 80 promises a false-match rate of 0.001% per comparison (1 in 100,000)")
    assert f"{at_80.errors} false match" in text and "measured for this model" in text
    assert "extrapolated" in measured_fmr(get_model("sface").version, 99.0)
    assert measured_fmr("no-such-model", 90).endswith("this model has no calibration")


@pytest.mark.parametrize("error, code", [(ResourceNotFoundError("no such collection"), "ResourceNotFoundException"),
                                         (RuntimeError("bug"), "InternalServerError")])
def test_failed_search_is_logged_whatever_the_error(acc, error, code):
    from faceaudit.accountability import guarded

    def boom():
        raise error

    with pytest.raises(type(error)):
        guarded(acc, OPERATOR, operation="SearchFacesByImage", collection_id="c", threshold=80, max_faces=5,
                model_version="v", probe=b"img", call=boom, candidates=lambda r: ())
    (rec,) = [r for r in acc.log.records() if r.kind == "failed"]
    assert rec.data["error"] == code and rec.data["case_reference"] == "case-17"


def test_a_crash_between_log_and_leads_loses_no_lead(acc):
    """Finding 8: kill -9 after the log append and before the lead insert left a search without leads."""
    data = {**Accountability._who(OPERATOR), "operation": "SearchFacesByImage", "collection_id": "mugshots",
            "model_version": "v1", "threshold": 90.0, "max_faces": 5, "probe_sha256": "cd" * 32,
            "candidates": [{"similarity": 97.0, "face_id": "f-1"}, {"similarity": 93.0, "face_id": "f-2"}]}
    rec = acc.log.append("search", data)  # the process dies here, before any lead is made
    leads = Accountability(acc.data_dir, database_url=acc.database_url).leads("pending")  # the next process
    assert [(lead.search_seq, lead.rank, lead.candidate_face_id) for lead in leads] == [
        (rec.seq, 1, "f-1"), (rec.seq, 2, "f-2")]
    assert len(acc.leads("pending")) == 2  # made once, whoever catches up


def test_leads_made_before_the_upgrade_are_not_made_again(acc):
    _search(acc, 2)
    with acc._store.write() as conn:  # a database from before leads were made from the log
        conn.execute("DELETE FROM lead_sync")
        conn.execute("UPDATE leads SET lead_id = 'old-' || lead_id")
    assert len(Accountability(acc.data_dir, database_url=acc.database_url).leads("pending")) == 2
    _search(acc, 1)
    assert len(acc.leads("pending")) == 3
