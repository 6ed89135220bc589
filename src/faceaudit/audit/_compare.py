"""Engines side by side: one page from several audits of the same manifests (``faceaudit report D1 D2 --out D``).

Per engine, at equal Similarity (each audited threshold) and at equal measured
false-match rate (the FMR-target thresholds) and at the threshold with a given
count of falsely matched searches (``--match-count``): the ACLU count, FPIR, FNIR, measured against promised FMR
and the composition test, each with its counts and interval; above them a summary
paragraph and one chart (false leads and misses against the threshold, per engine).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from faceaudit._errors import InvalidParameterError
from faceaudit.audit._html import find_summary, headline_threshold, page, render, tfmt
from faceaudit.audit._svg import PALETTE, Series, line_chart

COMPARISON_HTML = "comparison.html"


def _load(d: str | Path) -> dict[str, Any]:
    from faceaudit.audit._run import RESULTS_JSON

    path = Path(d) / RESULTS_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(f"no {RESULTS_JSON} in {d} (run `faceaudit audit` first)") from None
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"cannot read {path}: {exc}") from None


def _name(res: dict[str, Any]) -> str:
    e = res["engine"]
    return f"{e['model']} ({e['kind']})"


class EngineRow(NamedTuple):
    """One engine at one threshold (``summary`` None: not audited there, or ``missing`` says why)."""

    name: str
    t: float
    note: str  # why this threshold, under it ("model's own", "FMR ≤ 1e-05")
    summary: dict[str, Any] | None
    check: dict[str, Any] | None  # the scale's promise at t
    shares: tuple[dict[str, Any], ...]  # composition tests at t with any false candidate
    missing: str = ""


def _row(res: dict[str, Any], t: float, note: str = "") -> EngineRow:
    near = lambda x: abs(x - t) < 1e-9  # noqa: E731
    return EngineRow(
        _name(res), t, note, find_summary(res, t),
        next((pc for pc in res.get("promise_checks", []) if near(pc["threshold"])), None),
        tuple(st for st in res.get("share_tests", []) if near(st["threshold"]) and st["matched"]["trials"]))


def _target_rows(results: Sequence[dict[str, Any]]) -> list[EngineRow]:
    targets = sorted({ft["target"] for r in results for ft in r.get("fmr_targets", [])}, reverse=True)
    rows: list[EngineRow] = []
    for target in targets:
        for r in results:
            ft = next((x for x in r.get("fmr_targets", []) if x["target"] == target), None)
            if ft is None or ft.get("threshold") is None:
                rows.append(EngineRow(_name(r), 0.0, "", None, None, (), f"FMR {target:g}: not found (needs the "
                                      "local engine's exact scores)"))
            else:
                rows.append(_row(r, ft["threshold"], f"FMR ≤ {target:g}"))
    return rows


class SummaryLine(NamedTuple):
    """One engine in the summary: at threshold ``t`` (``why``), the searches with a false candidate and the misses."""

    name: str
    t: float
    why: str
    false_any: dict[str, Any]
    fnir: dict[str, Any]


class Summary(NamedTuple):
    """The page in a paragraph: every engine at the same Similarity, then at the same measured FMR."""

    t: float
    at_t: tuple[SummaryLine, ...]
    target: float | None
    at_target: tuple[SummaryLine, ...]


def _summary(results: Sequence[dict[str, Any]], names: Sequence[str]) -> Summary:
    t = headline_threshold(results[0])
    at_t = []
    for name, r in zip(names, results, strict=True):
        s = find_summary(r, t)
        if s:
            at_t.append(SummaryLine(name, t, "", s["overall"]["ACLU_COUNT"], s["overall"]["FNIR"]))
    # the strictest FMR target every engine reached with measurable rates
    common = None
    for target in sorted({ft["target"] for r in results for ft in r.get("fmr_targets", [])}):
        fts = [next((x for x in r.get("fmr_targets", []) if x["target"] == target), None) for r in results]
        if all(ft and ft.get("threshold") is not None and ft.get("measurable", True) for ft in fts):
            common = (target, fts)
            break
    at_target: list[SummaryLine] = []
    if common:
        for name, r, ft in zip(names, results, common[1], strict=True):
            if ft is None:
                continue
            s = find_summary(r, ft["threshold"])
            if s:
                at_target.append(SummaryLine(name, ft["threshold"], f"FMR ≤ {common[0]:g}",
                                             s["overall"]["ACLU_COUNT"], s["overall"]["FNIR"]))
    return Summary(t, tuple(at_t), common[0] if common else None, tuple(at_target))


def _chart(results: Sequence[dict[str, Any]], names: Sequence[str]):
    """False leads (FPIR, solid) and misses (FNIR, dashed) against the threshold, one colour per engine."""
    series = []
    for i, (name, r) in enumerate(zip(names, results, strict=True)):
        cur = r.get("curves", {})
        every = cur.get("identification", {}).get("", {}).get("all")
        if not every:
            continue
        grid, color = cur["grid"], PALETTE[i % len(PALETTE)]
        if any(v is not None for v in every["FPIR"]):
            series.append(Series(f"{name}: FPIR", list(zip(grid, every["FPIR"], strict=True)), color))
        if any(v is not None for v in every["FNIR"]):
            series.append(Series(f"{name}: FNIR", list(zip(grid, every["FNIR"], strict=True)), color, dash="6 4"))
    if not series:
        return None
    ts = sorted({t for r in results for t in r["thresholds"]})
    return line_chart(series, title="False leads and misses, by engine", x_label="Similarity threshold "
                      "(higher is stricter)", y_label="share of searches", x_range=(30.0, 100.0), y_range=(0.0, 1.0),
                      y_percent=True, vlines=[(t, tfmt(t)) for t in ts], width=560)


def render_comparison(results: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """The comparison page for several results.json dicts."""
    shas = [sorted(m["sha256"] for m in r["manifests"]) for r in results]
    thresholds = sorted({t for r in results for t in r["thresholds"]})
    count_rows = [_row(r, p["threshold"], f"{p['requested']} falsely matched asked for")
                  for r in results for p in r.get("match_counts", []) if p.get("threshold") is not None]
    body = render("comparison.html.j2", n=len(results), same=all(s == shas[0] for s in shas),
                  engines=list(zip(names, results, strict=True)),
                  sim_rows=[_row(r, t) for t in thresholds for r in results],
                  own=[_row(r, r["model_threshold"], "model's own") for r in results],
                  fmr_rows=_target_rows(results), count_rows=count_rows,
                  summary=_summary(results, names), chart=_chart(results, names))
    return page(f"{len(results)} face search audits side by side", body)


def build_comparison(dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Write ``out_dir/comparison.html`` comparing the audits in ``dirs``."""
    if len(dirs) < 2:
        raise InvalidParameterError("a comparison needs at least two audit folders")
    results = [_load(d) for d in dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / COMPARISON_HTML
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(render_comparison(results, [Path(d).name or str(d) for d in dirs]), encoding="utf-8")
    tmp.replace(target)
    return target
