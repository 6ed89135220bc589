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
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from faceaudit._errors import InvalidParameterError
from faceaudit.audit._headline import aclu_section, cross_section, first_screen, promise_section, share_section
from faceaudit.audit._html import (
    LEAD_NOTE,
    SHORT,
    base_columns,
    find_frame,
    find_summary,
    headline_threshold,
    interval,
    min_group,
    num,
    page,
    pct,
    people,
    rate_cell,
    tfmt,
)
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
    exclude: Tuple[Tuple[str, str], ...] = ()
    max_pairs: int = 100
    size: int = 110

    @staticmethod
    def parse_exclude(specs: Iterable[str]) -> Tuple[Tuple[str, str], ...]:
        out = []
        for s in specs:
            col, sep, val = s.partition("=")
            if not sep or not col.strip():
                raise InvalidParameterError(f"thumbnail exclusion {s!r} must look like COLUMN=VALUE")
            out.append((col.strip(), val.strip()))
        return tuple(out)


# ---------------------------------------------------------------- thumbnails

def _thumb(path: Path, size: int) -> Optional[str]:
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((size, int(size * 1.25)))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=72, optimize=True)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:
        return None


def _excluded(row: Dict[str, str], side: str, policy: ThumbnailPolicy) -> Optional[str]:
    for col, val in policy.exclude:
        if row.get(f"{side}_{col}", "") == val:
            return f"{col}={val}"
    return None


# ---------------------------------------------------------------- sections

_frame = find_frame


def _diff(res: Dict[str, Any], column: str, t: float, setting: str):
    for d in res["differentials"]:
        if d["column"] == column and d["setting"] == setting and abs(d["threshold"] - t) < 1e-9:
            return d
    return None


_summary = find_summary
_base_columns = base_columns


