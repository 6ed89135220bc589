"""A face search in stored video identifies everyone in the footage: warrant, log, leads.

Washington's RCW 43.386.080 forbids ongoing surveillance and persistent tracking
with face recognition without a warrant or court order; searching a place's
stored footage (doorbell video) for everyone who passed comes close. So:

- Starting a video face search (StartFaceSearch over HTTP, ``faceaudit video
  search`` on the command line) needs a warrant or court-order reference
  (signed header ``x-faceaudit-warrant``, CLI ``--warrant``) unless the
  collection's video-search policy says otherwise (``PutVideoSearchPolicy``,
  admin keys only; ``faceaudit video policy``). The collection's threshold
  policy applies as to every search. A refusal is logged.
- The start is logged (``video_search_started``: who, warrant, video, JobId).
- When the job has analysed the video, and before any result can be read, every
  person found is logged as one search through :func:`guarded` (operation
  ``StartFaceSearch``, request id = the JobId), with the face of their best
  sighting, cropped from its frame with a margin (:func:`face_crop`), as the
  probe: each match becomes a lead whose probe image shows the matched face, not
  a whole frame of several people, logged with that face's quality (eye distance,
  sharpness, brightness; a policy's minimum probe quality refuses or flags that
  person's search). Crops of people without a match are not kept
  (only their hash is logged). A closing ``video_search`` record counts people and matches, so a
  usage report can count video searches apart from image searches.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from faceaudit._errors import InvalidParameterError
from faceaudit.accountability._accountability import Accountability, CallerContext, Candidate
from faceaudit.accountability._guard import guarded
from faceaudit.accountability._policy import PolicyViolationError
from faceaudit.accountability._probe_quality import ProbeQuality

WARRANT_HEADER = "x-faceaudit-warrant"
MAX_WARRANT_CHARS = 256
VIDEO_SEARCH_OPERATION = "StartFaceSearch"

R = TypeVar("R")


@dataclass(frozen=True)
class VideoSearchPolicy:
    """Whether a collection's video face searches need a warrant or court-order reference
    (default: they do)."""

    collection_id: str
    warrant_required: bool = True
    set_by: str = ""
    set_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"CollectionId": self.collection_id, "WarrantRequired": self.warrant_required,
                "SetBy": self.set_by, "SetAt": self.set_at}


def check_warrant(value: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_WARRANT_CHARS:
        raise InvalidParameterError(f"the warrant reference is at most {MAX_WARRANT_CHARS} characters")
    return value


class VideoSearches:
    """Policy, warrant check and logging of video face searches, over one :class:`Accountability`."""

    def __init__(self, acc: Accountability) -> None:
        self.acc = acc

    # -- policy ----------------------------------------------------------------------------------

    def policy(self, collection_id: str) -> VideoSearchPolicy:
        row = self.acc._store.read().execute(
            "SELECT warrant_required, set_by, set_at FROM video_policies WHERE collection_id = ?",
            (collection_id,)).fetchone()
        if row is None:
            return VideoSearchPolicy(collection_id)
        return VideoSearchPolicy(collection_id, bool(row[0]), row[1], row[2])

    def set_policy(self, policy: VideoSearchPolicy, ctx: CallerContext) -> VideoSearchPolicy:
        if ctx.role != "admin":
            raise PolicyViolationError("only an admin key may change a collection's video-search policy")
        stamped = VideoSearchPolicy(policy.collection_id, policy.warrant_required, ctx.access_key_id,
                                    round(time.time(), 3))
        with self.acc._store.write() as conn:
            conn.execute(self.acc._store.dialect.upsert(
                "video_policies", ("collection_id", "warrant_required", "set_by", "set_at"), ("collection_id",)),
                (stamped.collection_id, int(stamped.warrant_required), stamped.set_by, stamped.set_at))
        self.acc.log.append("video_policy", {"access_key_id": ctx.access_key_id, "policy": stamped.to_json()})
        return stamped

    # -- starting a search -----------------------------------------------------------------------

    def start(self, ctx: CallerContext, warrant: str, *, collection_id: str, threshold: float,
              max_faces: int, video: Any, call: Callable[[], R], job_id_of: Callable[[R], str]) -> R:
        """Check the policies and the warrant, start the job (recording who asked) and log it."""
        from faceaudit.collections import requested_by

        warrant = check_warrant(warrant)
        self.acc.authorize(ctx, VIDEO_SEARCH_OPERATION, collection_id, threshold, max_faces)
        who = {**_who(ctx), "warrant": warrant, "collection_id": collection_id, "video": video}
        if self.policy(collection_id).warrant_required and not warrant:
            reason = (f"a face search of stored video identifies everyone in it: collection "
                      f"{collection_id!r} requires a warrant or court-order reference "
                      f"(header {WARRANT_HEADER}, or --warrant on the command line)")
            self.acc.log.append("refused", {**who, "operation": VIDEO_SEARCH_OPERATION,
                                            "threshold": threshold, "reason": reason})
            raise PolicyViolationError(reason)
        try:
            with requested_by({**_who(ctx), "warrant": warrant, "collection_id": collection_id}):
                result = call()
        except Exception as exc:
            self.acc.log.append("failed", {**who, "operation": VIDEO_SEARCH_OPERATION, "threshold": threshold,
                                           "error": getattr(exc, "aws_code", "InternalServerError")})
            raise
        self.acc.log.append("video_search_started", {**who, "threshold": threshold,
                                                     "job_id": job_id_of(result)})
        return result

    # -- the results, before anyone can read them ------------------------------------------------

    def record(self, ctx: CallerContext, warrant: str, job_id: str, video: str, analysis: Any) -> None:
        """Log every person found by a finished video search (one search record each) and open a
        lead per match with the person's best frame as the probe image."""
        matched = 0
        for person in analysis.persons:
            probe = face_crop(person.probe_jpeg, person.probe_box) if person.probe_jpeg else None
            digest = hashlib.sha256(probe).hexdigest() if probe else None
            if person.matches:
                matched += 1
            quality = getattr(person, "probe_quality", None)
            try:
                guarded(
                    self.acc, ctx, operation=VIDEO_SEARCH_OPERATION, collection_id=analysis.collection_id,
                    threshold=analysis.threshold, max_faces=analysis.max_faces,
                    model_version=analysis.model_version,
                    probe=probe if person.matches else None,  # bystanders' frames are not kept
                    probe_sha256=digest, call=_constant(person), candidates=_candidates,
                    gallery_size=analysis.gallery_size,
                    probe_quality=None if quality is None else ProbeQuality.of(quality),
                )
            except PolicyViolationError:
                continue  # this person's frame is below the policy's minimum: logged as refused, no leads
        self.acc.log.append("video_search", {
            **_who(ctx), "warrant": warrant, "job_id": job_id, "video": video,
            "collection_id": analysis.collection_id, "threshold": analysis.threshold,
            "duration_ms": analysis.metadata.duration_millis, "sample_fps": analysis.sample_fps,
            "people": len(analysis.persons), "people_matched": matched,
        })

    def observer(self, requester: Mapping[str, Any], job_id: str, video: str, analysis: Any) -> None:
        """The backend's ``video_observer``: :meth:`record` as the job's requester."""
        ctx = CallerContext(
            access_key_id=requester.get("access_key_id", "unknown"), role=requester.get("role", "operator"),
            case_reference=requester.get("case_reference", "") or requester.get("warrant", ""),
            purpose=requester.get("purpose", ""), source=requester.get("source", "http"), request_id=job_id,
            person=requester.get("person", ""),
        )
        self.record(ctx, requester.get("warrant", ""), job_id, video, analysis)


