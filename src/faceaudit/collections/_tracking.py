"""Following faces across sampled video frames, so that one person keeps one Person Index.

A face in a new frame joins a track when its box overlaps the track's last box
(intersection over union) in a recent frame and its embedding is not unlike the
track's, or, whatever the boxes, when its embedding is alike enough (a person
who left the picture and came back). Pairs are joined greedily, the most alike
first, one face per track per frame. Each track keeps its best frames (large,
sharp, confident faces): the ones searched in the collection.

Thresholds are Similarity values (0-100, higher is more alike) converted with
the model's own scale, so they mean the same false-match rate on every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from faceaudit.engine import DetectedFace, SimilarityScale

RELINK_SIMILARITY = 85.0
"""Similarity at which a face joins a track without overlapping it (a person coming back)."""
OVERLAP_SIMILARITY = 75.0
"""Similarity a face overlapping a recent track's box must still reach to join it."""
MIN_IOU = 0.3
"""Box overlap (intersection over union) that counts as the same place in the picture."""
MAX_GAP_MS = 2000
"""How long a track's last box counts as recent for the overlap rule (milliseconds)."""
BEST_FRAMES = 3
"""Frames of each track searched in the collection."""
USEFUL_EYE_DISTANCE_PX = 36.0
"""Eye distance above which a larger face makes no better probe: the embedders align every face to
112x112 pixels with the eyes about 35 px apart (SFace's and ArcFace's template), so past that size
sharpness decides. Below it, fewer pixels between the eyes is what degrades a probe most (issue 19:
mates missed at Similarity 80 rose from 1.5% at 30 px to 5% at 15 px, JPEG 75)."""


@dataclass(frozen=True, eq=False)
class Sighting:
    """One face of a track in one frame: time in ms, the face, its embedding, frame number."""

    timestamp_ms: int
    face: DetectedFace
    vector: np.ndarray
    frame_number: int

    @property
    def quality(self) -> float:
        """How good a probe this face makes (higher is better): eye distance (capped at
        :data:`USEFUL_EYE_DISTANCE_PX`) x sharpness x detector confidence.

        The eye distance is the face's measured one (``Quality.eye_distance_px``), or 0.4 of its
        box's shorter side for a face measured without landmarks; sharpness (0-100) weighs from
        0.5 (none) to 1 (sharpest); among faces of the same usable size the sharpest wins.
        """
        q = self.face.quality
        eyes = float(getattr(q, "eye_distance_px", 0.0) or 0.0) \
            or 0.4 * float(getattr(q, "face_size_px", 0.0) or 0.0)
        sharp = float(getattr(q, "sharpness", 50.0) or 0.0)
        return min(eyes, USEFUL_EYE_DISTANCE_PX) * (0.5 + sharp / 200.0) * self.face.confidence / 100.0


@dataclass(eq=False)
class Track:
    """One person's sightings, in time order, and the sum of their embeddings."""

    index: int
    sightings: list[Sighting] = field(default_factory=list)
    _sum: np.ndarray | None = None

    def add(self, s: Sighting) -> None:
        self.sightings.append(s)
        self._sum = s.vector.astype(np.float64) if self._sum is None else self._sum + s.vector

    @property
    def mean(self) -> np.ndarray:
        v = self._sum if self._sum is not None else np.zeros(1)
        n = float(np.linalg.norm(v))
        return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def best(self, n: int = BEST_FRAMES) -> list[Sighting]:
        """The ``n`` best sightings (by :attr:`Sighting.quality`), best first."""
        return sorted(self.sightings, key=lambda s: -s.quality)[:n]


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Assigns each face of each sampled frame to a track (a Person Index from 0)."""

    def __init__(self, scale: SimilarityScale, relink_similarity: float = RELINK_SIMILARITY,
                 overlap_similarity: float = OVERLAP_SIMILARITY, min_iou: float = MIN_IOU,
                 max_gap_ms: int = MAX_GAP_MS) -> None:
        self._relink = scale.to_cosine(relink_similarity)
        self._overlap = scale.to_cosine(overlap_similarity)
        self._min_iou = min_iou
        self._max_gap = max_gap_ms
        self.tracks: list[Track] = []

    def update(self, frame_number: int, timestamp_ms: int,
               faces: Sequence[tuple[DetectedFace, np.ndarray]]) -> list[int]:
        """The track index of each face (in the order given)."""
        pairs = []
        for fi, (face, vec) in enumerate(faces):
            box = _box(face)
            for track in self.tracks:
                cos = float(np.dot(track.mean, vec))
                recent = timestamp_ms - track.last.timestamp_ms <= self._max_gap
                overlap = recent and iou(_box(track.last.face), box) >= self._min_iou
                if cos >= self._relink or (overlap and cos >= self._overlap):
                    pairs.append((cos + (1.0 if overlap else 0.0), fi, track.index))
        pairs.sort(key=lambda p: -p[0])
        assigned: dict[int, int] = {}  # face -> track
        taken: set[int] = set()
        for _, fi, ti in pairs:
            if fi in assigned or ti in taken:
                continue
            assigned[fi] = ti
            taken.add(ti)
        out = []
        for fi, (face, vec) in enumerate(faces):
            if fi in assigned:
                ti = assigned[fi]
            else:
                ti = len(self.tracks)
                self.tracks.append(Track(index=ti))
            self.tracks[ti].add(Sighting(timestamp_ms, face, np.asarray(vec, np.float32), frame_number))
            out.append(ti)
        return out


def _box(face: DetectedFace) -> tuple[float, float, float, float]:
    b = face.bounding_box
    return (b.left, b.top, b.width, b.height)
