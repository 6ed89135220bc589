"""`faceaudit report usage`: each figure is traceable to the log records it counts."""

import contextlib
import datetime as dt
import json

from faceaudit.accountability import (
    Accountability,
    CallerContext,
    Candidate,
    Reviewer,
    SearchRecord,
    ThresholdPolicy,
    check_anchors,
)
from faceaudit.accountability._usage import parse_day, render_html, usage_report
from faceaudit.cli import main

ADMIN = CallerContext("local:admin", role="admin")


def _activity(tmp_path, database_url=None):
    acc = Accountability(tmp_path, face_image=lambda face_id: b"\xff\xd8crop", database_url=database_url)
    acc.set_policy(ThresholdPolicy("mug", min_face_match_threshold=95.0), ADMIN)
    oper = CallerContext("AKSAM", person="Sam", case_reference="c-1", purpose="robbery")
    for i in range(3):
        acc.record(oper, SearchRecord("SearchFacesByImage", "mug", "v1", 96.0, 5, f"{i:02d}" * 32,
                                      [Candidate(97.0, face_id=f"f{i}")]), probe=b"probe%d" % i)
    with contextlib.suppress(Exception):  # the refusal is what is counted
        acc.authorize(oper, "SearchFacesByImage", "mug", 80.0, 5)
    leads = acc.leads("pending")
    acc.decide(leads[0].lead_id, Reviewer("AKA", "Alice"), "confirm")
    acc.decide(leads[0].lead_id, Reviewer("AKB", "Bob"), "confirm")
    acc.decide(leads[1].lead_id, Reviewer("AKB", "Bob"), "reject")
    return acc


def _day_of(acc) -> str:
    first = next(acc.log.records()).time
    return dt.datetime.fromtimestamp(first, dt.UTC).strftime("%Y-%m-%d")


def test_figures_trace_to_their_records(tmp_path, database_url):
    acc = _activity(tmp_path, database_url)
    start = parse_day(_day_of(acc))
    report = usage_report(acc, start, start + dt.timedelta(days=2))
    by_seq = {r.seq: r for r in acc.log.records()}
    assert report.searches.count == 3 and all(by_seq[s].kind == "search" for s in report.searches.records)
    (refusal,) = report.refusals
    assert refusal.count == 1 and by_seq[refusal.records[0]].kind == "refused"
    counts = {f.label: f.count for f in report.leads}
    assert counts == {"confirmed leads": 1, "rejected leads": 1, "pending leads": 1}
    assert all(by_seq[s].kind == "review" for f in report.leads[:2] for s in f.records)
    assert report.decision_times.n == 2 and report.policy_changes[0]["Policy"]["MinFaceMatchThreshold"] == 95.0
    assert report.log_ok and report.anchor["seq"] == report.log_records
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    (anchors / "report.json").write_text(json.dumps(report.anchor))
    assert check_anchors(acc.log, anchors).ok
    page = render_html(report)
    assert "leads confirmed by two people" in page and "false-match rate" in page
    # another period counts nothing
    empty = usage_report(acc, parse_day("2020-01-01"), parse_day("2020-02-01"), sign=False)
    assert empty.searches.count == 0 and empty.refusals == ()


def test_cli_report_usage(tmp_path, capsys):
    acc = _activity(tmp_path)
    today = _day_of(acc)
    end = (parse_day(today) + dt.timedelta(days=1)).strftime("%Y-%m-%d")  # a run across midnight
    code = main(["report", "usage", "--from", today, "--to", end, "--format", "json", "--data-dir", str(tmp_path)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["Searches"]["Count"] == 3 and doc["Log"]["Verified"]
    out = tmp_path / "usage.html"
    assert main(["report", "usage", "--from", today, "--to", end, "--out", str(out), "--data-dir",
                 str(tmp_path)]) == 0
    assert "identification searches" in out.read_text()
    assert main(["report", "usage", "--from", "2026-13-01", "--to", today, "--data-dir", str(tmp_path)]) == 2
