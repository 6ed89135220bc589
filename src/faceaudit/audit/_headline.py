"""report.html's findings: the first screen, the comparison with the ACLU, the scale's promise,
the composition test and who is matched to whom.

Each function takes a results.json dict and returns HTML. Numbers carry their
counts and intervals; ratios come only from groups with at least
``min_group_searches`` people searched (smaller groups are shown, marked too small).
"""

from __future__ import annotations

from html import escape
from typing import Any, Dict, List, Optional, Sequence, Tuple

from faceaudit._stats import wilson_interval
from faceaudit.audit._html import (
    ACLU_GALLERY,
    ACLU_MATCHED,
    ACLU_SEARCHES,
    aclu_implied_fmr,
    base_columns,
    find_frame,
    find_summary,
    group_people,
    headline_threshold,
    implied_fmr,
    interval,
    match_point_thresholds,
    min_group,
    pct,
    rate_ci,
    reasons,
    sci,
    tfmt,
    times,
    ul,
)


def _promise(t: float) -> str:
    from faceaudit.engine import promised_fmr

    f = promised_fmr(t)
    return f"the scale promises a false-match rate of {sci(f)}, 1 in {1 / f:,.0f} comparisons of two different people"


def _group_label(res: Dict[str, Any], column: str, group: str, t: float) -> Tuple[str, bool]:
    f = find_frame(res, "ACLU_COUNT", column, t)
    r = (f or {}).get("by_group", {}).get(group) or {}
    n = int(r.get("subjects") or 0)
    small = group != "unknown" and n < min_group(res)
    text = f"{escape(column)} <b>{escape(group)}</b> <small>({n:,} {'person' if n == 1 else 'people'}"
    text += ", too small to compare)</small>" if small else ")</small>"
    return text, small


def _cell(r: Optional[Dict[str, Any]], small: bool) -> str:
    cls = "n small-group" if small else "n"
    return f"<td class='{cls}'>{rate_ci(r)}</td>"


def by_group_table(res: Dict[str, Any], thresholds: Sequence[float]) -> str:
    """Rows: everyone, then every group of every base column; per threshold: false candidate share and FNIR."""
    metrics = (("ACLU_COUNT", "searches with a false candidate"), ("FNIR", "people in the gallery not found"))
    head = "".join(f"<th>At {tfmt(t)}: {label}</th>" for t in thresholds for _, label in metrics)
    rows = [f"<tr><th>Who was searched</th>{head}</tr>"]
    cells = ""
    for t in thresholds:
        s = find_summary(res, t)
        for m, _ in metrics:
            cells += _cell(s["overall"].get(m) if s else None, False)
    rows.append(f"<tr><td><b>everyone</b></td>{cells}</tr>")
    for col in base_columns(res):
        for g in res["groups"].get(col, []):
            label, small = _group_label(res, col, g, thresholds[0])
            cells = ""
            for t in thresholds:
                for m, _ in metrics:
                    f = find_frame(res, m, col, t)
                    cells += _cell((f or {}).get("by_group", {}).get(g), small)
            rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    return ("<table class='bygroup'>" + "".join(rows) + "</table><p class='small'>Each cell: errors / searches = rate "
            f"(95% interval). Groups with fewer than {min_group(res)} people searched are greyed: too small to "
            "compare, and left out of every ratio.</p>")


def _ratio_sentence(res: Dict[str, Any], column: str, t: float) -> Optional[str]:
    f = find_frame(res, "ACLU_COUNT", column, t)
    if not f:
        return None
    note = f.get("ratio_note") or ""
    if note.startswith("equal"):
        return (f"By {escape(column)}: every group with at least {min_group(res)} people searched had the same "
                "share of searches with a false candidate.")
    if not f.get("highest") or not f.get("lowest"):
        return None
    hi, lo = f["by_group"][f["highest"]], f["by_group"][f["lowest"]]
    ratio = (f"{f['ratio']:.2g} times as high" if f.get("ratio") else "no ratio can be given: the lowest is 0")
    overlap = hi["wilson95"][0] <= lo["wilson95"][1]
    return (f"By {escape(column)} (groups of at least {min_group(res)} people): highest for <b>{escape(f['highest'])}"
            f"</b>, {rate_ci(hi)}; lowest for <b>{escape(f['lowest'])}</b>, {rate_ci(lo)}: {ratio}"
            + (". The intervals overlap: this data cannot tell the two apart." if overlap else "."))


