"""Policies in risk terms: a maximum false-match rate, what a threshold means, every broken rule named."""

from __future__ import annotations

import json
import sqlite3

import pytest

from faceaudit import InvalidParameterError
from faceaudit.accountability import (
    Accountability,
    CallerContext,
    PolicyViolationError,
    ThresholdPolicy,
    policy_meaning,
)
from faceaudit.cli import main
from faceaudit.engine import get_model, promised_fmr

ADMIN = CallerContext("AKADMIN", role="admin")
OPERATOR = CallerContext("AKOPER", role="operator", case_reference="case-17")


@pytest.fixture
def acc(tmp_path, database_url):
    return Accountability(tmp_path, database_url=database_url)


def test_a_policy_by_false_match_rate_maps_to_the_threshold_that_promises_it(acc):
    acc.set_policy(ThresholdPolicy("mug", max_false_match_rate=1e-6), ADMIN)
    pol = acc.policy("mug")
    assert pol.max_false_match_rate == 1e-6 and pol.effective_min_threshold == pytest.approx(90.0)
    with pytest.raises(PolicyViolationError, match="at least 90"):
        acc.authorize(OPERATOR, "SearchFacesByImage", "mug", threshold=89.9, max_faces=5)
    acc.authorize(OPERATOR, "SearchFacesByImage", "mug", threshold=90.0, max_faces=5)
    # the stricter of the two rules wins
    acc.set_policy(ThresholdPolicy("mug", min_face_match_threshold=95, max_false_match_rate=1e-6), ADMIN)
    assert acc.policy("mug").effective_min_threshold == 95
    acc.set_policy(ThresholdPolicy("mug", min_face_match_threshold=85, max_false_match_rate=1e-7), ADMIN)
    assert acc.policy("mug").effective_min_threshold == pytest.approx(100.0)
    js = acc.policy("mug").to_json()
    assert js["PromisedFalseMatchRate"] == pytest.approx(promised_fmr(100.0))


@pytest.mark.parametrize("rate", [0.0, 1e-9, 2.0, float("nan"), float("inf")])
def test_out_of_range_false_match_rates_are_refused(acc, rate):
    with pytest.raises(InvalidParameterError, match="MaxFalseMatchRate"):
        acc.set_policy(ThresholdPolicy("mug", max_false_match_rate=rate), ADMIN)


def test_a_refused_search_names_every_rule_it_broke_at_once(acc):
    acc.set_policy(ThresholdPolicy("mug", 99, 10, True, "law-enforcement"), ADMIN)
    with pytest.raises(PolicyViolationError) as err:
        acc.authorize(CallerContext("AKOPER"), "SearchFacesByImage", "mug", threshold=80, max_faces=50)
    msg = err.value.message
    assert "at least 99" in msg and "at most 10" in msg and "case reference" in msg and "3 rules broken" in msg
    (rec,) = [r for r in acc.log.records() if r.kind == "refused"]
    assert rec.data["reason"] == msg


def test_policies_and_databases_from_before_the_scale_keep_loading(tmp_path):
    db = sqlite3.connect(tmp_path / "accountability.db")
    db.executescript("""
        CREATE TABLE policies (collection_id TEXT PRIMARY KEY, min_face_match_threshold REAL,
            max_faces INTEGER, require_case_reference INTEGER NOT NULL DEFAULT 0,
            purpose TEXT NOT NULL DEFAULT '', set_by TEXT NOT NULL, set_at REAL NOT NULL);
        INSERT INTO policies VALUES ('old', 99, 10, 1, 'law-enforcement', 'AKADMIN', 1.0);
    """)
    db.close()
    acc = Accountability(tmp_path)
    pol = acc.policy("old")
    assert pol.min_face_match_threshold == 99 and pol.max_false_match_rate is None
    assert pol.effective_min_threshold == 99
    acc.set_policy(ThresholdPolicy("new", max_false_match_rate=1e-5), ADMIN)
    assert acc.policy("new").effective_min_threshold == pytest.approx(80.0)


def test_policy_meaning_uses_the_model_calibration():
    cal = get_model("sface").calibrated()
    for t in (80.0, 90.0, 99.0):
        m = policy_meaning(t, "sface", 25_000)
        assert m.promised_fmr == pytest.approx(promised_fmr(t))
        assert m.fnmr == cal.fnmr(t).rate and m.fnmr_trials == len(cal.genuine)
        assert m.expected_false_candidates == pytest.approx(25_000 * promised_fmr(t))
        assert any("misses most people" in w for w in m.warnings) == (m.fnmr > 0.5)
    loose = policy_meaning(40.0, get_model("sface").version, 25_000)
    assert any("strangers" in w for w in loose.warnings)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_policy_set_by_rate_prints_what_it_means(tmp_path, capsys):
    d = str(tmp_path)
    code, out, _err = run(capsys, "policy", "set", "mug", "--max-false-match-rate", "1e-6", "--data-dir", d)
    assert code == 0
    assert "minimum threshold 90 (from max false-match rate 1e-06)" in out
    assert "threshold 90 promises a false-match rate of 1e-06" in out
    assert "misses" in out and "expected false candidates per search" in out
    code, out, _ = run(capsys, "policy", "get", "mug", "--data-dir", d, "--json")
    js = json.loads(out)
    assert js["EffectiveMinFaceMatchThreshold"] == pytest.approx(90.0)
    assert js["Meaning"]["Model"] == "sface" and js["Meaning"]["GallerySize"] == 0


def test_cli_law_enforcement_preset_warns_when_the_model_misses_most_people(tmp_path, capsys):
    d = str(tmp_path)
    code, out, err = run(capsys, "policy", "set", "mug", "--min-threshold", "100", "--data-dir", d)
    meaning = policy_meaning(100.0, "sface", 0)
    assert code == 0
    assert ("misses most people" in err) == (meaning.fnmr > 0.5)
    assert f"misses {100 * meaning.fnmr:.1f}% of same-person pairs" in out
