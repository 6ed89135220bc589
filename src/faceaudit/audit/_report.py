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
from faceaudit.audit._svg import PALETTE, Series, histogram_chart, line_chart

LEAD_NOTE = ("A candidate is an investigative lead, not an identification. A trained person must check "
             "every candidate, and no action should be taken against anyone on the strength of a face "
             "search alone.")

ACLU_2018 = ("In the ACLU's 2018 test, Amazon Rekognition searched 535 members of Congress against 25,000 "
             "arrest photos at its default threshold of 80 and returned a false match for 28 of them (5.2%).")

METRIC_TITLES = {
    "ACLU_COUNT": "Searches with a false candidate (ACLU count)",
    "FPIR": "FPIR: people not in the gallery who got a false candidate",
    "FNIR": "FNIR: people in the gallery who were not found",
    "MATED_FALSE": "People in the gallery who were also shown a stranger",
    "FMR": "FMR: per-comparison false match rate",
    "FNMR": "FNMR: per-comparison false non-match rate",
}
KEY_MIN_SEARCHES = 10
"""The summary compares only groups with at least this many searches (the tables show every group)."""

SHORT = {"ACLU_COUNT": "False candidate (any search)", "FPIR": "FPIR", "FNIR": "FNIR",
         "MATED_FALSE": "Stranger in mated search", "FMR": "FMR", "FNMR": "FNMR"}

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1a1a1a;
 margin:0;background:#f4f4f2}
main{max-width:1220px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:26px;margin:4px 0 6px}h2{font-size:21px;margin:34px 0 10px;border-bottom:2px solid #ddd;
 padding-bottom:4px}h3{font-size:17px;margin:22px 0 8px}
.meta{color:#555;font-size:13px}.lead{background:#fff4e5;border-left:6px solid #d55e00;padding:10px 14px;
 margin:14px 0;font-weight:600}
