"""The calibrated Similarity scale: one number, one false-match risk, on every model."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from faceaudit import InvalidParameterError, ModelIntegrityError
from faceaudit.engine import get_model, promised_fmr, similarity_for_fmr
from faceaudit.engine._calibration import SimilarityScale, fmr_upper_bound, parse_calibration

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
        # built from the 95% upper bound: the count sits below the promise, its bound at or under it
        assert fmr.rate < promised_fmr(s), (s, fmr)
        assert fmr_upper_bound(fmr.errors, fmr.trials) <= promised_fmr(s) * (1 + 1e-6), (s, fmr)
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


def test_fmr_upper_bound_is_the_exact_one_sided_clopper_pearson_bound():
    n = 3_000_000
    assert fmr_upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-6)  # the "rule of three"
    assert fmr_upper_bound(0, n) * n == pytest.approx(3.0, rel=0.01)
    assert fmr_upper_bound(n, n) == 1.0
    bounds = [fmr_upper_bound(k, n) for k in (0, 1, 10, 31, 1000)]
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert all(b > k / n for b, k in zip(bounds, (0, 1, 10, 31, 1000), strict=True))
    assert fmr_upper_bound(31, n) * n == pytest.approx(41.8, abs=0.1)  # 31 counted: up to ~42 at 95%
    for bad in ((-1, 10), (11, 10), (0, 0)):
        with pytest.raises(ValueError):
            fmr_upper_bound(*bad)


def test_a_scale_top_rises_toward_100_without_reaching_it():
    scale = SimilarityScale((-1.0, 0.0, 0.5), (0.0, 30.0, 99.0), "v", measured_up_to=80.0, top_width=0.1)
    assert scale.to_similarity(0.5) == pytest.approx(99.0)
    assert scale.to_similarity(0.6) == pytest.approx(99.0 + (1 - math.exp(-1.0)))
    cos = np.linspace(0.5, 1.0, 501)
    sims = scale.to_similarity_array(cos)
    assert np.all(np.diff(sims) > 0) and sims[-1] < 100.0
    for s in (99.0, 99.3, 99.9, 99.99):
        assert scale.to_similarity(scale.to_cosine(s)) == pytest.approx(s, abs=1e-9)
    assert scale.to_cosine(100.0) > 1.0 and scale.to_similarity(scale.to_cosine(100.0)) == 100.0
    assert SimilarityScale((-1.0, 1.0), (0.0, 100.0), "v", 80.0).to_similarity(2.0) == 100.0  # no top: clipped
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ModelIntegrityError):
            SimilarityScale((-1.0, 0.5), (0.0, 99.0), "v", 80.0, top_width=bad)


@pytest.mark.parametrize("name", MODELS)
def test_the_calibration_data_hold_every_promise_with_margin(name):
    cal = get_model(name).calibrated()
    n = cal.impostor_pairs
    tail = np.asarray(cal.impostor_tail)
    # measured range: at every threshold the exact 95% bound of the recount is within the promise
    for s in np.arange(60.0, cal.scale.measured_up_to, 0.1):
        count = int(np.count_nonzero(tail >= cal.scale.to_cosine(s)))
        assert fmr_upper_bound(count, n) <= promised_fmr(s) * (1 + 1e-6), (s, count)
    # at 80, 90 and 99: estimate < bound <= promise, and the counted false matches below the promise
    for s in (80.0, 90.0, 99.0):
        fmr = cal.fmr(s)
        assert fmr.rate < cal.fmr_bound(s) <= promised_fmr(s) * (1 + 1e-6), (s, fmr)
        assert fmr.errors < promised_fmr(s) * n
    # one more stranger pair at 80 (a mislabelled photo) still keeps the count under the promise
    assert cal.fmr(80.0).errors + 1 < promised_fmr(80.0) * n


@pytest.mark.parametrize("name", MODELS)
def test_the_top_end_ranks_matches_above_99(name):
    cal = get_model(name).calibrated()
    scale = cal.scale
    c99 = scale.to_cosine(99.0)
    assert scale.cosines[-1] == pytest.approx(c99) and scale.top_width is not None
    top = np.array(sorted({c for c in cal.genuine if c > c99}))
    assert len(top) > 50  # most mates score above 99 on official portraits
    sims = scale.to_similarity_array(top)
    assert np.all(np.diff(sims) > 0) and sims.max() < 100.0  # stronger matches score higher
    shown = np.round(sims, 4)  # as the audit and the API round them: nearly every mate its own value
    assert len(set(shown)) >= 0.85 * len(top) and shown.max() < 100.0
    assert scale.to_similarity(1.0) == pytest.approx(99.9, abs=1e-3)
    # never steeper than the extrapolated line at 99: the top promises no less than the line would
    line = (scale.similarities[-1] - scale.similarities[-2]) / (scale.cosines[-1] - scale.cosines[-2])
    assert 1.0 / scale.top_width <= line * (1 + 1e-6)
    assert cal.raw["scale"]["top"]["width"] == scale.top_width


# -- per quality band (issue 19 item 3) -------------------------------------------------------------

BANDED = ("sface", "dlib")  # models whose shipped calibration carries the per-band figures


@pytest.mark.parametrize("name", BANDED)
def test_per_band_figures_are_present_and_their_counts_add_up(name):
    from faceaudit.engine import QUALITY_BANDS

    cal = get_model(name).calibrated()
    section = cal.raw["quality_bands"]
    assert cal.bands and [b.band for b in cal.bands] == [b.name for b in QUALITY_BANDS if cal.by_band(b)]
    n_imp = section["impostor_images"]
    conditions = {c["name"]: c for c in section["conditions"]}
    assert "clean" in conditions and len(conditions) >= 5
    for b, raw in zip(cal.bands, section["bands"], strict=True):
        assert b.probes == sum(n for _, n in b.conditions) == sum(p.probes for p in b.by_condition) > 0
        assert b.condition is None and all(p.condition and p.band == b.band for p in b.by_condition)
        for i, r in enumerate(b.rates):  # the typed per-condition figures add up to the pooled ones
            assert r.fnmr.errors == sum(p.rates[i].fnmr.errors for p in b.by_condition)
            assert r.fmr.trials == sum(p.rates[i].fmr.trials for p in b.by_condition)
        assert 0 <= b.failed_to_enrol <= b.probes
        assert b.genuine_pairs <= b.probes - b.failed_to_enrol
        assert b.impostor_pairs == (b.probes - b.failed_to_enrol) * n_imp  # every enrolled probe x strangers
        eyes = raw["eye_distance_px"]
        band = next(q for q in QUALITY_BANDS if q.name == b.band)
        # (rounded to 0.01 px: a probe 29.999 px apart reads 30.0 in the small band)
        assert band.low <= eyes["min"] <= eyes["max"] and (band.high is None or eyes["max"] <= band.high)
        assert [r.similarity for r in b.rates] == [80.0, 90.0, 99.0]
        for r in b.rates:
            assert r.fnmr.trials == b.genuine_pairs and 0 <= r.fnmr.errors <= r.fnmr.trials
            assert r.fmr.trials == b.impostor_pairs and r.fmr.errors <= r.fmr.trials
            assert r.fmr.ci95[0] <= r.fmr.rate <= r.fmr.ci95[1]
            assert r.fmr_bound95 >= r.fmr.rate and r.fmr_bound95 == pytest.approx(
                fmr_upper_bound(r.fmr.errors, r.fmr.trials))
        # a higher threshold misses more mates and admits fewer strangers
        assert b.fnmr(80).errors <= b.fnmr(90).errors <= b.fnmr(99).errors
        assert b.fmr(80).errors >= b.fmr(90).errors >= b.fmr(99).errors
        # the pooled counts are the sum of the per-condition ones
        for i, t in enumerate(raw["thresholds"]):
            for kind in ("fnmr", "fmr"):
                assert t[kind]["errors"] == sum(c["thresholds"][i][kind]["errors"] for c in raw["by_condition"])
                assert t[kind]["trials"] == sum(c["thresholds"][i][kind]["trials"] for c in raw["by_condition"])
    # per condition: every probe is in one band or had no face on the original
    for name_c, c in conditions.items():
        placed = sum(n for b in cal.bands for cn, n in b.conditions if cn == name_c)
        assert placed + c["no_face_on_original"] == c["probes"]
    # the clean portraits miss fewer mates at 80 than the worst band measured
    assert cal.by_band("portrait").fnmr(80).rate <= cal.bands[-1].fnmr(80).rate


@pytest.mark.parametrize("name", BANDED)
def test_below_the_lowest_measured_band_nothing_is_claimed(name):
    from faceaudit.engine import QUALITY_BANDS

    cal = get_model(name).calibrated()
    lowest = cal.measured_down_to
    assert lowest is not None and lowest.name == cal.raw["quality_bands"]["measured_down_to"]
    names = [b.name for b in QUALITY_BANDS]
    for below in names[names.index(lowest.name) + 1:]:
        assert cal.by_band(below) is None and below in cal.raw["quality_bands"]["not_measured"]
    assert cal.by_band("below-measured") is None  # the band named for it stays without figures
    with pytest.raises(InvalidParameterError, match="unknown quality band"):
        cal.by_band("blurry")
    with pytest.raises(InvalidParameterError, match="measured at Similarity"):
        cal.by_band(QUALITY_BANDS[0]).fnmr(85)


@pytest.mark.parametrize("name", MODELS)
def test_the_scale_version_does_not_depend_on_band_data(name):
    from importlib import resources

    from faceaudit.engine._calibration import scale_version

    text = resources.files("faceaudit.engine").joinpath("calibration", f"{name}.json").read_text("utf-8")
    cal = parse_calibration(text, expected_sha256=get_model(name).calibration_sha256, source="x")
    # the version is the hash of the knots and the top alone
    assert cal.scale.version == scale_version(name, cal.scale.cosines, cal.scale.similarities, cal.scale.top_width)
    raw = json.loads(text)
    raw.pop("quality_bands", None)  # a calibration without the band figures: the same scale, no bands
    bare = parse_calibration(json.dumps(raw), expected_sha256=None, source="x")
    assert bare.scale == cal.scale and bare.bands == () and bare.measured_down_to is None
    assert bare.by_band("portrait") is None
