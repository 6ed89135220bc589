"""Running an audit end to end and writing results.json, candidates.csv and report.html."""

from __future__ import annotations

import csv
import datetime as dt
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceaudit import __version__
from faceaudit.audit._design import AuditConfig, AuditDesign, build_design
from faceaudit.audit._engines import AuditEngine
from faceaudit.audit._groups import INTERSECTION
from faceaudit.audit._manifest import Manifest, read_manifests
from faceaudit.audit._metrics import compute, result_warnings
from faceaudit.audit._results import AuditResult, Failure, ManifestInfo
from faceaudit.audit._scoring import SearchOutcomes

RESULTS_JSON = "results.json"
CANDIDATES_CSV = "candidates.csv"
REPORT_HTML = "report.html"

CANDIDATE_COLUMNS = (
    "probe_image", "probe_subject", "candidate_image", "candidate_subject", "similarity", "mated",
    "search", "rank",
)
"""candidates.csv columns; then ``probe_<label>`` and ``candidate_<label>`` for each group column.

``mated`` is true when the candidate is the probe's own mate (same subject), false for
a false candidate; ``search`` says whether the search was mated (the probe's subject
is in the gallery) or non-mated; ``rank`` is 1 for the highest similarity of a search.
Image paths are relative to the folder holding candidates.csv. Every candidate at or
above results.json's ``candidates_floor`` is listed: with exact scores that is the lowest
threshold any figure of results.json uses, so each count there can be recounted.
"""


@dataclass(frozen=True, eq=False)
class AuditRun:
    """An audit's result with what it was computed from (design and per-probe outcomes)."""

    result: AuditResult
    design: AuditDesign
    outcomes: SearchOutcomes

    def candidate_rows(self, relative_to: Path | None = None) -> Iterator[dict[str, str]]:
        """Every candidate at or above the candidates floor, by probe, highest similarity first."""
        d, o = self.design, self.outcomes
        base_cols = sorted({c.name for c in d.probe_columns if INTERSECTION not in c.name}
                           | {c.name for c in d.gallery_columns})
        order = np.lexsort((-o.cand_similarity, o.cand_probe))
        rank = 0
        last = -1

        def path(p: Path) -> str:
            if relative_to is None:
                return str(p)
            return os.path.relpath(p, relative_to)

        for k in order:
            i, j, s = int(o.cand_probe[k]), int(o.cand_gallery[k]), float(o.cand_similarity[k])
            rank = rank + 1 if i == last else 1
            last = i
            pr, gr = d.probes[i], d.gallery[j]
            row = {
                "probe_image": path(pr.path), "probe_subject": pr.subject,
                "candidate_image": path(gr.path), "candidate_subject": gr.subject,
                "similarity": f"{s:.4f}", "mated": "true" if pr.subject == gr.subject else "false",
                "search": "mated" if d.mated[i] else "non-mated", "rank": str(rank),
            }
            for c in base_cols:
                row[f"probe_{c}"] = pr.label(c)
                row[f"candidate_{c}"] = gr.label(c)
            yield row

    def write(self, out_dir: str | Path, report: bool = True, **report_options) -> dict[str, Path]:
        """Write results.json, candidates.csv and (``report``) report.html into ``out_dir``."""
        from faceaudit._csv import neutralise

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"results": out / RESULTS_JSON, "candidates": out / CANDIDATES_CSV}
        tmp = paths["results"].with_suffix(".json.tmp")
        tmp.write_text(self.result.to_json() + "\n", encoding="utf-8")
        tmp.replace(paths["results"])
        rows = self.candidate_rows(relative_to=out.resolve())
        first = next(rows, None)
        with open(paths["candidates"], "w", newline="", encoding="utf-8") as fh:
            fields = list(first) if first else list(CANDIDATE_COLUMNS)
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            if first:  # no cell a spreadsheet would run (subjects and labels are the submitter's text)
                w.writerow({k: neutralise(v) for k, v in first.items()})
                w.writerows({k: neutralise(v) for k, v in row.items()} for row in rows)
        if report:
            from faceaudit.audit._report import build_report

            paths["report"] = build_report(out, **report_options)
        return paths


