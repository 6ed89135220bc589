"""From search outcomes to rates, intervals, differentials, projections and curves.

Formulas follow the shared ../shared/docs/metrics.md: FPIR, FNIR, FMR, FNMR; max/min
ratio; FDR (Pereira & Marcel 2021); IR; GARBE with the Gini coefficient (Howard
et al. 2022). Thresholds are global, never tuned per group.

The steps, each a small function: per-probe error counts of each metric
(:func:`fpir_at`, :func:`fnir_at`, :func:`fmr_at`, :func:`fnmr_at`, ...);
rates of a set of probes with the people-resampling bootstrap
(:func:`group_rates`); per-threshold records and their spread
(:func:`threshold_metrics`, :func:`spread_of`); differentials
(:func:`differentials_at`); operating points and projections
(:func:`fmr_targets`, :func:`match_count_points`, :func:`threshold_summaries`);
curves and counts. :func:`compute` composes them into :class:`AuditMetrics`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from faceaudit._stats import cluster_bootstrap_rates, gini
from faceaudit.audit._composition import cross_tables, share_tests
from faceaudit.audit._design import AuditDesign
from faceaudit.audit._groups import INTERSECTION, GroupColumn
from faceaudit.audit._promise import promise_checks
from faceaudit.audit._results import (
    PAIR_METRICS,
    SEARCH_METRICS,
    AuditCounts,
    CrossTable,
    Curves,
    Differential,
    FMRTarget,
    MatchCountPoint,
    Projection,
    PromiseCheck,
    Rate,
    ShareTest,
    ThresholdMetrics,
    ThresholdSummary,
    WarningGroup,
)
from faceaudit.audit._scoring import BIN_WIDTH, N_BINS, OVERALL, ErrorCounts, SearchOutcomes

DISTRIBUTION_BIN = 0.5
"""Width (Similarity points) of the bins of the score distributions in results.json and the report."""

CURVE_STEP = 0.5
"""Step (Similarity points) of the FPIR / FNIR against threshold curves."""


# ---------------------------------------------------------------- per-probe error counts

def fpir_at(mated: np.ndarray, false_candidate: np.ndarray) -> ErrorCounts:
    """FPIR(t) = non-mated searches returning at least one candidate >= t / all non-mated searches.

    ``mated[i]``: search ``i``'s person is in the gallery; ``false_candidate[i, k]``:
    search ``i`` returned a candidate of another person scoring >= threshold ``k``.
    """
    non = ~mated
    return ErrorCounts((non[:, None] & false_candidate).astype(np.int64), non.astype(np.int64))


def fnir_at(mated: np.ndarray, mate_found: np.ndarray) -> ErrorCounts:
    """FNIR(t) = mated searches whose true mate is not returned >= t / all mated searches.

    ``mate_found[i, k]``: a gallery face of search ``i``'s own person scored >= threshold ``k``.
    """
    return ErrorCounts((mated[:, None] & ~mate_found).astype(np.int64), mated.astype(np.int64))


def aclu_count_at(false_candidate: np.ndarray) -> ErrorCounts:
    """ACLU count(t) = searches, mated or not, returning a candidate of another person >= t / all searches."""
    return ErrorCounts(false_candidate.astype(np.int64), np.ones(false_candidate.shape[0], np.int64))


def mated_false_at(mated: np.ndarray, false_candidate: np.ndarray) -> ErrorCounts:
    """Mated false(t) = mated searches also returning a stranger >= t / all mated searches."""
    return ErrorCounts((mated[:, None] & false_candidate).astype(np.int64), mated.astype(np.int64))


def fmr_at(impostor_ge: np.ndarray, impostor_n: np.ndarray) -> ErrorCounts:
    """FMR(t) = impostor pairs (two different people) with score >= t / all impostor pairs.

    ``impostor_ge[i, k]``: probe ``i``'s impostor comparisons scoring >= threshold ``k``;
    ``impostor_n[i]``: all its impostor comparisons.
    """
    return ErrorCounts(impostor_ge.astype(np.int64), impostor_n.astype(np.int64))


def fnmr_at(genuine_ge: np.ndarray, genuine_n: np.ndarray) -> ErrorCounts:
    """FNMR(t) = genuine pairs (same person) with score < t / all genuine pairs.

    ``genuine_ge[i, k]``: probe ``i``'s genuine comparisons scoring >= threshold ``k``;
    ``genuine_n[i]``: all its genuine comparisons.
    """
    return ErrorCounts((genuine_n[:, None] - genuine_ge).astype(np.int64), genuine_n.astype(np.int64))


def probe_errors(design: AuditDesign, out: SearchOutcomes) -> dict[str, ErrorCounts]:
    """Metric name -> its per-probe :class:`ErrorCounts`, for every metric of :data:`SEARCH_METRICS`
    and :data:`PAIR_METRICS` (a false candidate is any candidate of another person)."""
    mated = design.mated
    false_candidate = out.imp_ge > 0
    return {
        "FPIR": fpir_at(mated, false_candidate),
        "FNIR": fnir_at(mated, out.gen_ge > 0),
        "ACLU_COUNT": aclu_count_at(false_candidate),
        "MATED_FALSE": mated_false_at(mated, false_candidate),
        "FMR": fmr_at(out.imp_ge, out.imp_n),
        "FNMR": fnmr_at(out.gen_ge, out.gen_n),
    }


def gallery_errors(design: AuditDesign, out: SearchOutcomes, column: str, group: int) -> dict[str, ErrorCounts]:
    """FPIR, ACLU count and FMR per probe, counting only false candidates (impostor comparisons)
    from the gallery faces in ``group`` of gallery ``column``."""
    ge = out.imp_ge_gallery[column][:, group, :]
    false_candidate = ge > 0
    return {
        "FPIR": fpir_at(design.mated, false_candidate),
        "ACLU_COUNT": aclu_count_at(false_candidate),
        "FMR": fmr_at(ge, out.imp_n_gallery[column][:, group]),
    }


def _seed(seed: int, *key: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), zlib.crc32("|".join(key).encode("utf-8"))])


RatesByMetric = dict[str, list[Rate]]
"""Metric name -> its :class:`Rate` at each threshold (in the order of ``SearchOutcomes.thresholds``)."""


def _per_subject(errs: Mapping[str, ErrorCounts], mask: np.ndarray, subjects: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Errors and trials summed per subject (person) among the probes in ``mask``: two (subjects,
    metrics x thresholds) arrays, one column per (metric, threshold), metrics in the order of ``errs``."""
    T = next(iter(errs.values())).errors.shape[1]
    uniq, inv = np.unique(subjects[mask], return_inverse=True)
    S = len(uniq)
    E = []
    N = []
    for counts in errs.values():
        se = np.zeros((S, T), np.float64)
        np.add.at(se, inv, counts.errors[mask])
        sn = np.bincount(inv, weights=counts.trials[mask], minlength=S).astype(np.float64)
        E.append(se)
        N.append(np.broadcast_to(sn[:, None], (S, T)))
    E_all = np.concatenate(E, axis=1) if E else np.zeros((S, 0))
    N_all = np.concatenate(N, axis=1) if N else np.zeros((S, 0))
    return E_all, N_all


