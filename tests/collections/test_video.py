"""Stored video in the backend: decoding and its limits, tracking, jobs that never vanish."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faceaudit._errors import (
    IdempotentParameterMismatchError,
    InvalidParameterError,
    InvalidS3ObjectError,
    InvalidVideoError,
    ResourceNotFoundError,
    VideoTooLargeError,
)
from faceaudit.collections import FaceCollections, FolderStore, VideoLimits
from faceaudit.collections._jobs import DB_NAME, MAX_ATTEMPTS, JobStore
from faceaudit.collections._tracking import FaceTracker, iou
from faceaudit.collections._video import probe_video, sample_frames
from tests.conftest import make_video, portrait_2014

SHORT = (("C000127", 0.0, 1.0, 20), ("B000944", 0.5, 2.0, 260))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "doorbell.mp4")


@pytest.mark.parametrize("suffix,fourcc", [(".mp4", "mp4v"), (".mov", "mp4v"), (".avi", "MJPG"), (".mkv", "mp4v")])
def test_containers_decode_at_the_sampling_rate(tmp_path, suffix, fourcc):
    path = make_video(tmp_path / f"c{suffix}", script=SHORT, seconds=2.0, size=(480, 270), fourcc=fourcc)
    meta = probe_video(path)
    assert (meta.frame_width, meta.frame_height, meta.frame_count, meta.duration_millis) == (480, 270, 20, 2000)
    assert meta.frame_rate == pytest.approx(10.0)
    frames = list(sample_frames(path, meta, 2.0))
    assert [f.timestamp_ms for f in frames] == [0, 500, 1000, 1500]
    assert frames[0].image.pixels.shape == (270, 480, 3)
    assert [f.timestamp_ms for f in sample_frames(path, meta, 10.0)] == [100 * i for i in range(20)]
    assert len(list(sample_frames(path, meta, 0.5))) == 1


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_h264_decodes(tmp_path, suffix):
    """Rekognition's own format: H.264 in MP4 or MOV (written with PyAV's libx264)."""
    import av
    import cv2

    src = make_video(tmp_path / "src.avi", script=SHORT, seconds=2.0, size=(480, 270), fourcc="MJPG")
    path = tmp_path / f"h264{suffix}"
    cap = cv2.VideoCapture(str(src))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 480, 270, "yuv420p"
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            for packet in stream.encode(av.VideoFrame.from_ndarray(bgr[:, :, ::-1].copy(), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    cap.release()
    meta = probe_video(path)
    assert meta.codec in ("h264", "avc1") and meta.frame_count == 20
    frames = list(sample_frames(path, meta, 2.0))
    assert [f.timestamp_ms for f in frames] == [0, 500, 1000, 1500]


def test_bad_videos_get_typed_errors(tmp_path, clip):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(InvalidVideoError):
        probe_video(junk)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InvalidVideoError, match="empty"):
        probe_video(empty)
    # cut before the index at the end of the file (mp4v files keep it at the end): cannot open
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(InvalidVideoError):
        list(sample_frames(cut, probe_video(cut), 2.0))
    # an AVI cut in the middle: the container is read, the frames stop early
    avi = make_video(tmp_path / "a.avi", script=SHORT, seconds=2.0, size=(480, 270), fourcc="MJPG")
    data = avi.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidVideoError):
        list(sample_frames(tmp_path / "cut.avi", probe_video(tmp_path / "cut.avi"), 2.0))
    # zero frames
    zero = make_video(tmp_path / "zero.mp4", script=SHORT, seconds=0.0, size=(480, 270))
    with pytest.raises(InvalidVideoError):
        probe_video(zero)
    with pytest.raises(VideoTooLargeError, match="8 s long"):
        probe_video(clip, VideoLimits(max_seconds=5))
    with pytest.raises(VideoTooLargeError, match="pixels"):
        probe_video(clip, VideoLimits(max_pixels=640 * 360))
    with pytest.raises(VideoTooLargeError, match="bytes"):
        probe_video(clip, VideoLimits(max_bytes=1000))


def test_iou_against_a_pixel_oracle():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a = tuple(float(x) for x in rng.integers(0, 40, 4) + np.array([0, 0, 1, 1]))  # elementwise: w, h >= 1
        b = tuple(float(x) for x in rng.integers(0, 40, 4) + np.array([0, 0, 1, 1]))  # elementwise: w, h >= 1
        grid_a = np.zeros((100, 100), bool)
        grid_b = np.zeros((100, 100), bool)
        grid_a[int(a[1]):int(a[1] + a[3]), int(a[0]):int(a[0] + a[2])] = True
        grid_b[int(b[1]):int(b[1] + b[3]), int(b[0]):int(b[0] + b[2])] = True
        oracle = (grid_a & grid_b).sum() / (grid_a | grid_b).sum()
        assert iou(a, b) == pytest.approx(oracle)


def test_tracker_keeps_one_index_per_person(sface_engine):
    """Two people, then one leaves and a new one stands in the same place, then the first comes back."""
    from faceaudit.engine import load_image

    def face_of(member):
        img = load_image(portrait_2014(member))
        return sface_engine.largest(img)[1]

    a, b, c = face_of("C000127"), face_of("B000944"), face_of("C000141")
    tracker = FaceTracker(sface_engine.spec.scale)
    assert tracker.update(0, 0, [(a.face, a.vector), (b.face, b.vector)]) == [0, 1]
    assert tracker.update(1, 500, [(b.face, b.vector), (a.face, a.vector)]) == [1, 0]
    # c shows up where a was, half a second later: the boxes overlap but the faces differ
    assert tracker.update(2, 1000, [(c.face, c.vector)]) == [2]
    assert tracker.update(3, 9000, [(a.face, a.vector)]) == [0]
    assert [len(t.sightings) for t in tracker.tracks] == [3, 2, 1]


@pytest.fixture()
def backend(tmp_path, clip, database_url):
    buckets = tmp_path / "buckets"
    (buckets / "footage").mkdir(parents=True)
    shutil.copy(clip, buckets / "footage" / "doorbell.mp4")
    (buckets / "footage" / "junk.mp4").write_bytes(b"junk" * 1000)
    fc = FaceCollections(tmp_path / "data", objects=FolderStore(buckets), video_sample_fps=1.0,
                         database_url=database_url)
    fc.create_collection(collection_id="g")
    for m in ("C000127", "B000944"):
        fc.index_faces(collection_id="g", image=portrait_2014(m).read_bytes(), external_image_id=m)
    yield fc
    if fc._video_pool is not None:  # its workers end with the test, not at the interpreter's exit
        fc._video_pool.stop()


def _wait(get, job_id, timeout=300.0):
    deadline = time.monotonic() + timeout
    while True:
        page = get(job_id=job_id)
        if page.status != "IN_PROGRESS":
            return page
        assert time.monotonic() < deadline, page.status_message
        time.sleep(0.2)


def _video(name):
    return {"S3Object": {"Bucket": "footage", "Name": name}}


def test_face_search_job_and_its_checks(backend):
    observed = []
    backend.video_observer = lambda who, job_id, video, found: observed.append((job_id, video, found))
    job = backend.start_face_search(video=_video("doorbell.mp4"), collection_id="g").job_id
    page = _wait(backend.get_face_search, job)
    assert page.status == "SUCCEEDED"
    doc = page.to_rekognition()
    assert {p["Person"]["Index"] for p in doc["Persons"]} == {0, 1}
    assert observed and observed[0][0] == job and observed[0][1] == "s3://footage/doorbell.mp4"
    assert [p.index for p in observed[0][2].persons] == [0, 1, 2]
    from faceaudit.service import check_output, operation_model

    assert check_output(operation_model("GetFaceSearch").output_shape, doc) == []
    assert check_output(operation_model("StartFaceSearch").output_shape,
                        backend.start_face_search(video=_video("doorbell.mp4"), collection_id="g",
                                                  client_request_token="shape").to_rekognition()) == []
    with pytest.raises(ResourceNotFoundError):
        backend.start_face_search(video=_video("doorbell.mp4"), collection_id="nope")
    with pytest.raises(InvalidS3ObjectError):
        backend.start_face_search(video=_video("missing.mp4"), collection_id="g")
    with pytest.raises(InvalidParameterError, match="SNS"):
        backend.start_face_detection(video=_video("doorbell.mp4"),
                                     notification_channel={"SNSTopicArn": "a", "RoleArn": "b"})
    with pytest.raises(InvalidParameterError, match="SortBy"):
        backend.get_face_search(job_id=job, sort_by="NAME")
    with pytest.raises(ResourceNotFoundError):  # a search job is not a detection job
        backend.get_face_detection(job_id=job)
    with pytest.raises(InvalidParameterError):  # a token of another sort order
        token = backend.get_face_search(job_id=job, max_results=1).next_token
        backend.get_face_search(job_id=job, max_results=1, next_token=token, sort_by="INDEX")
    # botocore's model sets no maximum for MaxResults: above 1000 Rekognition returns at most 1000
    assert backend.get_face_search(job_id=job, max_results=1001) == backend.get_face_search(job_id=job)
    with pytest.raises(InvalidParameterError, match="MaxResults"):
        backend.get_face_search(job_id=job, max_results=0)


def test_start_refuses_what_it_can_see_at_once(backend, monkeypatch):
    from faceaudit._errors import LimitExceededError
    from faceaudit.collections import _jobs

    backend.video_limits = VideoLimits(max_bytes=1000)
    with pytest.raises(VideoTooLargeError):
        backend.start_face_detection(video=_video("doorbell.mp4"))
    backend.video_limits = None
    monkeypatch.setattr(_jobs, "MAX_PENDING_JOBS", 0)
    with pytest.raises(LimitExceededError):
        backend.start_face_detection(video=_video("doorbell.mp4"))
    with pytest.raises(InvalidParameterError, match="JobTag"):
        backend.start_face_detection(video=_video("doorbell.mp4"), job_tag="no spaces")


def test_bad_video_fails_the_job_with_a_message(backend):
    job = backend.start_face_detection(video=_video("junk.mp4")).job_id
    page = _wait(backend.get_face_detection, job)
    assert page.status == "FAILED" and "cannot be opened" in page.status_message
    assert "Faces" not in page.to_rekognition()


def test_observer_refusal_fails_the_job_and_hides_results(backend):
    def refuse(*_):
        raise InvalidParameterError("the log is not writable")

    backend.video_observer = refuse
    job = backend.start_face_search(video=_video("doorbell.mp4"), collection_id="g").job_id
    page = _wait(backend.get_face_search, job)
    assert page.status == "FAILED" and "log is not writable" in page.status_message
    assert "Persons" not in page.to_rekognition()


def test_client_request_token_is_idempotent(backend):
    first = backend.start_face_detection(video=_video("doorbell.mp4"), client_request_token="t-1", job_tag="x")
    again = backend.start_face_detection(video=_video("doorbell.mp4"), client_request_token="t-1", job_tag="x")
    assert first.job_id == again.job_id
    from faceaudit.service import check_output, operation_model

    done = _wait(backend.get_face_detection, first.job_id)
    assert check_output(operation_model("GetFaceDetection").output_shape, done.to_rekognition()) == []
    with pytest.raises(IdempotentParameterMismatchError):
        backend.start_face_detection(video=_video("doorbell.mp4"), client_request_token="t-1", job_tag="y")
    assert _wait(backend.get_face_detection, first.job_id).status == "SUCCEEDED"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _update_job(store, sql, params):
    """Change a job behind the store's back (as a kill -9 mid-job leaves it), on either database."""
    with store._conn(write=True) as conn:
        conn.execute(sql.format(jobs=store._jobs), params)


