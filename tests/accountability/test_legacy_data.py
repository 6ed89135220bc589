"""A data dir written by faceaudit 0.1 before the calibrated scale (tests/data/legacy-0.1) keeps working."""

from __future__ import annotations

import os
import shutil

import pytest

from faceaudit.accountability import Accountability, CallerContext, Candidate, PolicyViolationError, SearchRecord
from tests.conftest import DATA


@pytest.fixture
def legacy(tmp_path):
    d = tmp_path / "data"
    shutil.copytree(DATA / "legacy-0.1", d)
    os.chmod(d, 0o700)
    for f in d.iterdir():
        os.chmod(f, 0o600)
    return d


def test_old_log_verifies_and_grows_with_the_scale_version(legacy):
    acc = Accountability(legacy)
    before = acc.log.verify()
    assert before.ok and before.records == 3
    old = list(acc.log.records())
    assert "similarity_scale" not in old[-1].data  # written before the scale had versions
    ctx = CallerContext("AKOPER", role="operator", case_reference="case-2")
    acc.record(ctx, SearchRecord("SearchFacesByImage", "mug", "yunet-2023mar-int8bq+sface-2021dec-int8bq",
                                 96.0, 5, "cd" * 32, (Candidate(99.0, "f2", "x2"),), 2.0))
    after = acc.log.verify()
    assert after.ok and after.records >= 4
    new = [r for r in acc.log.records() if r.kind == "search"][-1]
    assert new.data["similarity_scale"].startswith("fmr1-sface-")


def test_old_policy_keeps_its_number(legacy):
    acc = Accountability(legacy)
    pol = acc.policy("mug")
    assert pol.min_face_match_threshold == 95 and pol.max_false_match_rate is None
    with pytest.raises(PolicyViolationError, match="at least 95"):
        acc.authorize(CallerContext("AKOPER", case_reference="c"), "SearchFacesByImage", "mug", 90, 5)