def group_rates(
    errs: Mapping[str, ErrorCounts],
    mask: np.ndarray,
    subjects: np.ndarray,
    resamples: int,
    seed: np.random.SeedSequence,
    min_errors: int,
) -> RatesByMetric:
    """metric -> [Rate at each threshold] for the probes in ``mask``.

    rate = sum of errors / sum of trials over those probes. The bootstrap
    resamples the subjects (people) among those probes: each subject's errors and
    trials are summed first, then subjects are drawn with replacement (one weight
    matrix for every metric and threshold of the group).
    """
    T = next(iter(errs.values())).errors.shape[1]
    E_all, N_all = _per_subject(errs, mask, subjects)
    if resamples > 0 and E_all.shape[0] > 0:
        low, high = cluster_bootstrap_rates(E_all, N_all, resamples=resamples, seed=seed)
    else:
        low = high = None
    out: RatesByMetric = {}
    for mi, m in enumerate(errs):
        rates = []
        for k in range(T):
            j = mi * T + k
            boot = (low[j], high[j]) if low is not None and high is not None else None
            # subjects with at least one trial for this metric
            n_subj = int((N_all[:, j] > 0).sum())
            rates.append(Rate.of(E_all[:, j].sum(), N_all[:, j].sum(), boot, n_subj, min_errors))
        out[m] = rates
    return out