def share_sentence(st: Dict[str, Any], where: str) -> str:
    m, e = st["matched"], st["everyone"]
    if not m["trials"]:
        return (f"{where}, no search had a false candidate, so the share of {escape(st['label'])} among them "
                "cannot be measured.")
    p = st.get("p_value")
    diff = st.get("difference")
    boot = st.get("difference_bootstrap95")
    dtext = ""
    if diff is not None:
        dtext = f"; difference {100 * diff:+.1f} points"
        if boot and boot[0] is not None:
            dtext += f" (95% interval {100 * boot[0]:+.1f} to {100 * boot[1]:+.1f})"
    verdict = ""
    if p is not None:
        verdict = (f"; Fisher's exact test p = {p:.2g}: " + ("a difference this large is unlikely by chance"
                   if p < 0.05 else "this data cannot tell the two shares apart"))
    ratio = f", {st['ratio']:.2f} times their share" if st.get("ratio") else ""
    return (f"{where}, <b>{escape(st['label'])}</b> were <b>{m['errors']:,} of the {m['trials']:,}</b> searches with "
            f"a false candidate: <b>{pct(m['rate'])}</b> <span class='ci'>({interval(m['wilson95'])})</span>, "
            f"against {pct(e['rate'])} of all {e['trials']:,} searches with a {escape(st['column'])} label"
            f"{ratio}{dtext}{verdict}.")


def _share_at(res: Dict[str, Any], t: float) -> List[Dict[str, Any]]:
    return [s for s in res.get("share_tests", []) if abs(s["threshold"] - t) < 1e-9]


def first_screen(res: Dict[str, Any]) -> str:
    """The headline with its interval per group, 80 vs the strictest threshold by group, the composition test."""
    c = res["counts"]
    t = headline_threshold(res)
    s = find_summary(res, t)
    a = s["overall"]["ACLU_COUNT"]
    why = reasons(res, t)
    top = max(res["thresholds"])
    intro = [
        f"We searched <b>{c['probes']:,}</b> photos of {c['probe_subjects']:,} people against a gallery of "
        f"<b>{c['gallery_images']:,}</b> photos of {c['gallery_subjects']:,} people ({c['searches_mated']:,} of "
        f"the people searched have another photo in the gallery; {c['searches_non_mated']:,} do not).",
        f"<span class='finding'>At a similarity threshold of <b>{tfmt(t)}</b> ({escape(why)}; {_promise(t)}), "
        f"<b>{a['errors']:,} of {a['trials']:,} searches</b> returned at least one candidate who is somebody else: "
        f"<b>{pct(a['rate'])} <span class='ci'>(95% interval {interval(a['wilson95'])})</span></b>.</span>",
    ]
    for st in _share_at(res, t):
        intro.append(share_sentence(st, f"At {tfmt(t)}"))
    for p in res.get("match_counts", []):
        if p.get("threshold") is None:
            continue
        for st in _share_at(res, p["threshold"]):
            intro.append(share_sentence(
                st, f"At {tfmt(p['threshold'])}, where {p['reached']['errors']} searches had a false candidate "
                    f"(asked for: {p['requested']}; the ACLU's 28 of 535 were counted at such a point)"))
    check = next((pc for pc in res.get("promise_checks", []) if abs(pc["threshold"] - t) < 1e-9), None)
    if check:
        intro.append(escape(check["overall"]["finding"]))
    items = []
    for col in base_columns(res):
        line = _ratio_sentence(res, col, t)
        if line:
            items.append(line)
    if check:
        above = [g for g in check["groups"] if g["verdict"] == "above" and g["group"] != "unknown"
                 and g["measured"]["subjects"] >= min_group(res) and check["overall"]["verdict"] != "above"]
        for g in above[:4]:
            items.append(escape(g["finding"]))
    ths = [t] + ([top] if top != t else [])
    html = ul(intro)
    html += f"<h3>By group, at {' and '.join(tfmt(x) for x in ths)}</h3>" + by_group_table(res, ths)
    if items:
        html += ul(items)
    return html


