"""report.html: one self-contained page (inline CSS and SVG, thumbnails as data URIs, no network).

Written for civil-liberties researchers and journalists: plain words first,
every number with its count and interval, what the data can and cannot show.
Rebuilt from results.json (+ candidates.csv for the thumbnails) by
``faceaudit report DIR``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from markupsafe import Markup

from faceaudit._errors import InvalidParameterError
from faceaudit.audit._headline import (
    AcluSection,
    CrossTable,
    FirstScreen,
    PromiseSection,
    ShareSet,
    aclu_section,
    cross_section,
    first_screen,
    promise_section,
    share_section,
)
from faceaudit.audit._html import (
    LEAD_NOTE,  # noqa: F401  (report.html's lead notice, imported from here by callers)
    base_columns,
    find_frame,
    find_summary,
    group_people,
    headline_threshold,
    min_group,
    page,
    render,
    tfmt,
)
from faceaudit.audit._probe_quality import probe_quality_section
from faceaudit.audit._svg import PALETTE, Series, histogram_chart, line_chart


@dataclass(frozen=True)
class ThumbnailPolicy:
    """Which false candidates get thumbnails in the report.

    ``enabled`` False: none (e.g. for reports that are published). ``exclude``:
    (column, value) pairs; an image whose probe_/candidate_ label matches is not
    embedded (e.g. ("dataset", "meds") for images under a restrictive licence).
    At most ``max_pairs`` pairs, each image at most ``size`` pixels wide.
    """

    enabled: bool = True
    exclude: tuple[tuple[str, str], ...] = ()
    max_pairs: int = 100
    size: int = 110

    @staticmethod
    def parse_exclude(specs: Iterable[str]) -> tuple[tuple[str, str], ...]:
        out = []
        for s in specs:
            col, sep, val = s.partition("=")
            if not sep or not col.strip():
                raise InvalidParameterError(f"thumbnail exclusion {s!r} must look like COLUMN=VALUE")
            out.append((col.strip(), val.strip()))
        return tuple(out)


# ---------------------------------------------------------------- thumbnails

def _thumb(path: Path, size: int) -> str | None:
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as opened:
            im = ImageOps.exif_transpose(opened).convert("RGB")
            im.thumbnail((size, int(size * 1.25)))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=72, optimize=True)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:
        return None


def _excluded(row: dict[str, str], side: str, policy: ThumbnailPolicy) -> str | None:
    for col, val in policy.exclude:
        if row.get(f"{side}_{col}", "") == val:
            return f"{col}={val}"
    return None


# ---------------------------------------------------------------- sections

Rate = dict[str, Any]
"""One rate of results.json: errors, trials, rate, wilson95 (bootstrap95, few_errors where counted)."""


def _diff(res: dict[str, Any], column: str, t: float, setting: str):
    for d in res["differentials"]:
        if d["column"] == column and d["setting"] == setting and abs(d["threshold"] - t) < 1e-9:
            return d
    return None


class MoreFindings(NamedTuple):
    """Search rates at the headline threshold ``t``, the projection, and the strictest threshold ``top``."""

    t: float
    fp: Rate
    fn: Rate
    mf: Rate
    p: dict[str, Any] | None  # the projection, when one was computed
    top: float | None  # None when the headline threshold is the strictest
    st: dict[str, Rate] | None  # overall rates at ``top``


def _more_findings(res: dict[str, Any]) -> MoreFindings:
    t = headline_threshold(res)
    o = find_summary(res, t)["overall"]
    p = find_summary(res, t).get("projection")
    top = max(res["thresholds"])
    return MoreFindings(t, o["FPIR"], o["FNIR"], o["MATED_FALSE"], p if p and p.get("expected") is not None else None,
                        None if top == t else top, None if top == t else find_summary(res, top)["overall"])


class Caveats(NamedTuple):
    gallery_images: int
    min_group: int
    notes: tuple[str, ...]  # the --note texts, as given


class GroupTableRow(NamedTuple):
    name: str
    small: bool
    photos: Any  # the group's photo count in the composition, "" when unknown
    rates: tuple[Rate | None, ...]


class GroupTable(NamedTuple):
    """One column's groups at one threshold: rates per metric, everyone, highest ÷ lowest, differentials."""

    label: str
    metrics: tuple[str, ...]
    rows: tuple[GroupTableRow, ...]
    overall: tuple[Rate | None, ...]
    frames: tuple[dict[str, Any] | None, ...]
    differentials: tuple[dict[str, Any], ...]


