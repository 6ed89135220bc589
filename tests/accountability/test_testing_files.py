"""Issue 22 L9: the testing API's files. results.json and the report show no server path,
candidates.csv cells a spreadsheet would run are neutralised, `Thresholds []` and ZIP entry
names with drive letters are refused."""

from __future__ import annotations

import base64
import csv
import io
import json
import zipfile

import pytest

from tests.accountability.test_http import native
from tests.accountability.test_testing_api import _zip, served, served_dir  # noqa: F401 - the fixture
from tests.conftest import MEMBERS, portrait_2014, portrait_2018, wait_until


@pytest.mark.parametrize("name", ["C:/evil.txt", "c:evil.txt", "D:\\\\x", "img/a:b.jpg", "//server/share/x"])
def test_zip_entry_names_with_drive_letters_are_refused(served, name):  # noqa: F811
    url, keys = served
    status, doc = native(url, keys["auditor"], "StartAudit", {
        "Archive": _zip({name: b"x", "probes.csv": b"image,subject\n", "gallery.csv": b"image,subject\n"}),
        "Probes": ["probes.csv"], "Gallery": ["gallery.csv"]})
    assert status == 400 and "unsafe path" in doc["message"]


def test_empty_thresholds_refused(served):  # noqa: F811
    url, keys = served
    status, doc = native(url, keys["auditor"], "StartAudit", {
        "Archive": _zip({"probes.csv": b"image,subject\n"}), "Probes": ["probes.csv"], "Gallery": ["probes.csv"],
        "Thresholds": []})
    assert status == 400 and "Thresholds" in doc["message"]


def _formula_archive() -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        probes, gallery = ["image,subject"], ["image,subject"]
        for b in MEMBERS[:4]:
            zf.writestr(f"img/p_{b}.jpg", portrait_2018(b).read_bytes())
            zf.writestr(f"img/g_{b}.jpg", portrait_2014(b).read_bytes())
            probes.append(f"img/p_{b}.jpg,=1+{b}")
            gallery.append(f"img/g_{b}.jpg,=1+{b}")
        zf.writestr("probes.csv", "\n".join(probes) + "\n")
        zf.writestr("gallery.csv", "\n".join(gallery) + "\n")
    return base64.b64encode(buf.getvalue()).decode()


def test_results_show_no_server_path_and_candidates_csv_runs_no_formula(served):  # noqa: F811
    url, keys = served
    status, doc = native(url, keys["auditor"], "StartAudit", {
        "Archive": _formula_archive(), "Probes": ["probes.csv"], "Gallery": ["gallery.csv"], "Thresholds": [50]})
    assert status == 200, doc
    audit_id = doc["AuditId"]

    def finished():
        _, d = native(url, keys["auditor"], "DescribeAudit", {"AuditId": audit_id})
        return d if d["Status"] in ("SUCCEEDED", "FAILED") else None

    doc = wait_until(finished, "the audit to finish", interval=0.2)
    assert doc["Status"] == "SUCCEEDED", doc
    data_dir = str(served_dir(url))
    assert data_dir not in json.dumps(doc["Results"])
    _, rep = native(url, keys["auditor"], "GetAuditReport", {"AuditId": audit_id})
    assert data_dir not in rep["ReportHtml"]
    with open(served_dir(url) / "audits" / audit_id / "out" / "candidates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["probe_subject"].startswith("'=1+") and r["candidate_subject"].startswith("'=1+")
                        for r in rows)