# ---------------------------------------------------------------- differentials

def big_enough(rates: Mapping[str, Rate], known: Sequence[str], min_people: int) -> list[str]:
    """Known groups with trials from at least ``min_people`` people (the others are too small to compare)."""
    return [g for g in known if g in rates and rates[g].trials > 0 and rates[g].subjects >= min_people]


@dataclass(frozen=True)
class Spread:
    """How far apart the groups' rates are: difference = max rate - min rate, ratio = max / min.

    Over the known groups with trials from enough people. ``ratio`` is None and
    ``note`` says why when it is undefined (the lowest rate is 0, or fewer than two
    groups); ``highest`` / ``lowest`` name the groups (None when not meaningful).
    """

    difference: float | None
    ratio: float | None
    note: str | None
    highest: str | None
    lowest: str | None


def spread_of(rates: Mapping[str, Rate], known: Sequence[str], min_people: int = 1) -> Spread:
    """max - min and max / min of the rates of the groups of ``known`` searched in ``min_people`` people or more."""
    vals: dict[str, float] = {g: float(rates[g].rate or 0.0) for g in big_enough(rates, known, min_people)}
    if len(vals) < 2:
        note = ("undefined: fewer than two groups with data" if min_people <= 1 else
                f"undefined: fewer than two groups with at least {min_people} people searched")
        return Spread(None, None, note, None, None)
    hi_g = max(vals, key=lambda g: vals[g])
    lo_g = min(vals, key=lambda g: vals[g])
    hi, lo = vals[hi_g], vals[lo_g]
    if lo == 0.0 or hi == lo:
        if hi == 0.0:
            return Spread(0.0, None, "undefined: every group's rate is 0", None, None)
        if hi == lo:
            return Spread(0.0, 1.0, "equal: every group compared has the same rate", None, None)
        return Spread(hi - lo, None, f"undefined: the lowest rate ({lo_g}) is 0", hi_g, lo_g)
    return Spread(hi - lo, hi / lo, None, hi_g, lo_g)


def differential(
    column: str, threshold: float, setting: str, fm_name: str, fnm_name: str,
    fm: Mapping[str, Rate], fnm: Mapping[str, Rate], known: Sequence[str], alpha: float,
) -> Differential:
    """FDR, IR and GARBE over the known groups ``known`` that have trials for both rates.

    With a = ``alpha``, i and j ranging over the groups, FM the false-match rate
    (``fm``: FMR or FPIR) and FNM the false-non-match rate (``fnm``: FNMR or FNIR):

    * FDR = 1 - (a * max|FM_i - FM_j| + (1 - a) * max|FNM_i - FNM_j|)  (Pereira & Marcel 2021; 1 = fair)
    * IR = (max FM / min FM)^a * (max FNM / min FNM)^(1 - a)  (1 = fair; undefined when a minimum is 0)
    * GARBE = a * Gini(FM) + (1 - a) * Gini(FNM)  (Howard et al. 2022; 0 = equitable)
    """
    groups = tuple(g for g in known if fm.get(g) and fnm.get(g) and fm[g].trials > 0 and fnm[g].trials > 0)
    notes: list[str] = []
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


def det_points(gen_hist: np.ndarray, imp_hist: np.ndarray,
               floor_fmr: float = 1e-7) -> tuple[tuple[float, float, float], ...]:
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


def coarse(hist: np.ndarray, width: float = DISTRIBUTION_BIN) -> tuple[int, ...]:
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


# ---------------------------------------------------------------- rates per group and their spread

ByGroup = dict[str, RatesByMetric]
"""Group name -> metric -> its Rate at each threshold."""


def probe_group_rates(design: AuditDesign, errs: Mapping[str, ErrorCounts], column: GroupColumn) -> ByGroup:
    """Every metric of each group of a probe column (the person searched), bootstrap seeded per group."""
    cfg = design.config
    return {g: group_rates(errs, column.codes == gi, design.probe_subject, cfg.bootstrap,
                           _seed(cfg.seed, "probe", column.name, g), cfg.min_errors)
            for gi, g in enumerate(column.groups)}


