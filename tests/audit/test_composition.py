"""The composition test, the match-count operating point, who-to-whom tables and the scale's promise,
on the hand-built case of test_metrics (six searches, five gallery faces, candidates chosen by hand).

At 80: searches with a false candidate are A (F), C (M), D (M) and F (no sex label).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from faceaudit import InvalidParameterError
from faceaudit._stats import fisher_exact_two_sided
from faceaudit.audit import AuditConfig, Rate, ShareSpec
from faceaudit.audit._metrics import compute
from faceaudit.audit._promise import gap
from faceaudit.audit._scoring import match_count_thresholds
from faceaudit.engine import promised_fmr
from tests.audit.test_metrics import make_design, make_outcomes


def test_share_spec_parse_keeps_semicolons_and_names():
    s = ShareSpec.parse("race=black,hispanic,black;asian_pacific", "people of color")
    assert (s.column, s.values, s.label) == ("race", ("black", "hispanic", "black;asian_pacific"), "people of color")
    assert ShareSpec.parse("sex=F").label == "sex in {F}"
    for bad in ("race", "=a,b", "race=", "race=unknown"):
        with pytest.raises(InvalidParameterError):
            ShareSpec.parse(bad)


def test_fisher_exact_against_reference_values():
    # R: fisher.test(matrix(c(3,1,1,3),2))$p.value = 0.4857; fisher.test(matrix(c(1,11,9,3),2)) = 0.002759
    assert fisher_exact_two_sided(3, 1, 1, 3) == pytest.approx(0.485714, abs=1e-6)
    assert fisher_exact_two_sided(1, 9, 11, 3) == pytest.approx(0.0027594, abs=1e-6)
    assert fisher_exact_two_sided(0, 0, 0, 0) == 1.0
    # the p-value sums the hypergeometric probabilities no larger than the observed table's
    assert fisher_exact_two_sided(5, 0, 0, 5) == pytest.approx(2 / 252)


def _parts(tmp_path, **cfg):
    design = make_design(tmp_path, **cfg)
    return design, compute(design, make_outcomes(design), 80.0)


def test_share_test_by_hand(tmp_path):
    _design, parts = _parts(tmp_path, shares=(ShareSpec.parse("sex=F", "women"),), bootstrap=300)
    st = next(s for s in parts.share_tests if s.threshold == 80.0)
    # five searches carry a sex label (F has none): A, B, E are F; C, D are M
    assert (st.everyone.errors, st.everyone.trials) == (3, 5) and st.unknown == 1
    # with a false candidate at 80 and a label: A (F), C (M), D (M)
    assert (st.matched.errors, st.matched.trials) == (1, 3)
    assert st.ratio == pytest.approx((1 / 3) / (3 / 5)) and st.difference == pytest.approx(1 / 3 - 3 / 5)
    assert (st.rate_in_set.errors, st.rate_in_set.trials) == (1, 3)
    assert (st.rate_outside.errors, st.rate_outside.trials) == (2, 2)
    assert st.p_value == pytest.approx(fisher_exact_two_sided(1, 2, 2, 0))
    assert st.labels_outside == ("M",) and st.labels_absent == ()
    # 3 matched searches of 5 people: more than 1% of resamples hold none, so no bootstrap interval
    assert st.difference_bootstrap95 is None
    # one test per threshold
    assert sorted(s.threshold for s in parts.share_tests) == [80.0, 90.0, 99.5]


def test_share_column_must_exist(tmp_path):
    with pytest.raises(InvalidParameterError, match="race"):
        make_design(tmp_path, shares=(ShareSpec.parse("race=black"),))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 6])
def test_match_count_threshold_is_the_lowest_with_at_most_n(n):
    rng = np.random.default_rng(n)
    best = np.round(rng.uniform(70, 95, 40), 4)
    best[[3, 9]] = best[5]  # ties
    best[0] = np.nan        # a search with no false candidate at all
    t = match_count_thresholds(best, [n])[n]
    count = lambda x: int(np.sum(best[np.isfinite(best)] >= x))  # noqa: E731
    assert count(t) <= n
    assert count(round(t - 0.01, 2)) > n


def test_match_count_point_in_the_audit(tmp_path):
    _design, parts = _parts(tmp_path, match_counts=(2,))
    (p,) = parts.match_counts
    # best false candidate per search: A 85, C 91, D 88, F 99 -> at most 2 searches from 88.01 on
    assert p.threshold == 88.01 and (p.reached.errors, p.reached.trials) == (2, 6)
    s = next(s for s in parts.summaries if s.threshold == 88.01)
    assert "2 searches with a false candidate" in s.reasons
    with pytest.raises(InvalidParameterError):
        AuditConfig(match_counts=(0,))


def test_cross_tables_every_pair_and_sums(tmp_path):
    _design, parts = _parts(tmp_path)
    pairs = {(c.column, c.gallery_column) for c in parts.cross_tables}
    assert pairs == {("sex", "sex"), ("sex", "dataset"), ("role", "sex"), ("role", "dataset")}
    over = next(s for s in parts.summaries if s.threshold == 80.0).overall["FMR"]
    for ct in parts.cross_tables:
        if ct.threshold != 80.0:
            continue
        cells = [r for row in ct.cells.values() for r in row.values()]
        assert sum(r.errors for r in cells) == over.errors and sum(r.trials for r in cells) == over.trials
        assert all(r.bootstrap95 is not None for r in cells if r.trials)
    ct = next(c for c in parts.cross_tables if (c.column, c.gallery_column, c.threshold) == ("role", "dataset", 80.0))
    # false matches at 80 are all with gallery y (S1, S2): A (sen) 85, C (rep) 91, D (sen) 88, F (rep) 99 + 80
    assert (ct.cells["sen"]["y"].errors, ct.cells["rep"]["y"].errors, ct.cells["rep"]["x"].errors) == (2, 3, 0)


def test_promise_checks(tmp_path):
    _design, parts = _parts(tmp_path)
    pc = next(p for p in parts.promise_checks if p.threshold == 80.0)
    assert pc.promised_fmr == pytest.approx(1e-5)
    assert (pc.overall.measured.errors, pc.overall.measured.trials) == (5, 27)
    assert pc.overall.verdict == "above" and pc.overall.finding.startswith("Overall, the false-match rate at 80 was")
    assert {(g.column, g.group) for g in pc.groups} >= {("sex", "F"), ("role", "rep")}


def test_promise_gap_verdicts():
    p = promised_fmr(80)
    above = gap("sex", "F", Rate.of(30, 1_000_000), 80, p)
    assert above.verdict == "above" and above.ratio == pytest.approx(3.0)
    assert "For sex F, the false-match rate at 80 was 3x what the scale promises" in above.finding
    assert gap("sex", "M", Rate.of(0, 10_000_000), 80, p).verdict == "below"
    same = gap("", "everyone", Rate.of(1, 100_000), 80, p)
    assert same.verdict == "consistent" and "consistent" in same.finding
    assert gap("", "everyone", Rate.of(0, 0), 80, p).verdict == "no data"


def test_small_groups_are_left_out_of_ratios(tmp_path):
    _design, parts = _parts(tmp_path, min_group_searches=2)
    f = next(f for f in parts.frames if (f.metric, f.column, f.threshold, f.side) == ("FMR", "sex", 80.0, "probe"))
    # F has 3 people, M 2: both compared; with a minimum of 3 only F is left: no ratio
    assert f.ratio is not None
    _design, parts = _parts(tmp_path, min_group_searches=3)
    f = next(f for f in parts.frames if (f.metric, f.column, f.threshold, f.side) == ("FMR", "sex", 80.0, "probe"))
    assert f.ratio is None and "at least 3 people" in f.ratio_note


def test_share_test_matches_brute_force_on_random_data(tmp_path):
    """Shares and Fisher's table recounted from the per-search false-candidate flags."""
    design, parts = _parts(tmp_path, shares=(ShareSpec.parse("role=sen"),), bootstrap=0)
    out = make_outcomes(design)
    for st, k in itertools.product(parts.share_tests, range(len(out.thresholds))):
        if st.threshold != out.thresholds[k]:
            continue
        flags = out.imp_ge[:, k] > 0
        roles = [r.label("role") for r in design.probes]
        a = sum(1 for f, r in zip(flags, roles, strict=True) if f and r == "sen")
        c = sum(1 for f, r in zip(flags, roles, strict=True) if f and r != "sen")
        assert (st.matched.errors, st.matched.trials) == (a, a + c)