def _more_findings(res: Dict[str, Any]) -> str:
    """Search rates, the projection and the strictest threshold, after the first screen."""
    t = headline_threshold(res)
    s = _summary(res, t)
    o = s["overall"]
    items = []
    fp, fn, mf = o["FPIR"], o["FNIR"], o["MATED_FALSE"]
    if fp["trials"]:
        items.append(
            f"At {tfmt(t)}, of the {fp['trials']:,} people who are <b>not</b> in the gallery, <b>{fp['errors']:,} "
            f"({pct(fp['rate'])}, 95% interval {interval(fp['wilson95'])})</b> got a false candidate (FPIR).")
    if fn["trials"]:
        items.append(
            f"Of the {fn['trials']:,} people who <b>are</b> in the gallery, <b>{fn['errors']:,} ({pct(fn['rate'])}, "
            f"95% interval {interval(fn['wilson95'])})</b> were not found (FNIR), and {mf['errors']:,} were shown a "
            "stranger at or above the threshold as well.")
    p = s.get("projection")
    if p and p.get("expected") is not None:
        items.append(
            f"Each comparison of two different people scored {tfmt(t)} or more with probability "
            f"{pct(p['fmr']['rate'])} ({p['fmr']['errors']:,} of {p['fmr']['trials']:,} comparisons). "
            f"<b>Projected</b> to {p['probes']:,} people searched against {p['gallery']:,} photos, that "
            + (f"is nearly every one of the {p['probes']:,}" if p["low"] >= p["probes"] - 0.5 else
               f"is <b>about {people(p['expected'])} people (95% interval {people(p['low'])} to "
               f"{people(p['high'])})</b> with a false candidate")
            + ". This is a projection that assumes independent comparisons, not a measurement.")
    top = max(res["thresholds"])
    if top != t:
        st = _summary(res, top)["overall"]
        items.append(
            f"At the strictest audited threshold, <b>{tfmt(top)}</b>, {st['ACLU_COUNT']['errors']:,} searches "
            f"({pct(st['ACLU_COUNT']['rate'])}) had a false candidate and {pct(st['FNIR']['rate'])} of the people in "
            "the gallery were not found: a stricter threshold trades false leads for missed people.")
    return '<ul class="key">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def _caveats(res: Dict[str, Any]) -> str:
    c = res["counts"]
    items = [
        LEAD_NOTE,
        f"This gallery holds {c['gallery_images']:,} photos. The more photos a search is run against, the more "
        "likely a false candidate, so counts from galleries of different sizes are not comparable; the "
        "per-comparison false match rate (FMR) is (see the comparison with the ACLU below).",
        "Results hold for these photos and this model only. Surveillance stills, old or low-quality photos, "
        "or a different model give different error rates.",
        "Group labels come only from the manifests (the data), never from the faces. \"unknown\" means the "
        "manifest gave no label. A group with few people, or few errors, has a wide interval: read the "
        "intervals, not just the rates.",
        f"Ratios between groups use only groups with at least {min_group(res)} people searched; smaller groups are "
        "shown, marked too small.",
        "Two intervals are given. The 95% confidence interval (Wilson) treats every search or comparison as "
        "independent. The \"people:\" interval (bootstrap) redraws the people searched, so it widens "
        "when one person's photos cause many of the errors. Rates marked † rest on fewer than 30 errors "
        "(Doddington's rule of 30) and are uncertain.",
        "Thresholds are the same for everyone; they are never tuned per group.",
    ]
    items += [escape(n) for n in res.get("notes", [])]
    return '<ul class="caveat">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def _main_table(res: Dict[str, Any]) -> str:
    metrics = ["ACLU_COUNT", "FPIR", "FNIR", "MATED_FALSE", "FMR", "FNMR"]
    head = "".join(f"<th>{escape(SHORT[m])}</th>" for m in metrics)
    rows = []
    for s in res["summaries"]:
        why = ", ".join(s["reasons"])
        cells = "".join(rate_cell(s["overall"].get(m)) for m in metrics)
        rows.append(f"<tr><th>{tfmt(s['threshold'])}<br><small>{escape(why)}</small></th>{cells}</tr>")
    return (f"<table><tr><th>Threshold</th>{head}</tr>{''.join(rows)}</table>"
            "<p class='small'>Each cell: errors / trials, the rate, its 95% confidence interval (Wilson) and, after "
            "\"people:\", the 95% interval from resampling the people searched (bootstrap). "
            "† fewer than 30 errors.</p>")


def _projection_table(res: Dict[str, Any]) -> str:
    rows = []
    for s in res["summaries"]:
        p = s.get("projection")
        if not p or p.get("expected") is None:
            continue
        rows.append(
            f"<tr><td class='n'>{tfmt(s['threshold'])}</td><td class='n'>{p['fmr']['errors']:,} / "
            f"{p['fmr']['trials']:,} = {num(p['fmr']['rate'])}</td>"
            f"<td class='n'>{p['observed_count']:,} of {p['observed_searches']:,} "
            f"<small>(~{p['observed_gallery']:,} other people's photos per search)</small></td>"
            f"<td class='n'>about <b>{people(p['expected'])}</b> of {p['probes']:,} people "
            f"<b>(95% interval {people(p['low'])} to {people(p['high'])})</b></td></tr>"
        )
    if not rows:
        return "<p>No projection: no comparisons of different people were counted.</p>"
    return ("<table><tr><th>Threshold</th><th>Per-comparison FMR</th><th>Measured here: searches with a "
            "false candidate</th><th>Projection to 535 people × 25,000 photos</th></tr>" + "".join(rows) +
            "</table><p class='small'>Projection: expected count = 535 × (1 − (1 − FMR)<sup>25,000</sup>), "
            "with the ends of FMR's 95% interval in brackets. It assumes every comparison is an independent draw; "
            "real galleries (lookalikes, photo quality, who is in them) need not behave that way. "
            "<b>It is a projection, not a measurement.</b></p>")


