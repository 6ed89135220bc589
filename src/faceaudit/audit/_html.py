"""Shared pieces of the audit's HTML pages: style, number formatting, lookups in results.json.

Used by report.html (one audit) and the engines-side-by-side page. Every number
is printed with its count and its interval, the interval as prominent as the point.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Dict, List, Optional, Sequence

LEAD_NOTE = ("A candidate is an investigative lead, not an identification. A trained person must check "
             "every candidate, and no action should be taken against anyone on the strength of a face "
             "search alone.")

ACLU_SEARCHES, ACLU_MATCHED, ACLU_GALLERY, ACLU_THRESHOLD = 535, 28, 25_000, 80.0
"""The ACLU's 2018 test: 535 members of Congress searched against 25,000 arrest photos at 80; 28 false matches."""

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
.tw{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
th,td{border:1px solid #d6d6d6;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f0f0ee}td.n{text-align:right}td.small-group{color:#777;background:#fafafa}
td small,.small{color:#555;font-size:12px}table.bygroup td.n{white-space:nowrap}.few{color:#b3541e}.ci{white-space:nowrap}
.charts{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.chart{border:1px solid #e2e2e2;width:100%;max-width:520px;height:auto}
.nodata{max-width:540px;padding:10px;box-sizing:border-box;font-size:13px;color:#444}
svg .ct{font-size:16px;font-weight:600}svg .tick{font-size:13px;fill:#333}svg .axis{font-size:14px;fill:#222}
svg .legend{font-size:13px;fill:#222}svg .grid{stroke:#ececec}svg .frame{fill:none;stroke:#888}
svg .vline{stroke:#999;stroke-dasharray:3 3}svg .vlabel{font-size:12px;fill:#555}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.pairs{display:flex;flex-wrap:wrap;gap:10px}.pair{border:1px solid #ddd;padding:6px;width:232px;font-size:12px}
.pair img,.pair .ph{width:110px;height:137px;object-fit:cover;background:#eee;display:inline-block;
 vertical-align:top}.pair .ph{font-size:11px;color:#666;text-align:center;line-height:1.3;padding-top:40px;
 box-sizing:border-box}.pair .sim{font-weight:700;font-size:14px}.pair .lab{color:#333}
code{background:#f3f3f3;padding:1px 4px;font-size:12.5px}.formula{font-family:ui-monospace,monospace;
 font-size:13px}
pre.cmd{background:#f3f3f3;padding:8px 10px;font-size:12.5px;white-space:pre-wrap;word-break:break-all}
.finding{font-size:16px}
@media (max-width:640px){main{padding:12px 12px 40px}h1{font-size:21px}h2{font-size:18px}
 .pair{width:100%;box-sizing:border-box}.key{padding:8px 10px 8px 22px}}
"""


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


def rate_ci(r: Optional[Dict[str, Any]]) -> str:
    """``12 / 112 = 10.7% (6.1%–17.8%)``: count, rate and interval at the same weight."""
    if not r or not r.get("trials"):
        return "–"
    return (f"{r['errors']:,} / {r['trials']:,} = {pct(r['rate'])} "
            f"<span class='ci'>({interval(r['wilson95'])})</span>")


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


def sci(v: Optional[float]) -> str:
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


def tables_scroll(html: str) -> str:
    """Wrap every table in a box that scrolls sideways on narrow screens (the page itself never does)."""
    return html.replace("<table", "<div class='tw'><table").replace("</table>", "</table></div>")


# ---------------------------------------------------------------- lookups in a results.json dict

def find_frame(res: Dict[str, Any], metric: str, column: str, t: float, side: str = "probe"):
    for f in res["frames"]:
        if f["metric"] == metric and f["column"] == column and f["side"] == side and abs(f["threshold"] - t) < 1e-9:
            return f
    return None


def find_summary(res: Dict[str, Any], t: float):
    for s in res["summaries"]:
        if abs(s["threshold"] - t) < 1e-9:
            return s
    return None


def base_columns(res: Dict[str, Any]) -> List[str]:
    return [c for c in res["group_columns"] if "&" not in c]


def headline_threshold(res: Dict[str, Any]) -> float:
    """80 (Rekognition's default, the ACLU's) when audited, else the model's own, else the lowest."""
    if any(abs(ACLU_THRESHOLD - x) < 1e-9 for x in res["thresholds"]):
        return ACLU_THRESHOLD
    if find_summary(res, res["model_threshold"]) is not None:
        return res["model_threshold"]
    return min(res["thresholds"])


def min_group(res: Dict[str, Any]) -> int:
    return int(res.get("min_group_searches", 10))


def group_people(res: Dict[str, Any], column: str, group: str, t: float) -> int:
    """People searched in a group (from the ACLU count's trials)."""
    f = find_frame(res, "ACLU_COUNT", column, t)
    r = (f or {}).get("by_group", {}).get(group)
    return int(r.get("subjects") or r.get("trials") or 0) if r else 0


def match_point_thresholds(res: Dict[str, Any]) -> List[float]:
    return [p["threshold"] for p in res.get("match_counts", []) if p.get("threshold") is not None]


def reasons(res: Dict[str, Any], t: float) -> str:
    s = find_summary(res, t)
    return ", ".join(s["reasons"]) if s else ""


def aclu_implied_fmr() -> Dict[str, float]:
    """The per-comparison FMR the ACLU's 28 of 535 against 25,000 implies (with the Wilson interval's ends)."""
    from faceaudit._stats import wilson_interval

    def f(share: float) -> float:
        return -math.log1p(-share) / ACLU_GALLERY

    lo, hi = wilson_interval(ACLU_MATCHED, ACLU_SEARCHES)
    return {"rate": f(ACLU_MATCHED / ACLU_SEARCHES), "low": f(lo), "high": f(hi)}


def implied_fmr(share: Optional[float], gallery: int) -> Optional[float]:
    """FMR = -ln(1 - share of searches with a false candidate) / gallery size (independent comparisons)."""
    if share is None or gallery <= 0 or share >= 1:
        return None
    return -math.log1p(-share) / gallery


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{tables_scroll(body)}</body></html>\n")


def ul(items: Sequence[str], cls: str = "key") -> str:
    return f'<ul class="{cls}">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>"
