"""The testing API on several hosts (issue 21 item 3): with a PostgreSQL database_url, an audit's
status and result files live in the database, so any host answers for an audit another ran."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.accountability.test_testing_api import _archive
from tests.conftest import wait_until

AUDITOR = SimpleNamespace(access_key_id="AKAUDITOR", role="auditor")
OTHER = SimpleNamespace(access_key_id="AKOTHER", role="auditor")
ADMIN = SimpleNamespace(access_key_id="AKADMIN", role="admin")


def _params():
    return {"Archive": _archive(), "Probes": ["probes.csv"], "Gallery": ["gallery.csv"], "Thresholds": [80, 99]}


def test_an_audit_run_on_one_host_is_answered_by_another(tmp_path, postgres_url):
    from faceaudit.accountability import TestingAPI

    a = TestingAPI(tmp_path / "host-a", database_url=postgres_url)
    b = TestingAPI(tmp_path / "host-b", database_url=postgres_url)
    audit_id = a.call(AUDITOR, "StartAudit", _params())["AuditId"]
    assert b.call(AUDITOR, "DescribeAudit", {"AuditId": audit_id})["Status"] in ("QUEUED", "RUNNING", "SUCCEEDED")
    done = wait_until(lambda: (d := b.call(AUDITOR, "DescribeAudit", {"AuditId": audit_id}))["Status"]
                      in ("SUCCEEDED", "FAILED") and d, "the audit to end", interval=0.2)
    assert done["Status"] == "SUCCEEDED", done
    assert done["Results"]["thresholds"] and "ResultsKeptUntil" in done and "Host" not in done
    text = json.dumps(done["Results"]) + b.call(AUDITOR, "GetAuditReport", {"AuditId": audit_id})["ReportHtml"]
    assert str(tmp_path) not in text  # no server path of the host that ran it
    assert "<html" in text.lower()
    assert [x["AuditId"] for x in b.call(ADMIN, "ListAudits", {})["Audits"]] == [audit_id]
    assert b.call(OTHER, "ListAudits", {})["Audits"] == []  # each auditor sees only their own
    from faceaudit._errors import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        b.call(OTHER, "DescribeAudit", {"AuditId": audit_id})
    # nothing of it is left on the disk of the host that ran it: all of it is in the database
    assert not (tmp_path / "host-a" / "audits" / audit_id).exists()
    assert a.call(AUDITOR, "DescribeAudit", {"AuditId": audit_id}) == done


def test_a_dead_hosts_audits_read_failed_and_free_their_slots(tmp_path, postgres_url, monkeypatch):
    from faceaudit.accountability import TestingAPI, _testing

    monkeypatch.setattr(TestingAPI, "_run", lambda self, audit_id: None)  # stay QUEUED
    a = TestingAPI(tmp_path / "host-a", database_url=postgres_url)
    b = TestingAPI(tmp_path / "host-b", database_url=postgres_url)
    ids = [a.call(AUDITOR, "StartAudit", _params())["AuditId"] for _ in range(_testing.MAX_PENDING)]
    with pytest.raises(_testing.LimitExceededError):  # host A's pending audits count on host B
        b.call(AUDITOR, "StartAudit", _params())
    # host A died: its audits were recorded by another machine and its heartbeats stopped
    with a._db.session(write=True) as conn:
        for audit_id in ids:
            status = json.loads(conn.execute("SELECT status FROM testing_audits WHERE audit_id = ?",
                                             (audit_id,)).fetchone()[0])
            status["Host"] = "host-a.example@00000000-0000-0000-0000-000000000000"
            conn.execute("UPDATE testing_audits SET status = ? WHERE audit_id = ?", (json.dumps(status), audit_id))
    assert b.call(AUDITOR, "DescribeAudit", {"AuditId": ids[0]})["Status"] == "QUEUED"  # the lease holds
    with a._db.session(write=True) as conn:
        conn.execute("UPDATE testing_audits SET heartbeat = heartbeat - ?", (_testing.AUDIT_LEASE_S + 1,))
    described = b.call(AUDITOR, "DescribeAudit", {"AuditId": ids[0]})
    assert described["Status"] == "FAILED" and "stopped" in described["Error"]
    assert b.call(AUDITOR, "StartAudit", _params())["Status"] == "QUEUED"  # their slots are free again


def test_database_urls_the_testing_api_accepts(tmp_path):
    from faceaudit._errors import InvalidParameterError
    from faceaudit.accountability import TestingAPI

    api = TestingAPI(tmp_path, database_url=f"sqlite:///{tmp_path / 'collections.db'}")  # one host: files
    assert api.call(ADMIN, "ListAudits", {}) == {"Audits": []} and api._db is None
    with pytest.raises(InvalidParameterError, match="postgresql://"):
        TestingAPI(tmp_path, database_url="mysql://db.example/faceaudit")
