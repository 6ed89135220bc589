"""Engines side by side: one page from several audits of the same manifests (``faceaudit report D1 D2 --out D``).

Per engine, at equal Similarity (each audited threshold) and at equal measured
false-match rate (the FMR-target thresholds) and at the ACLU's operating point
(``--match-count``): the ACLU count, FPIR, FNIR, measured against promised FMR
and the composition test, each with its counts and interval.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any, Dict, List, Sequence

from faceaudit._errors import InvalidParameterError
from faceaudit.audit._html import LEAD_NOTE, find_summary, page, rate_ci, sci, tfmt

COMPARISON_HTML = "comparison.html"


def _load(d: "str | Path") -> Dict[str, Any]:
    from faceaudit.audit._run import RESULTS_JSON

    path = Path(d) / RESULTS_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(f"no {RESULTS_JSON} in {d} (run `faceaudit audit` first)") from None
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"cannot read {path}: {exc}") from None


def _name(res: Dict[str, Any]) -> str:
    e = res["engine"]
    return f"{e['model']} ({e['kind']})"


def _shares(res: Dict[str, Any], t: float) -> str:
    parts = []
    for st in res.get("share_tests", []):
        if abs(st["threshold"] - t) < 1e-9 and st["matched"]["trials"]:
            p = st.get("p_value")
            parts.append(f"{escape(st['label'])}: {rate_ci(st['matched'])} of those falsely matched, against "
                         f"{st['everyone']['rate'] * 100:.1f}% of all" + (f"; p = {p:.2g}" if p is not None else ""))
    return "<br>".join(parts) or "–"


def _row(res: Dict[str, Any], t: float, label: str) -> str:
    s = find_summary(res, t)
    if s is None:
        return f"<tr><td>{escape(_name(res))}</td><td colspan=6>not audited at {tfmt(t)}</td></tr>"
    o = s["overall"]
    check = next((pc for pc in res.get("promise_checks", []) if abs(pc["threshold"] - t) < 1e-9), None)
    promise = "–"
    if check:
        promise = f"{sci(check['promised_fmr'])}; measured {sci(o['FMR']['rate'])} ({escape(check['overall']['verdict'])})"
    return (f"<tr><td>{escape(_name(res))}</td><td class='n'>{label}</td><td class='n'>{rate_ci(o['ACLU_COUNT'])}</td>"
            f"<td class='n'>{rate_ci(o['FPIR'])}</td><td class='n'>{rate_ci(o['FNIR'])}</td><td class='n'>{promise}</td>"
            f"<td>{_shares(res, t)}</td></tr>")


HEAD = ("<tr><th>Engine</th><th>Threshold</th><th>Searches with a false candidate</th><th>FPIR (not in the "
        "gallery, got a false candidate)</th><th>FNIR (in the gallery, not found)</th><th>FMR promised; measured"
        "</th><th>Composition test</th></tr>")


def render_comparison(results: Sequence[Dict[str, Any]], names: Sequence[str]) -> str:
    """The comparison page for several results.json dicts."""
    shas = [sorted(m["sha256"] for m in r["manifests"]) for r in results]
    same = all(s == shas[0] for s in shas)
    engines = "".join(
        f"<tr><td>{escape(n)}</td><td>{escape(r['engine']['kind'])}</td><td>{escape(r['engine']['model'])}</td>"
        f"<td><code>{escape(r['engine']['face_model_version'])}</code></td>"
        f"<td><code>{escape(str(r['engine'].get('similarity_scale_version') or '–'))}</code></td>"
        f"<td>{'yes' if r['engine']['exact_scores'] else 'no (candidates only)'}</td>"
        f"<td class='n'>{r['counts']['probes']:,} against {r['counts']['gallery_images']:,}</td></tr>"
        for n, r in zip(names, results))
    warn = ("" if same else "<p class='lead'>These audits did not use the same manifests (their SHA-256s differ): "
            "their rates are not directly comparable.</p>")
    thresholds = sorted({t for r in results for t in r["thresholds"]})
    sim_rows: List[str] = []
    for t in thresholds:
        sim_rows += [_row(r, t, tfmt(t)) for r in results]
    own = [_row(r, r["model_threshold"], f"{tfmt(r['model_threshold'])}<br><small>model's own</small>")
           for r in results]
    targets = sorted({ft["target"] for r in results for ft in r.get("fmr_targets", [])}, reverse=True)
    fmr_rows: List[str] = []
    for target in targets:
        for r in results:
            ft = next((x for x in r.get("fmr_targets", []) if x["target"] == target), None)
            if ft is None or ft.get("threshold") is None:
                fmr_rows.append(f"<tr><td>{escape(_name(r))}</td><td colspan=6>FMR {target:g}: not found (needs the "
                                "local engine's exact scores)</td></tr>")
                continue
            fmr_rows.append(_row(r, ft["threshold"], f"{tfmt(ft['threshold'])}<br><small>FMR ≤ {target:g}</small>"))
    count_rows: List[str] = []
    for r in results:
        for p in r.get("match_counts", []):
            if p.get("threshold") is not None:
                count_rows.append(_row(r, p["threshold"], f"{tfmt(p['threshold'])}<br><small>{p['requested']} "
                                                          "falsely matched asked for</small>"))
    table = lambda rows: f"<table>{HEAD}{''.join(rows)}</table>"  # noqa: E731
    body = f"""<main>
<h1>{len(results)} face search audits side by side</h1>
<p class="lead">{LEAD_NOTE}</p>
{warn}
<table><tr><th>Audit</th><th>Engine</th><th>Model</th><th>FaceModelVersion</th><th>Similarity scale</th>
<th>Exact scores</th><th>Searches</th></tr>{engines}</table>
<h2>At equal Similarity</h2>
<p>The same threshold on every engine. On faceaudit's calibrated scale every model promises the same false-match
rate at a given Similarity (80: 1e-5, 90: 1e-6, 99: about 1.3e-7); the FMR column shows how well each kept the
promise on these photos. Another engine's Similarity (e.g. Amazon Rekognition's) need not follow this scale.</p>
{table(sim_rows)}
<h3>At each model's own published operating point</h3>
{table(own)}
<h2>At equal measured false-match rate</h2>
<p>Each engine at the threshold where its own measured FMR on these photos reaches the target: what it then
misses (FNIR) and who it falsely matches.</p>
{table(fmr_rows) if fmr_rows else "<p>No FMR-target thresholds in these audits.</p>"}
<h2>At the ACLU's operating point</h2>
{table(count_rows) if count_rows else "<p>No audit was run with <code>--match-count</code>.</p>"}
<p class="small">Each cell: errors / trials = rate (95% interval). Composition test: the share of the set among the
searches with a false candidate, against its share among all searches, with Fisher's exact test.</p>
</main>"""
    return page(f"{len(results)} face search audits side by side", body)


def build_comparison(dirs: Sequence["str | Path"], out_dir: "str | Path") -> Path:
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