def _match_count_table(res: Dict[str, Any]) -> str:
    points = res.get("match_counts", [])
    if not points:
        return ("<p class='small'><code>--match-count N</code> finds the threshold at which N searches have a false "
                "candidate (the ACLU's operating point: 28).</p>")
    rows = []
    for p in points:
        if p["threshold"] is None:
            rows.append(f"<tr><td class='n'>{p['requested']}</td><td colspan=5>{escape(p['note'])}</td></tr>")
            continue
        rows.append(f"<tr><td class='n'>{p['requested']}</td><td class='n'><b>{tfmt(p['threshold'])}</b></td>"
                    f"{rate_cell(p['reached'], True)}{rate_cell(p['fpir'], True)}{rate_cell(p['fnir'], True)}"
                    f"{rate_cell(p['fmr'], True)}</tr>")
    return ("<table><tr><th>Searches with a false candidate asked for</th><th>Threshold</th><th>Reached</th>"
            "<th>FPIR</th><th>FNIR</th><th>FMR</th></tr>" + "".join(rows) + "</table><p class='small'>The lowest "
            "threshold (in steps of 0.01) at which at most that many searches return a candidate who is somebody "
            "else; where searches tie, fewer are reached. Each search counts only strangers, so a mated search "
            "counts as a non-mated search against the rest of the gallery. The ACLU's 28 of 535 were measured at "
            "such an operating point; the composition test and the group tables are also given there.</p>")


def _targets_table(res: Dict[str, Any]) -> str:
    if not res["fmr_targets"]:
        return ("<p>Thresholds for a fixed false match rate need every pair's exact score "
                "(the local engine).</p>")
    rows = []
    for ft in res["fmr_targets"]:
        if ft["threshold"] is None:
            rows.append(f"<tr><td>{ft['target']:g}</td><td colspan=5>{escape(ft['note'])}</td></tr>")
            continue
        flag = "" if ft["measurable"] else "<br><small class='few'>too few comparisons to measure</small>"
        rows.append(f"<tr><td class='n'>{ft['target']:g}</td><td class='n'><b>{tfmt(ft['threshold'])}</b>{flag}</td>"
                    f"{rate_cell(ft['fmr'], True)}{rate_cell(ft['fnmr'], True)}{rate_cell(ft['fpir'], True)}"
                    f"{rate_cell(ft['fnir'], True)}</tr>")
    return ("<table><tr><th>Target FMR</th><th>Threshold</th><th>FMR achieved</th><th>FNMR</th><th>FPIR</th>"
            "<th>FNIR</th></tr>" + "".join(rows) + "</table><p class='small'>The lowest threshold (in steps "
            "of 0.01) at which the overall false match rate is at most the target, as NIST sets one threshold "
            "for everyone and reports each group's rates at it. Group rates at these thresholds are in the "
            "group tables below.</p>")


