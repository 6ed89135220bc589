"""Metrics of a hand-built case: six searches, five gallery faces, candidates chosen by hand.

Probes: A (F, mated), B (F, mated), C (M, mated), D (M), E (F), F (no sex label); roles sen/rep.
Gallery: A, B, C (dataset x), S1 (M, y), S2 (F, y). Candidates (similarity):
  A: mate 95, S1 85 | B: mate 82 | C: mate not returned, S2 91 | D: S1 88 | E: none | F: S2 99, S1 80.0
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceaudit.audit import AuditConfig, Rate, build_design, differential, outcomes_from_candidates, read_manifest
from faceaudit.audit._metrics import compute
from tests.audit.conftest import write_manifest

PROBES = [("A", "F", "sen"), ("B", "F", "rep"), ("C", "M", "rep"), ("D", "M", "sen"), ("E", "F", "rep"),
          ("F", "", "rep")]
GALLERY = [("A", "F", "x"), ("B", "F", "x"), ("C", "M", "x"), ("S1", "M", "y"), ("S2", "F", "y")]
CANDIDATES = [(0, 0, 95.0), (0, 3, 85.0), (1, 1, 82.0), (2, 4, 91.0), (3, 3, 88.0), (5, 4, 99.0), (5, 3, 80.0)]


def make_design(tmp_path, thresholds=(80.0, 90.0, 99.5), **cfg):
    p = write_manifest(tmp_path / "p.csv", [
        {"image": f"p{i}.jpg", "subject": s, "sex": x, "role": r} for i, (s, x, r) in enumerate(PROBES)
    ], ["image", "subject", "sex", "role"])
    g = write_manifest(tmp_path / "g.csv", [
        {"image": f"g{i}.jpg", "subject": s, "sex": x, "dataset": d} for i, (s, x, d) in enumerate(GALLERY)
    ], ["image", "subject", "sex", "dataset"])
    config = AuditConfig(thresholds=thresholds, fmr_targets=(), bootstrap=cfg.pop("bootstrap", 300),
                         min_group_searches=cfg.pop("min_group_searches", 1), **cfg)
    return build_design([read_manifest(p)], [read_manifest(g)], config)


def make_outcomes(design, candidates=CANDIDATES):
    P, G = design.n_probes, design.n_gallery
    c = np.array(candidates, dtype=np.float64).reshape(-1, 3)
    return outcomes_from_candidates(
        design, np.ones(P, bool), np.ones(G, bool), [f"p{i}" for i in range(P)], [f"g{j}" for j in range(G)],
        [None] * P, [None] * G, c[:, 0].astype(int), c[:, 1].astype(int), c[:, 2],
    )


@pytest.fixture
def parts(tmp_path):
    design = make_design(tmp_path)
    return design, compute(design, make_outcomes(design), model_threshold=80.0)


def overall(parts, t):
    return next(s for s in parts[1].summaries if s.threshold == t).overall


def frame(parts, metric, column, t, side="probe"):
    return next(f for f in parts[1].frames
                if (f.metric, f.column, f.threshold, f.side) == (metric, column, t, side))


def counts(rate: Rate):
    return (rate.errors, rate.trials)


def test_overall_counts_by_hand(parts):
    o = overall(parts, 80.0)
    assert counts(o["FPIR"]) == (2, 3)          # D and F got a stranger; E did not
    assert counts(o["FNIR"]) == (1, 3)          # C's mate was not returned
    assert counts(o["ACLU_COUNT"]) == (4, 6)    # A, C, D, F (A's and C's searches are mated)
    assert counts(o["MATED_FALSE"]) == (2, 3)   # A and C
    assert counts(o["FMR"]) == (5, 27)          # 4 + 4 + 4 + 5 + 5 + 5 impostor pairs; 80.0 counts at 80
    assert counts(o["FNMR"]) == (1, 3)
    o = overall(parts, 90.0)
    assert counts(o["FPIR"]) == (1, 3)
    assert counts(o["FNIR"]) == (2, 3)          # B's mate scored 82
    assert counts(o["ACLU_COUNT"]) == (2, 6)
    assert counts(o["MATED_FALSE"]) == (1, 3)
    assert counts(o["FMR"]) == (2, 27)
    assert counts(o["FNMR"]) == (2, 3)


def test_zero_errors_have_rule_of_three_bounds(parts):
    o = overall(parts, 99.5)
    assert counts(o["FPIR"]) == (0, 3) and o["FPIR"].rate == 0.0
    z2 = 1.959963984540054 ** 2
    assert o["FPIR"].wilson95 == (0.0, pytest.approx(z2 / (3 + z2)))
    assert o["FPIR"].few_errors
    f = frame(parts, "FMR", "sex", 99.5)
    assert f.ratio is None and f.ratio_note == "undefined: every group's rate is 0"
    d = next(d for d in parts[1].differentials if d.column == "sex" and d.threshold == 99.5 and d.setting == "1:1")
    assert d.garbe is None and d.ir is None and any("GARBE undefined" in n for n in d.notes)


def test_groups_unknown_and_empty(parts):
    f = frame(parts, "FPIR", "sex", 80.0)
    assert list(f.by_group) == ["F", "M", "unknown"]
    assert counts(f.by_group["F"]) == (0, 1)
    assert counts(f.by_group["M"]) == (1, 1)
    assert counts(f.by_group["unknown"]) == (1, 1)
    # unknown is reported but left out of the spread; F's FPIR is 0, so the ratio is undefined
    assert f.difference == 1.0 and f.ratio is None and "lowest rate (F) is 0" in f.ratio_note
    fn = frame(parts, "FNIR", "sex", 80.0)
    assert counts(fn.by_group["unknown"]) == (0, 0) and fn.by_group["unknown"].rate is None
    assert fn.by_group["unknown"].wilson95 == (0.0, 1.0)
    fm = frame(parts, "FMR", "sex", 80.0)
    assert counts(fm.by_group["F"]) == (1, 13) and counts(fm.by_group["M"]) == (2, 9)
    assert fm.ratio == pytest.approx((2 / 9) / (1 / 13)) and (fm.highest, fm.lowest) == ("M", "F")
    assert counts(frame(parts, "ACLU_COUNT", "sex", 80.0).by_group["F"]) == (1, 3)


def test_intersection(parts):
    f = frame(parts, "ACLU_COUNT", "sex&role", 80.0)
    assert list(f.by_group) == ["F&rep", "F&sen", "M&rep", "M&sen", "unknown"]
    assert counts(f.by_group["F&rep"]) == (0, 2)
    assert counts(f.by_group["F&sen"]) == (1, 1)
    assert counts(f.by_group["M&sen"]) == (1, 1)
    assert counts(f.by_group["unknown"]) == (1, 1)


def test_gallery_side_and_cross_table(parts):
    assert counts(frame(parts, "FPIR", "dataset", 80.0, "gallery").by_group["y"]) == (2, 3)
    assert counts(frame(parts, "FPIR", "dataset", 80.0, "gallery").by_group["x"]) == (0, 3)
    assert counts(frame(parts, "ACLU_COUNT", "dataset", 80.0, "gallery").by_group["y"]) == (4, 6)
    assert counts(frame(parts, "FMR", "dataset", 80.0, "gallery").by_group["y"]) == (5, 12)
    assert counts(frame(parts, "FMR", "dataset", 80.0, "gallery").by_group["x"]) == (0, 15)
    ct = next(c for c in parts[1].cross_tables
              if c.column == "sex" and c.gallery_column == "sex" and c.threshold == 80.0)
    assert counts(ct.cells["F"]["F"]) == (0, 7)
    assert counts(ct.cells["M"]["F"]) == (1, 6)


def test_differentials_by_hand(parts):
    d = next(d for d in parts[1].differentials if d.column == "sex" and d.threshold == 80.0 and d.setting == "1:1")
    assert d.groups == ("F", "M") and d.alpha == 0.5
    # FMR F 1/13, M 2/9; FNMR F 0, M 1
    assert d.fdr == pytest.approx(1 - (0.5 * (2 / 9 - 1 / 13) + 0.5 * 1.0))
    assert d.ir is None and any("IR undefined" in n for n in d.notes)
    # Gini of two values a, b is |a - b| / (a + b)
    assert d.garbe == pytest.approx(0.5 * (17 / 35) + 0.5 * 1.0)
    d = next(d for d in parts[1].differentials if d.column == "sex" and d.threshold == 90.0 and d.setting == "1:1")
    assert d.fdr == pytest.approx(1 - (0.5 / 9 + 0.5 * 0.5))
    assert d.garbe == pytest.approx(0.5 * 1.0 + 0.5 * (0.5 / 1.5))


def r(rate: float, n: int = 10_000) -> Rate:
    return Rate.of(round(rate * n), n)


def test_differential_formulas_directly():
    d = differential("g", 80.0, "1:1", "FMR", "FNMR", {"a": r(0.01), "b": r(0.04)}, {"a": r(0.2), "b": r(0.1)},
                     ["a", "b"], 0.5)
    assert d.fdr == pytest.approx(1 - (0.5 * 0.03 + 0.5 * 0.1))
    assert d.ir == pytest.approx(math.sqrt(4.0) * math.sqrt(2.0))
    assert d.garbe == pytest.approx(0.5 * 0.6 + 0.5 / 3)
    three = {"a": r(0.1), "b": r(0.2), "c": r(0.3)}
    same = {"a": r(0.3), "b": r(0.3), "c": r(0.3)}
    d = differential("g", 80.0, "1:1", "FMR", "FNMR", three, same, ["a", "b", "c"], 0.25)
    assert d.fdr == pytest.approx(0.95)
    assert d.ir == pytest.approx(3 ** 0.25)
    assert d.garbe == pytest.approx(0.25 / 3)
    # alpha = 1: only false matches count, a zero FNMR no longer makes IR undefined
    d = differential("g", 80.0, "1:1", "FMR", "FNMR", {"a": r(0.01), "b": r(0.02)}, {"a": r(0.0), "b": r(0.1)},
                     ["a", "b"], 1.0)
    assert d.ir == pytest.approx(2.0) and d.fdr == pytest.approx(0.99) and d.garbe == pytest.approx(1 / 3)
    # one group: undefined
    d = differential("g", 80.0, "1:1", "FMR", "FNMR", {"a": r(0.01)}, {"a": r(0.1)}, ["a"], 0.5)
    assert (d.fdr, d.ir, d.garbe) == (None, None, None)


def test_projection_formula(parts):
    s = next(s for s in parts[1].summaries if s.threshold == 90.0)
    p = s.projection
    assert (p.probes, p.gallery) == (535, 25_000)
    fmr = 2 / 27
    assert p.expected == pytest.approx(535 * (1 - (1 - fmr) ** 25_000))
    assert p.observed_count == 2 and p.observed_searches == 6
    assert p.low <= p.expected <= p.high


def test_projection_that_does_not_saturate(tmp_path):
    design = make_design(tmp_path, projection_probes=100, projection_gallery=10)
    s = compute(design, make_outcomes(design), 80.0).summaries[1]
    fmr = 2 / 27
    assert s.projection.expected == pytest.approx(100 * (1 - (1 - fmr) ** 10))
    lo, hi = s.overall["FMR"].wilson95
    assert s.projection.low == pytest.approx(100 * (1 - (1 - lo) ** 10))
    assert s.projection.high == pytest.approx(100 * (1 - (1 - hi) ** 10))


def test_bootstrap_resamples_subjects_and_is_seeded(tmp_path):
    d1 = make_design(tmp_path, bootstrap=300, seed=5)
    a = compute(d1, make_outcomes(d1), 80.0)
    b = compute(d1, make_outcomes(d1), 80.0)
    d2 = make_design(tmp_path, bootstrap=300, seed=6)
    c = compute(d2, make_outcomes(d2), 80.0)
    ra = a.summaries[0].overall["FMR"].bootstrap95
    assert ra == b.summaries[0].overall["FMR"].bootstrap95
    assert ra != c.summaries[0].overall["FMR"].bootstrap95
    # the interval comes from whole people: its ends are pooled rates of resampled subjects
    assert 0.0 <= ra[0] <= 5 / 27 <= ra[1] <= 1.0
    assert a.summaries[0].overall["FMR"].subjects == 6
    none = make_design(tmp_path, bootstrap=0)
    assert compute(none, make_outcomes(none), 80.0).summaries[0].overall["FMR"].bootstrap95 is None


def test_subject_with_two_probes_is_one_resampling_unit(tmp_path):
    p = write_manifest(tmp_path / "p.csv", [
        {"image": "a1.jpg", "subject": "A"}, {"image": "a2.jpg", "subject": "A"}, {"image": "b.jpg", "subject": "B"},
    ], ["image", "subject"])
    g = write_manifest(tmp_path / "g.csv", [{"image": "s.jpg", "subject": "S"}], ["image", "subject"])
    design = build_design([read_manifest(p)], [read_manifest(g)],
                          AuditConfig(thresholds=(80,), fmr_targets=(), bootstrap=2000, seed=3))
    out = make_outcomes(design, [(0, 0, 90.0), (1, 0, 90.0)])
    o = compute(design, out, 80.0).summaries[0].overall["FPIR"]
    assert counts(o) == (2, 3) and o.subjects == 2
    # resampling people: A (2 of 2 wrong) and B (0 of 1): possible rates 0, 2/3, 1 -> [0, 1]
    assert o.bootstrap95 == (0.0, 1.0)


def test_age_bands_and_unknown(tmp_path):
    from faceaudit.audit._groups import auto_bands, build_column, parse_bands

    p = write_manifest(tmp_path / "p.csv", [
        {"image": f"{i}.jpg", "subject": str(i), "age": str(a)} for i, a in enumerate([33, 41, 49, 50, 72, ""])
    ], ["image", "subject", "age"])
    recs = read_manifest(p).records
    col = build_column(recs, "age", parse_bands(["age=40,50,60,70"])["age"])
    assert col.groups == ("<40", "40-49", "50-59", ">=70", "unknown")
    assert [col.groups[c] for c in col.codes] == ["<40", "40-49", "40-49", "50-59", ">=70", "unknown"]
    assert auto_bands([str(x) for x in range(30, 90, 3)]) == (40.0, 50.0, 60.0, 70.0, 80.0)
    assert auto_bands(["M", "F"]) is None


def test_config_validation():
    from faceaudit import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        AuditConfig(thresholds=(120,))
    with pytest.raises(InvalidParameterError):
        AuditConfig(thresholds=())
    with pytest.raises(InvalidParameterError):
        AuditConfig(alpha=1.5)
    assert AuditConfig(thresholds=(99, 80, 80.0)).thresholds == (80.0, 99.0)


# ---------------------------------------------------------------- the split functions against a numpy oracle

ORACLE_THRESHOLDS = (80.0, 85.0, 90.0, 95.0)


@pytest.fixture(params=[1, 2, 3])
def random_case(request, tmp_path):
    """Every probe scored against every gallery face at random (all pairs are candidates: 0 floor
    loss), so the oracle can read each rate straight off the full score matrix."""
    rng = np.random.default_rng(request.param)
    design = make_design(tmp_path, thresholds=ORACLE_THRESHOLDS, bootstrap=0)
    P, G = design.n_probes, design.n_gallery
    sim = np.round(rng.uniform(75.0, 100.0, size=(P, G)), 2)
    cands = [(i, j, float(sim[i, j])) for i in range(P) for j in range(G)]
    return design, sim, make_outcomes(design, cands)


def oracle(design, sim, mask, t):
    """Each metric's (errors, trials) over the probes in ``mask`` at threshold ``t``, from the score matrix."""
    genuine = design.probe_subject[:, None] == design.gallery_subject[None, :]
    hit = sim >= t
    mated = genuine.any(1)
    false_cand = (hit & ~genuine).any(1)
    found = (hit & genuine).any(1)
    m = np.asarray(mask, bool)
    return {
        "FPIR": (int((m & ~mated & false_cand).sum()), int((m & ~mated).sum())),
        "FNIR": (int((m & mated & ~found).sum()), int((m & mated).sum())),
        "ACLU_COUNT": (int((m & false_cand).sum()), int(m.sum())),
        "MATED_FALSE": (int((m & mated & false_cand).sum()), int((m & mated).sum())),
        "FMR": (int((hit & ~genuine)[m].sum()), int((~genuine)[m].sum())),
        "FNMR": (int((~hit & genuine)[m].sum()), int(genuine[m].sum())),
    }


