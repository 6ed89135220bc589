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
                               chart=_chart(rows, t), note=note)
