"""The audit under probe conditions: results per condition, cached by condition version (issue 19)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceaudit._errors import InvalidParameterError
from faceaudit.audit import AuditConfig, EmbeddingCache, LocalEngine, run_audit
from faceaudit.audit._conditions import LEAD_RANKS, temptation
from faceaudit.audit._engines import condition_cache_version
from faceaudit.engine import CLEAN, PRESETS, ProbeCondition, conditions_with_clean, probe_condition
from tests.audit.conftest import THRESHOLDS


@pytest.fixture(scope="module")
def condition_run(small_manifests, sface_engine, tmp_path_factory):
    out = tmp_path_factory.mktemp("conditions")
    engine = LocalEngine("sface", cache=out / "embeddings.sqlite", face_engine=sface_engine, workers=1)
    conditions = conditions_with_clean(["doorbell-day-3m", "iod=12,blur=1,gamma=2,noise=6,gray,jpeg=50"])
    run = run_audit([small_manifests["probes"]], [small_manifests["gallery"]], engine,
                    AuditConfig(thresholds=THRESHOLDS, bootstrap=50, seed=3), progress=False, conditions=conditions)
    return run, out, engine


def test_an_audit_with_two_conditions_gives_results_for_both(condition_run):
    run, out, _ = condition_run
    r = run.result
    assert [c.name for c in r.conditions] == ["clean", "doorbell-day-3m", "iod=12,blur=1,gamma=2,noise=6,gray,jpeg=50"]
    clean, day, night = r.conditions
    # clean is the audit itself
    assert clean.summaries == r.summaries and clean.failures_to_enrol == r.counts.probes_failed
    for c in r.conditions:
        assert c.probes == run.design.n_probes
        assert {s.threshold for s in c.summaries} >= set(THRESHOLDS)
        for t in THRESHOLDS:
            fnir = c.rate("FNIR", t)
            assert fnir.trials == int(run.design.mated.sum()) and fnir.wilson95 is not None
            assert c.rate("ACLU_COUNT", t).trials == run.design.n_probes
        assert any(f.column == "sex" and f.metric == "FNIR" for f in c.frames)  # per-group rates
        assert c.promise_checks
        assert set(c.lead_list.at_rank) == set(LEAD_RANKS)
        shares = [c.lead_list.at_rank[k] for k in LEAD_RANKS]
        assert shares == sorted(shares)  # deeper lists find at least as many mates
    # the faceless probe fails in every condition; degrading only adds failures and misses
    assert (day.target_eye_distance, day.quality_band) == (15.0, "tiny") and clean.target_eye_distance is None
    assert day.failures_to_enrol >= clean.failures_to_enrol >= 1
    assert night.failures_to_enrol >= clean.failures_to_enrol
    assert night.rate("FNIR", 80.0).errors >= clean.rate("FNIR", 80.0).errors
    assert day.images_embedded == run.design.n_probes  # each probe degraded and embedded once (failures too)
    # results.json carries them
    run.write(out, report=False)
    data = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in data["conditions"]] == [c.name for c in r.conditions]
    assert data["conditions"][1]["spec"] == PRESETS["doorbell-day-3m"].spec
    assert "synthetic" in data["conditions"][1]["note"]


def test_conditions_are_cached_by_version(condition_run, small_manifests, sface_engine):
    run, out, _ = condition_run
    design = run.design
    day = PRESETS["doorbell-day-3m"]
    again = LocalEngine("sface", cache=out / "embeddings.sqlite", face_engine=sface_engine, workers=1)
    first = again.run_condition(design, day, progress=False)
    assert first.embedded == 0 and first.from_cache >= design.n_probes - 1  # all from the cache
    changed = ProbeCondition(day.name, day.steps, version=day.version + "-changed")
    second = again.run_condition(design, changed, progress=False)
    assert second.embedded >= design.n_probes - 1  # a new version: embedded again
    with EmbeddingCache(out / "embeddings.sqlite") as cache:
        v = condition_cache_version(sface_engine.spec.version, changed)
        assert cache.count(v)[0] >= 1 and v != sface_engine.spec.version
    assert condition_cache_version("m", CLEAN) == "m"


def test_degraded_embeddings_are_reproducible(condition_run, sface_engine):
    run, _, _ = condition_run
    c = probe_condition("iod=20,noise=4,jpeg=60")
    a = LocalEngine("sface", face_engine=sface_engine, workers=1).run_condition(run.design, c, progress=False)
    b = LocalEngine("sface", face_engine=sface_engine, workers=1).run_condition(run.design, c, progress=False)
    np.testing.assert_array_equal(a.probe_vectors, b.probe_vectors)
    np.testing.assert_array_equal(a.outcomes.best_mate, b.outcomes.best_mate)


def test_temptation_threshold_reaches_the_target(condition_run):
    run, _, _ = condition_run
    design, out = run.design, run.outcomes
    t = temptation(design, out)
    mated = design.mated
    assert t.threshold is not None  # every mated probe of the small audit has a face
    scores = np.where(out.probe_ok & np.isfinite(out.best_mate), out.best_mate, -np.inf)[mated]
    assert float((scores < t.threshold).mean()) <= 0.05 + 1e-12 and t.fnir <= 0.05
    assert float((scores < t.threshold + 0.01).mean()) > 0.05 or t.threshold >= 100.0  # the highest such
    expected = int((out.probe_ok & (out.best_nonmate >= t.threshold)).sum())
    assert t.searches_with_false_candidate == expected


def test_conditions_need_the_local_engine(small_manifests):
    class Remote:
        def info(self):  # pragma: no cover - refused before
            raise AssertionError

        def run(self, design, progress=True):  # pragma: no cover - refused before
            raise AssertionError

    with pytest.raises(InvalidParameterError, match="local engine"):
        run_audit([small_manifests["probes"]], [small_manifests["gallery"]], Remote(), progress=False,
                  conditions=conditions_with_clean(["cctv-4m"]))


def test_cli_probe_condition_prints_a_table(condition_run, small_manifests, tmp_path, capsys):
    from faceaudit.cli import main

    _, out, _ = condition_run
    dest = tmp_path / "cli"
    code = main(["audit", "--probes", str(small_manifests["probes"]), "--gallery", str(small_manifests["gallery"]),
                 "--thresholds", "80,90", "--bootstrap", "0", "--quiet", "--workers", "1",
                 "--cache", str(out / "embeddings.sqlite"), "--probe-condition", "doorbell-day-3m", "--out", str(dest)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "probe conditions" in printed
    rows = [line.split() for line in printed.splitlines() if line.strip().startswith(("clean ", "doorbell-day-3m "))]
    assert [r[0] for r in rows] == ["clean", "doorbell-day-3m"]
    assert rows[0][1] == "1/9"  # the faceless probe: a failure to enrol in every condition
    data = json.loads((dest / "results.json").read_text())
    assert [c["name"] for c in data["conditions"]] == ["clean", "doorbell-day-3m"]
    assert "--probe-condition doorbell-day-3m" in data["command"]


def test_cli_probe_condition_errors(small_manifests, tmp_path, capsys):
    from faceaudit.cli import main

    base = ["audit", "--probes", str(small_manifests["probes"]), "--gallery", str(small_manifests["gallery"]),
            "--quiet", "--out", str(tmp_path / "o")]
    assert main([*base, "--probe-condition", "iod=20,fog=3"]) == 2
    assert "unknown probe condition step 'fog=3'" in capsys.readouterr().err
    assert main([*base, "--probe-condition", "jpeg=0"]) == 2
    assert "'jpeg=0'" in capsys.readouterr().err
    assert main([*base, "--engine", "rekognition", "--probe-condition", "cctv-4m"]) == 2
    assert "--probe-condition needs --engine local" in capsys.readouterr().err


def test_mate_ranks_agree_with_the_candidate_list(condition_run):
    from faceaudit.audit._conditions import mate_ranks

    run, _, engine = condition_run
    d, o = run.design, run.outcomes
    clean = engine.run_condition(d, CLEAN, progress=False)
    ranks = mate_ranks(d, o, clean.probe_vectors, clean.gallery_vectors, engine.similarity_function())
    listed = {}
    for row in run.candidate_rows():
        if row["mated"] == "true":
            listed.setdefault(row["probe_image"], int(row["rank"]))
    checked = 0
    for i, r in enumerate(d.probes):
        if str(r.path) in listed:
            assert ranks[i] == listed[str(r.path)], r.path
            checked += 1
        elif not d.mated[i]:
            assert ranks[i] == 0
    assert checked >= 5
    assert run.result.conditions[0].lead_list.found_at_rank[1] == int((ranks == 1).sum())


def test_the_condition_task_travels_to_worker_processes():
    import functools
    import pickle

    from faceaudit.audit._engines import embed_under

    task = functools.partial(embed_under, condition=PRESETS["doorbell-night-3m"])
    back = pickle.loads(pickle.dumps(task))
    assert back.func is embed_under and back.keywords["condition"] == PRESETS["doorbell-night-3m"]


def test_the_report_has_a_probe_quality_section_for_an_audit_with_two_conditions(condition_run, tmp_path):
    """Headline on the worst condition, the per-condition table, one chart, the synthetic note; the
    first screen says in one sentence what the worst condition does; none without conditions."""
    import re

    from faceaudit.audit._conditions import SYNTHETIC_NOTE
    from faceaudit.audit._probe_quality import probe_quality_section
    from faceaudit.audit._report import render_report

    run, _, _ = condition_run
    res = json.loads(run.result.to_json())
    section = probe_quality_section(res)
    assert section is not None and section.thresholds == (80.0, 90.0)
    assert [r.name for r in section.rows] == [c.name for c in run.result.conditions]
    # the worst condition is the one missing most mates at 80, with its numbers from results.json
    worst = max(run.result.conditions[1:], key=lambda c: (c.rate("FNIR", 80.0).rate, c.failures_to_enrol))
    fnir = worst.rate("FNIR", 80.0)
    assert section.headline.startswith(f"Worst tested condition: {worst.name} (")
    assert f"missed {100 * fnir.rate:.1f}% of the mates at 80 ({fnir.errors} of {fnir.trials})" in section.headline
    clean_fnir = run.result.conditions[0].rate("FNIR", 80.0)
    assert f"against {100 * clean_fnir.rate:.1f}% on the photos as taken" in section.headline
    row = section.rows[[c.name for c in run.result.conditions].index(worst.name)]
    assert row.failures_to_enrol == worst.failures_to_enrol and row.rank1 == pytest.approx(worst.lead_list.at_rank[1])
    assert row.top20 == pytest.approx(worst.lead_list.at_rank[20])
    assert row.temptation_threshold == worst.temptation.threshold
    html = render_report(res)
    body = html[html.index('<h2 id="probe-quality">'):]
    assert body.count("<svg") == 1 and "nominal eye distance" in body
    assert SYNTHETIC_NOTE.split(":")[0] in body
    rows = re.findall(r"<tr><td class=\"n\">(\d+)</td><td><b>([^<]+)</b>", body)
    assert [name for _, name in rows] == [c.name for c in run.result.conditions]
    # one marker per degraded condition and measure, the photos as taken as dashed lines
    assert body.count('<circle cx=') == 2 + 1 and body.count('stroke-dasharray="6 4"') == 2  # legend circle too
    first_screen = html[html.index("<h2>What we found</h2>"):html.index("<h2>What this test can")]
    assert f"the worst tested condition, {worst.name}, made the model miss {100 * fnir.rate:.1f}%" in first_screen
    # an audit without conditions has no such section, nor the sentence
    plain = dict(res, conditions=[])
    assert probe_quality_section(plain) is None and "probe-quality" not in render_report(plain)


def _frame(metric, column, threshold, groups):
    from faceaudit._stats import wilson_interval

    def rate(e, t):
        return {"errors": e, "trials": t, "rate": e / t if t else None, "wilson95": list(wilson_interval(e, t))}

    return {"metric": metric, "threshold": threshold, "column": column, "side": "probe",
            "overall": rate(sum(e for e, _ in groups.values()), sum(t for _, t in groups.values())),
            "by_group": {g: rate(e, t) for g, (e, t) in groups.items()}}


def test_the_probe_quality_section_draws_one_line_per_group_large_enough():
    """Per group (issue 19 item 2): FNIR and false candidates per condition, one line per group with
    at least MIN_GROUP_MATED mated searches, the smaller groups named as left out, and a table with
    the counts and 95% intervals, all read from results.json's per-condition frames."""
    import re

    from faceaudit.audit._probe_quality import MIN_GROUP_MATED, probe_quality_section

    def condition(name, eye, fnir, false):
        frames = [_frame("FNIR", "race", 80.0, fnir), _frame("ACLU_COUNT", "race", 80.0, false),
                  _frame("FNIR", "sex", 80.0, {"F": (1, 5), "M": (2, 50)})]
        overall = {"FNIR": frames[0]["overall"], "ACLU_COUNT": frames[1]["overall"]}
        return {"name": name, "spec": name, "target_eye_distance": eye, "probes": 80, "failures_to_enrol": 0,
                "summaries": [{"threshold": 80.0, "overall": overall}], "frames": frames,
                "lead_list": {"at_rank": {"1": 0.9, "20": 0.95}}, "temptation": {"searches": 80}}

    small = MIN_GROUP_MATED - 1
    conditions = [
        condition("clean", None, {"a": (1, 30), "b": (0, 25), "c": (0, small)},
                  {"a": (1, 40), "b": (0, 30), "c": (0, 10)}),
        condition("doorbell-night-3m", 15.0, {"a": (28, 30), "b": (20, 25), "c": (small, small)},
                  {"a": (0, 40), "b": (2, 30), "c": (0, 10)}),
    ]
    section = probe_quality_section({"conditions": conditions})
    assert section is not None and section.groups is not None
    gv = section.groups
    assert gv.column == "race" and gv.groups == ("a", "b") and gv.left_out == (("c", small),)
    night_b = gv.cells[1][1]
    assert (night_b.fnir["errors"], night_b.fnir["trials"]) == (20, 25)
    assert (night_b.false_candidate["errors"], night_b.false_candidate["trials"]) == (2, 30)
    svg = str(gv.chart)
    assert svg.count("<polyline") == 2 * 2  # two panels, a line per drawn group
    assert "race b, 2. doorbell-night-3m: mates missed (FNIR) at 80 = 20 of 25 (80.0%; 95% interval" in svg
    from faceaudit.audit._html import render  # report.html.j2 includes this template

    body = render("probe_quality.html.j2", pq=section)
    assert 'id="probe-quality-groups"' in body and "Probe quality by race" in body
    assert re.search(r"20 / 25 = 80(\.0)?%<br><small>", body)  # the count and rate, then its interval
    assert f"c ({small})" in body  # the group left out, with its mated searches
    # group labels are data: escaped in the chart and the table
    evil = '<img src=x onerror="alert(1)">'
    hostile = [condition(c["name"], c["target_eye_distance"], {evil: (1, 30), "b": (0, 25)},
                         {evil: (1, 40), "b": (0, 30)}) for c in conditions]
    page = render("probe_quality.html.j2", pq=probe_quality_section({"conditions": hostile}))
    assert evil not in page and "&lt;img src=x" in page
    # with no column holding two groups large enough there is no per-group view
    for c in conditions:
        c["frames"] = [f for f in c["frames"] if f["column"] != "race"]
    assert probe_quality_section({"conditions": conditions}).groups is None


