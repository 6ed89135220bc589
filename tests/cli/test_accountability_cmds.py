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
    code, out, err = run(capsys, "log", "verify", "--data-dir", d)
    assert code == 8 and "record 2" in err and "edited" in err


def test_log_export_json(tmp_path, capsys):
    d = str(tmp_path)
    run(capsys, "policy", "set", "a", "--min-threshold", "95", "--data-dir", d)
    code, out, _ = run(capsys, "log", "export", "--format", "json", "--data-dir", d)
    assert code == 0 and json.loads(out)[0]["kind"] == "policy"
