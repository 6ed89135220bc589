"""The audit per probe condition: the same metrics, the lead-list view and the temptation curve.

A probe condition (:mod:`faceaudit.engine`'s ``ProbeCondition``) degrades every probe the
way a doorbell or CCTV camera would take it; the gallery is unchanged. For each condition
the audit keeps what :func:`faceaudit.audit._metrics.compute` measures (FNIR, FPIR, the ACLU
count, FMR, the promise checks, per-group rates with intervals), plus:

* the lead-list view: police read a candidate list, not a threshold. Of the mated searches,
  the share with the mate at rank 1, in the top 5, 20 and 50 (a probe without a usable face
  has no list: it counts as not found); and, for every search whose top candidate is a
  stranger (mated searches with the mate below rank 1 or missing, and non-mated searches),
  the Similarity of that stranger.
* the temptation curve: an investigator who gets no hit lowers the threshold. The highest
  threshold at which FNIR <= 5% under this condition, and what it costs in false candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceaudit.audit._design import AuditDesign
from faceaudit.audit._metrics import AuditMetrics
from faceaudit.audit._results import MatchCountPoint, PromiseCheck, ShareTest, ThresholdMetrics, ThresholdSummary
from faceaudit.audit._scoring import OVERALL, SearchOutcomes, threshold_bin
from faceaudit.engine import quality_band

LEAD_RANKS = (1, 5, 20, 50)
"""Candidate-list depths of the lead-list view."""

TEMPTATION_FNIR = 0.05
"""The miss rate a user would lower the threshold to reach: FNIR <= 5%."""

SYNTHETIC_NOTE = (
    "Probe conditions are synthetic: real portraits scaled, blurred, darkened, made noisy and re-encoded. "
    "They show the direction and rough size of the effect of camera distance, low light and compression, "
    "not the error rates on real doorbell or CCTV footage; pose, occlusion and lens distortion are not simulated."
)


@dataclass(frozen=True)
class LeadList:
    """Where the mate lands in the candidate list, with no threshold.

    ``mated_searches``: mated searches (probe failures included, as not found).
    ``at_rank``: list depth -> share of mated searches with the mate at that rank or better (0-1).
    ``stranger_on_top``: searches whose top candidate is a stranger (mated with the mate below
    rank 1 or not found, and non-mated with any candidate); ``top_stranger_similarity``:
    the Similarity (0-100) of that stranger at the 10th, 50th and 90th percentile (None when
    there is none), and ``top_stranger_at``: threshold -> how many of them reach it.
    """

    mated_searches: int
    at_rank: Mapping[int, float | None]
    found_at_rank: Mapping[int, int]
    stranger_on_top: int
    top_stranger_similarity: Mapping[str, float | None]
    top_stranger_at: Mapping[str, int]


@dataclass(frozen=True)
class Temptation:
    """The threshold a user needs for FNIR <= ``fnir_target`` under a condition, and its cost.

    ``threshold``: the highest Similarity (0.01 steps) with FNIR <= target, None when no
    threshold reaches it (more mates than that fail to enrol or score nothing).
    ``fnir``: FNIR there (0-1). ``searches_with_false_candidate``: this audit's searches
    with a stranger at or above it, of ``searches``. ``fmr``: the measured per-comparison
    false match rate there. ``expected_*``: searches with a false candidate expected for
    ``projection_probes`` searches against this audit's gallery and against
    ``projection_gallery`` photos: probes * (1 - (1 - FMR) ** gallery), a projection that
    assumes independent comparisons, not a measurement.
    """

    fnir_target: float
    threshold: float | None
    fnir: float | None
    searches_with_false_candidate: int | None
    searches: int
    fmr: float | None
    projection_probes: int
    audit_gallery: int
    expected_audit_gallery: float | None
    projection_gallery: int
    expected_projection_gallery: float | None
    note: str


@dataclass(frozen=True)
class ConditionResult:
    """The audit's numbers for the probes under one condition (the gallery unchanged).

    ``failures_to_enrol``: probes with no usable face under the condition (after the detector's
    retry on the enlarged image); they count as misses. ``target_eye_distance``: the ``iod``
    step's pixels between the eyes (None when the condition keeps the size) and
    ``quality_band`` its band (:func:`faceaudit.engine.quality_band`). ``embed_seconds``: wall time to degrade,
    detect and embed the probes (0 when all came from the cache).
    """

    name: str
    spec: str
    version: str
    source: str
    probes: int
    failures_to_enrol: int
    target_eye_distance: float | None
    quality_band: str | None
    embed_seconds: float
    images_embedded: int
    images_from_cache: int
    summaries: tuple[ThresholdSummary, ...]
    frames: tuple[ThresholdMetrics, ...]
    promise_checks: tuple[PromiseCheck, ...]
    share_tests: tuple[ShareTest, ...]
    match_counts: tuple[MatchCountPoint, ...]
    lead_list: LeadList
    temptation: Temptation
    note: str = SYNTHETIC_NOTE

    def rate(self, metric: str, threshold: float):
        """The overall :class:`Rate` of ``metric`` at ``threshold`` under this condition."""
        for s in self.summaries:
            if abs(s.threshold - threshold) < 1e-9:
                return s.overall[metric]
        raise KeyError(threshold)


def mate_ranks(design: AuditDesign, out: SearchOutcomes, probe_vectors: np.ndarray,
               gallery_vectors: np.ndarray, to_similarity: Callable[[np.ndarray], np.ndarray],
               block: int = 256) -> np.ndarray:
    """Rank of the best-scoring mate in each probe's candidate list (1 = top), 0 when none.

    Rank = 1 + the enrolled strangers scoring strictly above the best mate (``out.best_mate``,
    exact scores; ties go to the mate). 0 for non-mated searches, failed probes and mates
    that did not enrol.
    """
    P = design.n_probes
    ranks = np.zeros(P, np.int64)
    gok = np.asarray(out.gallery_ok, bool)
    rows = np.nonzero(design.mated & out.probe_ok & np.isfinite(out.best_mate))[0]
    for start in range(0, len(rows), block):
        idx = rows[start:start + block]
        sim = to_similarity(probe_vectors[idx] @ gallery_vectors.T)
        stranger = (design.probe_subject[idx][:, None] != design.gallery_subject[None, :]) & gok[None, :]
        above = (sim > out.best_mate[idx][:, None]) & stranger
        ranks[idx] = 1 + above.sum(axis=1)
    return ranks


def lead_list(design: AuditDesign, out: SearchOutcomes, ranks: np.ndarray, thresholds) -> LeadList:
    mated = design.mated
    M = int(mated.sum())
    found = {k: int(((ranks >= 1) & (ranks <= k) & mated).sum()) for k in LEAD_RANKS}
    share = {k: (found[k] / M if M else None) for k in LEAD_RANKS}
    top_stranger = out.probe_ok & np.isfinite(out.best_nonmate) & ~(mated & (ranks == 1))
    sims = out.best_nonmate[top_stranger]
    pct = {f"p{q}": (float(np.percentile(sims, q)) if sims.size else None) for q in (10, 50, 90)}
    at = {f"{float(t):g}": int((sims >= t).sum()) for t in thresholds}
    return LeadList(M, share, found, int(top_stranger.sum()), pct, at)


def temptation(design: AuditDesign, out: SearchOutcomes, target: float = TEMPTATION_FNIR) -> Temptation:
    cfg = design.config
    mated = design.mated
    M = int(mated.sum())
    P = design.n_probes
    G = int(np.asarray(out.gallery_ok, bool).sum())
    base: dict[str, Any] = dict(fnir_target=target, searches=P, projection_probes=cfg.projection_probes,
                                audit_gallery=G, projection_gallery=cfg.projection_gallery)
    if M == 0:
        return Temptation(threshold=None, fnir=None, searches_with_false_candidate=None, fmr=None,
                          expected_audit_gallery=None, expected_projection_gallery=None,
                          note="no mated searches: FNIR cannot be measured", **base)
    scores = np.where(mated & out.probe_ok & np.isfinite(out.best_mate), out.best_mate, -np.inf)[mated]
    allowed = int(np.floor(target * M + 1e-9))
    need = M - allowed  # mates that must be found
    best = np.sort(scores)[::-1][need - 1] if need >= 1 else 100.0
    if not np.isfinite(best):
        lost = int((~np.isfinite(scores)).sum())
        return Temptation(threshold=None, fnir=None, searches_with_false_candidate=None, fmr=None,
                          expected_audit_gallery=None, expected_projection_gallery=None,
                          note=f"no threshold reaches FNIR <= {target:.0%}: {lost} of {M} mated searches have no "
                               "usable face or no enrolled mate", **base)
    t = float(np.floor(float(best) * 100.0 + 1e-6) / 100.0)
    fnir = float((scores < t).sum()) / M
    false = int((out.probe_ok & np.isfinite(out.best_nonmate) & (out.best_nonmate >= t)).sum())
    fmr = None
    if out.hist_impostor is not None:
        hist = np.asarray(out.hist_impostor[OVERALL][0], np.float64)
        total = float(hist.sum())
        fmr = float(hist[threshold_bin(t):].sum()) / total if total else None
    # (without exact score histograms FMR is known only at the audited thresholds: left None)

    def expected(gallery: int) -> float | None:
        if fmr is None:
            return None
        return float(cfg.projection_probes * -np.expm1(gallery * np.log1p(-min(fmr, 1 - 1e-15))))

    return Temptation(threshold=t, fnir=fnir, searches_with_false_candidate=false, fmr=fmr,
                      expected_audit_gallery=expected(G), expected_projection_gallery=expected(cfg.projection_gallery),
                      note=f"at Similarity {t:.2f}, {fnir:.1%} of mates are missed and {false} of {P} searches "
                           "have a stranger at or above it", **base)


def condition_result(design: AuditDesign, condition, out: SearchOutcomes, parts: AuditMetrics, ranks: np.ndarray,
                     embed_seconds: float, embedded: int, from_cache: int) -> ConditionResult:
    """One condition's :class:`ConditionResult` from its outcomes and ``compute``'s parts."""
    thresholds = [float(t) for t in design.config.thresholds]
    return ConditionResult(
        name=condition.name, spec=condition.spec, version=condition.version, source=condition.source,
        probes=design.n_probes, failures_to_enrol=int((~np.asarray(out.probe_ok, bool)).sum()),
        target_eye_distance=condition.target_eye_distance,
        quality_band=(None if condition.target_eye_distance is None
                      else quality_band(condition.target_eye_distance).name),
        embed_seconds=round(float(embed_seconds), 2), images_embedded=int(embedded), images_from_cache=int(from_cache),
        summaries=parts.summaries, frames=parts.frames, promise_checks=parts.promise_checks,
        share_tests=parts.share_tests, match_counts=parts.match_counts,
        lead_list=lead_list(design, out, ranks, thresholds), temptation=temptation(design, out),
    )


COMPACT_FRAMES = "counts-v1"
"""The form of each condition's ``frames`` in results.json (:func:`compact_frames`)."""