def _group_table(res: Dict[str, Any], column: str, t: float, metrics: Sequence[str], side: str = "probe") -> str:
    frames = {m: _frame(res, m, column, t, side) for m in metrics}
    first = next((f for f in frames.values() if f), None)
    if first is None:
        return ""
    groups = list(first["by_group"])
    comp = res.get("composition", {}).get(side, {}).get(column, {})
    head = "".join(f"<th>{escape(SHORT[m])}</th>" for m in metrics)
    label = "Gallery group" if side == "gallery" else "Group"
    rows = [f"<tr><th>{label}</th><th>Photos</th>{head}</tr>"]
    for g in groups:
        n = comp.get(g, "")
        cells = "".join(rate_cell(frames[m]["by_group"].get(g) if frames[m] else None, True) for m in metrics)
        who = (first["by_group"].get(g) or {}).get("subjects", 0)
        small = side == "probe" and g != "unknown" and who < min_group(res)
        mark = "<br><small class='few'>too small to compare</small>" if small else ""
        rows.append(f"<tr><td>{escape(g)}{mark}</td><td class='n'>{n}</td>{cells}</tr>")
    cells = "".join(rate_cell(frames[m]["overall"] if frames[m] else None, True) for m in metrics)
    rows.append(f"<tr><td><b>everyone</b></td><td></td>{cells}</tr>")
    rcells = []
    for m in metrics:
        f = frames[m]
        if not f:
            rcells.append("<td></td>")
        elif f["ratio"] is not None and f.get("highest"):
            rcells.append(f"<td class='n'><b>{f['ratio']:.3g}×</b><br><small>{escape(f['highest'])} / "
                          f"{escape(f['lowest'])}</small></td>")
        else:
            rcells.append(f"<td><small>{escape(f['ratio_note'] or 'undefined')}</small></td>")
    rows.append(f"<tr><td>highest ÷ lowest</td><td></td>{''.join(rcells)}</tr>")
    html = "<table>" + "".join(rows) + "</table>"
    if side == "probe":
        lines = []
        for setting in ("1:1", "1:N"):
            d = _diff(res, column, t, setting)
            if not d:
                continue
            note = f" <small>({escape('; '.join(d['notes']))})</small>" if d["notes"] else ""
            lines.append(
                f"<li>{setting} ({d['false_match']}, {d['false_non_match']}; α = {d['alpha']:g}): "
                f"FDR <b>{num(d['fdr'])}</b> (1 = fair), IR <b>{num(d['ir'])}</b> (1 = fair), "
                f"GARBE <b>{num(d['garbe'])}</b> (0 = fair){note}</li>"
            )
        if lines:
            html += "<ul class='small'>" + "".join(lines) + "</ul>"
    return html


def _group_sections(res: Dict[str, Any]) -> str:
    out = []
    mt = headline_threshold(res)
    ths = [s["threshold"] for s in res["summaries"]]
    metrics = ["ACLU_COUNT", "FPIR", "FNIR", "FMR", "FNMR"]
    shown = {mt, max(res["thresholds"])}
    for col in _base_columns(res):
        out.append(f"<h3>By {escape(col)} (of the person searched)</h3>")
        for t in ths:
            why = ", ".join(_summary(res, t)["reasons"])
            opn = " open" if any(abs(t - x) < 1e-9 for x in shown) else ""
            out.append(f"<details{opn}><summary>At threshold {tfmt(t)} <small>({escape(why)})</small></summary>"
                       + _group_table(res, col, t, metrics) + "</details>")
    inter = [c for c in res["group_columns"] if "&" in c]
    if inter:
        out.append(f"<h3>Intersections (two labels at once), at threshold {tfmt(mt)}</h3>")
        out.append("<p class='small'>Groups get small quickly here; most rates below rest on few errors. "
                   "Every threshold is in results.json.</p>")
        for col in inter:
            out.append(f"<details><summary>{escape(col.replace('&', ' × '))}</summary>"
                       + _group_table(res, col, mt, metrics) + "</details>")
    return "\n".join(out)


def _gallery_sections(res: Dict[str, Any]) -> str:
    out = []
    mt = headline_threshold(res)
    for col in res["gallery_group_columns"]:
        out.append(f"<h3>By {escape(col)} of the gallery photo</h3>")
        out.append(_group_table(res, col, mt, ["FPIR", "ACLU_COUNT", "FMR"], side="gallery"))
    return "\n".join(out)


def _colors(groups: Sequence[str]) -> Dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}


