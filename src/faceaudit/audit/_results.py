"""The audit's results: frozen dataclasses, serialised to JSON (``results.json``).

Rates are proportions (0-1); similarities and thresholds are Similarity 0-100,
higher is more alike. A metric "at threshold t" counts a comparison as a match
when its similarity is >= t.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit._stats import wilson_interval

METRICS: dict[str, str] = {
    "FPIR": "false positive identification rate: non-mated searches (the person is not in the "
            "gallery) that returned at least one candidate at or above the threshold",
    "FNIR": "false negative identification rate: mated searches (the person is in the gallery) "
            "whose true mate was not returned at or above the threshold",
    "ACLU_COUNT": "searches, mated or not, that returned at least one candidate of ANOTHER person "
                  "at or above the threshold (the ACLU's count: 28 of 535 at 80)",
    "MATED_FALSE": "mated searches that also returned a stranger at or above the threshold",
    "FMR": "false match rate: comparisons of two different people scoring at or above the threshold",
    "FNMR": "false non-match rate: comparisons of two photos of the same person scoring below the threshold",
}
"""The metrics reported, with their plain-words definitions."""

SEARCH_METRICS = ("FPIR", "FNIR", "ACLU_COUNT", "MATED_FALSE")
PAIR_METRICS = ("FMR", "FNMR")


def plain(obj: Any) -> Any:
    """Dataclasses, mappings, tuples and numpy values as JSON-ready Python.

    NaN/inf -> None; floats keep 7 significant digits (counts are exact integers).
    """
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:  # most leaves: nothing to do
        return obj
    if kind is float:
        return float(f"{obj:.7g}") if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return float(f"{v:.7g}") if math.isfinite(v) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass(frozen=True)
class Rate:
    """``errors`` out of ``trials``, with 95% intervals.

    ``rate`` is None when there were no trials. ``wilson95`` is the Wilson score
    interval (treats trials as independent); ``bootstrap95`` resamples subjects
    (people searched), so it widens when one person's errors cluster; None when no
    bootstrap ran. ``few_errors``: the rate rests on fewer than 30 errors
    (Doddington's rule of 30) and is uncertain.
    """

    errors: int
    trials: int
    rate: float | None
    wilson95: tuple[float, float]
    bootstrap95: tuple[float | None, float | None] | None = None
    subjects: int = 0
    few_errors: bool = True

    @classmethod
    def of(cls, errors: int, trials: int, bootstrap=None, subjects: int = 0, min_errors: int = 30) -> Rate:
        errors, trials = int(errors), int(trials)
        boot = None
        if bootstrap is not None:
            lo, hi = bootstrap
            boot = (None if lo is None or not math.isfinite(lo) else float(lo),
                    None if hi is None or not math.isfinite(hi) else float(hi))
        return cls(
            errors=errors, trials=trials, rate=(errors / trials) if trials else None,
            wilson95=wilson_interval(errors, trials), bootstrap95=boot, subjects=int(subjects),
            few_errors=errors < min_errors,
        )


@dataclass(frozen=True)
class ThresholdMetrics:
    """One metric at one threshold: its overall rate and the rate of each group of one column.

    A per-threshold record (one entry of ``AuditResult.frames``, the results.json
    key), not an aggregator: the audit builds one for every metric, threshold and
    column.

    ``side`` says whose label defines the groups: "probe" (the person searched)
    or "gallery" (the gallery face that matched; FPIR/ACLU_COUNT then count false
    candidates from that part of the gallery only). ``difference`` = highest -
    lowest group rate and ``ratio`` = highest / lowest, over known groups with
    trials ("unknown" is left out); ``ratio`` is None (``ratio_note`` says why)
    when the lowest rate is 0 or fewer than two groups have trials.
    """

    metric: str
    threshold: float
    column: str
    side: str
    overall: Rate
    by_group: Mapping[str, Rate]
    difference: float | None
    ratio: float | None
    ratio_note: str | None
    highest: str | None
    lowest: str | None


@dataclass(frozen=True)
class MetricByGroup:
    """One metric over one column at every threshold: the overall / by-group / difference / ratio view.

    Built from the :class:`ThresholdMetrics` records (:meth:`AuditResult.by_group`);
    index ``k`` is ``thresholds[k]`` (ascending) in every tuple. ``difference[k]`` =
    highest - lowest group rate and ``ratio[k]`` = highest / lowest (None: undefined),
    over the known groups compared, as in each record.
    """

    metric: str
    column: str
    side: str
    thresholds: tuple[float, ...]
    overall: tuple[Rate, ...]
    by_group: Mapping[str, tuple[Rate, ...]]
    difference: tuple[float | None, ...]
    ratio: tuple[float | None, ...]


@dataclass(frozen=True)
class Differential:
    """Summary measures of unequal error rates across the groups of one column at one threshold.

    ``setting`` "1:1" uses FMR and FNMR, "1:N" uses FPIR and FNIR. ``alpha`` weighs
    the false-match side (default 0.5). FDR (Pereira & Marcel 2021): 1 is fair,
    lower is less fair. IR: 1 is fair, higher is less fair. GARBE (Howard et al.
    2022): 0 is equitable, higher is less. None means undefined (``notes`` says why).
    """

    column: str
    threshold: float
    setting: str
    false_match: str
    false_non_match: str
    alpha: float
    groups: tuple[str, ...]
    fdr: float | None
    ir: float | None
    garbe: float | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Projection:
    """The ACLU count projected to another search size (a projection, not a measurement).

    expected = probes * (1 - (1 - FMR)^gallery), with FMR the measured
    per-comparison false match rate (comparisons of two different people) at the
    threshold; ``low`` / ``high`` use the ends of its Wilson interval. It assumes
    every comparison is an independent draw at that rate, which real galleries
    (lookalikes, photo quality, demographics) need not follow.
    """

    threshold: float
    fmr: Rate
    probes: int
    gallery: int
    expected: float | None
    low: float | None
    high: float | None
    observed_count: int
    observed_searches: int
    observed_gallery: int
    formula: str = "probes * (1 - (1 - FMR) ** gallery)"


@dataclass(frozen=True)
class ThresholdSummary:
    """Overall rates at one threshold (metric name -> Rate), and the projection to 535 x 25,000."""

    threshold: float
    reasons: tuple[str, ...]
    overall: Mapping[str, Rate]
    projection: Projection | None


@dataclass(frozen=True)
class FMRTarget:
    """The lowest threshold (0.01 grid) whose overall FMR is at most ``target``, and what it achieves.

    ``measurable`` is False when fewer than 1/target impostor comparisons exist:
    the target cannot be told apart from 0 then.
    """

    target: float
    threshold: float | None
    fmr: Rate | None
    fnmr: Rate | None
    fpir: Rate | None
    fnir: Rate | None
    measurable: bool
    note: str


@dataclass(frozen=True)
class CrossTable:
    """Who is falsely matched to whom: FMR of comparisons between a probe group and a gallery group.

    ``cells[probe group][gallery group]`` is a Rate over the impostor comparisons
    of that pair of groups (Wilson interval; the bootstrap interval resamples the
    people searched). ``column`` labels the person searched, ``gallery_column``
    the gallery photo (e.g. race x race, or race x dataset).
    """

    column: str
    gallery_column: str
    threshold: float
    metric: str
    cells: Mapping[str, Mapping[str, Rate]]


@dataclass(frozen=True)
class ShareTest:
    """The composition test at one threshold (the ACLU's "40% of false matches, 20% of Congress").

    Among searches with at least one false candidate (a candidate who is somebody
    else, as the ACLU count), the share whose person carries a label in
    ``values`` of ``column`` (``matched``), against that share among all searches
    (``everyone``). Searches without a label in the column are left out of both
    (``unknown`` of them). ``ratio`` = matched share / overall share (1: no
    over-representation). ``difference_bootstrap95``: percentile interval of the
    difference of the two shares, resampling people. ``rate_in_set`` /
    ``rate_outside``: the share of searches with a false candidate inside and
    outside the set; ``p_value``: Fisher's exact test (two-sided) that the two are
    equal, which is the same as the two shares being equal.
    """

    label: str
    column: str
    values: tuple[str, ...]
    threshold: float
    matched: Rate
    everyone: Rate
    ratio: float | None
    difference: float | None
    difference_bootstrap95: tuple[float | None, float | None] | None
    rate_in_set: Rate
    rate_outside: Rate
    p_value: float | None
    unknown: int
    labels_outside: tuple[str, ...]
    labels_absent: tuple[str, ...]


@dataclass(frozen=True)
class MatchCountPoint:
    """The threshold at which ``requested`` searches return a false candidate (e.g. the ACLU's 28).

    The lowest threshold on the 0.01 grid at which at most ``requested`` searches
    (mated or not; only candidates who are somebody else count, as in the ACLU
    count) have a false candidate; ``reached`` is the count there (below the
    request when several searches tie). None when it cannot be found.
    """

    requested: int
    threshold: float | None
    reached: Rate | None
    fpir: Rate | None
    fnir: Rate | None
    fmr: Rate | None
    note: str


@dataclass(frozen=True)
class PromiseGap:
    """The FMR measured for one group against the FMR the Similarity scale promises.

    ``ratio`` = measured / promised; ``ratio95`` its range from the widest of the
    Wilson and bootstrap intervals. ``verdict``: "above" (the interval lies above
    the promise), "below", or "consistent" (the interval holds the promise).
    ``finding``: the same in plain words.
    """

    column: str
    group: str
    measured: Rate
    ratio: float | None
    ratio95: tuple[float | None, float | None]
    verdict: str
    finding: str


@dataclass(frozen=True)
class PromiseCheck:
    """At one threshold: the FMR the Similarity scale promises and the FMR this audit measured.

    Similarity = 80 + 10 * (-log10 FMR - 5), so a threshold t promises
    FMR = 10 ** (-(t - 30) / 10) (80: 1e-5, 90: 1e-6, 99: 1.26e-7) on every model;
    the promise holds on the calibration photos, and this audit measures it on
    its own photos and people, overall and per group.
    """

    threshold: float
    promised_fmr: float
    overall: PromiseGap
    groups: tuple[PromiseGap, ...]


@dataclass(frozen=True)
class WarningGroup:
    """One kind of caution about the results, in plain words, with the details behind it."""

    kind: str
    message: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Curves:
    """Data for the plots.

    ``identification[column][group]`` = {"FPIR": [...], "FNIR": [...]} at the
    thresholds of ``grid`` (None where no searches); column "" is everyone.
    ``det[column][group]`` = [[threshold, FMR, FNMR], ...] (exact engines only).
    ``genuine`` / ``impostor[column][group]`` = comparison counts in bins of
    ``bin_width`` from 0 to 100 (exact engines only).
    """

    grid: tuple[float, ...]
    identification: Mapping[str, Mapping[str, Mapping[str, tuple[float | None, ...]]]]
    det: Mapping[str, Mapping[str, tuple[tuple[float, float, float], ...]]]
    bin_width: float
    genuine: Mapping[str, Mapping[str, tuple[int, ...]]]
    impostor: Mapping[str, Mapping[str, tuple[int, ...]]]


@dataclass(frozen=True)
class AuditCounts:
    """How many images, searches and comparisons the audit rests on."""

    probes: int
    probe_subjects: int
    probes_failed: int
    searches_mated: int
    searches_non_mated: int
    mated_without_enrolled_mate: int
    gallery_images: int
    gallery_subjects: int
    gallery_failed: int
    genuine_comparisons: int
    impostor_comparisons: int
    same_image_pairs_excluded: int
    candidates: int
    truncated_searches: int


@dataclass(frozen=True)
class Failure:
    """An image whose face could not be used: a failure to enrol (gallery) or to acquire (probe).

    ``image`` is relative to the folder of ``manifest`` (as the manifest's image
    column names it); ``manifest`` as recorded under ``manifests``.
    """

    side: str
    image: str
    subject: str
    reason: str
    manifest: str = ""


@dataclass(frozen=True)
class EngineInfo:
    """Which engine produced the scores.

    ``exact_scores``: every probe was scored against every gallery face (local
    engine); otherwise only candidates at or above ``search_threshold`` were seen.
    ``similarity_scale_version``: the version of the Similarity scale (the model's
    calibration to false-match rates), beside ``face_model_version``; None when
    the engine does not say. ``runtime``: what runs the networks on the auditing
    machine (e.g. "YuNet on onnxruntime (CPU), SFace on openvino (CPU)"); every runtime
    gives the same embeddings to cosine 0.9999, and cached embeddings may come from another.
    """

    kind: str
    model: str
    face_model_version: str
    exact_scores: bool
    model_threshold: float
    model_threshold_source: str
    similarity: str
    endpoint: str | None = None
    search: Mapping[str, Any] = field(default_factory=dict)
    similarity_scale_version: str | None = None
    runtime: str | None = None


@dataclass(frozen=True)
class ManifestInfo:
    side: str
    path: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class AuditResult:
    """Everything an audit measured; ``to_json()`` writes results.json."""

    faceaudit_version: str
    created: str
    engine: EngineInfo
    manifests: tuple[ManifestInfo, ...]
    thresholds: tuple[float, ...]
    model_threshold: float
    group_columns: tuple[str, ...]
    gallery_group_columns: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]
    gallery_groups: Mapping[str, tuple[str, ...]]
    bands: Mapping[str, tuple[float, ...]]
    alpha: float
    bootstrap_resamples: int
    bootstrap_seed: int
    min_errors: int
    counts: AuditCounts
    composition: Mapping[str, Mapping[str, Mapping[str, int]]]
    summaries: tuple[ThresholdSummary, ...]
    frames: tuple[ThresholdMetrics, ...]
    differentials: tuple[Differential, ...]
    cross_tables: tuple[CrossTable, ...]
    fmr_targets: tuple[FMRTarget, ...]
    curves: Curves
    failures: tuple[Failure, ...]
    warnings: tuple[WarningGroup, ...]
    notes: tuple[str, ...]
    timings: Mapping[str, float]
    command: str | None = None
    share_tests: tuple[ShareTest, ...] = ()
    match_counts: tuple[MatchCountPoint, ...] = ()
    promise_checks: tuple[PromiseCheck, ...] = ()
    min_group_searches: int = 10
    candidates_floor: float | None = None
    """candidates.csv holds every candidate at or above this Similarity."""
    conditions: tuple[Any, ...] = ()  # ConditionResult per probe condition (audit/_conditions.py), clean first
    metric_definitions: Mapping[str, str] = field(default_factory=lambda: dict(METRICS))

    def to_dict(self) -> dict[str, Any]:
        out = plain(self)
        if out.get("conditions"):  # each condition's per-group records as counts (audit/_conditions.py)
            from faceaudit.audit._conditions import compact_frames

            for cond in out["conditions"]:
                cond["frames"] = compact_frames(cond.get("frames"))
        return out

    def to_json(self, indent: int | None = None) -> str:
        """results.json: compact by default (one line; Python's fast encoder: a pretty-printed
        file of a large audit takes several times longer to write). ``indent`` for people."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, separators=separators, allow_nan=False)

    def summary(self, threshold: float) -> ThresholdSummary:
        for s in self.summaries:
            if abs(s.threshold - threshold) < 1e-9:
                return s
        raise KeyError(threshold)

    def frame(self, metric: str, column: str, threshold: float, side: str = "probe") -> ThresholdMetrics:
        for f in self.frames:
            if f.metric == metric and f.column == column and f.side == side and abs(f.threshold - threshold) < 1e-9:
                return f
        raise KeyError((metric, column, threshold, side))

    def by_group(self, metric: str, column: str, side: str = "probe") -> MetricByGroup:
        """One metric of one column at every threshold (KeyError when the audit has no such records)."""
        recs = sorted((f for f in self.frames if f.metric == metric and f.column == column and f.side == side),
                      key=lambda f: f.threshold)
        if not recs:
            raise KeyError((metric, column, side))
        groups = list(recs[0].by_group)
        return MetricByGroup(
            metric, column, side, tuple(f.threshold for f in recs), tuple(f.overall for f in recs),
            {g: tuple(f.by_group[g] for f in recs) for g in groups},
            tuple(f.difference for f in recs), tuple(f.ratio for f in recs),
        )