def test_per_probe_error_counts_against_the_oracle(random_case):
    from faceaudit.audit._metrics import probe_errors

    design, sim, out = random_case
    errs = probe_errors(design, out)
    everyone = np.ones(design.n_probes, bool)
    for k, t in enumerate(out.thresholds):
        want = oracle(design, sim, everyone, t)
        for m, c in errs.items():
            assert (int(c.errors[:, k].sum()), int(c.trials.sum())) == want[m], (m, t)


def test_group_rates_and_frames_against_the_oracle(random_case):
    design, sim, out = random_case
    res = compute(design, out, 80.0)
    col = design.probe_column("sex")
    for f in res.frames:
        if f.side != "probe" or f.column != "sex":
            continue
        assert counts(f.overall) == oracle(design, sim, np.ones(design.n_probes, bool), f.threshold)[f.metric]
        for gi, g in enumerate(col.groups):
            want = oracle(design, sim, col.codes == gi, f.threshold)[f.metric]
            assert counts(f.by_group[g]) == want, (f.metric, f.threshold, g)
            e, n = want
            assert f.by_group[g].rate == (e / n if n else None)
        known = {g: f.by_group[g].rate for g in ("F", "M") if f.by_group[g].trials}
        if len(known) == 2:
            assert f.difference == pytest.approx(max(known.values()) - min(known.values()))
            if min(known.values()) > 0:
                assert f.ratio == pytest.approx(max(known.values()) / min(known.values()))


