import json
import os
import signal
import subprocess
import sys
import time

from faceaudit.accountability import SearchLog, export_records
from tests.accountability._log_stores import log_store_fixture  # noqa: F401  (fixture log_store: JSONL and PostgreSQL)


def _fill(log, n=6):
    for i in range(n):
        log.append("search", {"operation": "SearchFacesByImage", "threshold": 80 + i, "candidates": []})
    return log


def _filled(tmp_path, n=6):
    return _fill(SearchLog(tmp_path / "log.jsonl"), n)


def _lines(log):
    return log.path.read_bytes().splitlines(keepends=True)


def test_untampered_log_verifies(log_store):
    log = _fill(log_store.log)
    result = log.verify()
    assert result.ok and result.records == 6 and result.head_hash == log.head()["hash"]
    assert [r.seq for r in log.records()] == [1, 2, 3, 4, 5, 6]


def test_edit_detected(log_store):
    log = _fill(log_store.log)
    lines = log_store.lines()
    rec = json.loads(lines[2])
    rec["data"]["threshold"] = 99  # someone raises the logged threshold after the fact
    lines[2] = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
    log_store.write(lines)
    result = log.verify()
    assert not result.ok and result.first_bad == 3 and "edited" in result.problem


def test_edit_with_recomputed_hash_detected_by_next_link(log_store):
    from faceaudit.accountability import record_hash

    log = _fill(log_store.log)
    lines = log_store.lines()
    rec = json.loads(lines[1])
    rec["data"]["threshold"] = 99
    rec["hash"] = record_hash(rec["seq"], rec["time"], rec["kind"], rec["data"], rec["prev"])
    lines[1] = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
    log_store.write(lines)
    result = log.verify()
    assert not result.ok and result.first_bad == 3


def test_delete_detected(log_store):
    log = _fill(log_store.log)
    lines = log_store.lines()
    del lines[3]
    log_store.write(lines)
    result = log.verify()
    assert not result.ok and result.first_bad == 4 and "removed" in result.problem


def test_reorder_detected(log_store):
    log = _fill(log_store.log)
    lines = log_store.lines()
    lines[1], lines[2] = lines[2], lines[1]
    log_store.write(lines)
    result = log.verify()
    assert not result.ok and result.first_bad == 2


def test_truncate_at_record_boundary_detected_by_head(log_store):
    log = _fill(log_store.log)
    log_store.write(log_store.lines()[:4])
    result = log.verify()
    assert not result.ok and "removed from the end" in result.problem and result.first_bad == 5


def test_truncate_with_head_rewritten_detected_by_published_head(log_store):
    log = _fill(log_store.log)
    published = log.head()["hash"]
    log_store.write(log_store.lines()[:4])
    last = list(log.records())[-1]
    log_store.write_head({"seq": last.seq, "hash": last.hash})
    assert log.verify().ok  # the stored records and head agree with each other...
    result = log.verify(expect_head=published)  # ...but not with the published head
    assert not result.ok and "published head" in result.problem


def test_torn_final_line_is_verifiable_and_repaired(tmp_path):
    log = _filled(tmp_path, 3)
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq":4,"time":1.0,"kind":"sea')  # crash mid-append
    result = log.verify()
    assert result.ok and result.records == 3 and result.torn_tail
    rec = log.append("search", {"operation": "SearchFaces"})
    assert rec.seq == 5 and log.verify().ok and not log.verify().torn_tail
    repair = list(log.records())[3]
    torn = b'{"seq":4,"time":1.0,"kind":"sea'
    assert repair.kind == "repair" and repair.data["quarantined_bytes"] == len(torn)
    assert (log.quarantine_dir / repair.data["quarantine_file"]).read_bytes() == torn
    (found,) = log.verify().repairs
    assert found.quarantine_ok and found.acknowledged_missing == 0 and found.after_seq == 3