.key{background:#eef5fb;border-left:6px solid #0072b2;padding:10px 16px;margin:12px 0}
.key li{margin:4px 0}.caveat li{margin:4px 0}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
th,td{border:1px solid #d6d6d6;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f0f0ee}td.n{text-align:right}
td small,.small{color:#555;font-size:11.5px}.few{color:#b3541e}
.charts{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.chart{border:1px solid #e2e2e2}
.nodata{width:540px;padding:10px;box-sizing:border-box;font-size:13px;color:#444}
svg .ct{font-size:14px;font-weight:600}svg .tick{font-size:11px;fill:#444}svg .axis{font-size:12px;fill:#222}
svg .legend{font-size:12px;fill:#222}svg .grid{stroke:#ececec}svg .frame{fill:none;stroke:#888}
svg .vline{stroke:#999;stroke-dasharray:3 3}svg .vlabel{font-size:10px;fill:#666}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.pairs{display:flex;flex-wrap:wrap;gap:10px}.pair{border:1px solid #ddd;padding:6px;width:232px;font-size:12px}
.pair img,.pair .ph{width:110px;height:137px;object-fit:cover;background:#eee;display:inline-block;
 vertical-align:top}.pair .ph{font-size:11px;color:#666;text-align:center;line-height:1.3;padding-top:40px;
 box-sizing:border-box}.pair .sim{font-weight:700;font-size:14px}
code{background:#f3f3f3;padding:1px 4px;font-size:12.5px}.formula{font-family:ui-monospace,monospace;
 font-size:13px}
"""


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


# ---------------------------------------------------------------- formatting

def pct(rate: Optional[float]) -> str:
    if rate is None:
        return "–"
    if rate == 0:
        return "0%"
    p = rate * 100
    if p >= 10:
        return f"{p:.1f}%"
    if p >= 0.1:
        return f"{p:.2f}%"
    return f"{p:.2g}%"


def interval(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"{pct(ci[0])}–{pct(ci[1])}"


def rate_cell(r: Optional[Dict[str, Any]], compact: bool = False) -> str:
    if not r or r.get("trials", 0) == 0:
        return '<td class="n">–</td>'
    few = r.get("few_errors")
    mark = ' <span class="few" title="fewer than 30 errors: uncertain">†</span>' if few else ""
    boot = r.get("bootstrap95")
    bline = f"<br><small>people: {interval(boot)}</small>" if boot and boot[0] is not None else ""
    if compact:
        return (f'<td class="n">{r["errors"]:,} / {r["trials"]:,}<br><b>{pct(r["rate"])}</b>{mark}'
                f'<br><small>{interval(r["wilson95"])}</small></td>')
    return (f'<td class="n">{r["errors"]:,} / {r["trials"]:,}<br><b>{pct(r["rate"])}</b>{mark}'
            f'<br><small>95% CI {interval(r["wilson95"])}</small>{bline}</td>')


def num(v: Optional[float], digits: int = 3) -> str:
    if v is None:
        return "undefined"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


def tfmt(t: float) -> str:
    return f"{t:g}"


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

def _frame(res: Dict[str, Any], metric: str, column: str, t: float, side: str = "probe"):
    for f in res["frames"]:
        if f["metric"] == metric and f["column"] == column and f["side"] == side and abs(f["threshold"] - t) < 1e-9:
            return f
    return None


def _diff(res: Dict[str, Any], column: str, t: float, setting: str):
    for d in res["differentials"]:
        if d["column"] == column and d["setting"] == setting and abs(d["threshold"] - t) < 1e-9:
            return d
    return None


def _summary(res, t):
    for s in res["summaries"]:
        if abs(s["threshold"] - t) < 1e-9:
            return s
    return None


def _key_findings(res: Dict[str, Any]) -> str:
    c = res["counts"]
    mt = res["model_threshold"]
    s = _summary(res, mt) or _summary(res, res["thresholds"][0])
    t = s["threshold"]
    o = s["overall"]
    items = []
    items.append(
        f"We searched <b>{c['probes']:,}</b> photos of {c['probe_subjects']:,} people against a gallery of "
        f"<b>{c['gallery_images']:,}</b> photos of {c['gallery_subjects']:,} people. "
        f"{c['searches_mated']:,} of the searches are for someone who has another photo in the gallery "
        f"(<i>mated</i>: the system should find them); {c['searches_non_mated']:,} are for someone who is not "
        f"in the gallery (<i>non-mated</i>: every candidate returned is somebody else)."
    )
    why = "the model's own threshold" if t == mt else "the lowest audited threshold"
    if abs(t - 80) < 1e-9:
        why = ("Amazon Rekognition's default, the one the ACLU used" if res["engine"]["kind"] == "rekognition"
               else why + ", and Amazon Rekognition's default, the one the ACLU used")
    a = o["ACLU_COUNT"]
    items.append(
        f"At a similarity threshold of <b>{tfmt(t)}</b> ({why}), <b>{a['errors']:,} of {a['trials']:,} searches "
        f"({pct(a['rate'])})</b> returned at least one candidate who is somebody else. {ACLU_2018}"
    )
    fp, fn, mf = o["FPIR"], o["FNIR"], o["MATED_FALSE"]
    if fp["trials"]:
        items.append(
            f"Of the {fp['trials']:,} people who are <b>not</b> in the gallery, <b>{fp['errors']:,} ({pct(fp['rate'])})</b> "
            f"got a false candidate (FPIR; 95% interval {interval(fp['wilson95'])})."
        )
    if fn["trials"]:
        items.append(
            f"Of the {fn['trials']:,} people who <b>are</b> in the gallery, <b>{fn['errors']:,} ({pct(fn['rate'])})</b> "
            f"were not found (FNIR), and {mf['errors']:,} were shown a stranger at or above the threshold as well."
        )
    p = s.get("projection")
    if p and p.get("expected") is not None:
        items.append(
            f"Each comparison of two different people scored {tfmt(t)} or more with probability "
            f"{pct(p['fmr']['rate'])} ({p['fmr']['errors']:,} of {p['fmr']['trials']:,} comparisons). "
            f"<b>Projected</b> to the ACLU's setting ({p['probes']:,} people, {p['gallery']:,} gallery photos), that "
            + (f"nearly every one of the {p['probes']:,} people would get a false candidate"
               if p["low"] >= p["probes"] - 0.5 else
               f"would be about <b>{p['expected']:.0f}</b> people with a false candidate (between {p['low']:.0f} and "
               f"{p['high']:.0f})")
            + ". This is a projection that assumes independent comparisons, not a measurement."
        )
    for col in _base_columns(res):
        f = _frame(res, "ACLU_COUNT", col, t)
        if not f:
            continue
        big = {g: r for g, r in f["by_group"].items() if g != "unknown" and r["trials"] >= KEY_MIN_SEARCHES}
        if len(big) < 2:
            continue
        hi_g = max(big, key=lambda g: big[g]["rate"])
        lo_g = min(big, key=lambda g: big[g]["rate"])
        hi, lo = big[hi_g], big[lo_g]
        if hi["rate"] == lo["rate"]:
            continue
        ratio = (f"{hi['rate'] / lo['rate']:.2g} times as high" if lo["rate"] > 0
                 else "no ratio can be given, the lowest rate is 0")
        small = "" if len(big) == len([g for g in f["by_group"] if g != "unknown"]) else \
            f" (groups with at least {KEY_MIN_SEARCHES} searches; all groups in the tables below)"
        items.append(
            f"By <b>{escape(col)}</b>{small}: the share of searches with a false candidate was highest for "
            f"<b>{escape(hi_g)}</b>, {pct(hi['rate'])} ({hi['errors']}/{hi['trials']}), and lowest for "
            f"<b>{escape(lo_g)}</b>, {pct(lo['rate'])} ({lo['errors']}/{lo['trials']}): {ratio}."
            + (" These groups are small: see the intervals below." if hi["few_errors"] or lo["few_errors"] else "")
        )
    top = max(res["thresholds"])
    if top != t:
        st = _summary(res, top)["overall"]
        items.append(
            f"At the strictest audited threshold, <b>{tfmt(top)}</b>"
            + (" (what Amazon recommends for law enforcement)" if abs(top - 99) < 1e-9 else "")
            + f", {st['ACLU_COUNT']['errors']:,} searches ({pct(st['ACLU_COUNT']['rate'])}) had a false candidate "
            f"and {pct(st['FNIR']['rate'])} of the people in the gallery were not found: a stricter threshold "
            f"trades false leads for missed people."
        )
    return '<ul class="key">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def _caveats(res: Dict[str, Any]) -> str:
    c = res["counts"]
    items = [
        LEAD_NOTE,
        f"This gallery holds {c['gallery_images']:,} photos; the ACLU's held 25,000. The more photos a search "
        "is run against, the more likely a false candidate, so counts from galleries of different sizes are "
        "not comparable. The per-comparison false match rate (FMR) is, and the projection above uses it.",
        "Results hold for these photos and this model only. Surveillance stills, old or low-quality photos, "
        "or a different model give different error rates.",
        "Group labels come only from the manifests (the data), never from the faces. \"unknown\" means the "
        "manifest gave no label. A group with few people, or few errors, has a wide interval: read the "
        "intervals, not just the rates.",
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
            f"<td class='n'><b>{p['expected']:.1f}</b> of {p['probes']:,} <small>({p['low']:.1f}–{p['high']:.1f})"
            f"</small></td></tr>"
        )
    if not rows:
        return "<p>No projection: no comparisons of different people were counted.</p>"
    return ("<table><tr><th>Threshold</th><th>Per-comparison FMR</th><th>Measured here: searches with a "
            "false candidate</th><th>Projection to 535 people × 25,000 photos</th></tr>" + "".join(rows) +
            "</table><p class='small'>Projection: expected count = 535 × (1 − (1 − FMR)<sup>25,000</sup>), "
            "with the ends of FMR's 95% interval in brackets. It assumes every comparison is an independent draw; "
            "real galleries (lookalikes, photo quality, who is in them) need not behave that way. "
            "<b>It is a projection, not a measurement.</b></p>")


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


def _base_columns(res: Dict[str, Any]) -> List[str]:
    return [c for c in res["group_columns"] if "&" not in c]


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
        rows.append(f"<tr><td>{escape(g)}</td><td class='n'>{n}</td>{cells}</tr>")
    cells = "".join(rate_cell(frames[m]["overall"] if frames[m] else None, True) for m in metrics)
    rows.append(f"<tr><td><b>everyone</b></td><td></td>{cells}</tr>")
    rcells = []
    for m in metrics:
        f = frames[m]
        if not f:
            rcells.append("<td></td>")
        elif f["ratio"] is not None:
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
    mt = res["model_threshold"]
    ths = [s["threshold"] for s in res["summaries"]]
    metrics = ["ACLU_COUNT", "FPIR", "FNIR", "FMR", "FNMR"]
    for col in _base_columns(res):
        out.append(f"<h3>By {escape(col)} (of the person searched)</h3>")
        for t in ths:
            why = ", ".join(_summary(res, t)["reasons"])
            opn = " open" if abs(t - mt) < 1e-9 else ""
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
    mt = res["model_threshold"]
    for col in res["gallery_group_columns"]:
        out.append(f"<h3>By {escape(col)} of the gallery photo</h3>")
        out.append(_group_table(res, col, mt, ["FPIR", "ACLU_COUNT", "FMR"], side="gallery"))
    for ct in res["cross_tables"]:
        if abs(ct["threshold"] - mt) > 1e-9:
            continue
        cells = ct["cells"]
        pgs = list(cells)
        ggs = list(next(iter(cells.values()))) if cells else []
        head = "".join(f"<th>gallery {escape(g)}</th>" for g in ggs)
        rows = "".join(
            f"<tr><th>searched {escape(p)}</th>" + "".join(rate_cell(cells[p][g], True) for g in ggs) + "</tr>"
            for p in pgs)
        out.append(f"<h3>FMR by {escape(ct['column'])} of both photos, at {tfmt(mt)}</h3>"
                   f"<table><tr><th></th>{head}</tr>{rows}</table>")
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
        title = "False leads and misses against threshold" + (f", by {col}" if col else "")
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
            title = "DET: misses against false matches" + (f", by {col}" if col else "")
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


def _thumbnails(res: Dict[str, Any], candidates: Sequence[Dict[str, str]], base: Path, policy: ThumbnailPolicy) -> str:
    mt = res["model_threshold"]
    floor = min(res["thresholds"])
    t = mt if mt >= floor else floor
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
             f"its highest-scoring candidate who is somebody else (right). {len(rows):,} searches; all candidates "
             f"are in <code>candidates.csv</code>.</p><p class='lead'>{LEAD_NOTE}</p>")
    if not rows:
        return intro + "<p>No false candidates at this threshold.</p>"
    if not policy.enabled:
        return intro + "<p>Thumbnails are switched off for this report (<code>--no-thumbnails</code>).</p>"
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
            f'similarity<br><small>searched {escape(row["probe_subject"])}<br>candidate '
            f'{escape(row["candidate_subject"])} (a different person)</small></div>')
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
    cmd = f"<p>Command: <code>{escape(res['command'])}</code></p>" if res.get("command") else ""
    timings = ", ".join(f"{k[:-2].replace('_', ' ')} {v:g} s" if k.endswith("_s") else f"{k.replace('_', ' ')} {v:g}"
                        for k, v in res.get("timings", {}).items())
    return (f"<p>Engine <b>{escape(eng['kind'])}</b>, model <b>{escape(eng['model'])}</b>, FaceModelVersion "
            f"<code>{escape(eng['face_model_version'])}</code>"
            + (f", endpoint <code>{escape(eng['endpoint'])}</code>" if eng.get("endpoint") else "")
            + f". Model's own threshold {tfmt(eng['model_threshold'])}: {escape(eng['model_threshold_source'])}. "
            f"Search: {search}.</p><table><tr><th>Side</th><th>Manifest</th><th>Rows</th><th>SHA-256</th></tr>"
            f"{rows}</table>{cmd}<p class='small'>faceaudit {escape(res['faceaudit_version'])}, "
            f"{escape(res['created'])}; {escape(timings)}.</p>")


def render_report(res: Dict[str, Any], candidates: Sequence[Dict[str, str]] = (), base_dir: "Path | str" = ".",
                  thumbnails: Optional[ThumbnailPolicy] = None) -> str:
    """The report page for a results.json dict (and candidates.csv rows for the thumbnails)."""
    policy = thumbnails or ThumbnailPolicy()
    base = Path(base_dir)
    c = res["counts"]
    eng = res["engine"]
    warn = res.get("warnings", [])
    warn_html = ("<ul class='small'>" + "".join(f"<li>{escape(w)}</li>" for w in warn) + "</ul>") if warn else \
        "<p>Every rate rests on at least 30 errors.</p>"
    title = f"Face search audit: {c['probes']:,} searches against {c['gallery_images']:,} photos"
    body = f"""<main>
<h1>{escape(title)}</h1>
<p class="meta">Engine {escape(eng['kind'])} · model {escape(eng['model'])} ({escape(eng['face_model_version'])}) ·
thresholds {", ".join(tfmt(t) for t in res['thresholds'])} · faceaudit {escape(res['faceaudit_version'])} ·
{escape(res['created'])}</p>
<p class="lead">{LEAD_NOTE}</p>
<h2>What we found</h2>
{_key_findings(res)}
<h2>What this test can and cannot show</h2>
{_caveats(res)}
<h2>Results at each threshold</h2>
{_main_table(res)}
<h2>Charts</h2>
{_charts(res)}
<h2>Projection to the ACLU's search size</h2>
{_projection_table(res)}
<h2>Thresholds for a fixed false match rate</h2>
{_targets_table(res)}
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
{warn_html}
<h2>Method and definitions</h2>
{_method(res)}
<h2>Reproducibility</h2>
{_provenance(res)}
</main>"""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


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
        with open(cpath, newline="", encoding="utf-8") as fh:
            candidates = list(csv.DictReader(fh))
    html = render_report(res, candidates, out, thumbnails)
    target = out / REPORT_HTML
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    return target
