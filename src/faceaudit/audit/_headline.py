"""report.html's findings: the first screen, the comparison with the ACLU, the scale's promise,
the composition test and who is matched to whom.

Each function takes a results.json dict and returns the view-model its macro in
``templates/headline.html.j2`` lays out. Numbers carry their counts and
intervals; ratios come only from groups with at least ``min_group_searches``
people searched (smaller groups are shown, marked too small).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from faceaudit._stats import wilson_interval
from faceaudit.audit._html import (
    ACLU_GALLERY,
    ACLU_MATCHED,
    ACLU_SEARCHES,
    aclu_implied_fmr,
    base_columns,
    find_frame,
    find_summary,
    group_people,
    headline_threshold,
    implied_fmr,
    match_point_thresholds,
    min_group,
    pct,
    reasons,
    sci,
    times,
)

log = logging.getLogger(__name__)

Rate = dict[str, Any]
"""One rate of results.json: errors, trials, rate, wilson95 (and bootstrap95, subjects where counted)."""


def _promise(t: float) -> str:
    from faceaudit.engine import promised_fmr

    f = promised_fmr(t)
    return f"the scale promises a false-match rate of {sci(f)}, 1 in {1 / f:,.0f} comparisons of two different people"


class GroupRow(NamedTuple):
    """One row of the by-group table: a group's rates per (threshold, metric), or everyone's."""

    everyone: bool
    column: str
    group: str
    people: int
    small: bool
    rates: tuple[Rate | None, ...]


class ByGroupTable(NamedTuple):
    thresholds: tuple[float, ...]
    labels: tuple[str, ...]
    rows: tuple[GroupRow, ...]
    min_group: int


_BY_GROUP_METRICS = (("ACLU_COUNT", "searches with a false candidate"), ("FNIR", "people in the gallery not found"))


def by_group_table(res: dict[str, Any], thresholds: Sequence[float]) -> ByGroupTable:
    """Rows: everyone, then every group of every base column; per threshold: false candidate share and FNIR."""
    metrics = [m for m, _ in _BY_GROUP_METRICS]
    overall = []
    for t in thresholds:
        s = find_summary(res, t)
        overall += [s["overall"].get(m) if s else None for m in metrics]
    rows = [GroupRow(True, "", "", 0, False, tuple(overall))]
    for col in base_columns(res):
        for g in res["groups"].get(col, []):
            f0 = find_frame(res, "ACLU_COUNT", col, thresholds[0])
            n = int(((f0 or {}).get("by_group", {}).get(g) or {}).get("subjects") or 0)
            rates = tuple((find_frame(res, m, col, t) or {}).get("by_group", {}).get(g)
                          for t in thresholds for m in metrics)
            rows.append(GroupRow(False, col, g, n, g != "unknown" and n < min_group(res), rates))
    return ByGroupTable(tuple(thresholds), tuple(label for _, label in _BY_GROUP_METRICS), tuple(rows), min_group(res))


class RatioSentence(NamedTuple):
    """Highest against lowest group of one column (``equal``: every group had the same share)."""

    column: str
    min_group: int
    equal: bool
    highest: str = ""
    lowest: str = ""
    hi: Rate | None = None
    lo: Rate | None = None
    ratio: float | None = None
    overlap: bool = False


def _ratio_sentence(res: dict[str, Any], column: str, t: float) -> RatioSentence | None:
    f = find_frame(res, "ACLU_COUNT", column, t)
    if not f:
        return None
    note = f.get("ratio_note") or ""
    if note.startswith("equal"):
        return RatioSentence(column, min_group(res), True)
    if not f.get("highest") or not f.get("lowest"):
        return None
    hi, lo = f["by_group"][f["highest"]], f["by_group"][f["lowest"]]
    return RatioSentence(column, min_group(res), False, f["highest"], f["lowest"], hi, lo, f.get("ratio"),
                         hi["wilson95"][0] <= lo["wilson95"][1])


def _share_at(res: dict[str, Any], t: float) -> list[dict[str, Any]]:
    return [s for s in res.get("share_tests", []) if abs(s["threshold"] - t) < 1e-9]


class FirstScreen(NamedTuple):
    c: dict[str, Any]  # results.json "counts"
    t: float
    why: str
    promise: str
    a: Rate  # the ACLU count at t
    gallery: int  # photos each search ran against (other people's), the count's caveat
    aclu_gallery: int
    projection: dict[str, Any] | None  # the count projected to 535 x 25,000, when computed
    match_points: tuple[MatchPoint, ...]
    equivalent: EquivalentPoint | None
    shares: tuple[tuple[dict[str, Any], str], ...]  # (share test, where it was measured), largest sample first
    within: tuple[WithinGroup, ...]
    overlap: CalibrationOverlap | None
    finding: str
    thresholds: tuple[float, ...]
    table: ByGroupTable
    ratios: tuple[RatioSentence, ...]
    group_findings: tuple[str, ...]


def first_screen(res: dict[str, Any], candidates: Sequence[dict[str, str]] = ()) -> FirstScreen:
    """The headline count beside its gallery-size caveat and projection, the match-count point beside the
    point with the ACLU's per-comparison rate, the composition tests (largest sample first), the
    strongest within-group findings, the calibration overlap, and the table by group."""
    t = headline_threshold(res)
    s = find_summary(res, t)
    top = max(res["thresholds"])
    shares = [(st, f"At {t:g}") for st in _share_at(res, t)]
    for p in res.get("match_counts", []):
        if p.get("threshold") is None:
            continue
        shares += [(st, f"At {p['threshold']:g}, the threshold at which {p['reached']['errors']} searches had a "
                        "false candidate in this gallery")
                   for st in _share_at(res, p["threshold"])]
    shares.sort(key=lambda x: -int(x[0]["matched"].get("trials") or 0))
    check = next((pc for pc in res.get("promise_checks", []) if abs(pc["threshold"] - t) < 1e-9), None)
    ratios = [r for r in (_ratio_sentence(res, col, t) for col in base_columns(res)) if r]
    findings: list[str] = []
    if check:
        above = [g for g in check["groups"] if g["verdict"] == "above" and g["group"] != "unknown"
                 and g["measured"]["subjects"] >= min_group(res) and check["overall"]["verdict"] != "above"]
        findings = [g["finding"] for g in above[:4]]
    ths = (t,) + ((top,) if top != t else ())
    proj = s.get("projection")
    gallery = int((proj or {}).get("observed_gallery") or res["counts"]["gallery_images"])
    return FirstScreen(res["counts"], t, reasons(res, t), _promise(t), s["overall"]["ACLU_COUNT"], gallery,
                       ACLU_GALLERY, proj if proj and proj.get("expected") is not None else None,
                       match_points(res), equivalent_point(res, candidates), tuple(shares),
                       within_group_findings(res), calibration_overlap(res),
                       check["overall"]["finding"] if check else "", ths, by_group_table(res, ths), tuple(ratios),
                       tuple(findings))


class AcluRow(NamedTuple):
    """This audit at one threshold: measured FMR and the FMR the ACLU's formula implies from its searches."""

    t: float
    measured: bool
    fmr: Rate
    implied: float | None
    implied_low: float | None
    implied_high: float | None
    searches: int
    gallery: int


