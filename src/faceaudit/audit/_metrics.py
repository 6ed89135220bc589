"""From search outcomes to rates, intervals, differentials, projections and curves.

Formulas follow docs/metrics.md (shared): FPIR, FNIR, FMR, FNMR; max/min
ratio; FDR (Pereira & Marcel 2021); IR; GARBE with the Gini coefficient (Howard
et al. 2022). Thresholds are global, never tuned per group.
"""

from __future__ import annotations

import zlib
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from faceaudit._stats import cluster_bootstrap_rates, gini
from faceaudit.audit._design import AuditDesign
from faceaudit.audit._groups import INTERSECTION
from faceaudit.audit._composition import cross_tables, share_tests
from faceaudit.audit._promise import promise_checks
from faceaudit.audit._results import (
    PAIR_METRICS,
    SEARCH_METRICS,
    AuditCounts,
    Curves,
    Differential,
    FMRTarget,
    MatchCountPoint,
    ThresholdMetrics,
    Projection,
    Rate,
    ThresholdSummary,
    WarningGroup,
)
from faceaudit.audit._scoring import BIN_WIDTH, N_BINS, OVERALL, SearchOutcomes

DISTRIBUTION_BIN = 0.5
"""Width (Similarity points) of the bins of the score distributions in results.json and the report."""

CURVE_STEP = 0.5
"""Step (Similarity points) of the FPIR / FNIR against threshold curves."""


# ---------------------------------------------------------------- per-probe error matrices

def probe_errors(design: AuditDesign, out: SearchOutcomes) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """metric -> (errors[P, T], trials[P]) per probe (search metrics: 0/1 per probe)."""
    mated = design.mated
    non = ~mated
    false_cand = out.imp_ge > 0
    found = out.gen_ge > 0
    i64 = np.int64
    return {
        "FPIR": ((non[:, None] & false_cand).astype(i64), non.astype(i64)),
        "FNIR": ((mated[:, None] & ~found).astype(i64), mated.astype(i64)),
        "ACLU_COUNT": (false_cand.astype(i64), np.ones(design.n_probes, i64)),
        "MATED_FALSE": ((mated[:, None] & false_cand).astype(i64), mated.astype(i64)),
        "FMR": (out.imp_ge.astype(i64), out.imp_n.astype(i64)),
        "FNMR": ((out.gen_n[:, None] - out.gen_ge).astype(i64), out.gen_n.astype(i64)),
    }


def gallery_errors(design: AuditDesign, out: SearchOutcomes, column: str, group: int):
    """Per-probe errors counting only false candidates from one gallery group."""
    non = ~design.mated
    ge = out.imp_ge_gallery[column][:, group, :]
    n = out.imp_n_gallery[column][:, group]
    fc = ge > 0
    i64 = np.int64
    return {
        "FPIR": ((non[:, None] & fc).astype(i64), non.astype(i64)),
        "ACLU_COUNT": (fc.astype(i64), np.ones(design.n_probes, i64)),
        "FMR": (ge.astype(i64), n.astype(i64)),
    }


def _seed(seed: int, *key: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), zlib.crc32("|".join(key).encode("utf-8"))])


def group_rates(
    errs: Mapping[str, Tuple[np.ndarray, np.ndarray]],
    mask: np.ndarray,
    subjects: np.ndarray,
    resamples: int,
    seed: np.random.SeedSequence,
    min_errors: int,
) -> Dict[str, List[Rate]]:
    """metric -> [Rate at each threshold] for the probes in ``mask``.

    The bootstrap resamples the subjects (people) among those probes: each
    subject's errors and trials are summed first, then subjects are drawn with
    replacement (one weight matrix for every metric and threshold of the group).
    """
    names = list(errs)
    T = next(iter(errs.values()))[0].shape[1]
    subj = subjects[mask]
    uniq, inv = np.unique(subj, return_inverse=True)
    S = len(uniq)
    E = []
    N = []
    for m in names:
        e, n = errs[m]
        e, n = e[mask], n[mask]
        se = np.zeros((S, T), np.float64)
        np.add.at(se, inv, e)
        sn = np.bincount(inv, weights=n, minlength=S).astype(np.float64)
        E.append(se)
        N.append(np.broadcast_to(sn[:, None], (S, T)))
    E_all = np.concatenate(E, axis=1) if E else np.zeros((S, 0))
    N_all = np.concatenate(N, axis=1) if N else np.zeros((S, 0))
    if resamples > 0 and S > 0:
        low, high = cluster_bootstrap_rates(E_all, N_all, resamples=resamples, seed=seed)
    else:
        low = high = None
    out: Dict[str, List[Rate]] = {}
    for mi, m in enumerate(names):
        rates = []
        for k in range(T):
            j = mi * T + k
            boot = (low[j], high[j]) if low is not None else None
            # subjects with at least one trial for this metric
            n_subj = int((N_all[:, j] > 0).sum())
            rates.append(Rate.of(E_all[:, j].sum(), N_all[:, j].sum(), boot, n_subj, min_errors))
        out[m] = rates
    return out