def compact_frames(frames: Any) -> Any:
    """A condition's per-group records in results.json's compact form: the counts only.

    The full form (one dict per metric, threshold and column, as the audit's top-level
    ``frames``) repeats every rate and interval and made results.json ~7.8 MB with five
    conditions. Here each record is one row ``[metric, column, side, threshold, errors,
    trials, {group: [errors, trials]}]`` under ``{"form": "counts-v1", "fields": [...]}``:
    every rate and Wilson interval follows from its counts (:func:`expand_frames` recomputes
    them); the subject bootstrap intervals are kept only in the top-level ``frames`` (the
    photos as taken), which candidates.csv recounts. ``frames`` already compact, or not a
    list, is returned as is.
    """
    if not isinstance(frames, list):
        return frames
    rows = []
    for f in frames:
        o = f.get("overall") or {}
        rows.append([f["metric"], f["column"], f.get("side", "probe"), f["threshold"], o.get("errors"), o.get("trials"),
                     {str(g): [r.get("errors"), r.get("trials")] for g, r in (f.get("by_group") or {}).items()}])
    return {"form": COMPACT_FRAMES,
            "fields": ["metric", "column", "side", "threshold", "errors", "trials", "by_group"], "rows": rows}


def _counted(errors: Any, trials: Any) -> dict[str, Any]:
    from faceaudit._stats import wilson_interval

    e, t = int(errors or 0), int(trials or 0)
    lo, hi = wilson_interval(e, t)
    return {"errors": e, "trials": t, "rate": e / t if t else None, "wilson95": [lo, hi]}


def expand_frames(frames: Any) -> list[dict[str, Any]]:
    """A condition's ``frames`` as dicts with ``overall`` and ``by_group`` rates (errors, trials,
    rate, wilson95), from the compact form (:func:`compact_frames`) or the full one."""
    if isinstance(frames, Mapping) and frames.get("form") == COMPACT_FRAMES:
        out = []
        for metric, column, side, threshold, errors, trials, groups in frames.get("rows") or ():
            out.append({"metric": metric, "column": column, "side": side, "threshold": threshold,
                        "overall": _counted(errors, trials),
                        "by_group": {g: _counted(e, t) for g, (e, t) in (groups or {}).items()}})
        return out
    return [dict(f) for f in frames or () if isinstance(f, Mapping)]