def aclu_section(res: Dict[str, Any]) -> str:
    """The ACLU's 2018 result against this audit, in per-comparison false-match rates only."""
    aclu = aclu_implied_fmr()
    rows = [f"<tr><td>ACLU 2018 (Amazon Rekognition at 80; every search non-mated)</td><td class='n'>"
            f"<b>{sci(aclu['rate'])}</b> <span class='ci'>({sci(aclu['low'])}–{sci(aclu['high'])})</span></td>"
            "<td>implied by its share of searches with a false match, over a 25,000-photo gallery</td></tr>"]
    for s in res["summaries"]:
        if s["threshold"] not in res["thresholds"] and abs(s["threshold"] - res["model_threshold"]) > 1e-9:
            continue
        fmr = s["overall"]["FMR"]
        fp = s["overall"]["FPIR"]
        gal = (s.get("projection") or {}).get("observed_gallery") or 0
        imp = implied_fmr(fp["rate"], gal)
        imp_lo = implied_fmr(fp["wilson95"][0], gal) if fp["trials"] else None
        imp_hi = implied_fmr(fp["wilson95"][1], gal) if fp["trials"] else None
        if fmr["trials"]:
            rows.append(f"<tr><td>This audit at {tfmt(s['threshold'])}: measured</td><td class='n'><b>{sci(fmr['rate'])}"
                        f"</b> <span class='ci'>({sci(fmr['wilson95'][0])}–{sci(fmr['wilson95'][1])})</span></td>"
                        "<td>every comparison of two different people counted</td></tr>")
        if imp is not None and fp["trials"]:
            rows.append(f"<tr><td>This audit at {tfmt(s['threshold'])}: implied by the non-mated searches</td>"
                        f"<td class='n'><b>{sci(imp)}</b> <span class='ci'>({sci(imp_lo)}–{sci(imp_hi)})</span></td>"
                        f"<td>the ACLU's formula on this audit's {fp['trials']:,} non-mated searches, about "
                        f"{gal:,} photos each</td></tr>")
    return ("<p>The ACLU searched a gallery of 25,000 photos; this gallery holds a different number, and the more "
            "photos a search runs against, the more likely a false candidate. So counts of falsely matched people "
            "from the two tests are not comparable, and are not set side by side here. What is comparable is the "
            "per-comparison false-match rate (FMR): the chance that one comparison of two different people "
            "scores at or above the threshold. The ACLU's result gives it as FMR = −ln(1 − share of searches with "
            "a false match) / gallery size, assuming independent comparisons.</p>"
            "<table><tr><th>Source</th><th>Per-comparison FMR (95% interval)</th><th>How</th></tr>"
            + "".join(rows) + "</table>"
            f"<p class='small'>ACLU 2018: {ACLU_MATCHED} of {ACLU_SEARCHES} searches against {ACLU_GALLERY:,} photos "
            "(its Similarity scale was Amazon's, not this one).</p>")


def share_section(res: Dict[str, Any]) -> str:
    tests = res.get("share_tests", [])
    if not tests:
        return ("<p>No composition test was asked for. <code>--share COLUMN=LABEL,...</code> (with "
                "<code>--share-label</code>) tests whether a set of groups is over-represented among the people "
                "falsely matched, as the ACLU reported for people of color.</p>")
    out = []
    for label in dict.fromkeys(st["label"] for st in tests):
        sts = [st for st in tests if st["label"] == label]
        first = sts[0]
        rows = []
        for st in sts:
            m, e = st["matched"], st["everyone"]
            boot = st.get("difference_bootstrap95")
            d = "–" if st.get("difference") is None else f"{100 * st['difference']:+.1f}"
            if boot and boot[0] is not None:
                d += f" <span class='ci'>({100 * boot[0]:+.1f} to {100 * boot[1]:+.1f})</span>"
            p = "–" if st.get("p_value") is None else f"{st['p_value']:.2g}"
            rows.append(f"<tr><td class='n'>{tfmt(st['threshold'])}<br><small>{escape(reasons(res, st['threshold']))}"
                        f"</small></td><td class='n'>{rate_ci(m)}</td><td class='n'>{rate_ci(e)}</td>"
                        f"<td class='n'>{d}</td><td class='n'>{p}</td><td class='n'>{rate_ci(st['rate_in_set'])}</td>"
                        f"<td class='n'>{rate_ci(st['rate_outside'])}</td></tr>")
        outside = ", ".join(escape(v) for v in first["labels_outside"]) or "none"
        absent = (f" Listed but not in the data: {', '.join(escape(v) for v in first['labels_absent'])}."
                  if first["labels_absent"] else "")
        out.append(
            f"<h3>{escape(label)}: {escape(first['column'])} = {escape(', '.join(first['values']))}</h3>"
            f"<p class='small'>Labels counted outside the set: {outside}.{absent} Searches without a "
            f"{escape(first['column'])} label ({first['unknown']}) are left out.</p>"
            "<table><tr><th>Threshold</th><th>Share among searches with a false candidate</th><th>Share among all "
            "searches</th><th>Difference, points (95% interval, people resampled)</th><th>Fisher's exact p</th>"
            f"<th>Searches in the set with a false candidate</th><th>Searches outside the set with a false "
            f"candidate</th></tr>{''.join(rows)}</table>")
    return ("<p>The ACLU reported that people of color were about 40% of its false matches and about 20% of "
            "Congress. The same test here, for each set of labels asked for: among the searches that returned a "
            "candidate who is somebody else, the share of people in the set, against their share among all "
            "searches. The two shares differ exactly when people in the set get false candidates at a different "
            "rate than the others (last two columns), which Fisher's exact test checks.</p>" + "".join(out))


