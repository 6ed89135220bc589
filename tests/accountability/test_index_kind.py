"""Which index served a search: reported by the backend, recorded in each search-log record, and a
change of a collection's faceaudit:index tag is logged with the kind before and after."""

from __future__ import annotations

from faceaudit.accountability import (
    AccountabilityExtension,
    CallerContext,
    guard_request,
)
from faceaudit.collections import INDEX_TAG, SearchConfig
from faceaudit.service import Caller


def _ext(tmp_path, config=None):
    from faceaudit.collections import FaceCollections

    ext = AccountabilityExtension(tmp_path)
    fc = FaceCollections(tmp_path, search_config=config or SearchConfig())
    ext.acc.use_collections(lambda: fc)
    return ext, fc


def test_index_kind_of_a_collection(tmp_path):
    _, fc = _ext(tmp_path, SearchConfig(hnsw_above=0))
    fc.create_collection(collection_id="flat", tags={INDEX_TAG: "flat"})
    fc.create_collection(collection_id="fast", tags={INDEX_TAG: "FastScan"})
    fc.create_collection(collection_id="big")
    assert [fc.index_kind(c) for c in ("flat", "fast", "big")] == ["flat", "fastscan", "flat"]  # 0 faces


def test_search_log_records_the_index_and_tag_changes(tmp_path):
    ext, fc = _ext(tmp_path)
    fc.create_collection(collection_id="g")
    arn = fc.describe_collection(collection_id="g").collection_arn
    ctx = CallerContext("AKOPER", role="operator", case_reference="c-1")
    empty = {"FaceMatches": [], "FaceModelVersion": "x"}
    params = {"CollectionId": "g", "FaceId": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
              "FaceMatchThreshold": 90.0, "MaxFaces": 5}
    guard_request(ext.acc, ctx, "SearchFaces", params, lambda: empty, response_of=lambda r: r,
                  index_of=fc.index_kind)

    caller = Caller("AKADMIN", "admin", "req-1")
    tag = {"ResourceArn": arn, "Tags": {INDEX_TAG: "hnsw"}}
    ext.wrap(caller, "TagResource", tag,
             lambda: (fc.tag_resource(resource_arn=arn, tags=tag["Tags"]).to_rekognition(), 0.0), lambda: "")
    ext.wrap(caller, "TagResource", {"ResourceArn": arn, "Tags": {"team": "a"}},
             lambda: (fc.tag_resource(resource_arn=arn, tags={"team": "a"}).to_rekognition(), 0.0), lambda: "")
    guard_request(ext.acc, ctx, "SearchFaces", params, lambda: empty, response_of=lambda r: r,
                  index_of=fc.index_kind)
    untag = {"ResourceArn": arn, "TagKeys": [INDEX_TAG]}
    ext.wrap(caller, "UntagResource", untag,
             lambda: (fc.untag_resource(resource_arn=arn, tag_keys=[INDEX_TAG]).to_rekognition(), 0.0),
             lambda: "")

    records = list(ext.acc.log.records())
    assert [r.data["index"] for r in records if r.kind == "search"] == ["flat", "hnsw"]
    changes = [r.data for r in records if r.kind == "index-tag"]  # the "team" tag is not logged
    assert [(c["operation"], c["tag"], c["index_before"], c["index_after"]) for c in changes] == [
        ("TagResource", "hnsw", "flat", "hnsw"), ("UntagResource", None, "hnsw", "flat")]
    assert changes[0]["collection_id"] == "g" and changes[0]["access_key_id"] == "AKADMIN"
    assert ext.acc.log.verify().ok