def _group_table(res: dict[str, Any], column: str, t: float, metrics: Sequence[str],
                 side: str = "probe") -> GroupTable | None:
    frames = tuple(find_frame(res, m, column, t, side) for m in metrics)
    first = next((f for f in frames if f), None)
    if first is None:
        return None
    comp = res.get("composition", {}).get(side, {}).get(column, {})
    rows = []
    for g in first["by_group"]:
        who = (first["by_group"].get(g) or {}).get("subjects", 0)
        rows.append(GroupTableRow(g, side == "probe" and g != "unknown" and who < min_group(res), comp.get(g, ""),
                                  tuple(f["by_group"].get(g) if f else None for f in frames)))
    diffs = ()
    if side == "probe":
        diffs = tuple(d for d in (_diff(res, column, t, setting) for setting in ("1:1", "1:N")) if d)
    return GroupTable("Gallery group" if side == "gallery" else "Group", tuple(metrics), tuple(rows),
                      tuple(f["overall"] if f else None for f in frames), frames, diffs)


class GroupDetails(NamedTuple):
    threshold: float
    reasons: str
    open: bool
    table: GroupTable | None


class GroupColumn(NamedTuple):
    name: str
    details: tuple[GroupDetails, ...]


class GroupSections(NamedTuple):
    columns: tuple[GroupColumn, ...]
    threshold: float
    intersections: tuple[tuple[str, GroupTable | None], ...]  # ("sex × age", table)


def _group_sections(res: dict[str, Any]) -> GroupSections:
    mt = headline_threshold(res)
    metrics = ["ACLU_COUNT", "FPIR", "FNIR", "FMR", "FNMR"]
    shown = {mt, max(res["thresholds"])}
    columns = tuple(GroupColumn(col, tuple(
        GroupDetails(s["threshold"], ", ".join(s["reasons"]), any(abs(s["threshold"] - x) < 1e-9 for x in shown),
                     _group_table(res, col, s["threshold"], metrics))
        for s in res["summaries"])) for col in base_columns(res))
    inter = tuple((col.replace("&", " × "), _group_table(res, col, mt, metrics))
                  for col in res["group_columns"] if "&" in col)
    return GroupSections(columns, mt, inter)


def _gallery_sections(res: dict[str, Any]) -> tuple[tuple[str, GroupTable | None], ...]:
    mt = headline_threshold(res)
    return tuple((col, _group_table(res, col, mt, ["FPIR", "ACLU_COUNT", "FMR"], side="gallery"))
                 for col in res["gallery_group_columns"])


def _colors(groups: Sequence[str]) -> dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}


class Figure(NamedTuple):
    """One chart and its caption (HTML text under the chart, so it is never cut by the drawing's width)."""

    svg: Markup
    caption: str


class DetChart(NamedTuple):
    title: str
    empty: bool
    svg: Markup | None
    caption: str = ""


class Charts(NamedTuple):
    lines: tuple[Figure, ...]  # false leads and misses against the threshold
    det: bool  # exact scores: DET curves and score distributions exist
    drawable: bool
    det_charts: tuple[DetChart, ...]
    histogram: Markup | None


