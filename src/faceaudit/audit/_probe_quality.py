"""The report's "Probe quality" section: the audit per probe condition, as one headline, one table
and one chart (issue 19). Built from results.json's ``conditions`` (:mod:`faceaudit.audit._conditions`);
None when the audit ran without conditions.

Every number is read from results.json; nothing is recomputed here. The worst condition is
the one whose probes miss their mate most often (FNIR, failures to enrol counted as misses) at
the first threshold shown (80 where the audit has it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

PREFERRED_THRESHOLDS = (80.0, 90.0)
"""Thresholds of the section's table and chart, where the audit has them (else its first two)."""

CHART_COLORS = ("#D55E00", "#0072B2")
"""FNIR, searches with a false candidate (Okabe-Ito, as the report's other charts)."""

GROUP_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
"""One line per group (Okabe-Ito)."""

MIN_GROUP_MATED = 20
"""A group gets its line in the per-group chart when it has at least this many mated searches
(the FNIR's trials under the photos as taken): with fewer, one miss moves its rate by more than
five points and its 95% interval spans most of the axis."""

GROUP_COLUMNS = ("race", "sex")
"""The probe label columns the per-group view prefers, first found wins (else the audit's first
single column with two groups large enough)."""


@dataclass(frozen=True)
class ConditionRow:
    """One probe condition as the table shows it (rates 0-1, None when not measured).

    ``fnir``: share of mated searches that missed the mate at each of the section's thresholds;
    ``false_candidate``: share of all searches with a stranger at or above the first of them
    (ACLU_COUNT); ``rank1`` / ``top20``: mated searches with the mate first / in the top 20 of the
    candidate list (no threshold); ``temptation_*``: the highest Similarity with FNIR <= 5% and
    the searches with a stranger at or above it there.
    """

    number: int
    name: str
    spec: str
    eye_distance: float | None
    band: str | None
    probes: int
    failures_to_enrol: int
    fnir: tuple[Mapping[str, Any] | None, ...]
    false_candidate: Mapping[str, Any] | None
    rank1: float | None
    top20: float | None
    temptation_threshold: float | None
    temptation_false: int | None
    temptation_searches: int


@dataclass(frozen=True)
class ProbeQualitySection:
    """The section's view-model: headline, table rows, chart and the synthetic-conditions note.

    ``first_screen``: one sentence for the report's first screen on the worst tested condition.
    """

    headline: str
    first_screen: str
    thresholds: tuple[float, ...]
    rows: tuple[ConditionRow, ...]
    chart: Markup
    note: str
    groups: GroupView | None = None


@dataclass(frozen=True)
class GroupCell:
    """One group under one condition: mates missed (FNIR) and searches with a false candidate
    (ACLU_COUNT), each a results.json rate (errors, trials, rate 0-1, wilson95) or None."""

    fnir: Mapping[str, Any] | None
    false_candidate: Mapping[str, Any] | None


@dataclass(frozen=True)
class GroupView:
    """The Probe quality section per group of one probe label column, at one threshold.

    ``groups``: the groups with at least :data:`MIN_GROUP_MATED` mated searches, largest first;
    ``left_out``: the other groups with their mated searches; ``cells[i][j]``: group i under
    condition j (the table's order); ``chart``: FNIR and false candidates against the
    condition, one line per group, with 95% intervals.
    """

    column: str
    threshold: float
    groups: tuple[str, ...]
    left_out: tuple[tuple[str, int], ...]
    cells: tuple[tuple[GroupCell, ...], ...]
    chart: Markup
    min_mated: int = MIN_GROUP_MATED


def _rate(cond: Mapping[str, Any], metric: str, threshold: float) -> Mapping[str, Any] | None:
    for s in cond.get("summaries") or ():
        if abs(float(s["threshold"]) - threshold) < 1e-9:
            r = (s.get("overall") or {}).get(metric)
            return r if r and r.get("trials") else None
    return None


def _share(value: Any) -> float | None:
    return None if value is None else float(value)


