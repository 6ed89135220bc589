"""Who is falsely matched, and to whom: the composition test and probe group x gallery group tables.

The composition test checks the ACLU's second finding ("people of color were
about 40% of the false matches and about 20% of Congress") on any set of labels
of any probe column: among searches with a false candidate, the share in the
set, against the share among all searches, with intervals and Fisher's exact
test. The cross tables give the false-match rate (FMR) of every pair of probe
group and gallery group, so a reader sees whether false matches fall within or
across groups, next to who is in the gallery.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceaudit._stats import fisher_exact_two_sided
from faceaudit.audit._design import AuditDesign
from faceaudit.audit._groups import INTERSECTION, ShareSpec
from faceaudit.audit._results import CrossTable, Rate, ShareTest
from faceaudit.audit._scoring import ErrorCounts, SearchOutcomes

MIN_DEFINED = 0.99
"""Share of bootstrap resamples that must hold a falsely matched search for the difference's interval."""


def _difference_interval(in_set: np.ndarray, matched: np.ndarray, subjects: np.ndarray, resamples: int,
                         seed: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% intervals (per threshold) of share-among-matched minus share-among-all.

    ``in_set[i]``: search i's person is in the set; ``matched[i, k]``: search i had a
    false candidate at threshold k. People (subjects) are resampled with their searches.
    NaN where too few searches were matched for the bootstrap to mean anything.
    """
    T = matched.shape[1]
    if resamples <= 0 or len(in_set) == 0:
        nan = np.full(T, np.nan)
        return nan, nan.copy()
    uniq, inv = np.unique(subjects, return_inverse=True)
    S = len(uniq)
    n_all = np.bincount(inv, minlength=S).astype(np.float64)
    n_in = np.bincount(inv, weights=in_set.astype(np.float64), minlength=S)
    m_all = np.zeros((S, T))
    m_in = np.zeros((S, T))
    np.add.at(m_all, inv, matched.astype(np.float64))
    np.add.at(m_in, inv, (matched & in_set[:, None]).astype(np.float64))
    rng = np.random.default_rng(seed)
    w = rng.multinomial(S, np.full(S, 1.0 / S), size=resamples).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = (w @ m_in) / (w @ m_all) - ((w @ n_in) / (w @ n_all))[:, None]
    low, high = np.full(T, np.nan), np.full(T, np.nan)
    for k in range(T):
        col = diff[:, k]
        ok = np.isfinite(col)
        # a resample without any falsely matched search has no share: with so few matches that this happens
        # in more than 1% of the resamples, the bootstrap says nothing reliable and no interval is given
        if ok.mean() >= MIN_DEFINED:
            low[k], high[k] = np.percentile(col[ok], [2.5, 97.5])
    return low, high


def share_tests(design: AuditDesign, out: SearchOutcomes, specs: Sequence[ShareSpec], min_errors: int,
                resamples: int, seed_for) -> tuple[ShareTest, ...]:
    """One :class:`ShareTest` per spec and threshold of ``out``."""
    result: list[ShareTest] = []
    matched_all = out.imp_ge > 0  # a false candidate at each threshold (the ACLU count)
    for spec in specs:
        labels = np.array([r.label(spec.column) for r in design.probes], dtype=object)
        known = labels != ""
        in_set = np.isin(labels, np.array(spec.values, dtype=object)) & known
        present = sorted({str(x) for x in labels[known]})
        outside = tuple(v for v in present if v not in spec.values)
        absent = tuple(v for v in spec.values if v not in present)
        matched = matched_all[known]
        k_in, k_sub = in_set[known], design.probe_subject[known]
        low, high = _difference_interval(k_in, matched, k_sub, resamples, seed_for(spec.label))
        n_all, n_in = int(known.sum()), int(k_in.sum())
        everyone = Rate.of(n_in, n_all, min_errors=min_errors)
        for k, t in enumerate(out.thresholds):
            m = matched[:, k]
            a, c = int((m & k_in).sum()), int((m & ~k_in).sum())  # matched: in set / outside
            b, d = n_in - a, (n_all - n_in) - c  # not matched: in set / outside
            share = Rate.of(a, a + c, min_errors=min_errors)
            ratio = diff = None
            if share.rate is not None and everyone.rate:
                ratio = share.rate / everyone.rate
            if share.rate is not None and everyone.rate is not None:
                diff = share.rate - everyone.rate
            boot = None
            if np.isfinite(low[k]) and np.isfinite(high[k]):
                boot = (float(low[k]), float(high[k]))
            p = fisher_exact_two_sided(a, b, c, d) if n_all else None
            result.append(ShareTest(
                label=spec.label, column=spec.column, values=spec.values, threshold=float(t), matched=share,
                everyone=everyone, ratio=ratio, difference=diff, difference_bootstrap95=boot,
                rate_in_set=Rate.of(a, n_in, min_errors=min_errors),
                rate_outside=Rate.of(c, n_all - n_in, min_errors=min_errors), p_value=p,
                unknown=int((~known).sum()), labels_outside=outside, labels_absent=absent,
            ))
    return tuple(result)


def cross_tables(design: AuditDesign, out: SearchOutcomes, min_errors: int, resamples: int, seed_for,
                 group_rates) -> tuple[CrossTable, ...]:
    """FMR of every (probe group, gallery group) pair, for each base probe column x each gallery column.

    ``group_rates`` is :func:`faceaudit.audit._metrics.group_rates` (rates with the
    people-resampling bootstrap); ``seed_for(*key)`` gives its seed.
    """
    tables: list[CrossTable] = []
    T = len(out.thresholds)
    for gcol in design.gallery_columns:
        ge = out.imp_ge_gallery[gcol.name]
        n = out.imp_n_gallery[gcol.name]
        errs = {gg: ErrorCounts(ge[:, gj, :], n[:, gj]) for gj, gg in enumerate(gcol.groups)}
        for pcol in design.probe_columns:
            if INTERSECTION in pcol.name:
                continue
            per: dict[str, dict[str, list[Rate]]] = {}
            for pi, pg in enumerate(pcol.groups):
                per[pg] = group_rates(errs, pcol.codes == pi, design.probe_subject, resamples,
                                      seed_for("cross", pcol.name, gcol.name, pg), min_errors)
            for k in range(T):
                cells = {pg: {gg: per[pg][gg][k] for gg in gcol.groups} for pg in pcol.groups}
                tables.append(CrossTable(pcol.name, gcol.name, float(out.thresholds[k]), "FMR", cells))
    return tuple(tables)