def recorded_paths(paths: Sequence[str], relative_to: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """How results.json records each manifest path: never absolute (no machine's folders in it).

    Relative paths stay as typed; absolute ones become relative to ``relative_to``
    when given and above them, else to the deepest folder holding every absolute one.
    """
    absolute = [p for p in paths if os.path.isabs(p)]
    out = {p: p for p in paths if not os.path.isabs(p)}
    if not absolute:
        return out
    base = os.path.abspath(relative_to) if relative_to is not None else None
    if base is None or any(os.path.commonpath([base, os.path.abspath(p)]) != base for p in absolute):
        base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in absolute])
    for p in absolute:
        out[p] = Path(os.path.relpath(os.path.abspath(p), base)).as_posix()
    return out


def _failures(design: AuditDesign, o: SearchOutcomes, names: dict[str, str]) -> tuple[Failure, ...]:
    """Images without a usable face, each by its path relative to its manifest's folder."""
    out: list[Failure] = []
    for side, recs, ok, reasons in (("probe", design.probes, o.probe_ok, o.probe_reason),
                                    ("gallery", design.gallery, o.gallery_ok, o.gallery_reason)):
        for r, good, why in zip(recs, ok, reasons, strict=True):
            if not good:
                image = Path(os.path.relpath(r.path, Path(r.manifest).resolve().parent)).as_posix()
                out.append(Failure(side, image, r.subject, why or "no face detected",
                                   manifest=names.get(r.manifest, r.manifest)))
    return tuple(out)


def _notes(design: AuditDesign, o: SearchOutcomes, result_counts, engine_info) -> tuple[str, ...]:
    notes = []
    if not o.exact:
        notes.append(
            f"This engine returns only candidates at or above {o.floor:g}; FMR and FNMR are counted from "
            "them at the audited thresholds, but score distributions, DET curves and the thresholds for "
            "FMR = 1e-3/1e-4/1e-5 need exact scores for every pair (use the local engine)."
        )
    cols = {c.name.lower() for c in design.probe_columns}
    if "race" not in cols and "ethnicity" not in cols:
        notes.append(
            "No race or ethnicity labels were given for the people searched, so this audit cannot say "
            "whether error rates differ by race. faceaudit never guesses race from a face: group labels "
            "come only from the manifests."
        )
    if result_counts.probes_failed or result_counts.gallery_failed:
        notes.append(
            f"{result_counts.probes_failed} probe photo(s) and {result_counts.gallery_failed} gallery photo(s) "
            "had no usable face (listed under Failures). A probe without a face returns no candidates: it "
            "counts as a miss in FNIR and as a search without false candidates in FPIR. Gallery photos "
            "without a face are not searchable. FMR and FNMR leave out pairs with such a photo."
        )
    if result_counts.mated_without_enrolled_mate:
        notes.append(
            f"{result_counts.mated_without_enrolled_mate} mated search(es) had no enrolled mate in the gallery "
            "(its photo had no usable face); they count as misses in FNIR."
        )
    if result_counts.same_image_pairs_excluded:
        notes.append(f"{result_counts.same_image_pairs_excluded} pair(s) of byte-identical images were left out.")
    if result_counts.truncated_searches:
        notes.append(
            f"{result_counts.truncated_searches} search(es) returned the maximum number of candidates; "
            "counts for them are lower bounds."
        )
    return tuple(notes)


def _conditions(design: AuditDesign, engine, outcomes: SearchOutcomes, parts, conditions, progress: bool):
    """A :class:`ConditionResult` per condition, clean first (its numbers are the audit's own)."""
    from faceaudit.audit._conditions import condition_result, mate_ranks
    from faceaudit.engine import CLEAN

    if not conditions:
        return ()
    ordered = [CLEAN] + [c for c in conditions if not c.is_clean]
    sim = engine.similarity_function()
    threshold = engine.info().model_threshold
    out = []
    try:
        for c in ordered:  # one set of workers for every condition
            cr = engine.run_condition(design, c, progress=progress, close=False)
            o = outcomes if c.is_clean else cr.outcomes
            p = parts if c.is_clean else compute(design, o, threshold)
            ranks = mate_ranks(design, o, cr.probe_vectors, cr.gallery_vectors, sim)
            out.append(condition_result(design, c, o, p, ranks, cr.embed_seconds, cr.embedded, cr.from_cache))
    finally:
        close = getattr(getattr(engine, "executor", None), "close", None)
        if close is not None:
            close()
    return tuple(out)


