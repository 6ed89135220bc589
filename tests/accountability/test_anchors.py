"""Signed anchors of the search log (finding 3: recomputing the whole unkeyed chain passed verify)."""

import json
import os

from faceaudit.accountability import DeploymentKey, SearchLog, check_anchors, issue_anchor, record_hash
from tests.accountability._log_stores import JsonlStore, log_store_fixture  # noqa: F401  (fixture log_store: both stores)
from tests.service.conftest import cli


def _fill(log, n=4):
    for i in range(n):
        log.append("search", {"operation": "SearchFacesByImage", "threshold": 99, "case_reference": f"c{i}"})
    return log


def _filled(tmp_path, n=4):
    return _fill(SearchLog(tmp_path / "search-log.jsonl"), n)


def _rewrite_whole_chain(store, edit):
    """What an insider with file (or database) access can do: edit, then recompute every hash and the head."""
    prev, out = "0" * 64, []
    for line in store.lines():
        rec = json.loads(line)
        edit(rec)
        rec["prev"] = prev
        rec["hash"] = record_hash(rec["seq"], rec["time"], rec["kind"], rec["data"], prev)
        prev = rec["hash"]
        out.append(json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
    store.write(out)
    store.write_head({"seq": rec["seq"], "hash": prev})


def test_rewritten_chain_passes_alone_but_not_against_anchors(tmp_path, log_store):
    log = _fill(log_store.log)
    anchors = tmp_path / "oversight"
    anchors.mkdir()
    key = DeploymentKey(tmp_path)
    (anchors / "2026-01.json").write_text(json.dumps(issue_anchor(log, key)))
    log.append("search", {"operation": "SearchFaces"})
    (anchors / "2026-02.json").write_text(json.dumps(issue_anchor(log, key)))
    assert check_anchors(log, anchors).ok
    assert os.stat(key.path).st_mode & 0o777 == 0o600

    def forge(rec):
        if rec["data"].get("case_reference") == "c1":
            rec["data"]["case_reference"] = "a warrant that never existed"

    _rewrite_whole_chain(log_store, forge)
    assert log.verify().ok  # the unkeyed chain alone cannot tell
    report = check_anchors(log, anchors)
    assert not report.ok and all("rewritten" in c.problem for c in report.checks)


def test_altered_or_foreign_anchor_refused(tmp_path, log_store):
    log = _fill(log_store.log)
    anchors = tmp_path / "oversight"
    anchors.mkdir()
    anchor = issue_anchor(log, DeploymentKey(tmp_path))
    (anchors / "a.json").write_text(json.dumps({**anchor, "seq": anchor["seq"] - 1}))
    assert "signature invalid" in check_anchors(log, anchors).checks[0].problem
    other = issue_anchor(log, DeploymentKey(tmp_path / "elsewhere"))
    (anchors / "a.json").write_text(json.dumps(other))
    report = check_anchors(log, anchors, public_key=anchor["public_key"])
    assert not report.ok and "another key" in report.checks[0].problem
    assert report.not_handed_over  # the log knows of anchors the directory lacks


def test_cli_anchor_and_verify(tmp_path):
    data = tmp_path / "data"
    _filled(data)
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    out = cli("log", "anchor", "--data-dir", str(data), "--out", str(anchors / "jan.json"))
    assert "anchored record 4" in out.stdout
    ok = cli("log", "verify", "--data-dir", str(data), "--anchors", str(anchors))
    assert "agrees with 1 signed anchor" in ok.stdout
    _rewrite_whole_chain(JsonlStore(data), lambda rec: rec["data"].update(threshold=80) if rec["seq"] == 2 else None)
    bad = cli("log", "verify", "--data-dir", str(data), "--anchors", str(anchors), check=False)
    assert bad.returncode == 8 and "rewritten" in bad.stdout