def test_repair_never_removes_acknowledged_records(tmp_path):
    """Finding 2: remove the final newlines, search once more: the torn tail was cut and verify said OK."""
    log = _filled(tmp_path, 5)
    leads_point_at = {r.seq: r.hash for r in log.records()}
    acknowledged = log.path.read_bytes()
    lines = _lines(log)
    # join the last two acknowledged records into one line without a final newline
    log.path.write_bytes(b"".join(lines[:3]) + lines[3].rstrip(b"\n") + lines[4].rstrip(b"\n"))
    rec = log.append("search", {"operation": "SearchFaces"})
    assert rec.seq == 7  # seq 4 and 5 were acknowledged: never given again
    result = log.verify()
    assert not result.ok and result.acknowledged_missing == 2  # issue 22 L5: fails (it passed with a warning)
    (repair,) = result.repairs
    assert repair.acknowledged_missing == 2 and repair.after_seq == 3 and repair.quarantine_ok
    kept = (log.quarantine_dir / repair.quarantine_file).read_bytes()
    assert kept == acknowledged[len(b"".join(lines[:3])):].replace(b"\n", b"", 1).rstrip(b"\n")
    assert {r.seq for r in log.records()}.isdisjoint({4, 5}) and leads_point_at[3] in {r.hash for r in log.records()}
    (log.quarantine_dir / repair.quarantine_file).write_bytes(b"gone")  # the evidence must stay
    assert not log.verify().ok and "quarantine file" in log.verify().problem


def test_records_cut_at_a_line_boundary_are_recorded_by_the_next_append(tmp_path):
    log = _filled(tmp_path, 5)
    log.path.write_bytes(b"".join(_lines(log)[:3]))
    assert log.append("search", {}).seq == 7
    result = log.verify()
    assert not result.ok and result.repairs[0].acknowledged_missing == 2  # issue 22 L5: no longer OK
    assert "acknowledged are missing" in result.problem


def _rewrite(log, index, edit):
    lines = _lines(log)
    lines[index] = edit(lines[index])
    log.path.write_bytes(b"".join(lines))


def _rewrite_in(store, index, edit):
    lines = store.lines()
    lines[index] = edit(lines[index])
    store.write(lines)


