"""A face search of stored video: warrant (or policy), one logged search per person, leads with the frame."""

from __future__ import annotations

import shutil
import time

import pytest

from faceaudit.accountability import (
    Accountability,
    CallerContext,
    PolicyViolationError,
    VideoSearches,
    VideoSearchPolicy,
)
from faceaudit.collections import FaceCollections, FolderStore
from tests.conftest import make_video, portrait_2014

OPERATOR = CallerContext("AKOPERATOR", role="operator", source="http", request_id="req-1")
ADMIN = CallerContext("AKADMIN", role="admin", source="http")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("clip") / "doorbell.mp4")


@pytest.fixture()
def setup(tmp_path, clip, database_url):
    (tmp_path / "buckets" / "footage").mkdir(parents=True)
    shutil.copy(clip, tmp_path / "buckets" / "footage" / "doorbell.mp4")
    data = tmp_path / "data"
    videos = VideoSearches(Accountability(data, database_url=database_url))
    fc = FaceCollections(data, objects=FolderStore(tmp_path / "buckets"), video_observer=videos.observer,
                         video_sample_fps=1.0)
    fc.create_collection(collection_id="g")
    for m in ("C000127", "B000944"):
        fc.index_faces(collection_id="g", image=portrait_2014(m).read_bytes(), external_image_id=m)
    return fc, videos


def _start(fc, videos, ctx, warrant):
    video = {"S3Object": {"Bucket": "footage", "Name": "doorbell.mp4"}}
    return videos.start(ctx, warrant, collection_id="g", threshold=80.0, max_faces=80, video=video,
                        call=lambda: fc.start_face_search(video=video, collection_id="g"),
                        job_id_of=lambda r: r.job_id)


def _records(videos, kind=None):
    return [r for r in videos.acc.log.records() if kind is None or r.kind == kind]


def test_no_warrant_is_refused_and_logged(setup):
    fc, videos = setup
    with pytest.raises(PolicyViolationError, match="warrant"):
        _start(fc, videos, OPERATOR, "")
    refused = _records(videos, "refused")
    assert refused and refused[-1].data["operation"] == "StartFaceSearch"
    assert fc._pool().store.recover() == 0  # and no job was created
    with pytest.raises(PolicyViolationError):  # only admins change the policy
        videos.set_policy(VideoSearchPolicy("g", warrant_required=False), OPERATOR)


def test_every_person_is_logged_and_each_match_is_a_lead_with_the_frame(setup):
    fc, videos = setup
    job = _start(fc, videos, OPERATOR, "WARRANT-2026-17").job_id
    deadline = time.monotonic() + 300
    while (page := fc.get_face_search(job_id=job)).status == "IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert page.status == "SUCCEEDED"
    started = _records(videos, "video_search_started")
    assert started[-1].data["warrant"] == "WARRANT-2026-17" and started[-1].data["job_id"] == job
    searches = [r for r in _records(videos, "search") if r.data["operation"] == "StartFaceSearch"]
    assert len(searches) == 3  # two people in the gallery and a passer-by: everyone is logged
    assert all(r.data["request_id"] == job and r.data["case_reference"] == "WARRANT-2026-17" for r in searches)
    matched = [r for r in searches if r.data["candidates"]]
    assert sorted(r.data["candidates"][0]["external_image_id"] for r in matched) == ["B000944", "C000127"]
    leads = videos.acc.leads()
    assert len(leads) == 2
    for lead in leads:
        probe = videos.acc.probe_path(lead.probe_sha256)
        assert probe is not None and probe.read_bytes()[:3] == b"\xff\xd8\xff"  # the frame, as JPEG
    bystander = next(r for r in searches if not r.data["candidates"])
    assert videos.acc.probe_path(bystander.data["probe_sha256"]) is None  # a bystander's frame is not kept
    closing = _records(videos, "video_search")[-1].data
    assert (closing["people"], closing["people_matched"], closing["job_id"]) == (3, 2, job)
    assert videos.acc.log.verify().ok
    # the usage report counts video searches apart from image searches
    import datetime as dt

    from faceaudit.accountability._usage import render_html, usage_report

    now = dt.datetime.now(dt.UTC)
    report = usage_report(videos.acc, now - dt.timedelta(days=1), now + dt.timedelta(days=1), sign=False)
    assert (report.searches.count, report.video_searches.count, report.video_people.count) == (0, 1, 3)
    assert [f.label for f in report.video_searches_by] == ["g / warrant WARRANT-2026-17"]
    assert {f.label: f.count for f in report.leads}["pending leads"] == 2
    assert "face searches of stored video" in render_html(report)


def test_policy_can_waive_the_warrant(setup):
    fc, videos = setup
    assert videos.policy("g").warrant_required
    videos.set_policy(VideoSearchPolicy("g", warrant_required=False), ADMIN)
    assert not videos.policy("g").warrant_required
    assert _start(fc, videos, OPERATOR, "").job_id