def gallery_group_rates(design: AuditDesign, out: SearchOutcomes, column: GroupColumn) -> ByGroup:
    """FPIR, ACLU count and FMR counting false candidates from each group of a gallery column in turn."""
    cfg = design.config
    everyone = np.ones(design.n_probes, bool)
    return {g: group_rates(gallery_errors(design, out, column.name, gi), everyone, design.probe_subject,
                           cfg.bootstrap, _seed(cfg.seed, "gallery", column.name, g), cfg.min_errors)
            for gi, g in enumerate(column.groups)}


def threshold_metrics(column: GroupColumn, side: str, metrics: Sequence[str], thresholds: np.ndarray,
                      overall: RatesByMetric, per_group: ByGroup, min_people: int) -> list[ThresholdMetrics]:
    """One :class:`ThresholdMetrics` per metric and threshold: overall, each group, and their spread."""
    known = [column.groups[i] for i in column.known]
    records: list[ThresholdMetrics] = []
    for m in metrics:
        for k, t in enumerate(thresholds):
            rates = {g: per_group[g][m][k] for g in column.groups}
            s = spread_of(rates, known, min_people)
            records.append(ThresholdMetrics(m, float(t), column.name, side, overall[m][k], rates, s.difference,
                                            s.ratio, s.note, s.highest, s.lowest))
    return records


def differentials_at(column: GroupColumn, thresholds: np.ndarray, per_group: ByGroup, min_people: int,
                     alpha: float) -> list[Differential]:
    """FDR, IR and GARBE at each threshold, 1:1 (FMR, FNMR) then 1:N (FPIR, FNIR), over the known groups
    with both rates measured on at least ``min_people`` people."""
    known = [column.groups[i] for i in column.known]
    out: list[Differential] = []
    for k, t in enumerate(thresholds):
        for setting, fm, fnm in (("1:1", "FMR", "FNMR"), ("1:N", "FPIR", "FNIR")):
            fm_rates = {g: per_group[g][fm][k] for g in column.groups}
            fnm_rates = {g: per_group[g][fnm][k] for g in column.groups}
            both = [g for g in big_enough(fm_rates, known, min_people)
                    if g in big_enough(fnm_rates, known, min_people)]
            out.append(differential(column.name, float(t), setting, fm, fnm, fm_rates, fnm_rates, both, alpha))
    return out


# ---------------------------------------------------------------- operating points and projections

def fmr_targets(out: SearchOutcomes, overall: RatesByMetric) -> tuple[FMRTarget, ...]:
    """For each FMR target: the lowest 0.01 threshold with overall FMR(t) <= target, and the rates there.

    The target is measurable when impostor comparisons x target >= 1 (fewer cannot tell it from 0).
    """
    targets: list[FMRTarget] = []
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
    return tuple(targets)


def match_count_points(out: SearchOutcomes, overall: RatesByMetric) -> tuple[MatchCountPoint, ...]:
    """For each requested N: the lowest 0.01 threshold t with ACLU count(t) <= N searches (the ACLU's
    operating point), and the rates there."""
    points: list[MatchCountPoint] = []
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
    return tuple(points)


def threshold_reasons(out: SearchOutcomes, audited: Sequence[float], model_threshold: float
                      ) -> dict[float, list[str]]:
    """Why each threshold of ``out`` is reported: audited, the model's own, an FMR target, a match count."""
    reasons: dict[float, list[str]] = {float(t): [] for t in out.thresholds}
    for t in out.thresholds:
        if any(abs(t - a) < 1e-9 for a in audited):
            reasons[float(t)].append("audited")
        if abs(t - model_threshold) < 1e-9:
            reasons[float(t)].append("model's own threshold")
    for target, ft in out.fmr_target_thresholds.items():
        if ft is not None:
            reasons[float(ft)].append(f"overall FMR <= {target:g}")
    for n_req, mt in out.match_count_thresholds.items():
        if mt is not None:
            reasons[float(mt)].append(f"{n_req} searches with a false candidate")
    return reasons


