"""`faceaudit db migrate` with every store registered (issue 21): collections, video jobs, the
accountability store (policies, leads, lead_sync by seq) and the access keys, read by another host."""

from __future__ import annotations

import json

from faceaudit.cli import main
from faceaudit.collections._jobs import JobStore
from tests.conftest import portrait_2014


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_store_moves_and_another_host_carries_on(tmp_path, capsys, postgres_url):
    data = str(tmp_path / "data")
    face = str(portrait_2014("C000141"))
    for argv in (("collection", "create", "mug"), ("index", "mug", face),
                 ("index", "mug", str(portrait_2014("B000944"))),
                 ("policy", "set", "mug", "--min-threshold", "95"),
                 ("search", "mug", face, "--case-reference", "case-1", "--threshold", "95"),
                 ("keys", "create", "--person", "P")):
        code, _, err = run(capsys, *argv, "--data-dir", data)
        assert code == 0, (argv, err)
    JobStore(tmp_path / "data").submit("face-detection", {"Video": {"S3Object": {"Bucket": "b", "Name": "v.mp4"}}},
                                       None, None, {})
    code, out, err = run(capsys, "db", "migrate", "--from", data, "--to", postgres_url, "--json")
    assert code == 0, err
    tables = json.loads(out)["Tables"]
    assert (tables["collections.faces"], tables["video jobs.video_jobs"], tables["accountability.policies"],
            tables["accountability.leads"], tables["keys.access_keys"]) == (2, 1, 1, 1, 1)
    assert json.loads(out)["NotCopied"] == []
    other = str(tmp_path / "host-b")
    code, _, err = run(capsys, "search", "mug", face, "--threshold", "90", "--database", postgres_url,
                       "--data-dir", other)
    assert code == 6 and "95" in err  # the copied policy holds on the other host
    code, out, err = run(capsys, "search", "mug", face, "--threshold", "99", "--database", postgres_url,
                         "--data-dir", other, "--json")
    assert code == 0 and json.loads(out)["FaceMatches"], err
    code, out, _ = run(capsys, "review", "list", "--json", "--database", postgres_url, "--data-dir", other)
    assert code == 0 and len(json.loads(out)["Leads"]) == 2  # the copied lead and the new one, each once
    code, out, _ = run(capsys, "keys", "list", "--database", postgres_url, "--data-dir", other)
    assert code == 0 and " P " in out
    code, out, _ = run(capsys, "log", "verify", "--database", postgres_url, "--data-dir", other)
    assert code == 0 and out.startswith("OK: 4 records")  # (the refused search is logged too)