class AcluSection(NamedTuple):
    aclu: dict[str, float]
    rows: tuple[AcluRow, ...]
    matched: int
    searches: int
    gallery: int


def aclu_section(res: dict[str, Any]) -> AcluSection:
    """The ACLU's 2018 result against this audit, in per-comparison false-match rates only."""
    rows = []
    for s in res["summaries"]:
        if s["threshold"] not in res["thresholds"] and abs(s["threshold"] - res["model_threshold"]) > 1e-9:
            continue
        fmr, fp = s["overall"]["FMR"], s["overall"]["FPIR"]
        gal = (s.get("projection") or {}).get("observed_gallery") or 0
        imp = implied_fmr(fp["rate"], gal) if fp["trials"] else None
        rows.append(AcluRow(
            s["threshold"], bool(fmr["trials"]), fmr, imp,
            implied_fmr(fp["wilson95"][0], gal) if fp["trials"] else None,
            implied_fmr(fp["wilson95"][1], gal) if fp["trials"] else None, fp["trials"], gal))
    return AcluSection(aclu_implied_fmr(), tuple(rows), ACLU_MATCHED, ACLU_SEARCHES, ACLU_GALLERY)


class ShareSet(NamedTuple):
    """The composition tests of one set of labels, one per threshold (with each threshold's reasons)."""

    label: str
    tests: tuple[dict[str, Any], ...]
    reasons: tuple[str, ...]


