"""A stored-video job survives kill -9 of its server: the next server runs it again, it is never lost."""

from __future__ import annotations

import shutil
import signal
import time

from tests.conftest import make_video, portrait_2014
from tests.service.conftest import ServeProcess, client, create_key


def _add_warrant(request, **kwargs):
    request.headers["x-faceaudit-warrant"] = "WA-2026-0117"


def test_job_survives_kill_9(tmp_path):
    buckets = tmp_path / "buckets"
    (buckets / "footage").mkdir(parents=True)
    make_video(buckets / "footage" / "door.mp4")
    (buckets / "photos").mkdir()
    shutil.copy(portrait_2014("B000944"), buckets / "photos" / "b.jpg")
    data = tmp_path / "data"
    key = create_key(data)
    args = ("--rate-limit", "0", "--buckets", str(buckets), "--video-fps", "4")
    first = ServeProcess(data, *args)
    try:
        rek = client(first.url, key)
        rek.meta.events.register_first("before-sign.rekognition.StartFaceSearch", _add_warrant)
        rek.create_collection(CollectionId="g")
        rek.index_faces(CollectionId="g", Image={"S3Object": {"Bucket": "photos", "Name": "b.jpg"}},
                        ExternalImageId="B000944")
        job = rek.start_face_search(Video={"S3Object": {"Bucket": "footage", "Name": "door.mp4"}},
                                    CollectionId="g")["JobId"]
        deadline = time.monotonic() + 120
        while "% done" not in (rek.get_face_search(JobId=job).get("StatusMessage") or ""):  # claimed
            assert time.monotonic() < deadline, "no worker took the job"
            time.sleep(0.02)
        r = rek.get_face_search(JobId=job)
        assert r["JobStatus"] == "IN_PROGRESS", "the job finished before the kill: make the clip longer"
    finally:
        first.stop(signal.SIGKILL)
    second = ServeProcess(data, *args)
    try:
        rek = client(second.url, key)
        deadline = time.monotonic() + 300
        while (r := rek.get_face_search(JobId=job))["JobStatus"] == "IN_PROGRESS":
            assert time.monotonic() < deadline, r.get("StatusMessage")
            time.sleep(0.3)
        assert r["JobStatus"] == "SUCCEEDED", r.get("StatusMessage")
        assert {p["FaceMatches"][0]["Face"]["ExternalImageId"] for p in r["Persons"]} == {"B000944"}
    finally:
        second.stop()
