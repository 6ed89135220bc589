"""Tiny inline-SVG charts (no plotting library): line charts with linear or log axes, bar histograms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from markupsafe import Markup

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
"""Okabe-Ito colours (readable with colour-vision deficiency)."""


LEGEND_CHAR_PX = 7.5
"""Width of one legend character at the report's legend font size (13 px), for laying legends out."""


@dataclass(frozen=True)
class Series:
    """One line: points (x, y); y None breaks the line. ``dash`` e.g. "6 4"."""

    name: str
    points: Sequence[tuple[float, float | None]]
    color: str
    dash: str | None = None
    width: float = 2.0


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
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


class _Tick(NamedTuple):
    pos: str  # pixels along the axis, formatted
    label: str
    label_pos: str = ""


class _VLine(NamedTuple):
    pos: str
    label: str
    label_pos: str


class _Line(NamedTuple):
    color: str
    width: float
    dash: str | None
    polylines: tuple[str, ...]  # "x,y x,y ..." pixel points
    dots: tuple[tuple[str, str], ...]  # lone points


class _LegendEntry(NamedTuple):
    name: str
    color: str
    width: float
    dash: str | None
    x: str
    y: str
    x_end: str
    text_x: str
    text_y: str


class _Chart(NamedTuple):
    """A laid-out line chart: every position in pixels (already formatted), every text plain."""

    title: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    plot_width: int
    plot_height: int
    x_ticks: tuple[_Tick, ...]
    y_ticks: tuple[_Tick, ...]
    vlines: tuple[_VLine, ...]
    lines: tuple[_Line, ...]
    x_label: str
    x_label_pos: str
    y_label: str
    y_label_pos: str
    legend: tuple[_LegendEntry, ...]
    note: str


class _Axis(NamedTuple):
    """Maps a value to pixels: ``start`` (value lo) to ``start + sign * length`` (value hi)."""

    lo: float
    hi: float
    log: bool
    start: float
    length: float
    flip: bool

    def __call__(self, v: float) -> float | None:
        if self.log:
            if v <= 0:
                return None
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        f = max(0.0, min(1.0, f))
        return self.start + ((1.0 - f) if self.flip else f) * self.length

    def tick(self, v: float) -> float:
        """Pixels of a tick (ticks lie within the range, above 0 on a log axis)."""
        p = self(v)
        return self.start if p is None else p

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0 ** e for e in range(math.ceil(math.log10(self.lo) - 1e-9),
                                             math.floor(math.log10(self.hi) + 1e-9) + 1)]
        return _nice_ticks(self.lo, self.hi)


def _line(s: Series, tx: _Axis, ty: _Axis) -> _Line:
    """One series as polylines (broken where a point cannot be drawn) and lone dots."""
    parts: list[str] = []
    cur: list[str] = []
    for xv, yv in s.points:
        px = tx(xv) if xv is not None else None
        py = ty(yv) if yv is not None else None
        if px is None or py is None:
            if len(cur) > 1:
                parts.append(" ".join(cur))
            cur = []
            continue
        cur.append(f"{px:.1f},{py:.1f}")
    dots: tuple[tuple[str, str], ...] = ()
    if len(cur) > 1:
        parts.append(" ".join(cur))
    elif len(cur) == 1:
        x, y = cur[0].split(",")
        dots = ((x, y),)
    return _Line(s.color, s.width, s.dash, tuple(parts), dots)


def _legend(series: Sequence[Series], left: int, plot_width: int, height: int,
            per_row: int) -> tuple[_LegendEntry, ...]:
    out = []
    for i, s in enumerate(series):
        lx = left + (i % per_row) * (plot_width / per_row)
        ly = height + 6 + 18 * (i // per_row)
        out.append(_LegendEntry(s.name, s.color, s.width, s.dash, f"{lx:.0f}", f"{ly:.0f}", f"{lx + 22:.0f}",
                                f"{lx + 27:.0f}", f"{ly + 4:.0f}"))
    return tuple(out)


def line_chart(
    series: Sequence[Series], *, title: str, x_label: str, y_label: str,
    x_range: tuple[float, float], y_range: tuple[float, float], log_x: bool = False, log_y: bool = False,
    x_percent: bool = False, y_percent: bool = False, vlines: Sequence[tuple[float, str]] = (),
    width: int = 440, height: int = 330, note: str = "",
) -> Markup:
    """An SVG line chart with axes, ticks, grid, optional vertical markers and a legend."""
    from faceaudit._templates import render

    ml, mr, mt, mb = 64, 16, 34, 50
    longest = max((len(s.name) for s in series), default=0)
    per_row = max(1, min(3, int((width - ml - mr) // (37 + LEGEND_CHAR_PX * longest))))
    legend_h = 18 * ((len(series) + per_row - 1) // per_row)
    pw, ph = width - ml - mr, height - mt - mb
    tx = _Axis(x_range[0], x_range[1], log_x, ml, pw, flip=False)
    ty = _Axis(y_range[0], y_range[1], log_y, mt, ph, flip=True)
    x_ticks = tuple(_Tick(f"{tx.tick(v):.1f}", _fmt_tick(v, log_x, x_percent)) for v in tx.ticks())
    y_ticks = tuple(_Tick(f"{ty.tick(v):.1f}", _fmt_tick(v, log_y, y_percent), f"{ty.tick(v) + 4:.1f}")
                    for v in ty.ticks())
    marks = tuple(_VLine(f"{x:.1f}", label, f"{x + 3:.1f}") for x, label in ((tx(v), label) for v, label in vlines)
                  if x is not None)
    chart = _Chart(
        title=title, width=width, height=height + legend_h + (16 if note else 0), left=ml, right=ml + pw, top=mt,
        bottom=mt + ph, plot_width=pw, plot_height=ph, x_ticks=x_ticks, y_ticks=y_ticks, vlines=marks,
        lines=tuple(_line(s, tx, ty) for s in series), x_label=x_label, x_label_pos=f"{ml + pw / 2:.0f}",
        y_label=y_label, y_label_pos=f"{mt + ph / 2:.0f}", legend=_legend(series, ml, pw, height, per_row), note=note)
    return Markup(render("faceaudit.audit", "line_chart.svg.j2", c=chart).rstrip("\n"))


def histogram_chart(
    bars: Sequence[tuple[str, Sequence[float], str]], *, bin_width: float, title: str, x_label: str,
    y_label: str, log_y: bool = True, vlines: Sequence[tuple[float, str]] = (), width: int = 440,
    height: int = 330,
) -> Markup:
    """Overlaid step histograms over Similarity 0-100: ``bars`` = (name, proportions per bin, colour)."""
    series = []
    ymax = 0.0
    ymin = 1.0
    for name, values, color in bars:
        pts: list[tuple[float, float | None]] = []
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
