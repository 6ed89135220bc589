"""Issue 22 H3: a legal hold holds (every deleting operation refused and logged), and every
deletion of faces, collections and users, by anyone, over HTTP or the CLI, is a search-log record."""

from __future__ import annotations

import json

import pytest

from faceaudit.accountability import Accountability, CallerContext, Retention, SearchLog
from tests.accountability.serving import serving
from tests.conftest import portrait_2014
from tests.service.conftest import cli, client

ADMIN = CallerContext("local:admin", role="admin")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("holds")
    with serving(d) as (url, keys):
        yield d, url, keys


def _records(d, kind):
    return [r.data for r in SearchLog(d / "search-log.jsonl").records() if r.kind == kind]


def _fill(rek, cid):
    rek.create_collection(CollectionId=cid)
    ids = [rek.index_faces(CollectionId=cid, Image={"Bytes": portrait_2014(b).read_bytes()},
                           ExternalImageId=b)["FaceRecords"][0]["Face"]["FaceId"] for b in ("B000944", "C000141")]
    rek.create_user(CollectionId=cid, UserId="u1")
    rek.associate_faces(CollectionId=cid, UserId="u1", FaceIds=ids[:1])
    return ids


def test_every_deleting_operation_refused_and_logged_under_a_legal_hold(server):
    d, url, keys = server
    rek = client(url, keys["operator"])
    ids = _fill(rek, "held")
    arn = rek.describe_collection(CollectionId="held")["CollectionARN"]
    rek.tag_resource(ResourceArn=arn, Tags={"unit": "fraud"})
    Retention(Accountability(d)).set(ADMIN, "held", None, legal_hold=True)
    attempts = {
        "DeleteFaces": lambda: rek.delete_faces(CollectionId="held", FaceIds=ids),
        "DisassociateFaces": lambda: rek.disassociate_faces(CollectionId="held", UserId="u1", FaceIds=ids[:1]),
        "DeleteUser": lambda: rek.delete_user(CollectionId="held", UserId="u1"),
        "DeleteCollection": lambda: rek.delete_collection(CollectionId="held"),
        "UntagResource": lambda: rek.untag_resource(ResourceArn=arn, TagKeys=["unit"]),
        "TagResource": lambda: rek.tag_resource(ResourceArn=arn, Tags={"unit": "other"}),
    }
    for attempt in attempts.values():
        with pytest.raises(rek.exceptions.AccessDeniedException, match="legal hold"):
            attempt()
    refused = [r for r in _records(d, "refused") if r.get("legal_hold")]
    assert [r["operation"] for r in refused] == list(attempts)
    assert all(r["collection_id"] == "held" and r["access_key_id"] == keys["operator"]["AccessKeyId"]
               for r in refused)
    desc = rek.describe_collection(CollectionId="held")
    assert desc["FaceCount"] == 2 and desc["UserCount"] == 1
    assert rek.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"unit": "fraud"}
    rek.tag_resource(ResourceArn=arn, Tags={"added": "yes"})  # adding drops nothing: allowed
    # lifted: the same deletions run, each one logged
    Retention(Accountability(d)).set(ADMIN, "held", None, legal_hold=False)
    rek.delete_collection(CollectionId="held")
    last = _records(d, "deletion")[-1]
    assert (last["operation"], last["collection_id"], last["face_count"], last["user_count"]) == \
        ("DeleteCollection", "held", 2, 1)
    assert SearchLog(d / "search-log.jsonl").verify().ok


def test_every_deletion_is_a_log_record(server):
    d, url, keys = server
    rek = client(url, keys["operator2"])
    ids = _fill(rek, "gone")
    rek.disassociate_faces(CollectionId="gone", UserId="u1", FaceIds=ids[:1])
    rek.delete_user(CollectionId="gone", UserId="u1")
    rek.delete_faces(CollectionId="gone", FaceIds=[*ids, "00000000-0000-0000-0000-000000000000"])
    rek.delete_collection(CollectionId="gone")
    rows = [r for r in _records(d, "deletion") if r["collection_id"] == "gone"]
    assert [r["operation"] for r in rows] == ["DisassociateFaces", "DeleteUser", "DeleteFaces", "DeleteCollection"]
    assert rows[0]["face_ids"] == ids[:1] and rows[0]["user_id"] == "u1"
    assert rows[1]["user_id"] == "u1"
    assert sorted(rows[2]["face_ids"]) == sorted(ids) and rows[2]["count"] == 2
    assert rows[3]["face_count"] == 0
    assert {r["access_key_id"] for r in rows} == {keys["operator2"]["AccessKeyId"]}


def test_cli_deletions_refused_under_hold_and_logged(tmp_path):
    d = str(tmp_path / "data")
    cli("collection", "create", "c", "--data-dir", d)
    face = json.loads(cli("index", "c", str(portrait_2014("B000944")), "--json", "--data-dir", d).stdout)
    face_id = face["FaceRecords"][0]["Face"]["FaceId"]
    cli("retention", "set", "c", "--legal-hold", "--data-dir", d)
    for argv in (("faces", "delete", "c", face_id), ("collection", "delete", "c")):
        r = cli(*argv, "--data-dir", d, check=False)
        assert r.returncode == 10 and "legal hold" in r.stderr, r.stderr
    cli("retention", "set", "c", "--no-legal-hold", "--data-dir", d)
    cli("faces", "delete", "c", face_id, "--data-dir", d)
    cli("collection", "delete", "c", "--data-dir", d)
    log = SearchLog(tmp_path / "data" / "search-log.jsonl")
    refused = [r.data for r in log.records() if r.kind == "refused"]
    deleted = [r.data for r in log.records() if r.kind == "deletion"]
    assert [r["operation"] for r in refused] == ["DeleteFaces", "DeleteCollection"]
    assert [(r["operation"], r["source"]) for r in deleted] == [("DeleteFaces", "cli"), ("DeleteCollection", "cli")]
    assert deleted[0]["face_ids"] == [face_id]


def test_retention_apply_keeps_held_faces_and_logs_the_refusal(tmp_path, sface_engine, database_url):
    import time

    from faceaudit.collections import FaceCollections

    fc = FaceCollections(tmp_path, engines={sface_engine.spec.name: sface_engine})
    acc = Accountability(tmp_path, database_url=database_url)
    acc._collections = fc
    fc.create_collection(collection_id="held")
    fc.index_faces(collection_id="held", image=portrait_2014("B000944").read_bytes())
    retention = Retention(acc)
    retention.set(ADMIN, "held", 1, legal_hold=True)
    report = retention.apply(ADMIN, now=time.time() + 3 * 86400)
    assert report.faces == {} and fc.describe_collection(collection_id="held").face_count == 1
    refused = [r.data for r in acc.log.records() if r.kind == "refused"]
    assert [(r["operation"], r["collection_id"], r["count"]) for r in refused] == [("RetentionApply", "held", 1)]
