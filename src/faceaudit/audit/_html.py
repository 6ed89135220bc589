"""Shared pieces of the audit's HTML pages: style, number formatting, lookups in results.json.

Used by report.html (one audit) and the engines-side-by-side page. Every number
is printed with its count and its interval, the interval as prominent as the point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from markupsafe import Markup

LEAD_NOTE = ("A candidate is an investigative lead, not an identification. A trained person must check "
             "every candidate, and no action should be taken against anyone on the strength of a face "
             "search alone.")

ACLU_SEARCHES, ACLU_MATCHED, ACLU_GALLERY, ACLU_THRESHOLD = 535, 28, 25_000, 80.0
"""The ACLU's 2018 test: 535 members of Congress searched against 25,000 arrest photos at 80; 28 false matches."""

SHORT = {"ACLU_COUNT": "False candidate (any search)", "FPIR": "FPIR", "FNIR": "FNIR",
         "MATED_FALSE": "Stranger in mated search", "FMR": "FMR", "FNMR": "FNMR"}

REPORT_CSP = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"
"""The Content-Security-Policy of report.html and comparison.html: inline style and data: images only, no script."""


def pct(rate: float | None) -> str:
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


def num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "undefined"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


def sci(v: float | None) -> str:
    """A small rate in scientific notation: 1.2e-05 -> "1.2e-5"."""
    if v is None:
        return "–"
    if v == 0:
        return "0"
    text = f"{v:.2g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def times(x: float) -> str:
    """A ratio in words: 3x, 1.5x, 120x."""
    if x >= 10:
        return f"{x:,.0f}x"
    return f"{x:.2g}x"


def tfmt(t: float) -> str:
    return f"{t:g}"


def people(n: float) -> str:
    """A projected number of people, as a whole number."""
    return f"{int(round(n)):,}"


def tables_scroll(html: Markup) -> Markup:
    """Wrap every table in a box that scrolls sideways on narrow screens (the page itself never does).

    ``html`` is rendered markup (user text in it is already escaped, so "<table" only ever opens a table).
    """
    return Markup(str(html).replace("<table", "<div class='tw'><table").replace("</table>", "</table></div>"))


# ---------------------------------------------------------------- lookups in a results.json dict

def find_frame(res: dict[str, Any], metric: str, column: str, t: float, side: str = "probe"):
    for f in res["frames"]:
        if f["metric"] == metric and f["column"] == column and f["side"] == side and abs(f["threshold"] - t) < 1e-9:
            return f
    return None


def find_summary(res: dict[str, Any], t: float):
    for s in res["summaries"]:
        if abs(s["threshold"] - t) < 1e-9:
            return s
    return None


def base_columns(res: dict[str, Any]) -> list[str]:
    return [c for c in res["group_columns"] if "&" not in c]


def headline_threshold(res: dict[str, Any]) -> float:
    """80 (Rekognition's default, the ACLU's) when audited, else the model's own, else the lowest."""
    if any(abs(ACLU_THRESHOLD - x) < 1e-9 for x in res["thresholds"]):
        return ACLU_THRESHOLD
    if find_summary(res, res["model_threshold"]) is not None:
        return res["model_threshold"]
    return min(res["thresholds"])


def min_group(res: dict[str, Any]) -> int:
    return int(res.get("min_group_searches", 10))


def group_people(res: dict[str, Any], column: str, group: str, t: float) -> int:
    """People searched in a group (from the ACLU count's trials)."""
    f = find_frame(res, "ACLU_COUNT", column, t)
    r = (f or {}).get("by_group", {}).get(group)
    return int(r.get("subjects") or r.get("trials") or 0) if r else 0


def match_point_thresholds(res: dict[str, Any]) -> list[float]:
    return [p["threshold"] for p in res.get("match_counts", []) if p.get("threshold") is not None]


def reasons(res: dict[str, Any], t: float) -> str:
    s = find_summary(res, t)
    return ", ".join(s["reasons"]) if s else ""


def aclu_implied_fmr() -> dict[str, float]:
    """The per-comparison FMR the ACLU's 28 of 535 against 25,000 implies (with the Wilson interval's ends)."""
    from faceaudit._stats import wilson_interval

    def f(share: float) -> float:
        return -math.log1p(-share) / ACLU_GALLERY

    lo, hi = wilson_interval(ACLU_MATCHED, ACLU_SEARCHES)
    return {"rate": f(ACLU_MATCHED / ACLU_SEARCHES), "low": f(lo), "high": f(hi)}


def implied_fmr(share: float | None, gallery: int) -> float | None:
    """FMR = -ln(1 - share of searches with a false candidate) / gallery size (independent comparisons)."""
    if share is None or gallery <= 0 or share >= 1:
        return None
    return -math.log1p(-share) / gallery


def thousands(n: float) -> str:
    """1234567 -> "1,234,567"."""
    return f"{n:,}"


def general(v: float) -> str:
    """A number in Python's shortest general form: 1e-05, 0.25, 80."""
    return f"{v:g}"


def points(v: float) -> str:
    """A signed difference in percentage points, one decimal: +3.2, -0.5."""
    return f"{v:+.1f}"


def basename(path: str) -> str:
    return Path(path).name


FILTERS: dict[str, Callable[..., str]] = {
    "pct": pct, "interval": interval, "num": num, "sci": sci, "times": times, "tfmt": tfmt,
    "people": people, "n": thousands, "g": general, "points": points, "basename": basename}
"""The number formats the audit's templates use (every number is formatted here, never in a template)."""


def render(name: str, **context: Any) -> Markup:
    """Render the audit template ``name`` (autoescaped) with the shared number filters."""
    from faceaudit._templates import render as render_template

    return Markup(render_template("faceaudit.audit", name, filters=FILTERS, lead_note=LEAD_NOTE, short=SHORT,
                                  **context))


def page(title: str, body: Markup) -> str:
    """A whole self-contained page: ``body`` (already rendered) inside the shared head, style and CSP."""
    return render("page.html.j2", title=title, body=tables_scroll(body), csp=REPORT_CSP)