def _drawn_groups(res: dict[str, Any], col: str, groups: Iterable[str]) -> tuple[list[str], str]:
    """The groups of ``col`` big enough to draw, and a sentence naming those left out and why ("" if none).

    The size rule is the tables': fewer than ``min_group_searches`` people searched (at the headline
    threshold) is too few for a line to mean anything.
    """
    if col == "":
        return list(groups), ""
    t = headline_threshold(res)
    keep: list[tuple[str, int]] = []
    small: list[tuple[str, int]] = []
    for g in groups:
        n = group_people(res, col, g, t)
        (small if n < min_group(res) else keep).append((g, n))
    if not small:
        return [g for g, _ in keep], ""
    names = ", ".join(f"{g} ({n} {'person' if n == 1 else 'people'})" for g, n in small)
    return [g for g, _ in keep], (f"Not drawn: {names}, below the {min_group(res)} people searched that a group "
                                  "needs for its rates to be compared (their counts are in the tables).")


def _identification_charts(res: dict[str, Any]) -> tuple[Figure, ...]:
    cur = res["curves"]
    grid = cur["grid"]
    x_lo = grid[0]
    every = cur["identification"].get("", {}).get("all")
    if every and res["engine"]["exact_scores"]:
        # start where the overall curves start to move (FPIR below 100% or FNIR above 0%), less 10 points
        for x, fp, fn in zip(grid, every["FPIR"], every["FNIR"], strict=True):
            if (fp is not None and fp < 1.0) or (fn is not None and fn > 0.0):
                x_lo = max(grid[0], 10.0 * math.floor((x - 10.0) / 10.0))
                break
    out = []
    for col in [""] + [c for c in base_columns(res) if c in cur["identification"]]:
        series = []
        groups = cur["identification"].get(col, {})
        colors = _colors(list(groups))
        drawn, left_out = _drawn_groups(res, col, groups)
        for g in drawn:
            d = groups[g]
            name = "everyone" if col == "" else g
            if any(v is not None for v in d["FPIR"]):
                series.append(Series(f"{name}: FPIR", list(zip(grid, d["FPIR"], strict=True)), colors[g]))
            if any(v is not None for v in d["FNIR"]):
                series.append(Series(f"{name}: FNIR", list(zip(grid, d["FNIR"], strict=True)), colors[g], dash="6 4"))
        if not series and left_out:
            out.append(Figure(Markup(""), f"False leads and misses, by {col}: no group is drawn. " + left_out))
        elif series:
            out.append(Figure(line_chart(
                series, title="False leads and misses" + (f", by {col}" if col else ", everyone"),
                x_label="Similarity threshold (higher is stricter)", y_label="share of searches",
                x_range=(x_lo, 100.0), y_range=(0.0, 1.0), y_percent=True,
                vlines=[(t, tfmt(t)) for t in res["thresholds"]]),
                "FPIR (solid): share of the people not in the gallery who got a false candidate. FNIR (dashed): "
                "share of the people in the gallery who were not found." + (" " + left_out if left_out else "")))
    return tuple(out)


def _det_chart(res: dict[str, Any], col: str, groups: dict[str, Any]) -> DetChart:
    colors = _colors(list(groups))
    drawn, left_out = _drawn_groups(res, col, groups)
    series = []
    points: list[tuple[float, float]] = []
    for g in drawn:
        # log axes: only thresholds where both error rates are above 0 can be drawn
        p = [(f, n) for _, f, n in groups[g] if f > 0 and n > 0]
        if p:
            series.append(Series("everyone" if col == "" else g, p, colors[g]))
            points += p
    title = "DET: misses vs false matches" + (f", by {col}" if col else "")
    caption = ("Lower left is better. Thresholds with a rate of 0 cannot be drawn on log axes."
               + (" " + left_out if left_out else ""))
    if not series:
        return DetChart(title, True, None, ("No group is drawn. " + left_out) if left_out and not drawn else "")
    lo_f = min(f for f, _ in points)
    lo_n = min(n for _, n in points)
    return DetChart(title, False, line_chart(
        series, title=title, x_label="FMR, false match rate (log scale)", y_label="FNMR, false non-match rate (log)",
        x_range=(min(1e-4, 10.0 ** math.floor(math.log10(lo_f))), 1.0),
        y_range=(min(1e-2, 10.0 ** math.floor(math.log10(lo_n))), 1.0), log_x=True, log_y=True), caption)