def test_fmr_of_each_gallery_group_against_the_oracle(random_case):
    design, sim, out = random_case
    res = compute(design, out, 80.0)
    gcol = design.gallery_column("dataset")
    genuine = design.probe_subject[:, None] == design.gallery_subject[None, :]
    for gi, g in enumerate(gcol.groups):
        in_group = (gcol.codes == gi)[None, :]
        for t in out.thresholds:
            f = frame((design, res), "FMR", "dataset", t, side="gallery")
            imp = ~genuine & in_group
            assert counts(f.by_group[g]) == (int((imp & (sim >= t)).sum()), int(imp.sum()))


def test_small_functions_against_their_formulas():
    from faceaudit.audit._metrics import (
        expected_false_match_searches,
        fmr_at,
        fnir_at,
        fnmr_at,
        fpir_at,
        spread_of,
    )

    mated = np.array([True, False, False, True])
    false_cand = np.array([[1, 0], [1, 1], [0, 0], [1, 1]], bool)
    found = np.array([[1, 1], [0, 0], [0, 0], [0, 0]], bool)
    fp = fpir_at(mated, false_cand)
    assert fp.errors.sum(0).tolist() == [1, 1] and fp.trials.sum() == 2
    fn = fnir_at(mated, found)
    assert fn.errors.sum(0).tolist() == [1, 1] and fn.trials.sum() == 2
    ge, n = np.array([[3, 1], [0, 0]]), np.array([4, 2])
    assert fmr_at(ge, n).errors.sum(0).tolist() == [3, 1]
    assert fnmr_at(ge, n).errors.sum(0).tolist() == [1 + 2, 3 + 2]
    for fmr, probes, gallery in ((1e-5, 535, 25_000), (0.3, 10, 3), (0.0, 5, 7), (1.0, 4, 2)):
        assert expected_false_match_searches(fmr, probes, gallery) == pytest.approx(
            probes * (1 - (1 - fmr) ** gallery), rel=1e-9, abs=1e-12)  # the naive form loses digits
    s = spread_of({"a": Rate.of(1, 10, subjects=10), "b": Rate.of(4, 10, subjects=10),
                   "u": Rate.of(9, 10, subjects=10)}, ["a", "b"])
    assert (s.difference, s.ratio, s.highest, s.lowest) == (pytest.approx(0.3), pytest.approx(4.0), "b", "a")
    s = spread_of({"a": Rate.of(0, 10, subjects=10), "b": Rate.of(4, 10, subjects=10)}, ["a", "b"])
    assert s.ratio is None and "lowest rate (a) is 0" in s.note
    s = spread_of({"a": Rate.of(1, 10, subjects=3), "b": Rate.of(4, 10, subjects=10)}, ["a", "b"], min_people=5)
    assert s.difference is None and "at least 5 people" in s.note