def share_section(res: dict[str, Any]) -> tuple[ShareSet, ...]:
    tests = res.get("share_tests", [])
    out = []
    for label in dict.fromkeys(st["label"] for st in tests):
        sts = tuple(st for st in tests if st["label"] == label)
        out.append(ShareSet(label, sts, tuple(reasons(res, st["threshold"]) for st in sts)))
    return tuple(out)


class PromiseSection(NamedTuple):
    version: str | None
    checks: tuple[tuple[dict[str, Any], str], ...]  # (promise check, reasons of its threshold)
    findings: tuple[str, ...]
    min_group: int


def promise_section(res: dict[str, Any]) -> PromiseSection | None:
    checks = res.get("promise_checks", [])
    if not checks:
        return None
    findings = []
    for pc in checks:
        if pc["threshold"] not in res["thresholds"]:
            continue
        for g in pc["groups"]:
            if g["verdict"] in ("above", "below") and g["group"] != "unknown" \
                    and g["measured"]["subjects"] >= min_group(res):
                findings.append(g["finding"])
    return PromiseSection(res["engine"].get("similarity_scale_version"),
                          tuple((pc, reasons(res, pc["threshold"])) for pc in checks), tuple(findings), min_group(res))


RARE_IN_GALLERY = 0.25
"""A group below this share of the gallery's labelled photos is called rare in the gallery."""


def _cross_finding(res: dict[str, Any], ct: dict[str, Any], t: float) -> list[str]:
    """Within-group against across-group false matches, beside the gallery's composition (plain sentences)."""
    comp = res.get("composition", {}).get("gallery", {}).get(ct["gallery_column"], {})
    total = sum(comp.values()) or 0
    labelled = total - comp.get("unknown", 0)
    out = []
    for pg, row in ct["cells"].items():
        if pg == "unknown" or pg not in row or not labelled:
            continue
        if group_people(res, ct["column"], pg, t) < min_group(res):
            continue
        within = row[pg]
        others = [r for g, r in row.items() if g not in (pg, "unknown")]
        oe, on = sum(r["errors"] for r in others), sum(r["trials"] for r in others)
        if not within["trials"] or not on:
            continue
        n_g = comp.get(pg, 0)
        share = n_g / labelled
        where = (f"{pct(n_g / total)} of this gallery ({n_g:,} of {total:,} photos"
                 + (f"; {pct(share)} of the {labelled:,} with a {ct['gallery_column']} label)"
                    if labelled < total else ")"))
        across = oe / on
        if within["rate"] and within["wilson95"][0] > wilson_interval(oe, on)[1]:
            how = (f"at {times(within['rate'] / across)} the rate of other photos" if across > 0 else
                   "while none of the other photos matched them")
            line = (f"People labelled {pg} were falsely matched to gallery photos labelled {pg} {how} "
                    f"(FMR {sci(within['rate'])} against {sci(across)}; {within['errors']:,} of {within['trials']:,} "
                    "comparisons)")
            if share < RARE_IN_GALLERY:
                line += (f", but only {where} is labelled {pg}: a gallery with more such photos would falsely "
                         f"match people labelled {pg} more often than this audit can show")
            if within["errors"] < int(res.get("min_errors", 30)):
                line += (f". It rests on {within['errors']} false match{'' if within['errors'] == 1 else 'es'}, "
                         "so it is uncertain")
            out.append(line + ".")
        elif share < RARE_IN_GALLERY and within["errors"] == 0:
            out.append(f"Only {where} is labelled {pg}: false matches of people labelled {pg} within "
                       f"their own group can hardly occur here ({within['trials']:,} comparisons, none matched).")
    return out