def _charts(res: Dict[str, Any]) -> str:
    cur = res["curves"]
    grid = cur["grid"]
    vlines = [(t, tfmt(t)) for t in res["thresholds"]]
    out = ['<div class="charts">']
    x_lo = grid[0]
    every = cur["identification"].get("", {}).get("all")
    if every and res["engine"]["exact_scores"]:
        # start where the overall curves start to move (FPIR below 100% or FNIR above 0%), less 10 points
        for x, fp, fn in zip(grid, every["FPIR"], every["FNIR"]):
            if (fp is not None and fp < 1.0) or (fn is not None and fn > 0.0):
                x_lo = max(grid[0], 10.0 * math.floor((x - 10.0) / 10.0))
                break
    cols = [""] + [c for c in _base_columns(res) if c in cur["identification"]]
    for col in cols:
        series = []
        groups = cur["identification"].get(col, {})
        colors = _colors(list(groups))
        for g, d in groups.items():
            name = "everyone" if col == "" else g
            if any(v is not None for v in d["FPIR"]):
                series.append(Series(f"{name}: FPIR", list(zip(grid, d["FPIR"])), colors[g]))
            if any(v is not None for v in d["FNIR"]):
                series.append(Series(f"{name}: FNIR", list(zip(grid, d["FNIR"])), colors[g], dash="6 4"))
        if not series:
            continue
        title = "False leads and misses" + (f", by {col}" if col else ", everyone")
        out.append(line_chart(series, title=title, x_label="Similarity threshold (higher is stricter)",
                              y_label="share of searches", x_range=(x_lo, 100.0), y_range=(0.0, 1.0),
                              y_percent=True, vlines=vlines))
    drawable = any(f > 0 and n > 0 for pts in cur["det"].get("", {}).values() for _, f, n in pts)
    if cur["det"] and not drawable:
        out.append("<div class='chart nodata'><b>DET: misses against false matches</b><p>Nothing to draw: at "
                   "every threshold either no false match or no false non-match occurred in this data, and a rate "
                   "of 0 cannot sit on a log axis. More comparisons are needed for DET curves.</p></div>")
    if cur["det"] and drawable:
        for col in [""] + [c for c in _base_columns(res) if c in cur["det"]]:
            groups = cur["det"].get(col, {})
            colors = _colors(list(groups))
            series = []
            for g, pts in groups.items():
                # log axes: only thresholds where both error rates are above 0 can be drawn
                p = [(f, n) for _, f, n in pts if f > 0 and n > 0]
                if p:
                    series.append(Series("everyone" if col == "" else g, p, colors[g]))
            title = "DET: misses vs false matches" + (f", by {col}" if col else "")
            if not series:
                out.append(f"<div class='chart nodata'><b>{escape(title)}</b><p>Nothing to draw: at every threshold "
                           "either no false match or no false non-match occurred in this data, and a rate of 0 "
                           "cannot sit on a log axis. More comparisons are needed for a DET curve.</p></div>")
                continue
            lo_f = min(f for s_ in series for f, _ in s_.points)
            lo_n = min(n for s_ in series for _, n in s_.points)
            out.append(line_chart(
                series, title=title,
                x_label="FMR, false match rate (log scale)", y_label="FNMR, false non-match rate (log)",
                x_range=(min(1e-4, 10.0 ** math.floor(math.log10(lo_f))), 1.0),
                y_range=(min(1e-2, 10.0 ** math.floor(math.log10(lo_n))), 1.0), log_x=True, log_y=True,
                note="Lower left is better. Thresholds with a rate of 0 cannot be drawn on log axes."))
    if cur["det"]:
        gen = cur["genuine"].get("", {}).get("all")
        imp = cur["impostor"].get("", {}).get("all")
        if gen and imp:
            sg, si = sum(gen) or 1, sum(imp) or 1
            out.append(histogram_chart(
                [("same person (genuine pairs)", [v / sg for v in gen], PALETTE[2]),
                 ("different people (impostor pairs)", [v / si for v in imp], PALETTE[1])],
                bin_width=cur["bin_width"], title="How alike the model finds two photos",
                x_label="Similarity (0-100)", y_label="share of pairs (log scale)", vlines=vlines))
    else:
        out.append("<p>Score distributions and DET curves need every pair's exact score (the local engine); "
                   "this engine only returned candidates at or above the lowest threshold.</p>")
    out.append("</div>")
    if cur["det"]:
        out.append("<p class='small'>The score chart's vertical axis is logarithmic so that the rare strangers "
                   "who score high stay visible: every impostor pair to the right of a threshold line is a false "
                   "match at that threshold.</p>")
    return "\n".join(out)


