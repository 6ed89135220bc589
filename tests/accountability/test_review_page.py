"""The review page's words and images for leads that cannot be shown whole (issue 23 item 5):
a key without a person, a candidate whose face or collection was deleted, a video lead's probe."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from faceaudit.accountability._review import Decision, Lead, Reviewer
from faceaudit.accountability._review_page import render_review_page


def lead(**kw: Any) -> Lead:
    base: dict[str, Any] = {
            "lead_id": "L1", "search_seq": 3, "created_at": 1_800_000_000.0, "operation": "SearchFacesByImage",
            "collection_id": "bookings", "requested_by": "AKSAM", "case_reference": "case-1",
            "probe_sha256": "a" * 64, "candidate_face_id": "f-1", "candidate_external_image_id": "B000944",
            "candidate_user_id": None, "similarity": 91.5, "threshold": 90.0, "model_version": "sface",
            "status": "pending", "requested_by_person": "Sam Searcher"}
    base.update(kw)
    return Lead(**base)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))


def page(leads, reviewer, missing="", decide=None):
    return render_review_page(
        leads, reviewer, "csrf", probe_url=lambda item: f"/p/{item.lead_id}",
        candidate_url=lambda item: f"/c/{item.lead_id}",
        missing=lambda item: missing, may_decide=decide or (lambda item: bool(reviewer.person)))


def text(doc: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", doc))


def test_a_key_without_a_person_is_told_so_not_that_it_ran_the_search():
    doc = text(page([lead()], Reviewer("AKNOBODY", "")))
    assert "this key has no person" in doc and "you ran the search" not in doc


def test_the_searcher_and_a_second_decision_are_told_why():
    assert "you ran the search" in text(page([lead()], Reviewer("AKSAM", "Sam Searcher"), decide=lambda item: False))
    decided = lead(decisions=(Decision("Alice", "confirm", "", 1_800_000_100.0, 4),))
    doc = text(page([decided], Reviewer("AKALICE", "Alice"), decide=lambda item: False))
    assert "you have decided already" in doc and "you ran the search" not in doc


@pytest.mark.parametrize("missing,gone", [
    ("the candidate's face is no longer stored (face or collection deleted)", "candidate"),
    ("the probe image was not kept", "probe"),
])
def test_a_deleted_image_is_a_placeholder_never_a_broken_img(missing, gone):
    doc = page([lead()], Reviewer("AKALICE", "Alice"), missing=missing)
    tags = Tags()
    tags.feed(doc)
    srcs = [t["src"] for t in tags.imgs]
    assert srcs == (["/p/L1"] if gone == "candidate" else ["/c/L1"])
    assert 'class="noimg"' in doc
    if gone == "candidate":
        assert "no image: the candidate's face is no longer stored (face or collection deleted)" in text(doc)


def test_a_video_lead_probe_is_the_matched_face_cropped_from_the_frame():
    import cv2

    from faceaudit.accountability._video import face_crop
    from faceaudit.engine import BoundingBox

    frame = np.full((360, 640, 3), 40, np.uint8)
    frame[100:160, 400:450] = 250  # the matched face, 50 x 60 px at (400, 100)
    frame[100:160, 50:100] = 120  # somebody else in the same frame
    ok, buf = cv2.imencode(".jpg", frame)
    assert ok
    crop = face_crop(bytes(buf), BoundingBox(400 / 640, 100 / 360, 50 / 640, 60 / 360))
    img = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    assert img.shape == (60 + 2 * 36, 50 + 2 * 36)  # the box with 0.6 x its larger side (60 px) around it
    assert img[img.shape[0] // 2, img.shape[1] // 2] > 200  # the face is in the middle
    assert ((img > 100) & (img < 140)).sum() < 50  # the other person (grey 120) is cut away
    # a frame that cannot be decoded, or a box of no size, is kept as it is
    assert face_crop(b"not a jpeg", BoundingBox(0.1, 0.1, 0.2, 0.2)) == b"not a jpeg"
    assert face_crop(bytes(buf), BoundingBox(0.1, 0.1, 0.0, 0.2)) == bytes(buf)


def test_a_finished_video_search_keeps_the_cropped_face_as_the_lead_probe(tmp_path):
    from types import SimpleNamespace

    import cv2

    from faceaudit.accountability import Accountability, CallerContext, VideoSearches
    from faceaudit.engine import BoundingBox

    frame = np.full((360, 640, 3), 40, np.uint8)
    frame[100:160, 400:450] = 250
    ok, buf = cv2.imencode(".jpg", frame)
    assert ok
    face = SimpleNamespace(face_id="f-1", external_image_id="B000944", user_id=None)
    person = SimpleNamespace(probe_jpeg=bytes(buf), probe_box=BoundingBox(400 / 640, 100 / 360, 50 / 640, 60 / 360),
                             matches=(SimpleNamespace(similarity=97.0, face=face),))
    analysis = SimpleNamespace(persons=(person,), collection_id="g", threshold=80.0, max_faces=10,
                               model_version="sface", gallery_size=2, sample_fps=1.0,
                               metadata=SimpleNamespace(duration_millis=1000))
    videos = VideoSearches(Accountability(tmp_path / "data"))
    ctx = CallerContext("AKOP", role="operator", source="http", request_id="job-1", person="Sam")
    videos.record(ctx, "W-1", "job-1", "clip.mp4", analysis)
    (found,) = videos.acc.leads()
    kept_path = videos.acc.probe_path(found.probe_sha256)
    assert kept_path is not None
    img = cv2.imdecode(np.frombuffer(kept_path.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    assert img.shape == (132, 122)  # the face with its margin, not the 640 x 360 frame


def test_the_searcher_is_recognised_however_the_name_is_written():
    doc = text(page([lead(requested_by="AKOTHER")], Reviewer("AKSAM2", "sam  SEARCHER"), decide=lambda item: False))
    assert "you ran the search" in doc
