"""`faceaudit db migrate`: a single-host data dir into PostgreSQL, the same search log (issue 21)."""

from __future__ import annotations

import json

from faceaudit.accountability import PostgresSearchLog, SearchLog
from faceaudit.cli import main
from tests.conftest import portrait_2014


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _deployment(capsys, data: str) -> None:
    """A data dir as a single host leaves it: a collection, faces, a policy and searches (logged)."""
    face = str(portrait_2014("C000141"))
    for argv in (("collection", "create", "mug"), ("index", "mug", face),
                 ("policy", "set", "mug", "--min-threshold", "95"),
                 ("search", "mug", face, "--case-reference", "case-1", "--threshold", "95"),
                 ("search", "mug", face, "--case-reference", "case-2", "--threshold", "99")):
        code, _, err = run(capsys, *argv, "--data-dir", data)
        assert code == 0, (argv, err)


def test_migrate_copies_the_search_log_record_for_record_and_verifies_it(tmp_path, capsys, postgres_url):
    data = str(tmp_path / "data")
    _deployment(capsys, data)
    from faceaudit.collections._jobs import JobStore  # a stored-video job (queued) to carry along

    JobStore(tmp_path / "data").submit("face-detection", {"Video": {"S3Object": {"Bucket": "b", "Name": "v.mp4"}}},
                                       None, None, {})
    source = SearchLog(tmp_path / "data" / "search-log.jsonl")
    local = source.verify()
    assert local.ok and local.records >= 3  # the policy and both searches (and whatever else is logged)
    assert {r.kind for r in source.records()} >= {"policy", "search"}

    code, out, err = run(capsys, "db", "migrate", "--from", data, "--to", postgres_url, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["LogRecords"], doc["LogHead"]) == (local.records, local.head_hash)
    assert doc["Tables"]["collections.collections"] == 1 and doc["Tables"]["collections.faces"] == 1
    assert doc["Tables"]["collections.face_log"] >= 1 and "collections.sqlite3" not in doc["NotCopied"]
    assert doc["Tables"]["video jobs.video_jobs"] == 1 and doc["Tables"]["video jobs.video_job_items"] == 0

    # the same records, byte for byte: the export of the database log is the JSONL file
    exported = tmp_path / "export.jsonl"
    assert PostgresSearchLog(postgres_url).export_jsonl(exported) == local.records
    assert exported.read_bytes() == source.path.read_bytes()
    assert SearchLog(exported).verify().head_hash == local.head_hash

    # every command reads it through --database (another host: a data dir of its own)
    other = str(tmp_path / "host-b")
    code, out, err = run(capsys, "log", "verify", "--database", postgres_url, "--data-dir", other)
    assert code == 0 and out.startswith(f"OK: {local.records} records"), (out, err)
    code, out, _ = run(capsys, "--database", postgres_url, "log", "export", "--format", "json",
                       "--data-dir", other)
    assert [r["hash"] for r in json.loads(out)] == [r.hash for r in source.records()]

    # the collections came along: another host finds the face in the database, and logs it there
    face = str(portrait_2014("C000141"))
    code, out, err = run(capsys, "search", "mug", face, "--threshold", "99", "--database", postgres_url,
                         "--data-dir", other, "--json")
    assert code == 0 and json.loads(out)["FaceMatches"], err
    code, _, err = run(capsys, "faces", "list", "mug", "--database", postgres_url, "--data-dir", other)
    assert code == 0, err
    grown = PostgresSearchLog(postgres_url).verify(expect_head=local.head_hash)
    assert grown.ok and grown.records == local.records + 1

    # appends go on after the copied head, on the same chain
    code, _, err = run(capsys, "policy", "set", "mug", "--min-threshold", "99", "--database", postgres_url,
                       "--data-dir", other)
    assert code == 0, err
    after = PostgresSearchLog(postgres_url).verify(expect_head=local.head_hash)
    assert after.ok and after.records == local.records + 2

    # a second migrate into the same database is refused, and changes nothing
    code, _, err = run(capsys, "db", "migrate", "--from", data, "--to", postgres_url)
    assert code == 5 and "already holds data" in err and "search_log" in err, err
    assert PostgresSearchLog(postgres_url).verify().records == local.records + 2


def test_a_log_that_does_not_verify_is_not_copied(tmp_path, capsys, postgres_url):
    data = tmp_path / "data"
    for threshold in ("95", "99"):
        assert run(capsys, "policy", "set", "mug", "--min-threshold", threshold, "--data-dir", str(data))[0] == 0
    log = data / "search-log.jsonl"
    log.write_text(log.read_text().replace('"MinFaceMatchThreshold":99.0', '"MinFaceMatchThreshold":80.0'))
    code, _, err = run(capsys, "db", "migrate", "--from", str(data), "--to", postgres_url)
    assert code == 8 and "does not verify" in err and "nothing was copied" in err, err
    assert PostgresSearchLog(postgres_url).head() is None


def test_an_empty_data_dir_migrates_an_empty_log(tmp_path, capsys, postgres_url):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    code, out, err = run(capsys, "db", "migrate", "--from", str(data), "--to", postgres_url)
    assert code == 0 and "copied into" in out, err
    assert PostgresSearchLog(postgres_url).verify().records == 0


def test_bad_targets_are_typed_errors_that_never_show_the_password(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    code, _, err = run(capsys, "db", "migrate", "--from", str(data), "--to", "mysql://u:hunter2@h/db")
    assert code == 2 and "PostgreSQL URL" in err and "hunter2" not in err
    code, _, err = run(capsys, "db", "migrate", "--from", str(tmp_path / "none"), "--to", "postgresql://h/db")
    assert code == 2 and "no such data dir" in err
    # a server that cannot be reached: a clear 'try again later', no traceback, no password
    code, _, err = run(capsys, "db", "migrate", "--from", str(data), "--to",
                       "postgresql://u:hunter2@127.0.0.1:1/db")
    assert code == 8 and "cannot be reached" in err and "hunter2" not in err and "Traceback" not in err
    code, _, err = run(capsys, "log", "verify", "--database", "postgresql://u:hunter2@127.0.0.1:1/db",
                       "--data-dir", str(data))
    assert code == 8 and "hunter2" not in err
    code, _, err = run(capsys, "--database", "redis://u:hunter2@h", "log", "verify", "--data-dir", str(data))
    assert code == 2 and "--database" in err and "hunter2" not in err


def test_the_target_defaults_to_the_settings_database(tmp_path, capsys, monkeypatch, postgres_url):
    data = tmp_path / "data"
    assert run(capsys, "policy", "set", "mug", "--min-threshold", "95", "--data-dir", str(data))[0] == 0
    code, _, err = run(capsys, "db", "migrate", "--from", str(data))
    assert code == 2 and "--to" in err
    monkeypatch.setenv("FACEAUDIT_DATABASE_URL", postgres_url)
    code, out, err = run(capsys, "db", "migrate", "--from", str(data), "--json")
    assert code == 0 and json.loads(out)["LogRecords"] == 1, err
