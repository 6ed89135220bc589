"""Retention: faces and kept probes deleted after N days unless on legal hold; every deletion logged."""

import time

import pytest

from faceaudit import AccessDeniedError
from faceaudit.accountability import Accountability, CallerContext, Retention, guard_request
from tests.conftest import portrait_2014, portrait_2018

ADMIN = CallerContext("local:admin", role="admin")
DAY = 86400


@pytest.fixture
def setup(tmp_path, sface_engine, database_url):
    from faceaudit.collections import FaceCollections

    fc = FaceCollections(tmp_path, engines={sface_engine.spec.name: sface_engine})
    acc = Accountability(tmp_path, database_url=database_url)
    acc._collections = fc
    for cid in ("expiring", "held"):
        fc.create_collection(collection_id=cid)
        for b in ("B000944", "C000141"):
            fc.index_faces(collection_id=cid, image=portrait_2014(b).read_bytes(), external_image_id=b)
    fc.create_user(collection_id="expiring", user_id="u1")
    first = fc.list_faces(collection_id="expiring").faces[0].face_id
    fc.associate_faces(collection_id="expiring", user_id="u1", face_ids=[first])
    return acc, fc, Retention(acc)


def test_expired_faces_and_probes_deleted_and_logged_unless_on_hold(setup):
    acc, fc, retention = setup
    with pytest.raises(AccessDeniedError):
        retention.set(CallerContext("AKOPER"), "expiring", 30)
    retention.set(ADMIN, "expiring", 30)
    retention.set(ADMIN, "held", 30, legal_hold=True)
    probe = portrait_2018("C000127").read_bytes()  # nobody in the gallery: no lead
    ctx = CallerContext("AKOPER", case_reference="c-1")
    guard_request(acc, ctx, "SearchFacesByImage",
                  {"CollectionId": "expiring", "Image": {"Bytes": probe}, "FaceMatchThreshold": 99.0},
                  lambda: fc.search_faces_by_image(collection_id="expiring", image=probe, face_match_threshold=99.0),
                  response_of=lambda r: r.to_rekognition())
    digest = next(r.data["probe_sha256"] for r in acc.log.records() if r.kind == "search")
    assert acc.probe_path(digest) is not None

    early = retention.apply(ADMIN, now=time.time() + 29 * DAY)
    assert early.faces == {} and early.probes == () and fc.describe_collection(collection_id="expiring").face_count == 2

    report = retention.apply(ADMIN, now=time.time() + 31 * DAY)
    assert len(report.faces["expiring"]) == 2 and report.held == ("held",)
    assert fc.describe_collection(collection_id="expiring").face_count == 0
    assert fc.describe_collection(collection_id="held").face_count == 2
    assert report.probes == (digest,) and acc.probe_path(digest) is None
    logged = [r.data for r in acc.log.records() if r.kind == "retention"]
    assert sorted(logged[0]["face_ids"]) == sorted(report.faces["expiring"])
    assert logged[1]["probe_sha256"] == [digest]
    assert [r.kind for r in acc.log.records()].count("retention-rule") == 2
    assert acc.log.verify().ok


def test_cli_retention(tmp_path):
    from tests.service.conftest import cli

    d = str(tmp_path / "data")
    assert "ON LEGAL HOLD" in cli("retention", "set", "c", "--days", "7", "--legal-hold", "--data-dir", d).stdout
    assert "deleted 0 face(s)" in cli("retention", "apply", "--data-dir", d).stdout
    assert '"Days": 7' in cli("retention", "list", "--json", "--data-dir", d).stdout


def test_server_daily_run_applies_the_rules_once_at_a_time(tmp_path):
    import fcntl
    import os

    from faceaudit.accountability import DailyRetention

    Retention(Accountability(tmp_path)).set(ADMIN, "gone", 1)
    daily = DailyRetention(tmp_path)
    assert daily.run_once() is not None
    assert daily.run_once() is None  # done for today
    os.utime(tmp_path / "retention.last", (0, 0))
    fd = os.open(tmp_path / "retention.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker is applying retention
        assert daily.run_once() is None
    finally:
        os.close(fd)
