"""The testing API: an auditor key audits the deployed model over HTTP, never seeing a collection."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest

from tests.accountability.test_http import native
from tests.conftest import MEMBERS, portrait_2014, portrait_2018, wait_until
from tests.service.conftest import create_key


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from faceaudit.accountability import AccountabilityExtension, TestingAPI
    from faceaudit.service import ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    d = tmp_path_factory.mktemp("testing-api")
    keys = {r: create_key(d, r) for r in ("auditor", "operator", "admin")}
    keys["auditor2"] = create_key(d, "auditor")
    app = ServiceApp(ServiceConfig(d, rate_limit=10_000),
                     extension=AccountabilityExtension(d, testing=TestingAPI(d)))
    srv, thread, url = start_in_thread(app)
    _DIRS[url] = d
    yield url, keys
    stop_thread_server(srv, thread)


_DIRS: dict[str, Path] = {}


def served_dir(url):
    return _DIRS[url]


def _archive() -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        probes = ["image,subject,sex"]
        gallery = ["image,subject,sex"]
        for i, b in enumerate(MEMBERS):
            sex = "F" if i < 4 else "M"
            zf.writestr(f"img/p_{b}.jpg", portrait_2018(b).read_bytes())
            probes.append(f"img/p_{b}.jpg,{b},{sex}")
            if i % 4 != 3:  # two members have no mate in the gallery: non-mated searches
                zf.writestr(f"img/g_{b}.jpg", portrait_2014(b).read_bytes())
                gallery.append(f"img/g_{b}.jpg,{b},{sex}")
        zf.writestr("probes.csv", "\n".join(probes) + "\n")
        zf.writestr("gallery.csv", "\n".join(gallery) + "\n")
    return base64.b64encode(buf.getvalue()).decode()


def test_auditor_runs_an_audit_and_gets_results_and_report(served):
    url, keys = served
    status, doc = native(url, keys["auditor"], "StartAudit", {
        "Archive": _archive(), "Probes": ["probes.csv"], "Gallery": ["gallery.csv"],
        "Thresholds": [80, 90], "GroupBy": ["sex"]})
    assert status == 200, doc
    audit_id = doc["AuditId"]

    def finished():
        _, d = native(url, keys["auditor"], "DescribeAudit", {"AuditId": audit_id})
        return d if d["Status"] in ("SUCCEEDED", "FAILED") else None

    doc = wait_until(finished, "the audit to finish", interval=0.2)
    assert doc["Status"] == "SUCCEEDED", doc
    assert doc["ResultsKeptUntil"] > doc["FinishedAt"]  # results kept for a stated time
    work = served_dir(url) / "audits" / audit_id
    assert not (work / "input").exists() and not list(work.glob("embeddings.sqlite*"))  # inputs gone
    results = doc["Results"]
    text = json.dumps(results)
    assert results["engine"]["kind"] == "local" and "sex" in text
    assert str(served_dir(url)) not in text  # no server folder: manifests as named in the archive
    assert sorted(m["path"] for m in results["manifests"]) == ["gallery.csv", "probes.csv"]
    status, rep = native(url, keys["auditor"], "GetAuditReport", {"AuditId": audit_id})
    assert status == 200 and rep["ReportHtml"].lstrip().lower().startswith("<!doctype html")
    # another auditor cannot see it; an operator cannot use the testing API at all
    status, doc = native(url, keys["auditor2"], "DescribeAudit", {"AuditId": audit_id})
    assert status == 400 and doc["__type"] == "ResourceNotFoundException"
    status, doc = native(url, keys["operator"], "StartAudit", {})
    assert status == 400 and doc["__type"] == "AccessDeniedException"
    _, listing = native(url, keys["admin"], "ListAudits", {})
    assert [a["AuditId"] for a in listing["Audits"]] == [audit_id]


@pytest.mark.parametrize("make, message", [
    (lambda: "not base64!!", "base64"),
    (lambda: base64.b64encode(b"not a zip").decode(), "ZIP"),
    (lambda: _zip({"../evil.csv": b"x"}), "unsafe path"),
    (lambda: _zip({"probes.csv": b"image,subject\n"}), "gallery.csv"),
    (lambda: _zip({"x": b"1", "x/y": b"2"}), "both a file and a directory"),
    (lambda: _zip({"x/y": b"2", "x": b"1"}), "both a file and a directory"),
    (lambda: _zip({"probes.csv": b"image,subject\n", "gallery.csv/a": b""}), "gallery.csv"),
    (lambda: _zip({"probes.csv": b"\xff\xfe\x00bad", "gallery.csv": b"image,subject\n"}), "probes.csv"),
    (lambda: _zip_twice("probes.csv"), "twice"),
])
def test_bad_archives_refused(served, make, message):
    url, keys = served
    status, doc = native(url, keys["auditor"], "StartAudit", {
        "Archive": make(), "Probes": ["probes.csv"], "Gallery": ["gallery.csv"]})
    assert status == 400 and doc["__type"] == "InvalidParameterException" and message in doc["message"]


def _zip_twice(name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, b"image,subject\n")
        with pytest.warns(UserWarning):
            zf.writestr(name, b"image,subject\n")
    return base64.b64encode(buf.getvalue()).decode()


def _zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


def test_too_many_pending_audits_refused(tmp_path):
    import os

    from faceaudit.accountability import TestingAPI
    from faceaudit.accountability._testing import MAX_PENDING, LimitExceededError

    api = TestingAPI(tmp_path)
    for i in range(MAX_PENDING):
        d = tmp_path / "audits" / f"{i:032x}"
        d.mkdir(parents=True)
        (d / "status.json").write_text(json.dumps({
            "AuditId": d.name, "Owner": "k", "Status": "RUNNING", "SubmittedAt": i, "Pid": os.getpid()}))
    with pytest.raises(LimitExceededError):
        api.start("k", {"Archive": _archive(), "Probes": ["probes.csv"], "Gallery": ["gallery.csv"]})
    (tmp_path / "audits" / f"{0:032x}" / "status.json").write_text(json.dumps({
        "AuditId": f"{0:032x}", "Owner": "k", "Status": "RUNNING", "SubmittedAt": 0, "Pid": 2**22 + 12345}))
    # a stale RUNNING audit of a dead process no longer counts: accepted
    assert api.start("k", {"Archive": _archive(), "Probes": ["probes.csv"], "Gallery": ["gallery.csv"]})["AuditId"]


def _start_params():
    return {"Archive": _archive(), "Probes": ["probes.csv"], "Gallery": ["gallery.csv"]}


def test_pending_limit_holds_for_simultaneous_starts(tmp_path, monkeypatch, database_url):
    # 12 StartAudit calls at once, each through its own TestingAPI (as worker processes have; with a
    # database, as two hosts' processes have: two data dirs): only MAX_PENDING get in
    import threading

    from faceaudit.accountability import TestingAPI
    from faceaudit.accountability._testing import MAX_PENDING, LimitExceededError

    monkeypatch.setattr(TestingAPI, "_run", lambda self, audit_id: None)  # stay QUEUED
    params = _start_params()
    outcomes, go = [], threading.Barrier(12)

    def start(i):
        api = TestingAPI(tmp_path / (f"host-{i % 2}" if database_url else ""), database_url=database_url)
        go.wait(30)
        try:
            outcomes.append(api.start("k", dict(params))["AuditId"])
        except LimitExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(outcomes) == 12 and outcomes.count("refused") == 12 - MAX_PENDING


def test_disk_quota_per_auditor(tmp_path, monkeypatch, database_url):
    from faceaudit import ServiceQuotaExceededError
    from faceaudit.accountability import TestingAPI, _testing

    monkeypatch.setattr(TestingAPI, "_run", lambda self, audit_id: None)
    api = TestingAPI(tmp_path, database_url=database_url)
    one = api.start("a", _start_params())["AuditId"]
    size = sum(f.stat().st_size for f in (tmp_path / "audits" / one).rglob("*") if f.is_file())
    monkeypatch.setattr(_testing, "AUDITOR_QUOTA_BYTES", int(size * 1.5))
    with pytest.raises(ServiceQuotaExceededError):
        api.start("a", _start_params())
    assert api.start("b", _start_params())["AuditId"]  # another auditor has their own quota


def test_ended_audits_lose_inputs_then_results(tmp_path, monkeypatch):
    import time

    from faceaudit.accountability import TestingAPI, _testing

    monkeypatch.setattr(TestingAPI, "_run", lambda self, audit_id: None)
    api = TestingAPI(tmp_path)
    old, recent = (api.start("a", _start_params())["AuditId"] for _ in range(2))
    for audit_id, ended in ((old, time.time() - _testing.RESULTS_KEPT_SECONDS - 10), (recent, time.time())):
        status = api._status(audit_id)
        status.update(Status="SUCCEEDED", FinishedAt=ended)
        api._write_status(audit_id, status)
        (tmp_path / "audits" / audit_id / "out").mkdir()
    api.start("a", _start_params())  # each start sweeps
    assert not (tmp_path / "audits" / old).exists()  # past the stated time: gone
    assert (tmp_path / "audits" / recent / "out").is_dir()  # results kept
    assert not (tmp_path / "audits" / recent / "input").exists()  # inputs gone