def run_audit(
    probe_manifests: Sequence[Manifest | str | os.PathLike[str]],
    gallery_manifests: Sequence[Manifest | str | os.PathLike[str]],
    engine: AuditEngine,
    config: AuditConfig | None = None,
    progress: bool = True,
    command: str | None = None,
    notes: Sequence[str] = (),
    paths_relative_to: str | os.PathLike[str] | None = None,
    conditions: Sequence = (),
) -> AuditRun:
    """Search every probe against the gallery with ``engine`` and compute every metric.

    ``conditions``: probe conditions (:class:`faceaudit.engine.ProbeCondition`) to search the
    probes under as well, each against the unchanged gallery (local engine only); the clean
    condition is always among them when any is given. Their results are ``result.conditions``.
    results.json records no absolute path: manifests given by absolute paths are
    recorded relative to ``paths_relative_to`` (or to the folder holding them all),
    and failed images relative to their manifest's folder.
    """
    config = config or AuditConfig()
    if conditions and not hasattr(engine, "run_condition"):
        from faceaudit._errors import InvalidParameterError

        raise InvalidParameterError("probe conditions need the local engine (it degrades the probes itself)")
    t0 = time.monotonic()
    pm = tuple(m if isinstance(m, Manifest) else read_manifests([m])[0] for m in probe_manifests)
    gm = tuple(m if isinstance(m, Manifest) else read_manifests([m])[0] for m in gallery_manifests)
    design = build_design(pm, gm, config)
    outcomes = engine.run(design, progress=progress)
    t1 = time.monotonic()
    info = engine.info()
    parts = compute(design, outcomes, info.model_threshold)
    t2 = time.monotonic()
    counts = parts.counts
    names = recorded_paths([m.path for m in (*pm, *gm)], paths_relative_to)
    per_condition = _conditions(design, engine, outcomes, parts, conditions, progress)
    t3 = time.monotonic()
    warnings = result_warnings(parts.summaries, parts.frames, design, config.min_errors,
                               config.min_group_searches)
    result = AuditResult(
        faceaudit_version=__version__,
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        engine=info,
        manifests=tuple(ManifestInfo(side, names[m.path], m.sha256, len(m.records))
                        for side, ms in (("probe", pm), ("gallery", gm)) for m in ms),
        thresholds=config.thresholds,
        model_threshold=info.model_threshold,
        group_columns=tuple(c.name for c in design.probe_columns),
        gallery_group_columns=tuple(c.name for c in design.gallery_columns),
        groups={c.name: c.groups for c in design.probe_columns},
        gallery_groups={c.name: c.groups for c in design.gallery_columns},
        bands={c.name: c.bands for c in design.probe_columns + design.gallery_columns if c.bands},
        alpha=config.alpha, bootstrap_resamples=config.bootstrap, bootstrap_seed=config.seed,
        min_errors=config.min_errors,
        counts=counts,
        composition={
            "probe": {c.name: {g: int((c.codes == i).sum()) for i, g in enumerate(c.groups)}
                      for c in design.probe_columns if INTERSECTION not in c.name},
            "gallery": {c.name: {g: int((c.codes == i).sum()) for i, g in enumerate(c.groups)}
                        for c in design.gallery_columns},
        },
        summaries=parts.summaries, frames=parts.frames,
        differentials=parts.differentials, cross_tables=parts.cross_tables,
        fmr_targets=parts.fmr_targets, curves=parts.curves, failures=_failures(design, outcomes, names),
        warnings=warnings, notes=_notes(design, outcomes, counts, info) + tuple(notes),
        timings={"search_s": round(t1 - t0, 2), "metrics_s": round(t2 - t1, 2), "total_s": round(t3 - t0, 2),
                 **({"conditions_s": round(t3 - t2, 2)} if per_condition else {}),
                 **{f"images_{k}": float(getattr(engine, k)) for k in ("embedded", "from_cache")
                    if isinstance(getattr(engine, k, None), int)}},
        command=command, share_tests=parts.share_tests, match_counts=parts.match_counts,
        promise_checks=parts.promise_checks, min_group_searches=config.min_group_searches,
        candidates_floor=round(float(outcomes.floor), 2),
        conditions=per_condition,
    )
    return AuditRun(result=result, design=design, outcomes=outcomes)