# ---------------------------------------------------------------- differentials

def big_enough(rates: Mapping[str, Rate], known: Sequence[str], min_people: int) -> List[str]:
    """Known groups with trials from at least ``min_people`` people (the others are too small to compare)."""
    return [g for g in known if g in rates and rates[g].trials > 0 and rates[g].subjects >= min_people]


def _spread(rates: Mapping[str, Rate], known: Sequence[str], min_people: int = 1):
    vals = {g: rates[g].rate for g in big_enough(rates, known, min_people)}
    if len(vals) < 2:
        note = ("undefined: fewer than two groups with data" if min_people <= 1 else
                f"undefined: fewer than two groups with at least {min_people} people searched")
        return None, None, note, None, None
    hi_g = max(vals, key=lambda g: vals[g])
    lo_g = min(vals, key=lambda g: vals[g])
    hi, lo = vals[hi_g], vals[lo_g]
    if lo == 0.0 or hi == lo:
        if hi == 0.0:
            return 0.0, None, "undefined: every group's rate is 0", None, None
        if hi == lo:
            return 0.0, 1.0, "equal: every group compared has the same rate", None, None
        return hi - lo, None, f"undefined: the lowest rate ({lo_g}) is 0", hi_g, lo_g
    return hi - lo, hi / lo, None, hi_g, lo_g


def differential(
    column: str, threshold: float, setting: str, fm_name: str, fnm_name: str,
    fm: Mapping[str, Rate], fnm: Mapping[str, Rate], known: Sequence[str], alpha: float,
) -> Differential:
    """FDR, IR and GARBE over the known groups that have trials for both rates."""
    groups = tuple(g for g in known if fm.get(g) and fnm.get(g) and fm[g].trials > 0 and fnm[g].trials > 0)
    notes: List[str] = []
    fdr = ir = garbe = None
    if len(groups) < 2:
        notes.append("undefined: fewer than two groups with both rates measured")
        return Differential(column, threshold, setting, fm_name, fnm_name, alpha, groups, None, None, None,
                            tuple(notes))
    a = np.array([fm[g].rate for g in groups], np.float64)
    b = np.array([fnm[g].rate for g in groups], np.float64)
    fdr = 1.0 - (alpha * float(a.max() - a.min()) + (1.0 - alpha) * float(b.max() - b.min()))
    ir = 1.0
    for x, w, name in ((a, alpha, fm_name), (b, 1.0 - alpha, fnm_name)):
        if w == 0.0:
            continue
        if x.min() == 0.0:
            ir = None
            notes.append(f"IR undefined: the lowest {name} is 0 (the ratio divides by 0)")
            break
        ir *= float(x.max() / x.min()) ** w
    garbe = 0.0
    for x, w, name in ((a, alpha, fm_name), (b, 1.0 - alpha, fnm_name)):
        if w == 0.0:
            continue
        try:
            garbe += w * gini(x)
        except ValueError:
            garbe = None
            notes.append(f"GARBE undefined: every group's {name} is 0 (the Gini coefficient divides by 0)")
            break
    return Differential(column, threshold, setting, fm_name, fnm_name, alpha, groups, fdr, ir, garbe, tuple(notes))


# ---------------------------------------------------------------- curves

def _tail(h: np.ndarray) -> np.ndarray:
    return np.cumsum(h[::-1])[::-1]


def det_points(gen_hist: np.ndarray, imp_hist: np.ndarray, floor_fmr: float = 1e-7) -> Tuple[Tuple[float, float, float], ...]:
    """(threshold, FMR, FNMR) on the 0.01 grid, thinned to visible changes on log-log axes."""
    ng, ni = int(gen_hist.sum()), int(imp_hist.sum())
    if ng == 0 or ni == 0:
        return ()
    fmr = _tail(imp_hist) / ni
    fnmr = 1.0 - _tail(gen_hist) / ng
    x = np.log10(np.maximum(fmr, floor_fmr))
    y = np.log10(np.maximum(fnmr, 1e-4))
    keep = []
    last = None
    for b in range(N_BINS):
        p = (x[b], y[b])
        if last is None or abs(p[0] - last[0]) > 0.02 or abs(p[1] - last[1]) > 0.02:
            keep.append(b)
            last = p
    if keep[-1] != N_BINS - 1:
        keep.append(N_BINS - 1)
    return tuple((round(b * BIN_WIDTH, 2), float(fmr[b]), float(fnmr[b])) for b in keep)