def _who(ctx: CallerContext) -> dict[str, Any]:
    return Accountability._who(ctx)  # the same fields as every other record


FACE_CROP_MARGIN = 0.6
"""Margin around the face box in a video lead's probe crop, as a share of the box's larger side."""


def face_crop(jpeg: bytes, box: Any, margin: float = FACE_CROP_MARGIN) -> bytes:
    """The face at ``box`` (ratios of the frame: left, top, width, height) cut from a JPEG frame with
    ``margin`` of the box's larger side around it, as JPEG; the frame unchanged when it cannot be cut."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None or box is None:
        return jpeg
    h, w = img.shape[:2]
    x, y, bw, bh = box.left * w, box.top * h, box.width * w, box.height * h
    if bw <= 0 or bh <= 0:
        return jpeg
    pad = margin * max(bw, bh)
    x0, y0 = max(0, int(x - pad)), max(0, int(y - pad))
    x1, y1 = min(w, round(x + bw + pad)), min(h, round(y + bh + pad))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return jpeg
    ok, buf = cv2.imencode(".jpg", img[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return bytes(buf) if ok else jpeg


def _constant(value: R) -> Callable[[], R]:
    """A call that returns ``value`` (the person is found already; guarded() only logs it)."""
    return lambda: value


def _candidates(person: Any) -> tuple[Candidate, ...]:
    return tuple(
        Candidate(similarity=m.similarity, face_id=m.face.face_id,
                  external_image_id=m.face.external_image_id, user_id=m.face.user_id)
        for m in person.matches
    )
