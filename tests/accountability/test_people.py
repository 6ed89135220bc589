"""Issue 22 L2: person names compare NFKC-normalised and case-folded, so a key whose person differs
only by letter case (or by fullwidth letters) is the same person: not a second reviewer, and not a
reviewer of their own search."""

import pytest

from faceaudit import AccessDeniedError, ConflictError
from faceaudit.accountability import Accountability, CallerContext, Candidate, SearchRecord
from faceaudit.accountability._review import Reviewer, same_person


def _lead(acc, person="Oscar"):
    ctx = CallerContext("AKOPER", person=person, case_reference="c-1")
    acc.record(ctx, SearchRecord("SearchFacesByImage", "mugshots", "sface", 99.0, 5, "ab" * 32,
                                 (Candidate(99.5, face_id="f-1"),)), probe=b"probe")
    return acc.leads()[0]


@pytest.fixture
def acc(tmp_path, database_url):
    return Accountability(tmp_path, face_image=lambda face_id: b"\xff\xd8 crop", database_url=database_url)


def test_names_differing_only_by_case_or_width_are_one_person():
    assert same_person("Alice Smith", "ALICE  smith") and same_person("alice", "ａｌｉｃｅ")
    assert not same_person("alice", "alicia") and not same_person("", "")


def test_a_case_variant_is_not_a_second_reviewer(acc):
    lead = _lead(acc)
    acc.decide(lead.lead_id, Reviewer("AK1", "Alice"), "confirm")
    with pytest.raises(ConflictError, match="different person"):
        acc.decide(lead.lead_id, Reviewer("AK2", "ALICE"), "confirm")
    assert acc.reviews.get(lead.lead_id).status == "pending"


def test_the_searcher_under_another_spelling_cannot_review(acc):
    lead = _lead(acc, person="Oscar")
    with pytest.raises(AccessDeniedError, match="ran the search"):
        acc.decide(lead.lead_id, Reviewer("AK3", "oscar"), "confirm")