def expected_false_match_searches(fmr: float, probes: int, gallery: int) -> float:
    """probes x (1 - (1 - FMR)^gallery): searches expected to return a false candidate if each of the
    ``gallery`` comparisons of each search were an independent draw at ``fmr`` (a projection)."""
    return float(probes * -np.expm1(gallery * np.log1p(-fmr))) if fmr < 1 else float(probes)


def projection_at(threshold: float, fmr: Rate, aclu_count: Rate, probes: int, gallery: int,
                  mean_gallery: int) -> Projection | None:
    """The ACLU count projected to ``probes`` searches of a ``gallery``-face gallery from the measured FMR
    (and the ends of its Wilson interval); None without impostor comparisons."""
    if fmr.trials == 0 or fmr.rate is None:
        return None
    f = expected_false_match_searches
    return Projection(threshold, fmr, probes, gallery, f(fmr.rate, probes, gallery),
                      f(fmr.wilson95[0], probes, gallery), f(fmr.wilson95[1], probes, gallery),
                      aclu_count.errors, aclu_count.trials, mean_gallery)


def threshold_summaries(design: AuditDesign, out: SearchOutcomes, overall: RatesByMetric,
                        model_threshold: float) -> tuple[ThresholdSummary, ...]:
    """The overall rates at each threshold, why it is reported, and the projection to the ACLU's size."""
    cfg = design.config
    reasons = threshold_reasons(out, cfg.thresholds, model_threshold)
    mean_gallery = int(round(float(out.imp_n[out.probe_ok].mean()))) if out.probe_ok.any() else 0
    summaries = []
    for k, t in enumerate(out.thresholds):
        proj = projection_at(float(t), overall["FMR"][k], overall["ACLU_COUNT"][k], cfg.projection_probes,
                             cfg.projection_gallery, mean_gallery)
        summaries.append(ThresholdSummary(float(t), tuple(reasons[float(t)]),
                                          {m: overall[m][k] for m in overall}, proj))
    return tuple(summaries)


# ---------------------------------------------------------------- curves and counts

def curve_grid(out: SearchOutcomes) -> np.ndarray:
    """Thresholds of the identification curves: 0 to 100 in :data:`CURVE_STEP` steps (from the search
    floor when only candidates at or above it are known)."""
    lo = 0.0 if out.exact else out.floor
    grid = np.round(np.arange(lo, 100.0 + 1e-9, CURVE_STEP), 2)
    if not out.exact and grid[0] != out.floor:
        grid = np.concatenate([[out.floor], grid[grid > out.floor]])
    return grid


def curves_of(design: AuditDesign, out: SearchOutcomes) -> Curves:
    """FPIR(t) and FNIR(t) curves, DET points and score distributions, overall and per group of each
    base probe column (DET and distributions with exact scores only)."""
    grid = curve_grid(out)
    everyone = np.ones(design.n_probes, bool)
    columns = [(OVERALL, None)] + [(c.name, c) for c in design.probe_columns if INTERSECTION not in c.name]
    ident: dict[str, dict[str, dict[str, tuple]]] = {}
    for name, col in columns:
        groups = {"all": everyone} if col is None else {g: col.codes == i for i, g in enumerate(col.groups)}
        ident[name] = {
            g: {"FPIR": identification_curve(out.best_nonmate, m & ~design.mated, grid, miss=False),
                "FNIR": identification_curve(out.best_mate, m & design.mated, grid, miss=True)}
            for g, m in groups.items()
        }
    det: dict[str, dict[str, tuple]] = {}
    gen_d: dict[str, dict[str, tuple[int, ...]]] = {}
    imp_d: dict[str, dict[str, tuple[int, ...]]] = {}
    if out.hist_genuine is not None and out.hist_impostor is not None:
        for name, col in columns:
            names = ["all"] if col is None else list(col.groups)
            hg, hi = out.hist_genuine[name], out.hist_impostor[name]
            det[name] = {g: det_points(hg[i], hi[i]) for i, g in enumerate(names)}
            gen_d[name] = {g: coarse(hg[i]) for i, g in enumerate(names)}
            imp_d[name] = {g: coarse(hi[i]) for i, g in enumerate(names)}
    return Curves(tuple(float(x) for x in grid), ident, det, DISTRIBUTION_BIN, gen_d, imp_d)