class CrossTable(NamedTuple):
    """False-match rates between the groups of the person searched (rows) and of the gallery photo (columns)."""

    column: str
    gallery_column: str
    t: float
    why: str
    same: bool
    comp: dict[str, int]
    total: int
    gallery_groups: tuple[str, ...]
    cells: dict[str, dict[str, Rate]]
    findings: tuple[str, ...]  # plain sentences


def cross_section(res: dict[str, Any]) -> tuple[CrossTable, ...]:
    tables = res.get("cross_tables", [])
    if not tables:
        return ()
    t0 = headline_threshold(res)
    ths: list[float] = []
    for t in [t0, *match_point_thresholds(res), res["model_threshold"]]:
        if find_summary(res, t) is not None and all(abs(t - x) > 1e-9 for x in ths):
            ths.append(t)
    comp_all = res.get("composition", {}).get("gallery", {})
    ordered = sorted(tables, key=lambda c: c["column"] != c.get("gallery_column", c["column"]))
    out = []
    for t in ths:
        for ct in ordered:
            if abs(ct["threshold"] - t) > 1e-9:
                continue
            gcol = ct.get("gallery_column", ct["column"])
            same = ct["column"] == gcol
            comp = comp_all.get(gcol, {})
            out.append(CrossTable(
                ct["column"], gcol, t, reasons(res, t), same, comp, sum(comp.values()) or 1,
                tuple(next(iter(ct["cells"].values()), {})), ct["cells"],
                tuple(_cross_finding(res, ct, t)) if same else ()))
    return tuple(out)


# ---------------------------------------------------------------- the first screen's framing (issue 23)

class MatchPoint(NamedTuple):
    """The threshold at which ``requested`` searches had a false candidate in this gallery (``--match-count``).

    ``gallery``: photos each search ran against (of other people); ``fmr``: the per-comparison
    false-match rate there; ``aclu_fmr``: the rate the ACLU's 28 of 535 against 25,000 imply;
    ``fmr_ratio`` = fmr / aclu_fmr (higher: this model errs more per comparison at that point).
    """

    t: float
    requested: int
    reached: Rate
    gallery: int
    aclu_gallery: int
    fmr: Rate
    aclu_fmr: float
    fmr_ratio: float | None


class EquivalentPoint(NamedTuple):
    """The lowest threshold whose measured per-comparison FMR is at most the ACLU's implied rate.

    ``errors`` of ``trials`` comparisons of two different people scored at or above ``t``;
    ``searches`` of ``probes`` searches had a false candidate there (None when the audit's
    outputs cannot tell: ``t`` below candidates.csv's floor and not an audited threshold).
    ``t`` is None when the audit has fewer than 1/target comparisons: too few to measure
    the rate (the same rule as the FMR targets').
    """

    target: float
    t: float | None
    errors: int
    trials: int
    searches: int | None
    probes: int


def _points_fmr(res: dict[str, Any]):
    """(threshold, FMR at or above it) from the DET curve of everyone, ascending; [] without exact scores."""
    pts = (res.get("curves", {}).get("det", {}).get("", {}) or {}).get("all") or []
    return sorted((float(t), float(f)) for t, f, _ in pts)


