"""Exact block scoring against a brute-force score matrix, and against candidate lists."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.audit import AuditConfig, build_design, outcomes_from_candidates, read_manifest, score_exact
from faceaudit.audit._scoring import N_BINS, OVERALL, similarity_bins, threshold_bin, vectorised_similarity
from faceaudit.engine import get_model
from tests.audit.conftest import write_manifest

SCALE = get_model("sface").scale
RNG = np.random.default_rng(12)


def unit(n, d=16, rng=RNG):
    v = rng.normal(size=(n, d))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def setup(tmp_path):
    P, G = 23, 41
    # probes 0..14 have a mate in the gallery (subjects s0..s14); probe 3 has two mates
    probe_subj = [f"s{i}" for i in range(P)]
    gal_subj = [f"s{i}" for i in range(15)] + ["s3"] + [f"x{j}" for j in range(G - 16)]
    sexes = ["F", "M", ""]
    p = write_manifest(tmp_path / "p.csv", [{"image": f"p{i}.jpg", "subject": s, "sex": sexes[i % 3]}
                                            for i, s in enumerate(probe_subj)], ["image", "subject", "sex"])
    g = write_manifest(tmp_path / "g.csv", [{"image": f"g{j}.jpg", "subject": s, "dataset": "ab"[j % 2]}
                                            for j, s in enumerate(gal_subj)], ["image", "subject", "dataset"])
    pv = unit(P)
    gv = unit(G)
    # make mates alike, and two strangers alike to a probe
    for j, s in enumerate(gal_subj):
        if s.startswith("s"):
            i = int(s[1:])
            mix = pv[i] * 0.8 + gv[j] * 0.3
            gv[j] = mix / np.linalg.norm(mix)
    gv[30] = pv[20] * 0.9 + gv[30] * 0.2
    gv[30] /= np.linalg.norm(gv[30])
    probe_ok = np.ones(P, bool)
    probe_ok[5] = False        # a failure to acquire (mated)
    gal_ok = np.ones(G, bool)
    gal_ok[7] = False          # a failure to enrol (probe 7's only mate)
    psha = [f"p{i}" for i in range(P)]
    gsha = [f"g{j}" for j in range(G)]
    gsha[35] = "p21"           # byte-identical to probe 21: the pair is left out
    return dict(p=p, g=g, pv=pv, gv=gv, probe_ok=probe_ok, gal_ok=gal_ok, psha=psha, gsha=gsha,
                probe_subj=probe_subj, gal_subj=gal_subj)


def run(s, block=256, thresholds=(40.0, 60.0, 80.0), targets=(1e-1, 1e-2)):
    cfg = AuditConfig(thresholds=thresholds, fmr_targets=targets, block_size=block, bootstrap=0)
    design = build_design([read_manifest(s["p"])], [read_manifest(s["g"])], cfg)
    P, G = design.n_probes, design.n_gallery
    out = score_exact(design, s["pv"], s["gv"], s["probe_ok"], s["gal_ok"], s["psha"], s["gsha"], [None] * P,
                      [None] * G, vectorised_similarity(SCALE), progress=False)
    return design, out


def brute(s):
    sim = np.array([[round(SCALE.to_similarity(float(np.dot(a.astype(np.float64), b.astype(np.float64)))), 4)
                     for b in s["gv"]] for a in s["pv"]])
    distinct = np.array(s["psha"])[:, None] != np.array(s["gsha"])[None, :]
    valid = s["probe_ok"][:, None] & s["gal_ok"][None, :] & distinct
    gen = (np.array(s["probe_subj"])[:, None] == np.array(s["gal_subj"])[None, :]) & valid
    imp = ~(np.array(s["probe_subj"])[:, None] == np.array(s["gal_subj"])[None, :]) & valid
    return sim, gen, imp


def test_vectorised_similarity_is_the_scalar_formula():
    cos = np.linspace(-1, 1, 2001)
    f = vectorised_similarity(SCALE)
    assert np.array_equal(f(cos), np.array([round(SCALE.to_similarity(c), 4) for c in cos]))


def test_exact_counts_match_brute_force(setup):
    design, out = run(setup)
    sim, gen, imp = brute(setup)
    for k, t in enumerate(out.thresholds):
        assert np.array_equal(out.imp_ge[:, k], (imp & (sim >= t)).sum(1))
        assert np.array_equal(out.gen_ge[:, k], (gen & (sim >= t)).sum(1))
    assert np.array_equal(out.imp_n, imp.sum(1)) and np.array_equal(out.gen_n, gen.sum(1))
    assert out.same_image_pairs == 1
    best_mate = np.where(gen.any(1), np.where(gen, sim, -np.inf).max(1), np.nan)
    assert np.allclose(out.best_mate, best_mate, equal_nan=True)
    assert np.isnan(out.best_mate[5]) and np.isnan(out.best_mate[7])  # failed probe; mate failed to enrol
    col = design.gallery_column("dataset")
    for g in range(len(col.groups)):
        m = imp & (col.codes == g)[None, :]
        for k, t in enumerate(out.thresholds):
            assert np.array_equal(out.imp_ge_gallery["dataset"][:, g, k], (m & (sim >= t)).sum(1))
        assert np.array_equal(out.imp_n_gallery["dataset"][:, g], m.sum(1))
    # histograms hold every comparison, per probe group too
    assert out.hist_impostor[OVERALL].sum() == imp.sum() and out.hist_genuine[OVERALL].sum() == gen.sum()
    sex = design.probe_column("sex")
    for g in range(len(sex.groups)):
        rows = sex.codes == g
        assert out.hist_impostor["sex"][g].sum() == imp[rows].sum()
        np.testing.assert_array_equal(out.hist_impostor["sex"][g],
                                      np.bincount(similarity_bins(sim[rows][imp[rows]]), minlength=N_BINS))
    # candidates: every valid pair at or above the lowest threshold, nothing else
    got = sorted(zip(out.cand_probe.tolist(), out.cand_gallery.tolist(), strict=True))
    want = sorted(zip(*np.nonzero((gen | imp) & (sim >= 40.0)), strict=True))
    assert got == [tuple(map(int, w)) for w in want]


def test_block_size_does_not_change_anything(setup):
    _, a = run(setup, block=256)
    _, b = run(setup, block=1)
    _, c = run(setup, block=5)
    for x in (b, c):
        assert np.array_equal(a.imp_ge, x.imp_ge) and np.array_equal(a.gen_ge, x.gen_ge)
        assert np.array_equal(a.hist_impostor["sex"], x.hist_impostor["sex"])
        assert np.allclose(a.best_nonmate, x.best_nonmate, equal_nan=True)


def test_fmr_target_thresholds_from_the_histogram(setup):
    _design, out = run(setup)
    sim, _gen, imp = brute(setup)
    scores = sim[imp]
    for target, t in out.fmr_target_thresholds.items():
        assert t is not None
        assert (scores >= t).mean() <= target                   # achieves the target
        assert (scores >= t - 0.01).mean() > target             # and is the lowest 0.01 step that does
        k = out.threshold_index(t)
        assert out.imp_ge[:, k].sum() == (scores >= t).sum()    # evaluated exactly at that threshold


def test_candidates_give_the_same_counts_above_the_floor(setup):
    design, exact = run(setup)
    P, G = design.n_probes, design.n_gallery
    cand = outcomes_from_candidates(design, setup["probe_ok"], setup["gal_ok"], setup["psha"], setup["gsha"],
                                    [None] * P, [None] * G, exact.cand_probe, exact.cand_gallery,
                                    exact.cand_similarity)
    for k, t in enumerate(cand.thresholds):
        ke = exact.threshold_index(t)
        assert np.array_equal(cand.imp_ge[:, k], exact.imp_ge[:, ke])
        assert np.array_equal(cand.gen_ge[:, k], exact.gen_ge[:, ke])
        assert np.array_equal(cand.imp_ge_gallery["dataset"][:, :, k], exact.imp_ge_gallery["dataset"][:, :, ke])
    assert np.array_equal(cand.imp_n, exact.imp_n) and np.array_equal(cand.gen_n, exact.gen_n)
    assert np.array_equal(cand.imp_n_gallery["dataset"], exact.imp_n_gallery["dataset"])
    above = exact.best_nonmate >= 40.0
    assert np.allclose(cand.best_nonmate[above], exact.best_nonmate[above])
    assert np.all(np.isnan(cand.best_nonmate[~above]))
    assert cand.same_image_pairs == exact.same_image_pairs


def test_threshold_bins():
    assert threshold_bin(80.0) == 8000 and threshold_bin(79.95) == 7995 and threshold_bin(100.0) == 10000
    s = np.array([0.0, 79.9999, 80.0, 80.0099, 80.01, 100.0])
    assert similarity_bins(s).tolist() == [0, 7999, 8000, 8000, 8001, 10000]