def _row(number: int, cond: Mapping[str, Any], thresholds: Sequence[float]) -> ConditionRow:
    at = (cond.get("lead_list") or {}).get("at_rank") or {}
    tempt = cond.get("temptation") or {}
    eye = cond.get("target_eye_distance")
    return ConditionRow(
        number=number, name=str(cond["name"]), spec=str(cond.get("spec") or ""),
        eye_distance=None if eye is None else float(eye), band=cond.get("quality_band"),
        probes=int(cond.get("probes") or 0), failures_to_enrol=int(cond.get("failures_to_enrol") or 0),
        fnir=tuple(_rate(cond, "FNIR", t) for t in thresholds),
        false_candidate=_rate(cond, "ACLU_COUNT", thresholds[0]),
        rank1=_share(at.get("1", at.get(1))), top20=_share(at.get("20", at.get(20))),
        temptation_threshold=tempt.get("threshold"), temptation_false=tempt.get("searches_with_false_candidate"),
        temptation_searches=int(tempt.get("searches") or 0),
    )


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def _describe(row: ConditionRow) -> str:
    eyes = "" if row.eye_distance is None else f"eyes {row.eye_distance:g} px apart, "
    if row.spec and row.spec != row.name:
        return f"{row.name} ({eyes}{row.spec})"
    return f"{row.name} ({eyes.rstrip(', ')})"


def _chart(rows: Sequence[ConditionRow], threshold: float) -> Markup:
    """FNIR and searches with a false candidate against nominal eye distance, one marker per
    condition (numbered as in the table); the photos as taken (no nominal distance) as dashed
    lines across."""
    from faceaudit._templates import render
    from faceaudit.audit._svg import _Axis, _fmt_tick, _Tick

    width, height, ml, mr, mt, mb = 520, 320, 64, 16, 34, 54
    pw, ph = width - ml - mr, height - mt - mb
    sized = [r for r in rows if r.eye_distance is not None]
    x_hi = max([40.0] + [r.eye_distance + 5 for r in sized if r.eye_distance is not None])
    tx = _Axis(0.0, x_hi, False, ml, pw, flip=False)
    ty = _Axis(0.0, 1.0, False, mt, ph, flip=True)
    markers: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    for r in rows:
        values = (("FNIR", r.fnir[0], CHART_COLORS[0], "circle"),
                  ("searches with a false candidate", r.false_candidate, CHART_COLORS[1], "square"))
        for label, rate, color, shape in values:
            if rate is None or rate.get("rate") is None:
                continue
            y = ty.tick(float(rate["rate"]))  # a linear axis: every rate has a position
            title = f"{r.number}. {r.name}: {label} at {threshold:g} = {_pct(rate['rate'])}"
            if r.eye_distance is None:
                references.append({"y": f"{y:.1f}", "color": color, "title": title + " (photos as taken)"})
            else:
                x = f"{tx(r.eye_distance):.1f}"
                same = next((m for m in markers if (m["x"], m["shape"]) == (x, shape)
                             and abs(float(m["y"]) - y) < 6), None)
                if same is not None:  # coincident markers: one marker, both numbers
                    same["label"] += f", {r.number}"
                    same["title"] += f"; {title}"
                    continue
                markers.append({"x": x, "y": f"{y:.1f}", "color": color,
                                "shape": shape, "label": str(r.number), "title": title})
    chart = {
        "title": f"At Similarity {threshold:g}: mates missed, false candidates",
        "width": width, "height": height + 22, "left": ml, "right": ml + pw, "top": mt, "bottom": mt + ph,
        "plot_width": pw, "plot_height": ph,
        "x_ticks": tuple(_Tick(f"{tx.tick(v):.1f}", _fmt_tick(v, False, False)) for v in tx.ticks()),
        "y_ticks": tuple(_Tick(f"{ty.tick(v):.1f}", _fmt_tick(v, False, True), f"{ty.tick(v) + 4:.1f}")
                         for v in ty.ticks()),
        "markers": tuple(markers), "references": tuple(references),
        "x_label": "nominal eye distance of the degraded probes (pixels)", "x_label_pos": f"{ml + pw / 2:.0f}",
        "y_label": "share of searches", "y_label_pos": f"{mt + ph / 2:.0f}",
        "legend_y": height + 6, "colors": CHART_COLORS,
    }
    return Markup(render("faceaudit.audit", "probe_quality_chart.svg.j2", c=chart).rstrip("\n"))