def audit_counts(design: AuditDesign, out: SearchOutcomes) -> AuditCounts:
    """How many images, people, searches and comparisons the audit rests on."""
    gal_ok = out.gallery_ok
    enrolled_subjects = set(design.gallery_subject[gal_ok].tolist())
    mated_no_mate = int(sum(1 for i in np.nonzero(design.mated)[0]
                            if design.probe_subject[i] not in enrolled_subjects))
    return AuditCounts(
        probes=design.n_probes, probe_subjects=len(np.unique(design.probe_subject)),
        probes_failed=int((~out.probe_ok).sum()), searches_mated=int(design.mated.sum()),
        searches_non_mated=int((~design.mated).sum()), mated_without_enrolled_mate=mated_no_mate,
        gallery_images=design.n_gallery, gallery_subjects=len(np.unique(design.gallery_subject)),
        gallery_failed=int((~gal_ok).sum()), genuine_comparisons=int(out.gen_n.sum()),
        impostor_comparisons=int(out.imp_n.sum()), same_image_pairs_excluded=int(out.same_image_pairs),
        candidates=len(out.cand_similarity), truncated_searches=int(out.truncated.sum()),
    )


# ---------------------------------------------------------------- the whole computation

@dataclass(frozen=True)
class AuditMetrics:
    """Everything an audit measures from its search outcomes: the fields of :class:`AuditResult` that
    are not metadata (same names)."""

    summaries: tuple[ThresholdSummary, ...]
    frames: tuple[ThresholdMetrics, ...]
    differentials: tuple[Differential, ...]
    cross_tables: tuple[CrossTable, ...]
    fmr_targets: tuple[FMRTarget, ...]
    curves: Curves
    counts: AuditCounts
    share_tests: tuple[ShareTest, ...]
    match_counts: tuple[MatchCountPoint, ...]
    promise_checks: tuple[PromiseCheck, ...]


def compute(design: AuditDesign, out: SearchOutcomes, model_threshold: float) -> AuditMetrics:
    """Every rate, interval, differential, operating point, projection, curve and count of an audit."""
    cfg = design.config
    th = out.thresholds
    R, seed, me = cfg.bootstrap, cfg.seed, cfg.min_errors
    errs = probe_errors(design, out)
    overall = group_rates(errs, np.ones(design.n_probes, bool), design.probe_subject, R, _seed(seed, "overall"), me)
    frames: list[ThresholdMetrics] = []
    differentials: list[Differential] = []
    fmr_by_group: dict[str, dict[str, list[Rate]]] = {}
    for col in design.probe_columns:
        per_group = probe_group_rates(design, errs, col)
        frames += threshold_metrics(col, "probe", SEARCH_METRICS + PAIR_METRICS, th, overall, per_group,
                                    cfg.min_group_searches)
        differentials += differentials_at(col, th, per_group, cfg.min_group_searches, cfg.alpha)
        if INTERSECTION not in col.name:
            fmr_by_group[col.name] = {g: per_group[g]["FMR"] for g in col.groups}
    for col in design.gallery_columns:
        frames += threshold_metrics(col, "gallery", ("FPIR", "ACLU_COUNT", "FMR"), th, overall,
                                    gallery_group_rates(design, out, col), 1)
    return AuditMetrics(
        summaries=threshold_summaries(design, out, overall, model_threshold),
        frames=tuple(frames), differentials=tuple(differentials),
        cross_tables=cross_tables(design, out, me, R, lambda *key: _seed(seed, *key), group_rates),
        fmr_targets=fmr_targets(out, overall), curves=curves_of(design, out), counts=audit_counts(design, out),
        share_tests=share_tests(design, out, cfg.shares, me, R, lambda label: _seed(seed, "share", label)),
        match_counts=match_count_points(out, overall),
        promise_checks=promise_checks([float(t) for t in th], overall["FMR"], fmr_by_group),
    )


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
                    min_errors: int, min_group_searches: int) -> tuple[WarningGroup, ...]:
    """Cautions grouped by kind, in plain words (Doddington's rule of 30; groups too small to compare)."""
    out: list[WarningGroup] = []
    few_overall: dict[str, list[str]] = {}
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
    few_groups: dict[tuple[str, str], list[str]] = {}
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
