"""Tiny inline-SVG charts (no plotting library): line charts with linear or log axes, bar histograms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import List, Optional, Sequence, Tuple

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
"""Okabe-Ito colours (readable with colour-vision deficiency)."""


LEGEND_CHAR_PX = 7.5
"""Width of one legend character at the report's legend font size (13 px), for laying legends out."""


@dataclass(frozen=True)
class Series:
    """One line: points (x, y); y None breaks the line. ``dash`` e.g. "6 4"."""

    name: str
    points: Sequence[Tuple[float, Optional[float]]]
    color: str
    dash: Optional[str] = None
    width: float = 2.0


def _nice_ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _fmt_tick(v: float, log: bool, percent: bool) -> str:
    if log:
        e = int(round(math.log10(v)))
        if percent:
            p = v * 100
            return f"{p:g}%" if p >= 0.01 else f"1e{e}"
        return f"1e{e}" if abs(e) > 2 else f"{v:g}"
    if percent:
        return f"{v * 100:g}%"
    return f"{v:g}"


def line_chart(
    series: Sequence[Series], *, title: str, x_label: str, y_label: str,
    x_range: Tuple[float, float], y_range: Tuple[float, float], log_x: bool = False, log_y: bool = False,
    x_percent: bool = False, y_percent: bool = False, vlines: Sequence[Tuple[float, str]] = (),
    width: int = 440, height: int = 330, note: str = "",
) -> str:
    """An SVG line chart with axes, ticks, grid, optional vertical markers and a legend."""
    ml, mr, mt, mb = 64, 16, 34, 50
    longest = max((len(s.name) for s in series), default=0)
    per_row = max(1, min(3, int((width - ml - mr) // (37 + LEGEND_CHAR_PX * longest))))
    legend_h = 18 * ((len(series) + per_row - 1) // per_row)
    H = height + legend_h + (16 if note else 0)
    pw, ph = width - ml - mr, height - mt - mb
    x0, x1 = x_range
    y0, y1 = y_range

    def tx(v: float) -> Optional[float]:
        if log_x:
            if v <= 0:
                return None
            f = (math.log10(v) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        else:
            f = (v - x0) / (x1 - x0)
        return ml + max(0.0, min(1.0, f)) * pw

    def ty(v: float) -> Optional[float]:
        if log_y:
            if v <= 0:
                return None
            f = (math.log10(v) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
        else:
            f = (v - y0) / (y1 - y0)
        return mt + (1.0 - max(0.0, min(1.0, f))) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {H}" '
           f'width="{width}" height="{H}" role="img" aria-label="{escape(title)}">',
           f'<rect x="0" y="0" width="{width}" height="{H}" fill="#fff"/>',
           f'<text x="8" y="20" class="ct">{escape(title)}</text>']
    xt = ([10.0 ** e for e in range(math.ceil(math.log10(x0) - 1e-9), math.floor(math.log10(x1) + 1e-9) + 1)]
          if log_x else _nice_ticks(x0, x1))
    yt = ([10.0 ** e for e in range(math.ceil(math.log10(y0) - 1e-9), math.floor(math.log10(y1) + 1e-9) + 1)]
          if log_y else _nice_ticks(y0, y1))
    for v in xt:
        x = tx(v)
        out.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{mt + ph + 16}" class="tick" text-anchor="middle">'
                   f'{escape(_fmt_tick(v, log_x, x_percent))}</text>')
    for v in yt:
        y = ty(v)
        out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                   f'{escape(_fmt_tick(v, log_y, y_percent))}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" class="frame"/>')
    for v, label in vlines:
        x = tx(v)
        if x is None:
            continue
        out.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" class="vline"/>')
        if label:
            out.append(f'<text x="{x + 3:.1f}" y="{mt + 11}" class="vlabel">{escape(label)}</text>')
    for s in series:
        parts: List[str] = []
        cur: List[str] = []
        for xv, yv in s.points:
            px = tx(xv) if xv is not None else None
            py = ty(yv) if yv is not None else None
            if px is None or py is None:
                if len(cur) > 1:
                    parts.append(" ".join(cur))
                cur = []
                continue
            cur.append(f"{px:.1f},{py:.1f}")
        if len(cur) > 1:
            parts.append(" ".join(cur))
        elif len(cur) == 1:
            x, y = cur[0].split(",")
            out.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{s.color}"/>')
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        for p in parts:
            out.append(f'<polyline points="{p}" fill="none" stroke="{s.color}" stroke-width="{s.width}"{dash}/>')
    out.append(f'<text x="{ml + pw / 2:.0f}" y="{mt + ph + 36}" class="axis" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{mt + ph / 2:.0f}" class="axis" text-anchor="middle" '
               f'transform="rotate(-90 14 {mt + ph / 2:.0f})">{escape(y_label)}</text>')
    for i, s in enumerate(series):
        lx = ml + (i % per_row) * (pw / per_row)
        ly = height + 6 + 18 * (i // per_row)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<line x1="{lx:.0f}" y1="{ly:.0f}" x2="{lx + 22:.0f}" y2="{ly:.0f}" stroke="{s.color}" '
                   f'stroke-width="{s.width}"{dash}/>')
        out.append(f'<text x="{lx + 27:.0f}" y="{ly + 4:.0f}" class="legend">{escape(s.name)}</text>')
    if note:
        out.append(f'<text x="{ml}" y="{H - 5}" class="tick">{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def histogram_chart(
    bars: Sequence[Tuple[str, Sequence[float], str]], *, bin_width: float, title: str, x_label: str,
    y_label: str, log_y: bool = True, vlines: Sequence[Tuple[float, str]] = (), width: int = 440,
    height: int = 330,
) -> str:
    """Overlaid step histograms over Similarity 0-100: ``bars`` = (name, proportions per bin, colour)."""
    series = []
    ymax = 0.0
    ymin = 1.0
    for name, values, color in bars:
        pts: List[Tuple[float, Optional[float]]] = []
        for i, v in enumerate(values):
            yv = v if (v > 0 or not log_y) else None
            pts.append((i * bin_width, yv))
            pts.append(((i + 1) * bin_width, yv))
            if v > 0:
                ymax = max(ymax, v)
                ymin = min(ymin, v)
        series.append(Series(name, pts, color))
    if log_y:
        lo = 10.0 ** math.floor(math.log10(ymin)) if ymax > 0 else 1e-6
        hi = 10.0 ** math.ceil(math.log10(ymax)) if ymax > 0 else 1.0
        y_range = (lo, hi if hi > lo else lo * 10)
    else:
        y_range = (0.0, ymax * 1.05 if ymax > 0 else 1.0)
    return line_chart(series, title=title, x_label=x_label, y_label=y_label, x_range=(0.0, 100.0),
                      y_range=y_range, log_y=log_y, vlines=vlines, width=width, height=height)