def _labels(row: Dict[str, str], side: str, columns: Sequence[str]) -> str:
    """The group labels of one face of a pair, e.g. " (sex F, race black)"."""
    parts = [f"{escape(c)} {escape(row[f'{side}_{c}'] or 'unknown')}" for c in columns if f"{side}_{c}" in row]
    return f"<br><span class='lab'>{', '.join(parts)}</span>" if parts else ""


def _thumbnails(res: Dict[str, Any], candidates: Sequence[Dict[str, str]], base: Path, policy: ThumbnailPolicy) -> str:
    floor = min(res["thresholds"])
    t = max(headline_threshold(res), floor)
    best: Dict[str, Dict[str, str]] = {}
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
    intro = (f"<p>Every search with a false candidate at or above {tfmt(t)}: the searched photo (left) and "
             f"its highest-scoring candidate who is somebody else (right), each with its group labels from the "
             f"manifests. {len(rows):,} searches; all candidates "
             f"are in <code>candidates.csv</code>.</p><p class='lead'>{LEAD_NOTE}</p>")
    if not rows:
        return intro + "<p>No false candidates at this threshold.</p>"
    if not policy.enabled:
        return intro + "<p>Thumbnails are switched off for this report (<code>--no-thumbnails</code>).</p>"
    columns = list(dict.fromkeys(base_columns(res) + list(res.get("gallery_group_columns", []))))
    cards = []
    for row in rows[: policy.max_pairs]:
        imgs = []
        for side, key in (("probe", "probe_image"), ("candidate", "candidate_image")):
            why = _excluded(row, side, policy)
            uri = None if why else _thumb(base / row[key], policy.size)
            if uri:
                imgs.append(f'<img src="{uri}" alt="{escape(side)} {escape(row[side + "_subject"])}">')
            else:
                imgs.append(f'<span class="ph">not shown<br>({escape(why or "image not found")})</span>')
        cards.append(
            f'<div class="pair">{imgs[0]} {imgs[1]}<br><span class="sim">{float(row["similarity"]):.1f}</span> '
            f'similarity<br><small>searched {escape(row["probe_subject"])}{_labels(row, "probe", columns)}<br>'
            f'candidate {escape(row["candidate_subject"])} (a different person)'
            f'{_labels(row, "candidate", columns)}</small></div>')
    more = len(rows) - policy.max_pairs
    tail = f"<p>{more:,} more in candidates.csv.</p>" if more > 0 else ""
    return intro + '<div class="pairs">' + "".join(cards) + "</div>" + tail


def _failures(res: Dict[str, Any]) -> str:
    f = res["failures"]
    if not f:
        return "<p>Every photo had a usable face.</p>"
    rows = "".join(f"<tr><td>{escape(x['side'])}</td><td>{escape(Path(x['image']).name)}</td>"
                   f"<td>{escape(x['subject'])}</td><td>{escape(x['reason'])}</td></tr>" for x in f[:300])
    more = f"<p>{len(f) - 300:,} more in results.json.</p>" if len(f) > 300 else ""
    return (f"<details><summary>{len(f):,} photo(s) without a usable face (failures to enrol or acquire)"
            f"</summary><table><tr><th>Side</th><th>Image</th><th>Subject</th><th>Reason</th></tr>{rows}"
            f"</table>{more}</details>")


