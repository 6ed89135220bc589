"""report.html's findings: the first screen, the comparison with the ACLU, the scale's promise,
the composition test and who is matched to whom.

Each function takes a results.json dict and returns the view-model its macro in
``templates/headline.html.j2`` lays out. Numbers carry their counts and
intervals; ratios come only from groups with at least ``min_group_searches``
people searched (smaller groups are shown, marked too small).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    shares: tuple[tuple[dict[str, Any], str], ...]  # (share test, where it was measured)
    finding: str
    thresholds: tuple[float, ...]
    table: ByGroupTable
    ratios: tuple[RatioSentence, ...]
    group_findings: tuple[str, ...]


def first_screen(res: dict[str, Any]) -> FirstScreen:
    """The headline with its interval per group, 80 vs the strictest threshold by group, the composition test."""
    t = headline_threshold(res)
    s = find_summary(res, t)
    top = max(res["thresholds"])
    shares = [(st, f"At {t:g}") for st in _share_at(res, t)]
    for p in res.get("match_counts", []):
        if p.get("threshold") is None:
            continue
        shares += [(st, f"At {p['threshold']:g}, where {p['reached']['errors']} searches had a false candidate "
                        f"(asked for: {p['requested']}; the ACLU's 28 of 535 were counted at such a point)")
                   for st in _share_at(res, p["threshold"])]
    check = next((pc for pc in res.get("promise_checks", []) if abs(pc["threshold"] - t) < 1e-9), None)
    ratios = [r for r in (_ratio_sentence(res, col, t) for col in base_columns(res)) if r]
    findings: list[str] = []
    if check:
        above = [g for g in check["groups"] if g["verdict"] == "above" and g["group"] != "unknown"
                 and g["measured"]["subjects"] >= min_group(res) and check["overall"]["verdict"] != "above"]
        findings = [g["finding"] for g in above[:4]]
    ths = (t,) + ((top,) if top != t else ())
    return FirstScreen(res["counts"], t, reasons(res, t), _promise(t), s["overall"]["ACLU_COUNT"], tuple(shares),
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