def coarse(hist: np.ndarray, width: float = DISTRIBUTION_BIN) -> Tuple[int, ...]:
    """Fine (0.01) histogram -> bins of ``width``; the last fine bin (100.00) joins the last bin."""
    per = int(round(width / BIN_WIDTH))
    n = (N_BINS - 1) // per
    out = hist[: n * per].reshape(n, per).sum(1)
    out[-1] += hist[n * per:].sum()
    return tuple(int(v) for v in out)


def identification_curve(best: np.ndarray, trials: np.ndarray, grid: np.ndarray, miss: bool):
    """Rate at each grid threshold: searches with ``best >= t`` (or not, when ``miss``) / searches."""
    n = int(trials.sum())
    if n == 0:
        return tuple(None for _ in grid)
    b = np.where(np.isnan(best), -np.inf, best)[trials]
    hit = (b[:, None] >= grid[None, :]).sum(0)
    rate = (n - hit) / n if miss else hit / n
    return tuple(round(float(v), 6) for v in rate)


# ---------------------------------------------------------------- the whole computation

def compute(design: AuditDesign, out: SearchOutcomes, model_threshold: float):
    """Everything but the metadata of :class:`AuditResult`, as a dict of its fields."""
    cfg = design.config
    th = out.thresholds
    T = len(th)
    errs = probe_errors(design, out)
    subjects = design.probe_subject
    everyone = np.ones(design.n_probes, bool)
    R, seed, me = cfg.bootstrap, cfg.seed, cfg.min_errors

    overall = group_rates(errs, everyone, subjects, R, _seed(seed, "overall"), me)
    frames: List[ThresholdMetrics] = []
    differentials: List[Differential] = []
    by_col: Dict[str, Dict[str, Dict[str, List[Rate]]]] = {}
    for col in design.probe_columns:
        per_group = {}
        for gi, g in enumerate(col.groups):
            per_group[g] = group_rates(errs, col.codes == gi, subjects, R, _seed(seed, "probe", col.name, g), me)
        by_col[col.name] = per_group
        known = [col.groups[i] for i in col.known]
        for m in SEARCH_METRICS + PAIR_METRICS:
            for k in range(T):
                rates = {g: per_group[g][m][k] for g in col.groups}
                diff, ratio, note, hi, lo = _spread(rates, known, cfg.min_group_searches)
                frames.append(ThresholdMetrics(m, float(th[k]), col.name, "probe", overall[m][k], rates, diff, ratio,
                                          note, hi, lo))
        for k in range(T):
            for setting, fm, fnm in (("1:1", "FMR", "FNMR"), ("1:N", "FPIR", "FNIR")):
                fm_rates = {g: per_group[g][fm][k] for g in col.groups}
                fnm_rates = {g: per_group[g][fnm][k] for g in col.groups}
                big = [g for g in big_enough(fm_rates, known, cfg.min_group_searches)
                       if g in big_enough(fnm_rates, known, cfg.min_group_searches)]
                differentials.append(differential(col.name, float(th[k]), setting, fm, fnm, fm_rates, fnm_rates,
                                                  big, cfg.alpha))

    for col in design.gallery_columns:
        per_group = {}
        for gi, g in enumerate(col.groups):
            per_group[g] = group_rates(gallery_errors(design, out, col.name, gi), everyone, subjects, R,
                                       _seed(seed, "gallery", col.name, g), me)
        known = [col.groups[i] for i in col.known]
        for m in ("FPIR", "ACLU_COUNT", "FMR"):
            for k in range(T):
                rates = {g: per_group[g][m][k] for g in col.groups}
                diff, ratio, note, hi, lo = _spread(rates, known)
                frames.append(ThresholdMetrics(m, float(th[k]), col.name, "gallery", overall[m][k], rates, diff,
                                          ratio, note, hi, lo))

    # who is matched to whom, and the composition test
    seed_for = lambda *key: _seed(seed, *key)  # noqa: E731
    cross = cross_tables(design, out, me, R, seed_for, group_rates)
    shares = share_tests(design, out, cfg.shares, me, R, lambda label: _seed(seed, "share", label))
    promises = promise_checks(
        [float(t) for t in th], overall["FMR"],
        {c.name: {g: by_col[c.name][g]["FMR"] for g in c.groups} for c in design.probe_columns
         if INTERSECTION not in c.name})

    # FMR targets
    targets: List[FMRTarget] = []
    n_imp = int(out.imp_n.sum())
    for target, t in out.fmr_target_thresholds.items():
        measurable = n_imp * target >= 1.0
        if t is None:
            targets.append(FMRTarget(target, None, None, None, None, None, measurable,
                                     "no impostor comparisons: no threshold can be found"))
            continue
        k = out.threshold_index(t)
        note = (f"threshold {t:.2f} gives FMR {overall['FMR'][k].errors}/{overall['FMR'][k].trials}"
                f" (the lowest 0.01 step with FMR <= {target:g})")
        if not measurable:
            note += (f"; only {n_imp} impostor comparisons: an FMR of {target:g} cannot be told apart from 0 "
                     f"(it needs at least {int(np.ceil(1 / target))})")
        targets.append(FMRTarget(target, t, overall["FMR"][k], overall["FNMR"][k], overall["FPIR"][k],
                                 overall["FNIR"][k], measurable, note))

    # the thresholds at which N searches have a false candidate (the ACLU's operating point)
    points: List[MatchCountPoint] = []
    for n_req, t in out.match_count_thresholds.items():
        if t is None:
            points.append(MatchCountPoint(n_req, None, None, None, None, None, "no threshold could be found"))
            continue
        k = out.threshold_index(t)
        got = overall["ACLU_COUNT"][k]
        note = f"at {t:.2f}, {got.errors} of {got.trials} searches had a false candidate"
        if got.errors < n_req:
            note += (f" (fewer than {n_req}: " + ("even at the lowest threshold searched" if not out.exact or t == 0
                     else "searches tie just below this threshold") + ")")
        points.append(MatchCountPoint(n_req, t, got, overall["FPIR"][k], overall["FNIR"][k], overall["FMR"][k], note))

    # summaries and projections
    reasons: Dict[float, List[str]] = {float(t): [] for t in th}
    for t in th:
        if any(abs(t - a) < 1e-9 for a in cfg.thresholds):
            reasons[float(t)].append("audited")
        if abs(t - model_threshold) < 1e-9:
            reasons[float(t)].append("model's own threshold")
    for target, t in out.fmr_target_thresholds.items():
        if t is not None:
            reasons[float(t)].append(f"overall FMR <= {target:g}")
    for n_req, t in out.match_count_thresholds.items():
        if t is not None:
            reasons[float(t)].append(f"{n_req} searches with a false candidate")
    mean_gallery = int(round(float(out.imp_n[out.probe_ok].mean()))) if out.probe_ok.any() else 0
    summaries = []
    for k, t in enumerate(th):
        fmr = overall["FMR"][k]
        proj = None
        if fmr.trials > 0:
            P, N = cfg.projection_probes, cfg.projection_gallery
            f = lambda r: float(P * -np.expm1(N * np.log1p(-r))) if r < 1 else float(P)
            proj = Projection(float(t), fmr, P, N, f(fmr.rate), f(fmr.wilson95[0]), f(fmr.wilson95[1]),
                              overall["ACLU_COUNT"][k].errors, overall["ACLU_COUNT"][k].trials, mean_gallery)
        summaries.append(ThresholdSummary(float(t), tuple(reasons[float(t)]),
                                          {m: overall[m][k] for m in overall}, proj))

    # curves
    lo = 0.0 if out.exact else out.floor
    grid = np.round(np.arange(lo, 100.0 + 1e-9, CURVE_STEP), 2)
    if not out.exact and grid[0] != out.floor:
        grid = np.concatenate([[out.floor], grid[grid > out.floor]])
    ident: Dict[str, Dict[str, Dict[str, Tuple]]] = {}
    base_cols = [c for c in design.probe_columns if "&" not in c.name]
    for name, col in [(OVERALL, None)] + [(c.name, c) for c in base_cols]:
        groups = {"all": everyone} if col is None else {g: col.codes == i for i, g in enumerate(col.groups)}
        ident[name] = {
            g: {"FPIR": identification_curve(out.best_nonmate, m & ~design.mated, grid, miss=False),
                "FNIR": identification_curve(out.best_mate, m & design.mated, grid, miss=True)}
            for g, m in groups.items()
        }
    det: Dict[str, Dict[str, Tuple]] = {}
    gen_d: Dict[str, Dict[str, Tuple[int, ...]]] = {}
    imp_d: Dict[str, Dict[str, Tuple[int, ...]]] = {}
    if out.hist_genuine is not None:
        for name, col in [(OVERALL, None)] + [(c.name, c) for c in base_cols]:
            groups = ["all"] if col is None else list(col.groups)
            hg, hi_ = out.hist_genuine[name], out.hist_impostor[name]
            det[name] = {g: det_points(hg[i], hi_[i]) for i, g in enumerate(groups)}
            gen_d[name] = {g: coarse(hg[i]) for i, g in enumerate(groups)}
            imp_d[name] = {g: coarse(hi_[i]) for i, g in enumerate(groups)}
    curves = Curves(tuple(float(x) for x in grid), ident, det, DISTRIBUTION_BIN, gen_d, imp_d)

    # counts
    gal_ok = out.gallery_ok
    enrolled_subjects = set(design.gallery_subject[gal_ok].tolist())
    mated_no_mate = int(sum(1 for i in np.nonzero(design.mated)[0]
                            if design.probe_subject[i] not in enrolled_subjects))
    counts = AuditCounts(
        probes=design.n_probes, probe_subjects=int(len(np.unique(design.probe_subject))),
        probes_failed=int((~out.probe_ok).sum()), searches_mated=int(design.mated.sum()),
        searches_non_mated=int((~design.mated).sum()), mated_without_enrolled_mate=mated_no_mate,
        gallery_images=design.n_gallery, gallery_subjects=int(len(np.unique(design.gallery_subject))),
        gallery_failed=int((~gal_ok).sum()), genuine_comparisons=int(out.gen_n.sum()),
        impostor_comparisons=n_imp, same_image_pairs_excluded=int(out.same_image_pairs),
        candidates=int(len(out.cand_similarity)), truncated_searches=int(out.truncated.sum()),
    )
    return dict(summaries=tuple(summaries), frames=tuple(frames), differentials=tuple(differentials),
                cross_tables=cross, fmr_targets=tuple(targets), curves=curves, counts=counts,
                share_tests=shares, match_counts=tuple(points), promise_checks=promises)


