"""QualityFilter: which detected faces are good enough to index or search.

Rekognition does not publish its quality bars; faceaudit's are explicit and
measured on the engine's own quality estimates (:class:`faceaudit.engine.Quality`,
:class:`~faceaudit.engine.Pose`, detector confidence). A face fails a bar for
each check below that it misses; each failure adds its Reason:

================== ============================================ ===== ======== =====
Reason             check (face fails when ...)                   LOW   MEDIUM   HIGH
================== ============================================ ===== ======== =====
LOW_CONFIDENCE     detector confidence (0-100) <                 65    75       85
SMALL_BOUNDING_BOX shorter side of the face box, pixels, <       16    24       40
EXTREME_POSE       max(abs(yaw), abs(pitch)), degrees, >         75    55       35
LOW_BRIGHTNESS     face-box brightness (0-100) <                 2     4        10
LOW_SHARPNESS      face-box sharpness (0-100) <                  3     5        12
LOW_FACE_QUALITY   composite quality score (0-100) <             50    60       70
================== ============================================ ===== ======== =====

``AUTO`` is ``MEDIUM``; ``NONE`` filters nothing. Roll is not checked: the
embedders align on the eyes, which undoes roll.

The composite quality score (0-100, higher is better) is the mean of five
sub-scores: confidence; sharpness; brightness ``100 * min(1, b / 30)`` (and
``100 * (100 - b) / 10`` above 90, over-exposed); size ``100 * min(1, px / 64)``;
pose ``100 * (1 - min(1, max(|yaw|, |pitch|) / 90))``. It catches faces that
pass every single check narrowly.

How the bars were set (sface, the 3,485 photos of the shared data): on
official portraits AUTO drops only profile views (yaw near 90), full-body shots
with faces under 24 px, and a few tiny background faces; HIGH also drops small
faces in low-resolution portraits (about 15% of former members' portraits).
The brightness and sharpness bars are deliberately low: both measures depend on
skin tone as well as on lighting and focus. On the MEDS mugshots the darkest
well-exposed face of a Black subject measures brightness 5.2 and the least sharp
8.9 (White subjects: 18.7 and 16.6), so bars like 12 and 10 would have dropped
Black subjects' photos first. With these bars AUTO drops 3 of 53 MEDS photos of
White subjects and 3 of 61 of Black subjects: five profile views and one
face with detector confidence 68.

When an image has more faces than MaxFaces, the faces of the lowest quality
band are dropped first, then the smallest (``quality_band``: the strictest bar
a face passes, HIGH 3, MEDIUM 2, LOW 1, none 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from faceaudit.engine import DetectedFace

REASONS = (
    "EXCEEDS_MAX_FACES", "EXTREME_POSE", "LOW_BRIGHTNESS", "LOW_SHARPNESS", "LOW_CONFIDENCE",
    "SMALL_BOUNDING_BOX", "LOW_FACE_QUALITY",
)


@dataclass(frozen=True)
class QualityBar:
    """The minimum quality of one filter level (see the module docstring)."""

    min_confidence: float
    min_face_px: float
    max_pose_degrees: float
    min_brightness: float
    min_sharpness: float
    min_quality: float


BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(65.0, 16.0, 75.0, 2.0, 3.0, 50.0),
    "MEDIUM": QualityBar(75.0, 24.0, 55.0, 4.0, 5.0, 60.0),
    "HIGH": QualityBar(85.0, 40.0, 35.0, 10.0, 12.0, 70.0),
}
BARS["AUTO"] = BARS["MEDIUM"]


def quality_score(face: DetectedFace) -> float:
    """Composite quality, 0-100 (higher is better)."""
    q, p = face.quality, face.pose
    b = q.brightness
    bright = 100.0 * min(1.0, b / 30.0) if b <= 90.0 else 100.0 * max(0.0, (100.0 - b) / 10.0)
    size = 100.0 * min(1.0, q.face_size_px / 64.0)
    pose = 100.0 * (1.0 - min(1.0, max(abs(p.yaw), abs(p.pitch)) / 90.0))
    return round((face.confidence + q.sharpness + bright + size + pose) / 5.0, 3)


def failures(face: DetectedFace, level: str) -> list[str]:
    """The Reasons why ``face`` fails the bar of ``level`` ([] when it passes or level is NONE)."""
    bar = BARS.get(level)
    if bar is None:
        return []
    reasons = []
    if max(abs(face.pose.yaw), abs(face.pose.pitch)) > bar.max_pose_degrees:
        reasons.append("EXTREME_POSE")
    if face.quality.brightness < bar.min_brightness:
        reasons.append("LOW_BRIGHTNESS")
    if face.quality.sharpness < bar.min_sharpness:
        reasons.append("LOW_SHARPNESS")
    if face.confidence < bar.min_confidence:
        reasons.append("LOW_CONFIDENCE")
    if face.quality.face_size_px < bar.min_face_px:
        reasons.append("SMALL_BOUNDING_BOX")
    if quality_score(face) < bar.min_quality:
        reasons.append("LOW_FACE_QUALITY")
    return reasons


def passes_quality(level: str) -> Callable[[DetectedFace], bool]:
    """A predicate: does a face pass the bar of ``level`` (NONE: every face does)? For
    CompareFaces' QualityFilter, whose filtered faces take no part in the comparison."""
    return lambda face: not failures(face, level)


def quality_band(face: DetectedFace) -> int:
    """The strictest bar ``face`` passes: HIGH 3, MEDIUM 2, LOW 1, none 0."""
    for band, level in ((3, "HIGH"), (2, "MEDIUM"), (1, "LOW")):
        if not failures(face, level):
            return band
    return 0


def select(
    faces: Sequence[DetectedFace], level: str, max_faces: int
) -> tuple[list[DetectedFace], list[tuple[DetectedFace, tuple[str, ...]]]]:
    """Split ``faces`` into (to index, [(not indexed, reasons)]), each largest first.

    Faces failing the ``level`` bar are not indexed (their reasons); of the rest,
    beyond ``max_faces`` the lowest quality band goes first, then the smallest
    box (EXCEEDS_MAX_FACES).
    """
    passing, rejected = [], []
    for f in faces:
        reasons = failures(f, level)
        (rejected.append((f, tuple(reasons))) if reasons else passing.append(f))
    ranked = sorted(passing, key=lambda f: (quality_band(f), f.area), reverse=True)
    keep = set(map(id, ranked[:max_faces]))
    indexed = [f for f in passing if id(f) in keep]
    over = [(f, ("EXCEEDS_MAX_FACES",)) for f in passing if id(f) not in keep]
    by_area = lambda item: item[0].area  # noqa: E731
    unindexed = sorted(over + rejected, key=by_area, reverse=True)
    return sorted(indexed, key=lambda f: f.area, reverse=True), unindexed
