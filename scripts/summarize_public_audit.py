"""Markdown tables of the public reproduction, from docs/public-audit/<model>/results.json.

Usage: .venv/bin/python scripts/summarize_public_audit.py docs/public-audit/sface docs/public-audit/dlib
Per threshold (80, 90, 95, 99, the model's own, the 28-search point): the ACLU count, FPIR, FNIR, promised
against measured FMR; per sex and per race the share of searches with a false candidate; at the 28-search
point the people of color among the falsely matched, and FMR by race of the person searched x race and
dataset of the gallery photo. Every rate with its count and 95% Wilson interval.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from faceaudit.audit._html import sci  # the report's own notation for small rates


def pct(r) -> str:
    if not r or not r["trials"]:
        return "–"
    lo, hi = r["wilson95"]
    return f"{r['errors']}/{r['trials']} = {100 * r['rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def fmr(r) -> str:
    if not r or not r["trials"]:
        return "–"
    lo, hi = r["wilson95"]
    return f"{r['errors']:,}/{r['trials']:,} = {sci(r['rate'])} [{sci(lo)}, {sci(hi)}]"


def frame(res, metric, column, t):
    for f in res["frames"]:
        if (f["metric"], f["column"], f["side"]) == (metric, column, "probe") and abs(f["threshold"] - t) < 1e-9:
            return f
    return None


def mates_similarity(d: Path, floor: float = 80.0) -> None:
    """How many distinct Similarity values the mates found at or above ``floor`` get (candidates.csv)."""
    path = d / "candidates.csv"
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        sims = [float(r["similarity"]) for r in csv.DictReader(fh) if r["mated"] == "true"
                and float(r["similarity"]) >= floor]
    if not sims:
        return
    print(f"\nMates found at {floor:g} or above (candidates.csv): {len(sims)}; distinct Similarity values: "
          f"{len(set(sims))} (as stored, 4 decimals), {len({round(x, 2) for x in sims})} (2 decimals); "
          f"at 100.00: {sum(round(x, 2) >= 100.0 for x in sims)}; highest {max(sims):.4f}.")


def calibration_table(model: str) -> None:
    """The model's calibration at 80/90/99: the promise, its 95% bound, the estimate, the count."""
    try:
        from faceaudit.engine import get_model

        cal = get_model(model).calibration()
    except Exception:  # a model this installation does not know: no calibration table
        return
    print(f"\nCalibration ({cal['data']['impostor_pairs']:,} stranger pairs, measured {cal['measured_on']}): "
          "promised FMR, its one-sided 95% bound, the estimate and the false matches counted:\n")
    print("| Similarity | promised | 95% bound | estimate | false matches (allowed by the promise) | FNMR |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in cal["thresholds"]:
        if r["similarity"] not in (80.0, 90.0, 99.0) or "fmr_bound95" not in r:
            continue
        n = r["fmr"]["trials"]
        print(f"| {r['similarity']:g}{' (extrapolated)' if r['extrapolated'] else ''} | {sci(r['promised_fmr'])} | "
              f"{sci(r['fmr_bound95'])} | {sci(r['fmr_estimate'])} | {r['fmr']['errors']} ({r['promised_fmr'] * n:.1f}) | "
              f"{r['fnmr']['errors']}/{r['fnmr']['trials']} |")


def main() -> None:
    for d in sys.argv[1:]:
        res = json.loads((Path(d) / "results.json").read_text())
        e = res["engine"]
        print(f"\n### {e['model']} ({e['face_model_version']}; scale {e.get('similarity_scale_version')})\n")
        point = next((p for p in res.get("match_counts", []) if p.get("threshold") is not None), None)
        wanted = [t for t in (80.0, 90.0, 95.0, 99.0)] + [res["model_threshold"]]
        if point:
            wanted.append(point["threshold"])
        checks = {pc["threshold"]: pc for pc in res.get("promise_checks", [])}
        print("| threshold | why | ACLU count | FPIR (non-mated) | FNIR (mated) | FMR promised | FMR measured |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for s in res["summaries"]:
            t = s["threshold"]
            if not any(abs(t - w) < 1e-9 for w in wanted):
                continue
            o = s["overall"]
            pc = checks.get(t)
            print(f"| {t:g} | {', '.join(s['reasons'])} | {pct(o['ACLU_COUNT'])} | {pct(o['FPIR'])} | {pct(o['FNIR'])} | "
                  f"{sci(pc['promised_fmr']) if pc else '–'} | {fmr(o['FMR'])} ({pc['overall']['verdict'] if pc else ''}) |")
        calibration_table(e["model"])
        mates_similarity(Path(d))
        for col in ("sex", "race"):
            print(f"\nSearches with a false candidate (ACLU count) and FNIR by {col}:\n")
            ths = [t for t in wanted if any(abs(t - s['threshold']) < 1e-9 for s in res['summaries'])]
            ths = sorted(set(ths))
            print("| group | " + " | ".join(f"{t:g}: false candidate" for t in ths) + " | " +
                  " | ".join(f"{t:g}: FNIR" for t in ths) + " |")
            print("| --- |" + " --- |" * (2 * len(ths)))
            groups = res["groups"].get(col, [])
            for g in groups:
                cells = [pct((frame(res, "ACLU_COUNT", col, t) or {}).get("by_group", {}).get(g)) for t in ths]
                cells += [pct((frame(res, "FNIR", col, t) or {}).get("by_group", {}).get(g)) for t in ths]
                print(f"| {g} | " + " | ".join(cells) + " |")
            print(f"\nFMR measured by {col} against the promise:\n")
            print("| group | " + " | ".join(f"{t:g} (promised {sci(checks[t]['promised_fmr'])})" for t in ths
                                            if t in checks) + " |")
            print("| --- |" + " --- |" * len([t for t in ths if t in checks]))
            for g in groups:
                cells = []
                for t in ths:
                    if t not in checks:
                        continue
                    gap = next((x for x in checks[t]["groups"] if x["column"] == col and x["group"] == g), None)
                    cells.append(f"{fmr(gap['measured'])} {gap['verdict']}" if gap else "–")
                print(f"| {g} | " + " | ".join(cells) + " |")
        print("\nComposition test (people of color among searches with a false candidate):\n")
        print("| threshold | why | among falsely matched | among all searches | difference [bootstrap 95%] | Fisher p |")
        print("| --- | --- | --- | --- | --- | --- |")
        for st in res.get("share_tests", []):
            t = st["threshold"]
            why = ", ".join(next(s["reasons"] for s in res["summaries"] if s["threshold"] == t))
            b = st.get("difference_bootstrap95") or (None, None)
            diff = "–" if st["difference"] is None else f"{100 * st['difference']:+.1f} pts" + (
                f" [{100 * b[0]:+.1f}, {100 * b[1]:+.1f}]" if b[0] is not None else "")
            p = "–" if st["p_value"] is None else f"{st['p_value']:.2g}"
            print(f"| {t:g} | {why} | {pct(st['matched'])} | {pct(st['everyone'])} | {diff} | {p} |")
        if point:
            t = point["threshold"]
            print(f"\nAt the 28-search point ({t:g}; {point['note']}): FMR by race of the person searched x gallery group:\n")
            for ct in res["cross_tables"]:
                if ct["column"] != "race" or abs(ct["threshold"] - t) > 1e-9 or ct["gallery_column"] not in ("race", "dataset"):
                    continue
                comp = res["composition"]["gallery"][ct["gallery_column"]]
                ggs = list(next(iter(ct["cells"].values())))
                print("| searched \\ gallery | " + " | ".join(f"{g} ({comp.get(g, 0)} photos)" for g in ggs) + " |")
                print("| --- |" + " --- |" * len(ggs))
                for pg, row in ct["cells"].items():
                    print(f"| {pg} | " + " | ".join(
                        f"{row[g]['errors']}/{row[g]['trials']:,}" + (f" = {sci(row[g]['rate'])}" if row[g]["errors"] else "")
                        for g in ggs) + " |")
                print()


if __name__ == "__main__":
    main()