def match_points(res: dict[str, Any]) -> tuple[MatchPoint, ...]:
    aclu = aclu_implied_fmr()["rate"]
    out = []
    for p in res.get("match_counts", []):
        if p.get("threshold") is None:
            continue
        s = find_summary(res, p["threshold"]) or {}
        gal = int((s.get("projection") or {}).get("observed_gallery") or 0)
        fmr = p["fmr"]
        out.append(MatchPoint(p["threshold"], p["requested"], p["reached"], gal, ACLU_GALLERY, fmr, aclu,
                              fmr["rate"] / aclu if fmr.get("trials") else None))
    return tuple(out)


def equivalent_point(res: dict[str, Any], candidates: Sequence[dict[str, str]] = ()) -> EquivalentPoint | None:
    """Where this audit's measured FMR first falls to the ACLU's implied per-comparison rate (from the results)."""
    target = aclu_implied_fmr()["rate"]
    n = int(res["counts"].get("impostor_comparisons") or 0)
    if not n:
        return None
    if n * target < 1.0:
        return EquivalentPoint(target, None, 0, n, None, int(res["counts"]["probes"]))
    t = next((t for t, f in _points_fmr(res) if f <= target), None)
    if t is None:
        return None
    errors = next(round(f * n) for x, f in _points_fmr(res) if x == t)
    s = find_summary(res, t)
    searches: int | None = s["overall"]["ACLU_COUNT"]["errors"] if s else None
    floor = float(res.get("candidates_floor", min(res["thresholds"])))
    if searches is None and candidates and t >= floor - 1e-9:
        hit = set()
        for row in candidates:
            try:
                if row.get("mated") == "false" and float(row["similarity"]) >= t:
                    hit.add(row["probe_image"])
            except (KeyError, ValueError):
                continue
        searches = len(hit)
    return EquivalentPoint(target, t, errors, n, searches, int(res["counts"]["probes"]))


class WithinGroup(NamedTuple):
    """People of a group falsely matched to gallery photos of their own group against photos of other groups.

    ``within``: FMR of comparisons with own-group photos; ``across_*``: with other labelled photos;
    ``ratio`` = within / across rate; ``share``: the group's share of the gallery's photos.
    """

    column: str
    group: str
    t: float
    why: str
    within: Rate
    across_errors: int
    across_trials: int
    ratio: float | None
    share: float
    few: bool


def within_group_findings(res: dict[str, Any], limit: int = 3) -> tuple[WithinGroup, ...]:
    """The strongest within-group findings of the who-to-whom tables, in plain terms, strongest first.

    Only the thresholds whose tables the report shows (headline, match-count points, the model's own)
    are read. For each (column, group) of at least ``min_group_searches`` people the threshold with the most
    within-group false matches is kept; only groups whose within-group FMR's interval lies above the
    across-group rate's, and at least twice as high, are lifted.
    """
    best: dict[tuple[str, str], WithinGroup] = {}
    shown = [headline_threshold(res), *match_point_thresholds(res), res["model_threshold"]]
    for ct in res.get("cross_tables", []):
        col = ct["column"]
        if ct.get("gallery_column", col) != col or all(abs(ct["threshold"] - x) > 1e-9 for x in shown):
            continue
        t = ct["threshold"]
        comp = res.get("composition", {}).get("gallery", {}).get(col, {})
        total = sum(comp.values())
        for pg, row in ct["cells"].items():
            if pg == "unknown" or pg not in row or not total or group_people(res, col, pg, t) < min_group(res):
                continue
            within = row[pg]
            others = [r for g, r in row.items() if g not in (pg, "unknown")]
            oe, on = sum(r["errors"] for r in others), sum(r["trials"] for r in others)
            if not within["trials"] or not on or not within["errors"]:
                continue
            if within["wilson95"][0] <= wilson_interval(oe, on)[1]:
                continue
            ratio = within["rate"] / (oe / on) if oe else None
            if ratio is not None and ratio < 2:
                continue
            w = WithinGroup(col, pg, t, reasons(res, t), within, oe, on, ratio, comp.get(pg, 0) / total,
                            within["errors"] < int(res.get("min_errors", 30)))
            key = (col, pg)
            if key not in best or within["errors"] > best[key].within["errors"]:
                best[key] = w
    ranked = sorted(best.values(), key=lambda w: -(w.ratio if w.ratio is not None else math.inf))
    return tuple(ranked[:limit])


