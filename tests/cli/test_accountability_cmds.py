import json

from faceaudit.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_policy_set_get_and_log_verify(tmp_path, capsys):
    d = str(tmp_path)
    assert run(capsys, "policy", "set", "mug", "--law-enforcement", "--data-dir", d)[0] == 0
    code, out, _ = run(capsys, "policy", "get", "mug", "--data-dir", d, "--json")
    assert json.loads(out)["MinFaceMatchThreshold"] == 99.0
    code, out, _ = run(capsys, "log", "verify", "--data-dir", d)
    assert code == 0 and out.startswith("OK: 1 records")


def test_log_verify_tampered_exit_code_names_record(tmp_path, capsys):
    d = str(tmp_path)
    run(capsys, "policy", "set", "a", "--min-threshold", "95", "--data-dir", d)
    run(capsys, "policy", "set", "b", "--min-threshold", "99", "--data-dir", d)
    log = tmp_path / "search-log.jsonl"
    log.write_text(log.read_text().replace('"MinFaceMatchThreshold":99.0', '"MinFaceMatchThreshold":80.0'))
    code, _, err = run(capsys, "log", "verify", "--data-dir", d)
    assert code == 8 and "record 2" in err and "edited" in err


def test_log_export_json(tmp_path, capsys):
    d = str(tmp_path)
    run(capsys, "policy", "set", "a", "--min-threshold", "95", "--data-dir", d)
    code, out, _ = run(capsys, "log", "export", "--format", "json", "--data-dir", d)
    assert code == 0 and json.loads(out)[0]["kind"] == "policy"


def _lead(tmp_path):
    from faceaudit.accountability import Accountability, CallerContext, Candidate, SearchRecord

    acc = Accountability(tmp_path)
    acc.record(CallerContext("AKOPER", case_reference="c-1"),
               SearchRecord("SearchFacesByImage", "mug", "v1", 90.0, 5, "ab" * 32, [Candidate(95.0, face_id="f")]),
               probe=b"probe")
    return acc.leads()[0].lead_id


def test_cli_review_needs_two_distinct_keys(tmp_path, capsys, monkeypatch):
    from faceaudit.accountability import Accountability
    from faceaudit.service import KeyStore

    monkeypatch.setattr(Accountability, "face_image", lambda self, face_id: b"crop" if face_id else None)
    d = str(tmp_path)
    lead = _lead(tmp_path)
    store = KeyStore(tmp_path)
    alice, bob = store.create("operator", person="Alice"), store.create("reviewer", person="Bob")
    auditor = store.create("auditor", person="Carol")
    monkeypatch.setenv("FACEAUDIT_SECRET_ACCESS_KEY", "wrong")
    code, _, err = run(capsys, "review", "confirm", lead, "--access-key-id", alice.access_key_id, "--data-dir", d)
    assert code == 6 and "wrong secret" in err
    monkeypatch.setenv("FACEAUDIT_SECRET_ACCESS_KEY", auditor.secret)
    code, _, err = run(capsys, "review", "confirm", lead, "--access-key-id", auditor.access_key_id, "--data-dir", d)
    assert code == 6
    monkeypatch.setenv("FACEAUDIT_SECRET_ACCESS_KEY", alice.secret)
    code, out, _ = run(capsys, "review", "confirm", lead, "--access-key-id", alice.access_key_id, "--data-dir", d)
    assert code == 0 and "status pending (1 of 2" in out
    code, _, err = run(capsys, "review", "confirm", lead, "--access-key-id", alice.access_key_id, "--data-dir", d)
    assert code == 5 and "different person" in err
    monkeypatch.setenv("FACEAUDIT_SECRET_ACCESS_KEY", bob.secret)
    code, out, _ = run(capsys, "review", "confirm", lead, "--access-key-id", bob.access_key_id, "--data-dir", d,
                       "--json")
    doc = json.loads(out)
    assert doc["Status"] == "confirmed" and [x["Reviewer"] for x in doc["Decisions"]] == ["Alice", "Bob"]
    assert [x["AccessKeyId"] for x in doc["Decisions"]] == [alice.access_key_id, bob.access_key_id]


def test_cli_default_policy_and_listing(tmp_path, capsys):
    from faceaudit.collections import FaceCollections

    d = str(tmp_path)
    fc = FaceCollections(tmp_path)
    for cid in ("mine", "theirs"):
        fc.create_collection(collection_id=cid)
    assert run(capsys, "policy", "set-default", "--min-threshold", "95", "--data-dir", d)[0] == 0
    assert run(capsys, "policy", "set", "mine", "--law-enforcement", "--data-dir", d)[0] == 0
    _, out, _ = run(capsys, "policy", "list", "--data-dir", d, "--json")
    doc = json.loads(out)
    assert {p["CollectionId"]: p["Source"] for p in doc["Policies"]} == {"mine": "collection", "theirs": "default"}
    assert doc["DefaultPolicy"]["MinFaceMatchThreshold"] == 95
    _, out, _ = run(capsys, "policy", "list", "--data-dir", d)
    assert "relies on default" in out and "false-match rate" in out
    _, out, _ = run(capsys, "policy", "get", "theirs", "--data-dir", d)
    assert "relies on the deployment default" in out and "minimum threshold 95" in out