def test_who_to_whom_finding_when_no_other_photo_matched():
    from faceaudit.audit._headline import _cross_finding

    def rate(e, n):
        return {"errors": e, "trials": n, "rate": e / n, "wilson95": list(Rate.of(e, n).wilson95),
                "subjects": 20}

    res = {"composition": {"gallery": {"race": {"black": 10, "white": 990}}}, "min_group_searches": 10,
           "frames": [{"metric": "ACLU_COUNT", "column": "race", "side": "probe", "threshold": 80.0,
                       "by_group": {"black": {"subjects": 20}}}]}
    ct = {"column": "race", "gallery_column": "race", "threshold": 80.0,
          "cells": {"black": {"black": rate(12, 200), "white": rate(0, 19_800)}}}
    (line,) = _cross_finding(res, ct, 80.0)
    assert "while none of the other photos matched them" in line and "only 1.00% of this gallery" in line
    assert "rests on 12 false matches, so it is uncertain" in line


def test_no_bootstrap_interval_from_one_falsely_matched_search():
    from faceaudit.audit._composition import _difference_interval

    in_set = np.array([True] + [False] * 9 + [True] * 2)
    matched = np.zeros((12, 2), bool)
    matched[0, 0] = True           # one matched search: most resamples hold no match at all
    matched[:8, 1] = True          # eight: every resample holds one
    low, high = _difference_interval(in_set, matched, np.arange(12), 500, np.random.SeedSequence(1))
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert np.isfinite(low[1]) and low[1] <= (1 / 8 - 3 / 12) <= high[1]