def promise_section(res: Dict[str, Any]) -> str:
    checks = res.get("promise_checks", [])
    if not checks:
        return "<p>This results file predates the check of the Similarity scale's promise.</p>"
    eng = res["engine"]
    version = eng.get("similarity_scale_version")
    rows = []
    for pc in checks:
        o = pc["overall"]
        r95 = o.get("ratio95") or (None, None)
        ratio = "–" if o.get("ratio") is None else (
            f"{times(o['ratio'])} <span class='ci'>({times(r95[0])}–{times(r95[1])})</span>" if r95[0] is not None
            else times(o["ratio"]))
        rows.append(f"<tr><td class='n'>{tfmt(pc['threshold'])}<br><small>{escape(reasons(res, pc['threshold']))}"
                    f"</small></td><td class='n'>{sci(pc['promised_fmr'])}</td><td class='n'>"
                    f"{o['measured']['errors']:,} / {o['measured']['trials']:,} = <b>{sci(o['measured']['rate'])}</b> "
                    f"<span class='ci'>({sci(o['measured']['wilson95'][0])}–{sci(o['measured']['wilson95'][1])})</span>"
                    f"</td><td class='n'>{ratio}</td><td>{escape(o['verdict'])}</td></tr>")
    findings = []
    for pc in checks:
        if pc["threshold"] not in res["thresholds"]:
            continue
        for g in pc["groups"]:
            if g["verdict"] in ("above", "below") and g["group"] != "unknown" \
                    and g["measured"]["subjects"] >= min_group(res):
                findings.append(escape(g["finding"]))
    scale = (f"Similarity scale version <code>{escape(version)}</code>." if version else
             "This engine does not report a Similarity scale version: its Similarity may not be calibrated to the "
             "false-match rate, and the promise below is the scale's, not this engine's.")
    return (f"<p>Similarity is defined by the false-match rate it promises: Similarity = 80 + 10 × (−log<sub>10</sub> "
            "FMR − 5), so 80 promises 1e-5, 90 promises 1e-6 and 99 about 1.3e-7, on every model. The promise holds "
            "on the model's calibration photos; this audit measures it on its own photos and people. A gap is "
            f"called a finding only when its interval excludes the promise. {scale}</p>"
            "<table><tr><th>Threshold</th><th>Promised FMR</th><th>Measured FMR (95% interval)</th>"
            "<th>Measured ÷ promised</th><th>Verdict</th></tr>" + "".join(rows) + "</table>"
            + (f"<h3>Groups whose rate differs from the promise (groups of at least {min_group(res)} people)</h3>"
               + ul(findings, "caveat") if findings else
               "<p>No group of at least the stated size differs from the promise beyond its interval.</p>"))


RARE_IN_GALLERY = 0.25
"""A group below this share of the gallery's labelled photos is called rare in the gallery."""