def _frame(cond: Mapping[str, Any], metric: str, column: str, threshold: float) -> Mapping[str, Any] | None:
    for f in cond["_frames"]:
        if (f.get("metric"), f.get("column"), f.get("side", "probe")) == (metric, column, "probe") \
                and abs(float(f["threshold"]) - threshold) < 1e-9:
            return f
    return None


def _group_rate(frame: Mapping[str, Any] | None, group: str) -> Mapping[str, Any] | None:
    r = ((frame or {}).get("by_group") or {}).get(group)
    return r if r and r.get("trials") else None


def group_view(conditions: Sequence[Mapping[str, Any]], rows: Sequence[ConditionRow],
               threshold: float) -> GroupView | None:
    """The per-group view of the conditions (None when no column has two groups large enough)."""
    from faceaudit.audit._conditions import expand_frames

    conditions = [dict(c, _frames=expand_frames(c.get("frames"))) for c in conditions]
    clean = conditions[0]
    columns = sorted({str(f["column"]) for f in clean["_frames"]
                      if f.get("metric") == "FNIR" and f.get("side", "probe") == "probe"
                      and "&" not in str(f["column"])},
                     key=lambda c: (c not in GROUP_COLUMNS, GROUP_COLUMNS.index(c) if c in GROUP_COLUMNS else 0, c))
    for column in columns:
        base = _frame(clean, "FNIR", column, threshold)
        if base is None:
            continue
        sizes = {str(g): int(r.get("trials") or 0) for g, r in (base.get("by_group") or {}).items()}
        big = tuple(sorted((g for g, n in sizes.items() if n >= MIN_GROUP_MATED), key=lambda g: (-sizes[g], g)))
        if len(big) < 2:
            continue
        big = big[:len(GROUP_COLORS)]
        left = tuple((g, n) for g, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])) if g not in big and n)
        cells = tuple(tuple(GroupCell(_group_rate(_frame(c, "FNIR", column, threshold), g),
                                      _group_rate(_frame(c, "ACLU_COUNT", column, threshold), g))
                            for c in conditions) for g in big)
        return GroupView(column=column, threshold=threshold, groups=big, left_out=left, cells=cells,
                         chart=_group_chart(column, big, cells, rows, threshold))
    return None