PLAIN = {
    "ACLU_COUNT": "searches with a false candidate (the ACLU count)",
    "FPIR": "people not in the gallery who got a false candidate (FPIR)",
    "FNIR": "people in the gallery who were not found (FNIR)",
    "MATED_FALSE": "people in the gallery also shown a stranger",
    "FMR": "comparisons of two different people that matched (FMR)",
    "FNMR": "comparisons of the same person that did not match (FNMR)",
}
"""Each metric in plain words, for warnings."""


def _list(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def result_warnings(summaries: Sequence[ThresholdSummary], frames: Sequence[ThresholdMetrics], design: AuditDesign,
                    min_errors: int, min_group_searches: int) -> Tuple[WarningGroup, ...]:
    """Cautions grouped by kind, in plain words (Doddington's rule of 30; groups too small to compare)."""
    out: List[WarningGroup] = []
    few_overall: Dict[str, List[str]] = {}
    for s in summaries:
        for m, r in s.overall.items():
            if r.trials > 0 and r.errors < min_errors:
                few_overall.setdefault(m, []).append(f"{s.threshold:g}")
    if few_overall:
        out.append(WarningGroup(
            "few_errors_overall",
            f"Some overall rates rest on fewer than {min_errors} errors, so they are uncertain (a rate from a "
            "handful of errors can move a lot with a few more photos): read their intervals.",
            tuple(f"{PLAIN.get(m, m)}: at {_list(ts)}" for m, ts in few_overall.items())))
    few_groups: Dict[Tuple[str, str], List[str]] = {}
    for f in frames:
        if f.side != "probe" or INTERSECTION in f.column:
            continue
        for g, r in f.by_group.items():
            if r.trials > 0 and r.errors < min_errors:
                few_groups.setdefault((f.column, g), []).append(f"{f.metric} at {f.threshold:g}")
    if few_groups:
        cols = sorted({c for c, _ in few_groups})
        out.append(WarningGroup(
            "few_errors_groups",
            f"Many rates of single groups rest on fewer than {min_errors} errors: compare groups by their "
            f"intervals, not by their rates alone ({len(few_groups)} groups of {_list(cols)}).",
            tuple(f"{c} {g}: {len(v)} rates" for (c, g), v in sorted(few_groups.items()))))
    small = []
    for col in design.probe_columns:
        if INTERSECTION in col.name:
            continue
        for i in col.known:
            people = len(np.unique(design.probe_subject[col.codes == i]))
            if people < min_group_searches:
                small.append(f"{col.name} {col.groups[i]} ({people} {'person' if people == 1 else 'people'})")
    if small:
        out.append(WarningGroup(
            "small_groups",
            f"Groups with fewer than {min_group_searches} people searched are shown in the tables but marked too "
            "small and left out of every ratio and differential: a rate from one or two people says little "
            "about a group.", tuple(small)))
    return tuple(out)
