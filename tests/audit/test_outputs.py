"""results.json, candidates.csv and report.html of a real (small) audit, and the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

from faceaudit.audit import ThumbnailPolicy, render_report
from faceaudit.audit._report import LEAD_NOTE
from faceaudit.cli import main
from faceaudit.engine import get_model
from tests.audit.conftest import THRESHOLDS
from tests.conftest import meds, portrait_2014, portrait_2018


def load(out: Path):
    res = json.loads((out / "results.json").read_text())
    with open(out / "candidates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return res, rows


def test_results_json_metadata(small_run, small_manifests):
    _run, out, _ = small_run
    res, _ = load(out)
    assert res["faceaudit_version"] and dt.datetime.fromisoformat(res["created"])
    eng = res["engine"]
    assert (eng["kind"], eng["model"]) == ("local", "sface")
    assert eng["face_model_version"] == "yunet-2023mar-int8bq+sface-2021dec-int8bq" and eng["exact_scores"]
    assert res["thresholds"] == list(THRESHOLDS)
    assert res["model_threshold"] == get_model("sface").recommended_similarity  # the model's own point
    assert res["group_columns"] == ["dataset", "sex", "dataset&sex"]
    assert res["gallery_group_columns"] == ["dataset", "sex"]
    for m in res["manifests"]:  # given as absolute paths, recorded relative to the folder holding them
        assert not Path(m["path"]).is_absolute()
        folder = small_manifests["probes"].parent
        assert m["sha256"] == hashlib.sha256((folder / m["path"]).read_bytes()).hexdigest()
    assert {m["side"] for m in res["manifests"]} == {"probe", "gallery"}
    assert res["alpha"] == 0.5 and res["bootstrap_resamples"] == 200 and res["bootstrap_seed"] == 7
    assert [t["target"] for t in res["fmr_targets"]] == [1e-3, 1e-4, 1e-5]
    # 8 probes with a face against 10 gallery faces: 6 mated (9 strangers each), 2 non-mated (10 each)
    assert (res["counts"]["impostor_comparisons"], res["counts"]["genuine_comparisons"]) == (74, 6)
    # every summary threshold has every metric with counts and both intervals
    for s in res["summaries"]:
        for m in ("FPIR", "FNIR", "ACLU_COUNT", "MATED_FALSE", "FMR", "FNMR"):
            r = s["overall"][m]
            assert set(r) >= {"errors", "trials", "rate", "wilson95", "bootstrap95", "few_errors"}
    assert res["warnings"], "a 9-search audit rests on fewer than 30 errors everywhere"
    text = (out / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_counts_recomputed_from_candidates_csv(small_run):
    """FPIR, FNIR, the ACLU count, FMR and FNMR at each threshold, from candidates.csv alone."""
    _, out, _ = small_run
    res, rows = load(out)
    floor = min(res["thresholds"])
    assert rows and all(float(r["similarity"]) >= floor for r in rows)
    c = res["counts"]
    for s in res["summaries"]:
        t = s["threshold"]
        if t < floor:
            continue
        hit = [r for r in rows if float(r["similarity"]) >= t]
        false_probes = {r["probe_image"] for r in hit if r["mated"] == "false"}
        false_nonmated = {r["probe_image"] for r in hit if r["mated"] == "false" and r["search"] == "non-mated"}
        found = {r["probe_image"] for r in hit if r["mated"] == "true"}
        o = s["overall"]
        assert (o["ACLU_COUNT"]["errors"], o["ACLU_COUNT"]["trials"]) == (len(false_probes), c["probes"])
        assert (o["FPIR"]["errors"], o["FPIR"]["trials"]) == (len(false_nonmated), c["searches_non_mated"])
        assert (o["FNIR"]["errors"], o["FNIR"]["trials"]) == (c["searches_mated"] - len(found), c["searches_mated"])
        assert o["MATED_FALSE"]["errors"] == len({r["probe_image"] for r in hit
                                                  if r["mated"] == "false" and r["search"] == "mated"})
        assert o["FMR"]["errors"] == sum(r["mated"] == "false" for r in hit)
        assert o["FNMR"]["errors"] == c["genuine_comparisons"] - sum(r["mated"] == "true" for r in hit)
        # per group: FPIR by the searched person's sex
        frame = next(f for f in res["frames"] if f["metric"] == "ACLU_COUNT" and f["column"] == "sex"
                     and f["side"] == "probe" and f["threshold"] == t)
        by_sex = defaultdict(set)
        for r in hit:
            if r["mated"] == "false":
                by_sex[r["probe_sex"] or "unknown"].add(r["probe_image"])
        for g, rate in frame["by_group"].items():
            assert rate["errors"] == len(by_sex.get(g, ())), (t, g)


def test_candidates_csv_shape(small_run):
    _, out, _ = small_run
    _, rows = load(out)
    assert list(rows[0])[:8] == ["probe_image", "probe_subject", "candidate_image", "candidate_subject",
                                 "similarity", "mated", "search", "rank"]
    by_probe = defaultdict(list)
    for r in rows:
        by_probe[r["probe_image"]].append(r)
        assert (out / r["probe_image"]).resolve().is_file() and (out / r["candidate_image"]).resolve().is_file()
        assert r["mated"] == ("true" if r["probe_subject"] == r["candidate_subject"] else "false")
    for rs in by_probe.values():
        assert [int(r["rank"]) for r in rs] == list(range(1, len(rs) + 1))
        sims = [float(r["similarity"]) for r in rs]
        assert sims == sorted(sims, reverse=True)


def test_report_is_self_contained_and_rebuilds(small_run, tmp_path):
    _, out, _ = small_run
    html = (out / "report.html").read_text()
    assert LEAD_NOTE in html and "projection, not a measurement" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<script" not in html and "<link" not in html
    # issue 23: groups below the size rule are not drawn (all of this small run's are), and the page says so
    assert html.count("<svg") >= 2 and "Not drawn:" in html
    (out / "report.html").unlink()
    assert main(["report", str(out), "--no-thumbnails"]) == 0
    assert "data:image" not in (out / "report.html").read_text()


def _pair(probe: Path, cand: Path, dataset: str, sim: str = "83.5"):
    return {"probe_image": str(probe), "probe_subject": "congress:B000944", "candidate_image": str(cand),
            "candidate_subject": "other", "similarity": sim, "mated": "false", "search": "non-mated", "rank": "1",
            "probe_dataset": "congress2018", "candidate_dataset": dataset}


def test_thumbnails_policy(small_run):
    _, out, _ = small_run
    res, _ = load(out)
    rows = [_pair(portrait_2018("B000944"), portrait_2014("C000141"), "congress2014"),
            _pair(portrait_2018("C000127"), meds("S001-01-t10_01"), "meds", "82.0"),
            _pair(portrait_2018("K000367"), portrait_2014("C000141"), "congress2014",
                  f"{res['model_threshold'] - 1:.2f}")]  # below the lowest threshold shown
    html = render_report(res, rows, "/", ThumbnailPolicy())
    assert html.count("data:image/jpeg;base64,") == 4
    html = render_report(res, rows, "/", ThumbnailPolicy(exclude=(("dataset", "meds"),)))
    assert html.count("data:image/jpeg;base64,") == 3 and "not shown<br>(dataset=meds)" in html
    html = render_report(res, rows, "/", ThumbnailPolicy(enabled=False))
    assert "data:image" not in html and "2 searches" in html
    html = render_report(res, rows, "/", ThumbnailPolicy(max_pairs=1))
    assert html.count("data:image/jpeg;base64,") == 2 and "1 more in candidates.csv" in html


def test_cli_audit(small_run, small_manifests, tmp_path, capsys):
    _, out, _ = small_run
    dest = tmp_path / "cli-out"
    code = main(["audit", "--probes", str(small_manifests["probes"]), "--gallery", str(small_manifests["gallery"]),
                 "--thresholds", "60,80", "--group-by", "sex", "--bootstrap", "20", "--quiet",
                 "--cache", str(out / "embeddings.sqlite"), "--thumbnail-exclude", "dataset=meds",
                 "--out", str(dest)])
    printed = capsys.readouterr()
    assert code == 0
    assert f"report: {dest / 'report.html'}" in printed.out
    assert "investigative lead, not an identification" in printed.err
    res, _ = load(dest)
    assert res["group_columns"] == ["sex"] and res["thresholds"] == [60.0, 80.0]
    assert res["command"].startswith("faceaudit audit --probes ") and "--group-by sex" in res["command"]


def test_cli_errors(tmp_path, capsys):
    assert main(["audit", "--probes", str(tmp_path / "missing.csv"), "--gallery", str(tmp_path / "g.csv"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "InvalidParameterException: manifest not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("path,who\nx.jpg,a\n")
    assert main(["audit", "--probes", str(bad), "--gallery", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "lacks the column(s) image, subject" in capsys.readouterr().err


def test_results_carry_scale_promise_shares_and_counts(small_run, small_manifests, tmp_path, capsys):
    _, out, _ = small_run
    dest = tmp_path / "share-out"
    argv = ["audit", "--probes", str(small_manifests["probes"]), "--gallery", str(small_manifests["gallery"]),
            "--thresholds", "60,80", "--bootstrap", "20", "--quiet", "--cache", str(out / "embeddings.sqlite"),
            "--share", "sex=F,M;F", "--share-label", "women", "--match-count", "2", "--min-group-size", "3",
            "--note", "a note with 'quotes' and spaces", "--out", str(dest)]
    assert main(argv) == 0
    res, _ = load(dest)
    assert "similarity_scale_version" in res["engine"]
    import re

    runtime = res["engine"]["runtime"]  # what ran the networks
    assert re.fullmatch(r"opencv dnn|onnxruntime \(.+\)|openvino \(CPU\)|YuNet on .+, SFace on .+", runtime), runtime
    assert "Networks ran on" in (dest / "report.html").read_text()
    assert res["min_group_searches"] == 3
    (point,) = res["match_counts"]
    assert point["requested"] == 2 and point["reached"]["errors"] <= 2
    labels = {(s["label"], tuple(s["values"])) for s in res["share_tests"]}
    assert labels == {("women", ("F", "M;F"))}
    assert {s["threshold"] for s in res["share_tests"]} == {s["threshold"] for s in res["summaries"]}
    pc = {p["threshold"]: p for p in res["promise_checks"]}
    assert pc[80.0]["promised_fmr"] == 1e-05 and pc[60.0]["promised_fmr"] == 0.001
    assert all(w["kind"] and w["message"] for w in res["warnings"])
    # the command as typed: bare words, double quotes only where the shell needs them
    assert res["command"].startswith("faceaudit audit --probes ")
    assert '--share "sex=F,M;F" --share-label women' in res["command"]
    assert "--note \"a note with 'quotes' and spaces\"" in res["command"]
    html = (dest / "report.html").read_text()
    assert "Who is falsely matched: the composition test" in html and "women</b> were" in html
    assert html.index("What this test can and cannot show") < html.index("Against the ACLU's 2018 test")
    assert "class='tw'" in html and "too small to compare" in html
    assert "<pre class='cmd'>" in html


def test_share_label_needs_a_share(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["audit", "--probes", "p.csv", "--gallery", "g.csv", "--share-label", "x", "--out", str(tmp_path)])
    assert "--share-label must follow the --share" in capsys.readouterr().err


def test_help_prints_plain_percent(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = capsys.readouterr().out
    assert re.search(r"95%\s+intervals", text) and "%%" not in text


def test_thumbnails_show_both_faces_groups(small_run):
    _, out, _ = small_run
    res, _ = load(out)
    row = _pair(portrait_2018("B000944"), portrait_2014("C000141"), "congress2014")
    row.update({"probe_sex": "M", "candidate_sex": "F"})
    html = render_report(res, [row], "/", ThumbnailPolicy())
    assert "sex M" in html and "sex F" in html and "dataset congress2018" in html


def test_comparison_page(small_run, tmp_path, capsys):
    import shutil

    _, out, _ = small_run
    a, b = tmp_path / "sface", tmp_path / "other"
    for d in (a, b):
        d.mkdir()
        shutil.copy(out / "results.json", d / "results.json")
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    html = (tmp_path / "cmp" / "comparison.html").read_text()
    assert "2 face search audits side by side" in html and "At equal measured false-match rate" in html
    assert html.count("sface (local)") >= 4 and "did not use the same manifests" not in html
    assert main(["report", str(a), str(b)]) == 2
    assert "need --out" in capsys.readouterr().err