def test_a_job_whose_worker_died_is_run_again_then_failed_after_max_attempts(backend, tmp_path):
    store = JobStore(backend.data_dir, database_url=backend.database_url)
    job_id, _ = store.submit("face_detection", {"video": _video("doorbell.mp4")["S3Object"], "fps": 1.0},
                             None, None, {})
    import socket

    dead = f"{socket.gethostname()}:{_dead_pid()}"
    _update_job(store, "UPDATE {jobs} SET status='IN_PROGRESS', owner=?, heartbeat=?, attempts=1 WHERE job_id=?",
                (dead, time.time(), job_id))
    page = _wait(backend.get_face_detection, job_id)  # polling starts this process's workers
    assert page.status == "SUCCEEDED"
    assert page.to_rekognition()["Faces"]
    # interrupted MAX_ATTEMPTS times: FAILED with a message, never stuck, never gone
    job_id, _ = store.submit("face_detection", {"video": _video("doorbell.mp4")["S3Object"], "fps": 1.0},
                             None, None, {})
    _update_job(store, "UPDATE {jobs} SET status='IN_PROGRESS', owner=?, heartbeat=?, attempts=? WHERE job_id=?",
                (dead, time.time(), MAX_ATTEMPTS, job_id))
    assert store.recover() == 1
    page = backend.get_face_detection(job_id=job_id)
    assert page.status == "FAILED" and "interrupted" in page.status_message
    with store._conn() as conn:
        assert json.loads(conn.execute(f"SELECT request FROM {store._jobs} WHERE job_id=?",
                                       (job_id,)).fetchone()[0])
    if backend.database_url is None:
        assert (backend.data_dir / DB_NAME).is_file()


def test_length_is_the_decoded_one_not_the_declared_one(tmp_path):
    """Issue 22 M2: an AVI declaring 20 s but holding 6.1 h of frames ran to the end. Here: an AVI
    whose header (avih dwTotalFrames, strh dwLength) declares 5 frames (0.5 s) but holds 4 s."""
    import struct

    avi = make_video(tmp_path / "long.avi", script=(), seconds=4.0, size=(480, 270), fourcc="MJPG")
    data = bytearray(avi.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    struct.pack_into("<I", data, avih + 8 + 16, 5)
    struct.pack_into("<I", data, strh + 8 + 32, 5)
    lying = tmp_path / "lying.avi"
    lying.write_bytes(bytes(data))
    limits = VideoLimits(max_seconds=2.0)
    meta = probe_video(lying, limits)
    assert meta.duration_millis == 500  # the header passes the limit
    fc = FaceCollections(tmp_path / "data", video_limits=limits)
    with pytest.raises(VideoTooLargeError, match="more than 2 s of frames"):
        fc.detect_faces_in_video(lying)
    assert len(list(sample_frames(avi, probe_video(avi), 1.0))) == 4  # an honest one under the default limit