def _charts(res: dict[str, Any]) -> Charts:
    cur = res["curves"]
    det = bool(cur["det"])
    drawable = any(f > 0 and n > 0 for pts in cur["det"].get("", {}).values() for _, f, n in pts)
    det_charts: tuple[DetChart, ...] = ()
    if det and drawable:
        det_charts = tuple(_det_chart(res, col, cur["det"].get(col, {}))
                           for col in [""] + [c for c in base_columns(res) if c in cur["det"]])
    histogram = None
    gen = cur["genuine"].get("", {}).get("all") if det else None
    imp = cur["impostor"].get("", {}).get("all") if det else None
    if gen and imp:
        sg, si = sum(gen) or 1, sum(imp) or 1
        histogram = histogram_chart(
            [("same person (genuine pairs)", [v / sg for v in gen], PALETTE[2]),
             ("different people (impostor pairs)", [v / si for v in imp], PALETTE[1])],
            bin_width=cur["bin_width"], title="How alike the model finds two photos",
            x_label="Similarity (0-100)", y_label="share of pairs (log scale)",
            vlines=[(t, tfmt(t)) for t in res["thresholds"]])
    return Charts(_identification_charts(res), det, drawable, det_charts, histogram)


class Face(NamedTuple):
    side: str
    subject: str
    uri: str | None  # data: URI of the thumbnail, None when not shown
    why: str  # why not shown


class Card(NamedTuple):
    """One false candidate: the searched photo and the candidate, with their group labels."""

    images: tuple[Face, Face]
    similarity: str
    probe_subject: str
    probe_labels: tuple[tuple[str, str], ...]
    candidate_subject: str
    candidate_labels: tuple[tuple[str, str], ...]


class Thumbnails(NamedTuple):
    t: float
    searches: int  # searches with a false candidate at or above t
    enabled: bool
    cards: tuple[Card, ...]
    more: int