def _composition(res: Dict[str, Any]) -> str:
    out = []
    for side, title in (("probe", "People searched"), ("gallery", "Gallery")):
        comp = res.get("composition", {}).get(side, {})
        if not comp:
            continue
        parts = []
        for col, groups in comp.items():
            total = sum(groups.values()) or 1
            cells = ", ".join(f"{escape(g)} {n:,} ({100 * n / total:.0f}%)" for g, n in groups.items())
            parts.append(f"<tr><td>{escape(col)}</td><td>{cells}</td></tr>")
        out.append(f"<h3>{title}: who is in it</h3><table><tr><th>Label</th><th>Photos per group</th></tr>"
                   + "".join(parts) + "</table>")
    return "\n".join(out)


def _method(res: Dict[str, Any]) -> str:
    defs = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}.</li>" for k, v in res.get("metric_definitions", {}).items())
    a = res["alpha"]
    eng = res["engine"]
    return f"""
<ul>{defs}</ul>
<p>A search is <i>mated</i> when the searched person has at least one photo in the gallery manifests.
Only the largest face of each photo is used. Similarity is 0-100, higher is more alike; a comparison is a
match at threshold t when its similarity is at least t. {escape(eng['similarity'])}.</p>
<p>Intervals: Wilson score interval (95%); bootstrap percentile interval from {res['bootstrap_resamples']:,}
resamples of the people searched (seed {res['bootstrap_seed']}), computed from each person's own counts.</p>
<p>Differences between groups (known groups only; "unknown" is left out), with α = {a:g}:</p>
<ul class="formula">
<li>ratio = highest group rate / lowest group rate (undefined when the lowest is 0)</li>
<li>FDR = 1 − (α·max|FMR<sub>i</sub> − FMR<sub>j</sub>| + (1 − α)·max|FNMR<sub>i</sub> − FNMR<sub>j</sub>|)
 (Pereira &amp; Marcel 2021; 1 = fair)</li>
<li>IR = (max FMR / min FMR)<sup>α</sup> · (max FNMR / min FNMR)<sup>1 − α</sup> (1 = fair)</li>
<li>GARBE = α·Gini(FMR<sub>g</sub>) + (1 − α)·Gini(FNMR<sub>g</sub>),
 Gini(x) = n/(n − 1) · Σ<sub>i</sub>Σ<sub>j</sub>|x<sub>i</sub> − x<sub>j</sub>| / (2n²·mean(x)) (Howard et al. 2022; 0 = fair)</li>
</ul>
<p>The same formulas are applied to the search rates (FPIR in place of FMR, FNIR in place of FNMR), marked 1:N.</p>
"""


def _provenance(res: Dict[str, Any]) -> str:
    eng = res["engine"]
    rows = "".join(f"<tr><td>{escape(m['side'])}</td><td>{escape(m['path'])}</td><td class='n'>{m['rows']:,}</td>"
                   f"<td><code>{escape(m['sha256'])}</code></td></tr>" for m in res["manifests"])
    search = ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in (eng.get("search") or {}).items())
    cmd = (f"<p>Command, as typed:</p><pre class='cmd'>{escape(res['command'])}</pre>" if res.get("command") else "")
    timings = ", ".join(f"{k[:-2].replace('_', ' ')} {v:g} s" if k.endswith("_s") else f"{k.replace('_', ' ')} {v:g}"
                        for k, v in res.get("timings", {}).items())
    return (f"<p>Engine <b>{escape(eng['kind'])}</b>, model <b>{escape(eng['model'])}</b>, FaceModelVersion "
            f"<code>{escape(eng['face_model_version'])}</code>"
            + (f", endpoint <code>{escape(eng['endpoint'])}</code>" if eng.get("endpoint") else "")
            + f". Model's own threshold {tfmt(eng['model_threshold'])}: {escape(eng['model_threshold_source'])}. "
            + (f" Similarity scale version <code>{escape(eng['similarity_scale_version'])}</code>."
               if eng.get("similarity_scale_version") else "")
            + (f" Networks ran on {escape(eng['runtime'])} (every runtime gives the same embeddings)."
               if eng.get("runtime") else "")
            + f" Search: {search}.</p><table><tr><th>Side</th><th>Manifest</th><th>Rows</th><th>SHA-256</th></tr>"
            f"{rows}</table>{cmd}<p class='small'>faceaudit {escape(res['faceaudit_version'])}, "
            f"{escape(res['created'])}; {escape(timings)}.</p>")


