"""Stored video: StartFaceDetection / GetFaceDetection and StartFaceSearch / GetFaceSearch.

A Start* call checks what it can at once (the video's S3Object exists and is
under the size limit, the collection exists, the parameters), stores a job and
returns its JobId; a worker thread of :mod:`._jobs` decodes the video
(:mod:`._video`), finds and embeds the faces of the sampled frames, follows them
across frames (:mod:`._tracking`: one person, one Index) and, for a face search,
searches each person's best frames in the collection (exact search, as
SearchFacesByImage). Get* pages through the results (MaxResults, NextToken;
GetFaceSearch sorts by TIMESTAMP, or by INDEX).

NotificationChannel is refused (InvalidParameterException): faceaudit sends no
Amazon SNS notifications; poll Get* until JobStatus is SUCCEEDED or FAILED.

A face search in video identifies everyone in the footage. The backend calls its
``video_observer`` (the accountability layer, wired by ``faceaudit serve``) with
every person found before the job SUCCEEDS: if the observer refuses or fails,
the job FAILS and no result can be read. Each match is an investigative lead,
not an identification.

Two methods that are not Rekognition operations run the same analysis on a
local file, for the CLI: :meth:`VideoOps.detect_faces_in_video` and
:meth:`VideoOps.search_faces_in_video`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceaudit._defaults import DEFAULT_VIDEO_MAX_FACES
from faceaudit._errors import InvalidParameterError, InvalidS3ObjectError, VideoTooLargeError
from faceaudit.collections import _tokens
from faceaudit.collections import _validate as v
from faceaudit.collections._backend import Backend
from faceaudit.collections._jobs import (
    Job,
    JobItem,
    JobOutcome,
    JobPool,
    JobStore,
    requester,
)
from faceaudit.collections._objects import ObjectRef, ObjectStore
from faceaudit.collections._results import FaceMatch
from faceaudit.collections._store import CollectionRow, Connection
from faceaudit.collections._tracking import FaceTracker, Track
from faceaudit.collections._video import (
    VideoLimits,
    VideoMetadata,
    check_sample_fps,
    probe_video,
    sample_frames,
)
from faceaudit.engine import BoundingBox, DetectedFace, Image, Quality

FACE_DETECTION, FACE_SEARCH = "face_detection", "face_search"
DEFAULT_GET_MAX_RESULTS = 1000
MAX_GET_MAX_RESULTS = 1000
SORT_ORDERS = ("INDEX", "TIMESTAMP")
JOB_TAG_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:+=/")

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class StartVideoJobResult:
    """StartFaceDetection / StartFaceSearch: the JobId to poll with Get*."""

    job_id: str

    def to_rekognition(self) -> dict[str, Any]:
        return {"JobId": self.job_id}


@dataclass(frozen=True)
class VideoJobPage:
    """One page of a stored-video job's results (GetFaceDetection / GetFaceSearch).

    ``status`` is IN_PROGRESS, SUCCEEDED or FAILED; ``progress`` (0-1, not part of
    Rekognition's response) is also shown in ``status_message`` while the job runs.
    ``items`` are Rekognition FaceDetection (``Faces``) or PersonMatch (``Persons``)
    documents, each with Timestamp in milliseconds from the start of the video.
    """

    job_id: str
    items_member: str
    status: str
    status_message: str | None
    progress: float
    metadata: VideoMetadata | None
    video: ObjectRef
    job_tag: str | None
    items: tuple[Mapping[str, Any], ...]
    next_token: str | None

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"JobId": self.job_id, "JobStatus": self.status,
                               "Video": {"S3Object": self.video.to_rekognition()}}
        if self.status_message:
            out["StatusMessage"] = self.status_message
        if self.metadata is not None:
            out["VideoMetadata"] = self.metadata.to_rekognition()
        if self.job_tag:
            out["JobTag"] = self.job_tag
        if self.status == "SUCCEEDED":
            out[self.items_member] = [dict(i) for i in self.items]
        if self.next_token:
            out["NextToken"] = self.next_token
        return out


@dataclass(frozen=True)
class PersonFound:
    """One person followed through a video and searched in a collection.

    ``index`` is the Person Index (from 0); ``first_ms``/``last_ms`` the first and
    last sampled frame showing them (ms from the start); ``probe_jpeg`` the frame
    of their best sighting (the probe image of the search), taken at
    ``probe_timestamp_ms`` with the face at ``probe_box``; ``matches`` the
    collection's faces at or above the threshold, highest similarity first
    (0-100, higher is more alike); ``probe_quality`` the probe face's quality in that
    frame (eye distance in pixels, sharpness, brightness: what the tracker chose it by).
    Each match is an investigative lead, not an identification.
    """

    index: int
    first_ms: int
    last_ms: int
    sightings: int
    probe_jpeg: bytes
    probe_timestamp_ms: int
    probe_box: BoundingBox
    matches: tuple[FaceMatch, ...]
    probe_quality: Quality | None = None


@dataclass(frozen=True, eq=False)
class PersonSighting:
    """One person in one analysed frame (Rekognition's PersonMatch): time in ms from the start,
    the Person Index, the face found, and the person's matches in the collection (similarity
    0-100, higher is more alike; each an investigative lead, not an identification)."""

    timestamp_ms: int
    index: int
    face: DetectedFace
    matches: tuple[FaceMatch, ...]

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "Timestamp": self.timestamp_ms,
            "Person": {"Index": self.index, "BoundingBox": self.face.bounding_box.to_rekognition(),
                       "Face": self.face.to_rekognition()},
            "FaceMatches": [m.to_rekognition() for m in self.matches],
        }

    def to_item(self) -> JobItem:
        return JobItem(self.timestamp_ms, self.index, self.to_rekognition())


@dataclass(frozen=True, eq=False)
class FaceSighting:
    """One face in one analysed frame (Rekognition's FaceDetection): time in ms, the face."""

    timestamp_ms: int
    face: DetectedFace

    def to_rekognition(self) -> dict[str, Any]:
        return {"Timestamp": self.timestamp_ms, "Face": self.face.to_rekognition()}

    def to_item(self) -> JobItem:
        return JobItem(self.timestamp_ms, -1, self.to_rekognition())


@dataclass(frozen=True)
class FaceSearchAnalysis:
    """A face search of a whole video: every person found, and the PersonMatch entries
    (Persons of GetFaceSearch: only people with at least one match)."""

    collection_id: str
    threshold: float
    max_faces: int
    model_version: str
    gallery_size: int
    metadata: VideoMetadata
    sample_fps: float
    persons: tuple[PersonFound, ...]
    items: tuple[PersonSighting, ...]


@dataclass(frozen=True)
class FaceDetectionAnalysis:
    """Faces found in the sampled frames of a video (Faces of GetFaceDetection)."""

    metadata: VideoMetadata
    sample_fps: float
    items: tuple[FaceSighting, ...]


def _jpeg(image: Image) -> bytes:
    ok, buf = cv2.imencode(".jpg", image.bgr(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return bytes(buf) if ok else b""


class VideoOps(Backend):
    _video_pool: JobPool | None = None
    _job_reads: JobStore | None = None

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def _limits(self) -> VideoLimits:
        return self.video_limits or VideoLimits()

    def _pool(self) -> JobPool:
        if self._video_pool is None:
            with self._engine_lock:
                if self._video_pool is None:
                    self._video_pool = JobPool(
                        JobStore(self.data_dir, database_url=self.database_url),
                        {FACE_DETECTION: self._run_face_detection, FACE_SEARCH: self._run_face_search},
                        workers=self.video_workers,
                    )
        self._video_pool.ensure_started()  # also queues again the jobs of a stopped worker
        return self._video_pool

    def _object_store(self) -> ObjectStore:
        """The store S3Object videos are read from (InvalidS3ObjectError when this process has none,
        e.g. a job queued by a server started with --buckets and run after a restart without)."""
        if self.objects is None:
            raise InvalidS3ObjectError(
                "Video.S3Object: this server reads no object store (start it with --buckets DIR or "
                "--s3-endpoint-url URL)")
        return self.objects

    def _video_ref(self, video: Any) -> ObjectRef:
        if not isinstance(video, Mapping) or video.get("S3Object") is None:
            raise InvalidParameterError("Video must have an S3Object (Bucket, Name): Rekognition's only video input")
        ref = ObjectRef.from_rekognition(video["S3Object"], "Video.S3Object")
        size = self._object_store().size(ref)
        if size > self._limits.max_bytes:
            raise VideoTooLargeError(f"{ref} is {size} bytes; the limit is {self._limits.max_bytes} bytes")
        return ref

    @staticmethod
    def _common(notification_channel: Any, job_tag: Any, client_request_token: Any) -> None:
        if notification_channel is not None:
            raise InvalidParameterError(
                "NotificationChannel: faceaudit sends no Amazon SNS notifications; omit it and poll "
                "GetFaceDetection / GetFaceSearch until JobStatus is SUCCEEDED or FAILED")
        if job_tag is not None and (not isinstance(job_tag, str) or not 1 <= len(job_tag) <= 1024
                                    or not set(job_tag) <= JOB_TAG_CHARS):
            raise InvalidParameterError("JobTag must be 1-1024 characters of [a-zA-Z0-9_.-:+=/]")
        if client_request_token is not None and (
                not isinstance(client_request_token, str) or not 1 <= len(client_request_token) <= 64
                or not v.CLIENT_REQUEST_TOKEN_RE.fullmatch(client_request_token)):
            raise InvalidParameterError("ClientRequestToken must be 1-64 characters of [a-zA-Z0-9-_]")

    def _start(self, kind: str, request: dict[str, Any], token: str | None,
               job_tag: str | None) -> StartVideoJobResult:
        pool = self._pool()
        job_id, created = pool.store.submit(kind, request, token, job_tag, requester.get({}))
        if created:
            pool.wake()
        return StartVideoJobResult(job_id)

    def _page(self, kind: str, member: str, job_id: Any, max_results: Any, next_token: Any,
              sort_by: str) -> VideoJobPage:
        if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
            raise InvalidParameterError("JobId must be 1-64 characters")
        # botocore's model: MaxResults min 1, no max; Rekognition returns at most 1000 per page
        limit = min(v.int_range(max_results, "MaxResults", DEFAULT_GET_MAX_RESULTS, 1, None), MAX_GET_MAX_RESULTS)
        pool = self._pool()
        job = pool.store.get(job_id, kind)
        secret = self._store.token_secret()
        scope = _tokens.scope_of(job_id, sort_by)
        after = 0 if next_token is None else _tokens.decode(secret, next_token, "video-" + kind, scope)
        items: list[JobItem] = []
        more = None
        if job.status == "SUCCEEDED":
            items, more = pool.store.items(job_id, sort_by, after, limit)
        progress_note = None
        if job.status == "QUEUED":
            progress_note = "queued: waiting for a worker" + (
                f" ({job.status_message})" if job.status_message else "")
        elif job.status == "IN_PROGRESS":
            progress_note = f"{round(job.progress * 100)}% done" + (
                f" ({job.status_message})" if job.status_message else "")
        return VideoJobPage(
            job_id=job.job_id, items_member=member, status=job.wire_status,
            status_message=progress_note or job.status_message, progress=job.progress,
            metadata=VideoMetadata.from_rekognition(job.metadata) if job.metadata else None,
            video=ObjectRef.from_rekognition(job.request["video"]), job_tag=job.job_tag,
            items=tuple(i.doc for i in items),
            next_token=None if more is None else _tokens.encode(secret, "video-" + kind, scope, more),
        )

    def video_job_requester(self, job_id: Any) -> Mapping[str, Any] | None:
        """Who started a stored-video job (access key, role, person...), for the layer that decides
        who may read its results; None when there is no such job."""
        if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
            return None
        if self._video_pool is not None:
            return self._video_pool.store.requester_of(job_id)
        if self._job_reads is None:  # reads only: no worker started for them
            self._job_reads = JobStore(self.data_dir, database_url=self.database_url)
        return self._job_reads.requester_of(job_id)

    # -- Rekognition operations ------------------------------------------------------------------

    def start_face_detection(self, *, video: Any, client_request_token: str | None = None,
                             notification_channel: Any = None, face_attributes: str | None = None,
                             job_tag: str | None = None) -> StartVideoJobResult:
        """Start finding the faces in a stored video; poll :meth:`get_face_detection`.

        FaceAttributes DEFAULT or ALL (the same here: no age, gender or emotion is estimated).
        """
        self._common(notification_channel, job_tag, client_request_token)
        if face_attributes not in (None, "DEFAULT", "ALL"):
            raise InvalidParameterError("FaceAttributes must be DEFAULT or ALL")
        ref = self._video_ref(video)
        request = {"video": ref.to_rekognition(), "fps": check_sample_fps(self.video_sample_fps)}
        return self._start(FACE_DETECTION, request, client_request_token, job_tag)

    def get_face_detection(self, *, job_id: str, max_results: int | None = None,
                           next_token: str | None = None) -> VideoJobPage:
        """The job's state and, once SUCCEEDED, its Faces sorted by Timestamp (ms)."""
        return self._page(FACE_DETECTION, "Faces", job_id, max_results, next_token, "TIMESTAMP")

    def start_face_search(self, *, video: Any, collection_id: str, client_request_token: str | None = None,
                          face_match_threshold: float | None = None, notification_channel: Any = None,
                          job_tag: str | None = None) -> StartVideoJobResult:
        """Start searching the collection for the faces of everyone in a stored video.

        FaceMatchThreshold: default 80 (similarity 0-100, higher is more alike; 80
        promises a false-match rate of about 1 in 100,000 per comparison).
        """
        self._common(notification_channel, job_tag, client_request_token)
        name = v.collection_id(collection_id)
        threshold = v.percent(face_match_threshold, "FaceMatchThreshold", v.DEFAULT_FACE_MATCH_THRESHOLD)
        self._engine(self._collection_row(name))  # the collection exists, with a model we provide
        ref = self._video_ref(video)
        request = {"video": ref.to_rekognition(), "collection_id": name, "threshold": threshold,
                   "fps": check_sample_fps(self.video_sample_fps), "max_faces": DEFAULT_VIDEO_MAX_FACES}
        return self._start(FACE_SEARCH, request, client_request_token, job_tag)

    def get_face_search(self, *, job_id: str, max_results: int | None = None,
                        next_token: str | None = None, sort_by: str | None = None) -> VideoJobPage:
        """The job's state and, once SUCCEEDED, its Persons (SortBy TIMESTAMP, the default, or INDEX)."""
        order = "TIMESTAMP" if sort_by is None else sort_by
        if order not in SORT_ORDERS:
            raise InvalidParameterError("SortBy must be INDEX or TIMESTAMP")
        return self._page(FACE_SEARCH, "Persons", job_id, max_results, next_token, order)

    # -- the analyses (also called by the CLI on local files) -------------------------------------

    def detect_faces_in_video(self, path: str | os.PathLike[str], *, sample_fps: float | None = None,
                              progress: Progress | None = None) -> FaceDetectionAnalysis:
        """Every face of every sampled frame of a local video file."""
        from faceaudit.engine import DEFAULT_MODEL, FaceEngine

        fps = check_sample_fps(sample_fps)
        meta = probe_video(Path(path), self._limits)
        with self._engine_lock:
            engine = self._engines.get(DEFAULT_MODEL) or self._engines.setdefault(
                DEFAULT_MODEL, FaceEngine(DEFAULT_MODEL))
        expected = max(1, math.ceil(meta.duration_millis / 1000.0 * fps))
        items = []
        for n, frame in enumerate(sample_frames(path, meta, fps, self._limits)):
            for face in engine.detect(frame.image).faces:
                items.append(FaceSighting(frame.timestamp_ms, face))
            _report(progress, n + 1, expected, frame.timestamp_ms, meta)
        return FaceDetectionAnalysis(metadata=meta, sample_fps=fps, items=tuple(items))

    def search_faces_in_video(self, *, collection_id: str, path: str | os.PathLike[str],
                              face_match_threshold: float | None = None,
                              sample_fps: float | None = None,
                              max_faces: int | None = None,
                              progress: Progress | None = None) -> FaceSearchAnalysis:
        """Follow everyone in a local video file and search each person's best frames."""
        name = v.collection_id(collection_id)
        threshold = v.percent(face_match_threshold, "FaceMatchThreshold", v.DEFAULT_FACE_MATCH_THRESHOLD)
        k = v.int_range(max_faces, "MaxFaces", DEFAULT_VIDEO_MAX_FACES, 1, v.MAX_SEARCH_MAX_FACES)
        fps = check_sample_fps(sample_fps)
        engine = self._engine(self._collection_row(name))
        meta = probe_video(Path(path), self._limits)
        tracker = FaceTracker(engine.spec.scale)
        probes: dict[int, dict[int, bytes]] = {}
        expected = max(1, math.ceil(meta.duration_millis / 1000.0 * fps))
        for n, frame in enumerate(sample_frames(path, meta, fps, self._limits)):
            faces = engine.detect(frame.image).faces
            vectors = [engine.embed(frame.image, f).vector for f in faces]
            for ti in set(tracker.update(frame.number, frame.timestamp_ms, list(zip(faces, vectors, strict=True)))):
                keep = {s.frame_number for s in tracker.tracks[ti].best()}
                kept = probes.setdefault(ti, {})
                if frame.number in keep and frame.number not in kept:
                    kept[frame.number] = _jpeg(frame.image)
                for number in list(kept):
                    if number not in keep:
                        del kept[number]
            _report(progress, n + 1, expected, frame.timestamp_ms, meta)
        persons: list[PersonFound] = []
        items: list[PersonSighting] = []
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            self._check_pin(coll, engine)
            for track in tracker.tracks:
                person = self._search_track(conn, coll, track, k, threshold, probes.get(track.index, {}))
                persons.append(person)
                if person.matches:
                    items.extend(PersonSighting(s.timestamp_ms, track.index, s.face, person.matches)
                                 for s in track.sightings)
        return FaceSearchAnalysis(collection_id=name, threshold=threshold, max_faces=k,
                                  model_version=coll.model_version, gallery_size=coll.face_count,
                                  metadata=meta, sample_fps=fps,
                                  persons=tuple(persons), items=tuple(items))

    def _search_track(self, conn: Connection, coll: CollectionRow, track: Track, k: int, threshold: float,
                      probes: Mapping[int, bytes]) -> PersonFound:
        best = track.best()
        hits = self._search(conn, coll, np.stack([s.vector for s in best]), k, threshold)
        merged: dict[int, float] = {}
        for found in hits:
            for row, sim in found:
                merged[row] = max(sim, merged.get(row, -1.0))
        top = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        matches = self._matches(conn, coll, top) if top else ()
        first = best[0]
        return PersonFound(
            index=track.index, first_ms=track.sightings[0].timestamp_ms,
            last_ms=track.last.timestamp_ms, sightings=len(track.sightings),
            probe_jpeg=probes.get(first.frame_number, b""), probe_timestamp_ms=first.timestamp_ms,
            probe_box=first.face.bounding_box, matches=tuple(matches), probe_quality=first.face.quality,
        )

    # -- the job runners ---------------------------------------------------------------------------

    def _run_face_detection(self, job: Job, progress: Progress) -> JobOutcome:
        ref = ObjectRef.from_rekognition(job.request["video"])
        with self._object_store().local_copy(ref, self._limits.max_bytes) as path:
            found = self.detect_faces_in_video(path, sample_fps=job.request["fps"], progress=progress)
        return JobOutcome(metadata=found.metadata.to_rekognition(), items=[i.to_item() for i in found.items])

    def _run_face_search(self, job: Job, progress: Progress) -> JobOutcome:
        req = job.request
        ref = ObjectRef.from_rekognition(req["video"])
        with self._object_store().local_copy(ref, self._limits.max_bytes) as path:
            found = self.search_faces_in_video(
                collection_id=req["collection_id"], path=path, face_match_threshold=req["threshold"],
                sample_fps=req["fps"], max_faces=req["max_faces"], progress=progress)
        if self.video_observer is not None:  # accountability first: no result without its record
            self.video_observer(job.requester, job.job_id, str(ref), found)
        return JobOutcome(metadata=found.metadata.to_rekognition(), items=[i.to_item() for i in found.items])


def _report(progress: Progress | None, done: int, expected: int, t_ms: int, meta: VideoMetadata) -> None:
    if progress is not None:
        progress(min(0.99, done / expected),
                 f"analysed {t_ms / 1000:.1f} s of {meta.duration_millis / 1000:.1f} s")