def _group_chart(column: str, groups: Sequence[str], cells: Sequence[Sequence[GroupCell]],
                 rows: Sequence[ConditionRow], threshold: float) -> Markup:
    """Two panels side by side (mates missed; searches with a false candidate) with the conditions
    along x (numbered as in the table, with their eye distance) and one line per group, each
    point with its 95% Wilson interval."""
    from faceaudit._templates import render
    from faceaudit.audit._svg import _Axis, _fmt_tick, _Tick

    panel_w, height, ml, gap, mt, mb = 300, 310, 56, 64, 40, 68
    ph = height - mt - mb
    n = len(rows)
    ty = _Axis(0.0, 1.0, False, mt, ph, flip=True)
    panels = []
    for k, (label, attr) in enumerate((("mates missed (FNIR)", "fnir"),
                                       ("searches with a false candidate", "false_candidate"))):
        left = ml + k * (panel_w + gap)

        def x(j: int, left: float = left) -> float:
            return left + (j + 0.5) * panel_w / n

        lines = []
        for i, g in enumerate(groups):
            points, spans = [], []
            for j, cell in enumerate(cells[i]):
                rate = getattr(cell, attr)
                if rate is None or rate.get("rate") is None:
                    continue
                lo, hi = (rate.get("wilson95") or [rate["rate"], rate["rate"]])[:2]
                xj = x(j) + (i - (len(groups) - 1) / 2) * 3.0  # groups side by side at each condition
                points.append({"x": f"{xj:.1f}", "y": f"{ty.tick(float(rate['rate'])):.1f}",
                               "title": f"{column} {g}, {rows[j].number}. {rows[j].name}: {label} at {threshold:g} = "
                                        f"{rate['errors']} of {rate['trials']} ({_pct(rate['rate'])}; 95% interval "
                                        f"{_pct(lo)} to {_pct(hi)})"})
                spans.append({"x": f"{xj:.1f}", "y1": f"{ty.tick(float(lo)):.1f}", "y2": f"{ty.tick(float(hi)):.1f}"})
            lines.append({"color": GROUP_COLORS[i], "points": points, "spans": spans,
                          "path": " ".join(f"{p['x']},{p['y']}" for p in points)})
        ticks = tuple({"pos": f"{x(j):.1f}", "label": str(r.number),
                       "px": "as taken" if r.eye_distance is None else f"{r.eye_distance:g} px"}
                      for j, r in enumerate(rows))
        panels.append({"title": label, "left": left, "right": left + panel_w, "lines": lines, "x_ticks": ticks})
    chart = {
        "title": f"At Similarity {threshold:g}, by {column}: one line per group (95% intervals)",
        "width": ml + 2 * panel_w + gap + 16, "height": height + 18 * ((len(groups) + 2) // 3),
        "top": mt, "bottom": mt + ph, "plot_height": ph, "panel_width": panel_w, "panels": panels,
        "y_ticks": tuple(_Tick(f"{ty.tick(v):.1f}", _fmt_tick(v, False, True), f"{ty.tick(v) + 4:.1f}")
                         for v in ty.ticks()),
        "legend": tuple({"x": ml + (i % 3) * 200, "y": height + 4 + 18 * (i // 3), "color": GROUP_COLORS[i],
                         "label": f"{g}"} for i, g in enumerate(groups)),
        "x_label": "probe condition (# as in the table) and the eye distance its probes were scaled to",
    }
    return Markup(render("faceaudit.audit", "probe_quality_groups.svg.j2", c=chart).rstrip("\n"))


def probe_quality_section(res: Mapping[str, Any]) -> ProbeQualitySection | None:
    """The section for a results.json dict; None when it has no degraded condition."""
    conditions = [c for c in res.get("conditions") or () if isinstance(c, Mapping)]
    if len(conditions) < 2:  # clean alone: the rest of the report already is that
        return None
    have = [float(s["threshold"]) for s in conditions[0].get("summaries") or ()]
    thresholds = tuple(t for t in PREFERRED_THRESHOLDS if any(abs(t - h) < 1e-9 for h in have)) \
        or tuple(sorted(have)[:2])
    if not thresholds:
        return None
    rows = tuple(_row(i, c, thresholds) for i, c in enumerate(conditions, start=1))
    t = thresholds[0]
    clean = next((r for r in rows if r.name == "clean"), rows[0])
    degraded = [r for r in rows if r is not clean and r.fnir[0] is not None]
    if not degraded:
        return None
    worst = max(degraded, key=lambda r: (float((r.fnir[0] or {}).get("rate") or 0.0), r.failures_to_enrol))
    fnir, base = worst.fnir[0] or {}, clean.fnir[0]
    against = "" if base is None else f", against {_pct(base['rate'])} on the photos as taken"
    tempt = ("no threshold brings the misses down to 5%" if worst.temptation_threshold is None else
             f"a user would have to lower the threshold to {worst.temptation_threshold:.2f} to miss at most 5%, "
             f"where {worst.temptation_false} of {worst.temptation_searches} searches return a stranger")
    headline = (f"Worst tested condition: {_describe(worst)}. The model missed {_pct(fnir['rate'])} of the mates "
                f"at {t:g} ({fnir['errors']} of {fnir['trials']}){against}; {worst.failures_to_enrol} of "
                f"{worst.probes} probes had no usable face; {tempt}.")
    first = (f"On probes degraded as a camera would take them (synthetic), the worst tested condition, "
             f"{worst.name}, made the model miss {_pct(fnir['rate'])} of the people it should have found at "
             f"{t:g}{against} (see Probe quality).")
    from faceaudit.audit._conditions import SYNTHETIC_NOTE

    note = str(conditions[-1].get("note") or SYNTHETIC_NOTE)
    return ProbeQualitySection(headline=headline, first_screen=first, thresholds=thresholds, rows=rows,
                               chart=_chart(rows, t), note=note, groups=group_view(conditions, rows, t))