class IndependentRate(NamedTuple):
    t: float
    fmr: Rate
    promised: float


class CalibrationOverlap(NamedTuple):
    """Gallery photos that are also the photos the model's Similarity scale was calibrated on.

    ``overlap`` of ``gallery`` photos come from the gallery manifests ``manifests`` (file names)
    that the calibration's impostor pairs were drawn from; ``independent``: the FMR on the other gallery photos only
    (pairs the calibration never saw) at a few thresholds, empty when the gallery's labels
    cannot separate them.
    """

    model: str
    description: str
    manifests: tuple[str, ...]
    overlap: int
    gallery: int
    independent_manifests: tuple[str, ...]
    independent: tuple[IndependentRate, ...]


_CSV = re.compile(r"[\w.-]+\.csv")


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def calibration_overlap(res: dict[str, Any]) -> CalibrationOverlap | None:
    """Which gallery photos calibrated the model, read from the calibration shipped with the local engine.

    None when the engine is not faceaudit's local one, its calibration does not name its photo
    sets, or no gallery manifest is one of them (a ``--note`` can then say it).
    """
    eng = res.get("engine", {})
    if eng.get("kind") != "local":
        return None
    try:
        from faceaudit.engine import get_model

        desc = str(get_model(eng["model"]).calibration()["data"]["description"])
    except Exception:  # an unknown or uninstalled model: nothing can be said
        log.debug("no calibration description for %r", eng.get("model"), exc_info=True)
        return None
    part = desc.split("impostor pairs:", 1)[1].split(";", 1)[0] if "impostor pairs:" in desc else ""
    names = set(_CSV.findall(part))
    if not names:
        return None
    gallery = [m for m in res.get("manifests", []) if m["side"] == "gallery"]
    inside = [m for m in gallery if Path(m["path"]).name in names]
    if not inside:
        return None
    outside = [m for m in gallery if m not in inside]
    independent: list[IndependentRate] = []
    if outside:
        # a gallery label whose groups are the manifests (e.g. dataset congress2014 = congress_2014.csv)
        for col, comp in res.get("composition", {}).get("gallery", {}).items():
            groups = {_norm(g): g for g in comp}
            want = [groups.get(_norm(Path(m["path"]).stem)) for m in outside]
            if not all(want) or any(comp[g] != m["rows"] for g, m in zip(want, outside, strict=True)):
                continue
            ths = [headline_threshold(res), *match_point_thresholds(res), res["model_threshold"]]
            for t in dict.fromkeys(ths):
                f = find_frame(res, "FMR", col, t, "gallery")
                if not f:
                    continue
                cells = [f["by_group"].get(g) or {} for g in want]
                e, n = sum(c.get("errors", 0) for c in cells), sum(c.get("trials", 0) for c in cells)
                if n:
                    lo, hi = wilson_interval(e, n)
                    independent.append(IndependentRate(t, {"errors": e, "trials": n, "rate": e / n,
                                                           "wilson95": [lo, hi]}, _promised(t)))
            break
    return CalibrationOverlap(eng["model"], desc, tuple(Path(m["path"]).name for m in inside),
                              sum(m["rows"] for m in inside),
                              sum(m["rows"] for m in gallery), tuple(m["path"] for m in outside), tuple(independent))


def _promised(t: float) -> float:
    from faceaudit.engine import promised_fmr

    return float(promised_fmr(t))