def _cross_finding(res: Dict[str, Any], ct: Dict[str, Any], t: float) -> List[str]:
    """Within-group against across-group false matches, beside the gallery's composition."""
    comp = res.get("composition", {}).get("gallery", {}).get(ct["gallery_column"], {})
    total = sum(comp.values()) or 0
    labelled = total - comp.get("unknown", 0)
    out = []
    for pg, row in ct["cells"].items():
        if pg == "unknown" or pg not in row or not labelled:
            continue
        if group_people(res, ct["column"], pg, t) < min_group(res):
            continue
        within = row[pg]
        others = [r for g, r in row.items() if g not in (pg, "unknown")]
        oe, on = sum(r["errors"] for r in others), sum(r["trials"] for r in others)
        if not within["trials"] or not on:
            continue
        n_g = comp.get(pg, 0)
        share = n_g / labelled
        where = (f"{pct(n_g / total)} of this gallery ({n_g:,} of {total:,} photos"
                 + (f"; {pct(share)} of the {labelled:,} with a {escape(ct['gallery_column'])} label)"
                    if labelled < total else ")"))
        across = oe / on
        if within["rate"] and within["wilson95"][0] > wilson_interval(oe, on)[1]:
            how = (f"at {times(within['rate'] / across)} the rate of other photos" if across > 0 else
                   "while none of the other photos matched them")
            line = (f"People labelled {escape(pg)} were falsely matched to gallery photos labelled {escape(pg)} {how} "
                    f"(FMR {sci(within['rate'])} against {sci(across)}; {within['errors']:,} of {within['trials']:,} "
                    "comparisons)")
            if share < RARE_IN_GALLERY:
                line += (f", but only {where} is labelled {escape(pg)}: a gallery with more such photos would falsely "
                         f"match people labelled {escape(pg)} more often than this audit can show")
            if within["errors"] < int(res.get("min_errors", 30)):
                line += (f". It rests on {within['errors']} false match{'' if within['errors'] == 1 else 'es'}, "
                         "so it is uncertain")
            out.append(line + ".")
        elif share < RARE_IN_GALLERY and within["errors"] == 0:
            out.append(f"Only {where} is labelled {escape(pg)}: false matches of people labelled {escape(pg)} within "
                       f"their own group can hardly occur here ({within['trials']:,} comparisons, none matched).")
    return out


def cross_section(res: Dict[str, Any]) -> str:
    tables = res.get("cross_tables", [])
    if not tables:
        return "<p>No gallery labels to cross with.</p>"
    t0 = headline_threshold(res)
    ths: List[float] = []
    for t in [t0, *match_point_thresholds(res), res["model_threshold"]]:
        if find_summary(res, t) is not None and all(abs(t - x) > 1e-9 for x in ths):
            ths.append(t)
    comp_all = res.get("composition", {}).get("gallery", {})
    out = ["<p>The false-match rate (FMR) of comparisons between the group of the person searched (rows) and the "
           "group of the gallery photo (columns), with its 95% interval. The gallery's make-up is under each column: "
           "a group that is rare in the gallery cannot produce many false matches, whatever the rate.</p>"]
    ordered = sorted(tables, key=lambda c: c["column"] != c.get("gallery_column", c["column"]))
    for t in ths:
        for ct in ordered:
            if abs(ct["threshold"] - t) > 1e-9:
                continue
            same = ct["column"] == ct.get("gallery_column", ct["column"])
            gcol = ct.get("gallery_column", ct["column"])
            comp = comp_all.get(gcol, {})
            total = sum(comp.values()) or 1
            ggs = list(next(iter(ct["cells"].values()), {}))
            head = "".join(f"<th>gallery {escape(g)}<br><small>{comp.get(g, 0):,} photos ({pct(comp.get(g, 0) / total)})"
                           "</small></th>" for g in ggs)
            rows = "".join(
                f"<tr><th>searched {escape(pg)}</th>" + "".join(
                    f"<td class='n'>{row[g]['errors']:,} / {row[g]['trials']:,}<br><b>{sci(row[g]['rate'])}</b><br>"
                    f"<small>{sci(row[g]['wilson95'][0])}–{sci(row[g]['wilson95'][1])}</small></td>"
                    if row[g]["trials"] else "<td class='n'>–</td>" for g in ggs) + "</tr>"
                for pg, row in ct["cells"].items())
            table = f"<table><tr><th></th>{head}</tr>{rows}</table>"
            title = f"{escape(ct['column'])} of the person searched × {escape(gcol)} of the gallery photo, at {tfmt(t)}"
            findings = _cross_finding(res, ct, t) if same else []
            body = table + (ul(findings, "caveat") if findings else "")
            opn = " open" if same else ""
            out.append(f"<details{opn}><summary>{title} <small>({escape(reasons(res, t))})</small></summary>{body}"
                       "</details>")
    return "\n".join(out)