def test_results_json_keeps_each_conditions_frames_as_counts_that_recount(condition_run):
    """Issue 19 item 4: per condition, results.json holds the per-group counts only (compact form);
    every rate and Wilson interval recomputed from them equals the audit's own."""
    from faceaudit.audit._conditions import COMPACT_FRAMES, compact_frames, expand_frames

    run, _, _ = condition_run
    r = run.result
    data = json.loads(r.to_json())
    assert isinstance(data["frames"], list)  # the top level keeps the full form (bootstrap intervals too)
    for cond, doc in zip(r.conditions, data["conditions"], strict=True):
        assert doc["frames"]["form"] == COMPACT_FRAMES
        expanded = expand_frames(doc["frames"])
        assert len(expanded) == len(cond.frames)
        for mine, f in zip(expanded, cond.frames, strict=True):
            assert (mine["metric"], mine["column"], mine["side"]) == (f.metric, f.column, f.side)
            assert mine["threshold"] == pytest.approx(f.threshold)
            assert (mine["overall"]["errors"], mine["overall"]["trials"]) == (f.overall.errors, f.overall.trials)
            for g, rate in f.by_group.items():
                got = mine["by_group"][g]
                assert (got["errors"], got["trials"]) == (rate.errors, rate.trials)
                if rate.trials:
                    assert got["rate"] == pytest.approx(rate.rate, abs=1e-6)
                    assert got["wilson95"] == pytest.approx(list(rate.wilson95), abs=1e-6)
    full = json.dumps([dict(c, frames=expand_frames(c["frames"])) for c in data["conditions"]])
    assert len(json.dumps(data["conditions"])) < 0.6 * len(full)
    assert compact_frames(data["conditions"][0]["frames"]) is data["conditions"][0]["frames"]  # already compact