def test_head_hash_checked_against_the_chain(log_store):
    """Finding 3: editing the last record and recomputing its hash passed."""
    from faceaudit.accountability import record_hash

    log = _fill(log_store.log, 3)

    def edit(line):
        rec = json.loads(line)
        rec["data"]["threshold"] = 99
        rec["hash"] = record_hash(rec["seq"], rec["time"], rec["kind"], rec["data"], rec["prev"])
        return (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()

    _rewrite_in(log_store, 2, edit)
    result = log.verify()
    head = "head file" if log_store.name == "jsonl" else "head row"
    assert not result.ok and f"{head}'s hash" in result.problem


def test_bytes_that_were_never_hashed_are_refused(log_store):
    """Finding 3: an extra field, duplicate keys inside data, seq written as "3" or 3.4 passed."""
    log = _fill(log_store.log, 3)
    original = log_store.lines()
    forgeries = {
        "extra field": lambda line: line[:-2] + b',"zz":"forged"}\n',
        "duplicate key": lambda line: line.replace(b'"data":{', b'"data":{"case_reference":"forged",', 1)
        .replace(b'"candidates"', b'"case_reference":"real","candidates"', 1),
        "seq as text": lambda line: line.replace(b'"seq":3', b'"seq":"3"'),
        "seq as float": lambda line: line.replace(b'"seq":3', b'"seq":3.0'),
        "spacing": lambda line: line.replace(b'"kind":', b'"kind": '),
    }
    for what, forge in forgeries.items():
        log_store.write(original)
        _rewrite_in(log_store, 2, forge)
        assert log_store.lines() != original, what
        result = log.verify()
        assert not result.ok and result.first_bad == 3 and "canonical" in result.problem, what


_WRITER = """
import sys
from faceaudit.accountability import SearchLog
log = SearchLog(sys.argv[1])
i = 0
while True:
    log.append("search", {"operation": "SearchFacesByImage", "i": i, "pad": "x" * 5000})
    i += 1
"""


def _complete_lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _wait_for(condition, what: str, limit: float = 300.0) -> None:
    """Poll ``condition`` until it holds (the generous limit only guards against a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_kill_9_mid_append_leaves_verifiable_log(tmp_path):
    path = tmp_path / "log.jsonl"
    for round_ in range(4):
        before = _complete_lines(path)
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path)]) for _ in range(2)]
        # kill once the writers have appended (a condition, not a fixed time: the machine may be loaded)
        _wait_for(lambda before=before, round_=round_: _complete_lines(path) >= before + 4 + 2 * round_,
                  "the writers to append")
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        result = SearchLog(path).verify()
        assert result.ok, result.problem
    assert result.records > 10
    assert SearchLog(path).append("search", {"after": "crashes"}).seq in (result.records + 1, result.records + 2)
    assert SearchLog(path).verify().ok


def test_export_csv_and_json(log_store):
    log = _fill(log_store.log, 2)
    records = list(log.records())
    as_json = json.loads(export_records(records, "json"))
    assert [r["seq"] for r in as_json] == [1, 2]
    as_csv = export_records(records, "csv").splitlines()
    assert as_csv[0].startswith("seq,time_utc,kind,operation") and len(as_csv) == 3


def test_log_file_private(tmp_path):
    log = _filled(tmp_path, 1)
    assert os.stat(log.path).st_mode & 0o077 == 0


def test_csv_export_neutralises_spreadsheet_formulas(log_store):
    log = log_store.log
    log.append("search", {"operation": "SearchFaces", "case_reference": "=HYPERLINK(\"http://x\")",
                          "purpose": "+1", "access_key_id": "@me"})
    import csv
    import io

    (row,) = list(csv.DictReader(io.StringIO(export_records(list(log.records()), "csv"))))
    assert row["case_reference"].startswith("'=") and row["purpose"] == "'+1" and row["access_key_id"] == "'@me"


def test_missing_acknowledged_records_fail_verify_with_their_own_exit_code(tmp_path):
    """Issue 22 L5: `log verify` exited 0 (with a WARNING) when acknowledged records were missing
    after a repair; without a repair it exited 8 like any other failure."""
    from tests.service.conftest import cli

    def filled(data, n):
        data.mkdir(mode=0o700)
        log = SearchLog(data / "search-log.jsonl")
        for i in range(n):
            log.append("search", {"operation": "SearchFacesByImage", "threshold": 80 + i})
        return log

    data = tmp_path / "data"
    log = filled(data, 5)
    log.path.write_bytes(b"".join(_lines(log)[:3]))  # records 4 and 5 removed at a line boundary
    r = cli("log", "verify", "--data-dir", str(data), check=False)
    assert r.returncode == 11 and "removed from the end" in r.stderr
    log.append("search", {})  # the next append records the cut in a repair record
    r = cli("log", "verify", "--data-dir", str(data), check=False)
    assert r.returncode == 11 and "acknowledged are missing" in r.stderr
    other = filled(tmp_path / "other", 3)
    _rewrite(other, 1, lambda line: line.replace(b'"kind":"search"', b'"kind":"searcH"'))
    assert cli("log", "verify", "--data-dir", str(tmp_path / "other"), check=False).returncode == 8


def test_a_head_file_without_its_hash_is_refused(tmp_path):
    """Issue 22 L6: a head file {"seq":0} over a truncated log was accepted."""
    log = _filled(tmp_path, 5)
    log.path.write_bytes(b"".join(_lines(log)[:2]))
    for head in ({"seq": 0}, {"seq": 2}, {"seq": 2, "hash": "x"}, {"seq": 0, "hash": "0" * 64}):
        log.head_path.write_text(json.dumps(head))
        result = log.verify()
        assert not result.ok and "head file is damaged" in result.problem, head


def test_csv_export_neutralises_every_formula_form(log_store):
    """Issue 22 L10: ` =1+1`, `|calc` and fullwidth `＝1+1` were written as they are."""  # noqa: RUF002 -- fullwidth on purpose
    import csv
    import io

    log = log_store.log
    log.append("search", {"operation": "SearchFaces", "case_reference": " =1+1", "purpose": "|calc",
                          "access_key_id": "\uff1d1+1"})
    (row,) = list(csv.DictReader(io.StringIO(export_records(list(log.records()), "csv"))))
    assert (row["case_reference"], row["purpose"], row["access_key_id"]) == ("' =1+1", "'|calc", "'\uff1d1+1")