def _warnings(res: Dict[str, Any]) -> str:
    warn = res.get("warnings", [])
    if not warn:
        return "<p>Every rate rests on at least 30 errors.</p>"
    items = []
    for w in warn:
        if isinstance(w, str):  # results.json written before warnings were grouped
            items.append(escape(w))
            continue
        details = w.get("details") or []
        more = (f"<details><summary>{len(details):,} item(s)</summary><ul class='small'>"
                + "".join(f"<li>{escape(d)}</li>" for d in details) + "</ul></details>") if details else ""
        items.append(escape(w["message"]) + more)
    return "<ul class='caveat'>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def render_report(res: Dict[str, Any], candidates: Sequence[Dict[str, str]] = (), base_dir: "Path | str" = ".",
                  thumbnails: Optional[ThumbnailPolicy] = None) -> str:
    """The report page for a results.json dict (and candidates.csv rows for the thumbnails)."""
    policy = thumbnails or ThumbnailPolicy()
    base = Path(base_dir)
    c = res["counts"]
    eng = res["engine"]
    title = f"Face search audit: {c['probes']:,} searches against {c['gallery_images']:,} photos"
    version = eng.get("similarity_scale_version")
    body = f"""<main>
<h1>{escape(title)}</h1>
<p class="meta">Engine {escape(eng['kind'])} · model {escape(eng['model'])} ({escape(eng['face_model_version'])}{
        f", scale {escape(version)}" if version else ""}) · thresholds {", ".join(tfmt(t) for t in res['thresholds'])} ·
faceaudit {escape(res['faceaudit_version'])} · {escape(res['created'])}</p>
<p class="lead">{LEAD_NOTE}</p>
<h2>What we found</h2>
{first_screen(res)}
<h2>What this test can and cannot show</h2>
{_caveats(res)}
<h2>More findings</h2>
{_more_findings(res)}
<h2>Against the ACLU's 2018 test, per comparison</h2>
{aclu_section(res)}
<h2>Who is falsely matched: the composition test</h2>
{share_section(res)}
<h2>The Similarity scale's promise against this audit</h2>
{promise_section(res)}
<h2>Results at each threshold</h2>
{_main_table(res)}
<h2>Who is matched to whom</h2>
{cross_section(res)}
<h2>Charts</h2>
{_charts(res)}
<h2>Projection to the ACLU's search size</h2>
{_projection_table(res)}
<h2>Thresholds for a fixed false match rate, or a fixed number of falsely matched searches</h2>
{_targets_table(res)}
{_match_count_table(res)}
<h2>Rates by group</h2>
<p>Rates of the people searched, split by their labels in the manifest. Each cell: errors / trials, the rate,
and its 95% interval. † fewer than 30 errors.</p>
{_group_sections(res)}
<h2>Where the false candidates came from</h2>
<p>The same searches, counting only false candidates from one part of the gallery: FPIR and the share of
searches with a false candidate from that part, and the false match rate of comparisons with its photos.</p>
{_gallery_sections(res)}
{_composition(res)}
<h2>False candidates, side by side</h2>
{_thumbnails(res, candidates, base, policy)}
<h2>Failures</h2>
{_failures(res)}
<h2>Warnings</h2>
{_warnings(res)}
<h2>Method and definitions</h2>
{_method(res)}
<h2>Reproducibility</h2>
{_provenance(res)}
</main>"""
    return page(title, body)


def build_report(out_dir: "str | Path", thumbnails: Optional[ThumbnailPolicy] = None) -> Path:
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
    candidates: List[Dict[str, str]] = []
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