def _labels(row: dict[str, str], side: str, columns: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The group labels of one face of a pair, e.g. (("sex", "F"), ("race", "black"))."""
    return tuple((c, row[f"{side}_{c}"] or "unknown") for c in columns if f"{side}_{c}" in row)


def _card(row: dict[str, str], base: Path, policy: ThumbnailPolicy, columns: Sequence[str]) -> Card:
    faces = []
    for side, key in (("probe", "probe_image"), ("candidate", "candidate_image")):
        why = _excluded(row, side, policy)
        uri = None if why else _thumb(base / row[key], policy.size)
        faces.append(Face(side, row[side + "_subject"], uri, why or "image not found"))
    return Card((faces[0], faces[1]), f"{float(row['similarity']):.1f}", row["probe_subject"],
                _labels(row, "probe", columns), row["candidate_subject"], _labels(row, "candidate", columns))


def _thumbnails(res: dict[str, Any], candidates: Sequence[dict[str, str]], base: Path,
                policy: ThumbnailPolicy) -> Thumbnails:
    t = max(headline_threshold(res), min(res["thresholds"]))
    best: dict[str, dict[str, str]] = {}
    for row in candidates:
        if row.get("mated") != "false":
            continue
        try:
            s = float(row["similarity"])
        except (KeyError, ValueError):
            continue
        if s < t:
            continue
        k = row["probe_image"]
        if k not in best or s > float(best[k]["similarity"]):
            best[k] = row
    rows = sorted(best.values(), key=lambda r: -float(r["similarity"]))
    cards: tuple[Card, ...] = ()
    if rows and policy.enabled:
        columns = list(dict.fromkeys(base_columns(res) + list(res.get("gallery_group_columns", []))))
        cards = tuple(_card(row, base, policy, columns) for row in rows[: policy.max_pairs])
    return Thumbnails(t, len(rows), policy.enabled, cards, len(rows) - policy.max_pairs)


def _composition(res: dict[str, Any]) -> tuple[tuple[str, tuple[tuple[str, dict[str, int], int], ...]], ...]:
    """Per side with labels: (title, ((column, photos per group, total or 1), ...))."""
    out = []
    for side, title in (("probe", "People searched"), ("gallery", "Gallery")):
        comp = res.get("composition", {}).get(side, {})
        if comp:
            out.append((title, tuple((col, groups, sum(groups.values()) or 1) for col, groups in comp.items())))
    return tuple(out)


def _timings(res: dict[str, Any]) -> str:
    return ", ".join(f"{k[:-2].replace('_', ' ')} {v:g} s" if k.endswith("_s") else f"{k.replace('_', ' ')} {v:g}"
                     for k, v in res.get("timings", {}).items())


class ReportView(NamedTuple):
    """Everything report.html shows beyond results.json's own fields, computed before laying out."""

    first_screen: FirstScreen
    caveats: Caveats
    more_findings: MoreFindings
    aclu: AcluSection
    shares: tuple[ShareSet, ...]
    promise: PromiseSection | None
    metrics: tuple[str, ...]
    cross: tuple[CrossTable, ...]
    charts: Charts
    projections: tuple[tuple[float, dict[str, Any]], ...]
    groups: GroupSections
    gallery: tuple[tuple[str, GroupTable | None], ...]
    composition: tuple[tuple[str, tuple[tuple[str, dict[str, int], int], ...]], ...]
    thumbnails: Thumbnails
    search: tuple[tuple[str, str], ...]
    timings: str


def render_report(res: dict[str, Any], candidates: Sequence[dict[str, str]] = (), base_dir: Path | str = ".",
                  thumbnails: ThumbnailPolicy | None = None) -> str:
    """The report page for a results.json dict (and candidates.csv rows for the thumbnails)."""
    c = res["counts"]
    eng = res["engine"]
    view = ReportView(
        first_screen=first_screen(res, candidates),
        caveats=Caveats(c["gallery_images"], min_group(res), tuple(res.get("notes", []))),
        more_findings=_more_findings(res), aclu=aclu_section(res), shares=share_section(res),
        promise=promise_section(res), metrics=("ACLU_COUNT", "FPIR", "FNIR", "MATED_FALSE", "FMR", "FNMR"),
        cross=cross_section(res), charts=_charts(res),
        projections=tuple((s["threshold"], s["projection"]) for s in res["summaries"]
                          if s.get("projection") and s["projection"].get("expected") is not None),
        groups=_group_sections(res), gallery=_gallery_sections(res), composition=_composition(res),
        thumbnails=_thumbnails(res, candidates, Path(base_dir), thumbnails or ThumbnailPolicy()),
        search=tuple((str(k), str(v)) for k, v in (eng.get("search") or {}).items()), timings=_timings(res))
    title = f"Face search audit: {c['probes']:,} searches against {c['gallery_images']:,} photos"
    return page(title, render("report.html.j2", title=title, res=res, eng=eng, v=view, pq=probe_quality_section(res)))


def build_report(out_dir: str | Path, thumbnails: ThumbnailPolicy | None = None) -> Path:
    """Rebuild ``out_dir/report.html`` from ``results.json`` (and ``candidates.csv`` if present)."""
    from faceaudit.audit._run import CANDIDATES_CSV, REPORT_HTML, RESULTS_JSON

    out = Path(out_dir)
    path = out / RESULTS_JSON
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(f"no {RESULTS_JSON} in {out} (run `faceaudit audit` first)") from None
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"cannot read {path}: {exc}") from None
    candidates: list[dict[str, str]] = []
    cpath = out / CANDIDATES_CSV
    if cpath.is_file():
        from faceaudit._csv import restore

        with open(cpath, newline="", encoding="utf-8") as fh:  # cells as written before neutralising
            candidates = [{k: restore(v or "") for k, v in row.items()} for row in csv.DictReader(fh)]
    html = render_report(res, candidates, out, thumbnails)
    target = out / REPORT_HTML
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    return target
