"""The report's first screen, computed from results.json (issue 23 item 2): the match-count point beside
the ACLU-rate point, within-group findings, composition tests by sample size, the calibration overlap.

Expectations are recounted from the published results.json, never typed in, so a regenerated
reproduction keeps these tests meaningful."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from faceaudit.audit._headline import (
    calibration_overlap,
    equivalent_point,
    first_screen,
    match_points,
    within_group_findings,
)

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "public-audit" / "sface" / "results.json"
ACLU = -math.log1p(-28 / 535) / 25_000


@pytest.fixture(scope="module")
def res():
    return json.loads(PUBLISHED.read_text(encoding="utf-8"))


def test_the_ACLU_rate_point_is_the_first_threshold_at_or_below_its_rate(res):
    e = equivalent_point(res)
    assert e is not None and e.target == pytest.approx(ACLU) and e.trials == res["counts"]["impostor_comparisons"]
    pts = sorted((t, f) for t, f, _ in res["curves"]["det"][""]["all"])
    assert e.errors / e.trials <= ACLU
    assert all(f > ACLU for t, f in pts if t < e.t)
    (mp,) = match_points(res)
    assert mp.fmr_ratio == pytest.approx(mp.fmr["rate"] / ACLU) and mp.t < e.t


def test_the_ACLU_rate_point_counts_searches_from_candidates_when_not_audited(res):
    e = equivalent_point(res)
    rows = [{"mated": "false", "similarity": f"{e.t + 0.5:.2f}", "probe_image": "a.jpg"},
            {"mated": "false", "similarity": f"{e.t + 1:.2f}", "probe_image": "a.jpg"},
            {"mated": "false", "similarity": f"{e.t - 0.01:.2f}", "probe_image": "b.jpg"},
            {"mated": "true", "similarity": "99", "probe_image": "c.jpg"}]
    low = copy.deepcopy(res)
    low["candidates_floor"] = math.floor(e.t) - 1
    assert equivalent_point(low, rows).searches == 1  # a.jpg once; b below; c's candidate is its mate
    high = copy.deepcopy(res)
    high["candidates_floor"] = math.ceil(e.t) + 1  # candidates.csv starts above the point
    assert equivalent_point(high, rows).searches is None


def test_too_few_comparisons_never_name_a_threshold(res):
    few = copy.deepcopy(res)
    few["counts"]["impostor_comparisons"] = 100_000
    assert equivalent_point(few).t is None


def test_within_group_findings_are_recounted_from_the_who_to_whom_tables(res):
    found = within_group_findings(res)
    assert found
    ratios = [w.ratio for w in found]
    assert ratios == sorted(ratios, reverse=True) and all(r >= 2 for r in ratios)
    top = found[0]
    ct = next(c for c in res["cross_tables"] if c["column"] == c["gallery_column"] == top.column
              and c["threshold"] == top.t)
    row = ct["cells"][top.group]
    others = [r for g, r in row.items() if g not in (top.group, "unknown")]
    across = sum(r["errors"] for r in others) / sum(r["trials"] for r in others)
    assert top.within == row[top.group] and top.ratio == pytest.approx(row[top.group]["rate"] / across)


def test_composition_bullets_come_largest_sample_first(res):
    shares = first_screen(res).shares
    sizes = [st["matched"]["trials"] for st, _ in shares]
    assert len(sizes) >= 2 and sizes == sorted(sizes, reverse=True)


def test_the_calibration_overlap_is_read_from_the_model_calibration(res):
    o = calibration_overlap(res)
    assert o is not None and set(o.manifests) <= {"former_members.csv", "meds.csv"}
    gallery = [m for m in res["manifests"] if m["side"] == "gallery"]
    assert o.overlap == sum(m["rows"] for m in gallery if Path(m["path"]).name in o.manifests)
    assert o.gallery == sum(m["rows"] for m in gallery)
    at80 = next(r for r in o.independent if r.t == 80.0)
    frame = next(f for f in res["frames"] if f["metric"] == "FMR" and f["side"] == "gallery"
                 and f["column"] == "dataset" and f["threshold"] == 80.0)
    assert at80.fmr["trials"] == frame["by_group"]["congress2014"]["trials"]
    assert at80.fmr["errors"] == frame["by_group"]["congress2014"]["errors"] and at80.promised == pytest.approx(1e-5)


def test_no_calibration_overlap_for_an_engine_faceaudit_did_not_calibrate(res):
    other = copy.deepcopy(res)
    other["engine"]["kind"] = "rekognition"
    assert calibration_overlap(other) is None
    other = copy.deepcopy(res)
    other["manifests"] = [m for m in other["manifests"] if "former" not in m["path"] and "meds" not in m["path"]]
    assert calibration_overlap(other) is None
