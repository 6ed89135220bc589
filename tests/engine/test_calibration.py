"""The calibrated Similarity scale: one number, one false-match risk, on every model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from faceaudit import ModelIntegrityError
from faceaudit.engine import get_model, promised_fmr, similarity_for_fmr
from faceaudit.engine._calibration import parse_calibration

MODELS = ("sface", "dlib")


def test_the_promise_is_the_same_formula_everywhere():
    assert promised_fmr(80) == pytest.approx(1e-5)
    assert promised_fmr(90) == pytest.approx(1e-6)
    assert promised_fmr(99) == pytest.approx(10 ** -6.9)
    assert promised_fmr(30) == 1.0 and promised_fmr(0) == 1.0
    for s in (31.0, 55.5, 80.0, 90.0, 99.0, 100.0):
        assert similarity_for_fmr(promised_fmr(s)) == pytest.approx(s)
    for bad in (0.0, -1e-6, 1.5, float("nan")):
        with pytest.raises(ValueError):
            similarity_for_fmr(bad)


@pytest.mark.parametrize("name", MODELS)
def test_anchors_hold_on_the_calibration_data_within_their_intervals(name):
    cal = get_model(name).calibrated()
    checked = 0
    for s in (60.0, 65.0, 70.0, 75.0, 80.0, 84.0):
        if cal.scale.is_extrapolated(s):
            continue
        fmr = cal.fmr(s)
        assert fmr.measured
        # recount from the shipped impostor scores: pairs at or above the threshold's cosine
        cos = cal.scale.to_cosine(s)
        assert cos >= min(cal.impostor_tail)  # inside the shipped scores: an exact recount
        assert fmr.errors == sum(1 for c in cal.impostor_tail if c >= cos)
        lo, hi = fmr.ci95
        assert lo <= promised_fmr(s) <= hi, (s, fmr)
        checked += 1
    assert checked >= 4
    assert cal.fmr(80.0).measured  # 80 (FMR 1e-5) is measured on both models


@pytest.mark.parametrize("name", MODELS)
def test_extrapolated_range_is_marked_and_supported_by_few_false_matches(name):
    cal = get_model(name).calibrated()
    top = cal.scale.measured_up_to
    assert 80.0 <= top < 100.0
    above = cal.fmr(min(100.0, top + 2.0))
    assert not above.measured and above.errors < cal.raw["data"]["min_false_matches"]
    fit = cal.raw["scale"]["tail_fit"]
    assert fit["scale"] > 0 and 0 <= fit["ks_statistic"] <= 1
    knots = cal.raw["scale"]["knots"]
    assert all(k["extrapolated"] == (k["similarity"] > top + 1e-9) for k in knots)


@pytest.mark.parametrize("name", MODELS)
def test_scale_versions_differ_per_model_and_name_the_definition(name):
    version = get_model(name).scale.version
    assert version.startswith(f"fmr1-{name}-")
    others = {get_model(m).scale.version for m in MODELS if m != name}
    assert version not in others


def test_vectorised_equals_scalar():
    scale = get_model("sface").scale
    cos = np.linspace(-1, 1, 4001)
    assert np.array_equal(scale.to_similarity_array(cos), np.array([scale.to_similarity(c) for c in cos]))


def test_fnmr_counts_genuine_pairs_below_the_threshold():
    cal = get_model("sface").calibrated()
    for s in (80.0, 90.0, 99.0):
        cos = cal.scale.to_cosine(s)
        r = cal.fnmr(s)
        assert r.errors == sum(1 for g in cal.genuine if g < cos) and r.trials == len(cal.genuine)
    assert cal.fnmr(80.0).rate <= cal.fnmr(90.0).rate <= cal.fnmr(99.0).rate


def test_a_tampered_calibration_file_is_refused():
    from importlib import resources

    text = resources.files("faceaudit.engine").joinpath("calibration", "sface.json").read_text("utf-8")
    good = get_model("sface").calibration_sha256
    assert parse_calibration(text, expected_sha256=good, source="x").model == "sface"
    raw = json.loads(text)
    raw["scale"]["knots"][5]["similarity"] += 1
    with pytest.raises(ModelIntegrityError, match="hash check"):
        parse_calibration(json.dumps(raw), expected_sha256=good, source="x")
    raw["scale"]["knots"][6]["similarity"] = raw["scale"]["knots"][4]["similarity"]
    with pytest.raises(ModelIntegrityError, match="strictly increasing"):
        parse_calibration(json.dumps(raw), expected_sha256=None, source="x")
    with pytest.raises(ModelIntegrityError, match="malformed"):
        parse_calibration("{}", expected_sha256=None, source="x")


@pytest.mark.parametrize("name", MODELS)
def test_the_model_own_threshold_is_far_below_80(name):
    # the published operating points were made for 1:1 checks; as a 1:N threshold they are lax
    spec = get_model(name)
    assert spec.recommended_similarity < 80.0
    assert math.isclose(spec.scale.to_similarity(spec.recommended_cosine), spec.recommended_similarity, abs_tol=0.01)
