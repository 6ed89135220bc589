"""QualityFilter bars, reasons, and the MaxFaces order."""

import numpy as np
import pytest

from faceaudit.collections import BARS, REASONS, quality_band, quality_score
from faceaudit.collections._quality import failures, select
from faceaudit.engine import BoundingBox, DetectedFace, Pose, Quality


def face(conf=93.0, bright=50.0, sharp=60.0, size=100.0, yaw=0.0, pitch=0.0, area=0.25):
    side = area ** 0.5
    return DetectedFace(
        bounding_box=BoundingBox(0.1, 0.1, side, side), confidence=conf, landmarks=(),
        pose=Pose(roll=0.0, yaw=yaw, pitch=pitch), quality=Quality(bright, sharp, size),
        box_px=(0, 0, size, size), landmarks_px=np.zeros((5, 2), np.float32),
    )


def test_a_good_face_passes_every_bar():
    f = face()
    assert all(failures(f, level) == [] for level in ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH"))
    assert quality_band(f) == 3 and 80 < quality_score(f) <= 100


@pytest.mark.parametrize("kwargs, reason", [
    (dict(conf=70), "LOW_CONFIDENCE"),
    (dict(size=20), "SMALL_BOUNDING_BOX"),
    (dict(yaw=60), "EXTREME_POSE"),
    (dict(pitch=-60), "EXTREME_POSE"),
    (dict(bright=3), "LOW_BRIGHTNESS"),
    (dict(sharp=4), "LOW_SHARPNESS"),
])
def test_each_check_has_its_reason(kwargs, reason):
    f = face(**kwargs)
    assert reason in failures(f, "AUTO") == failures(f, "MEDIUM")
    assert failures(f, "NONE") == []
    assert reason in failures(f, "HIGH")


def test_bars_get_stricter_and_auto_is_medium():
    assert BARS["AUTO"] == BARS["MEDIUM"]
    lo, me, hi = BARS["LOW"], BARS["MEDIUM"], BARS["HIGH"]
    for attr in ("min_confidence", "min_face_px", "min_brightness", "min_sharpness", "min_quality"):
        assert getattr(lo, attr) < getattr(me, attr) < getattr(hi, attr)
    assert lo.max_pose_degrees > me.max_pose_degrees > hi.max_pose_degrees
    f = face(sharp=8)  # between LOW/MEDIUM (3, 5) and HIGH (12)
    assert failures(f, "LOW") == failures(f, "AUTO") == [] and failures(f, "HIGH") == ["LOW_SHARPNESS"]
    assert quality_band(f) == 2
    assert quality_band(face(yaw=80)) == 0


def test_low_face_quality_catches_narrow_passes_together():
    f = face(conf=86, sharp=13, bright=11, size=41, yaw=34)  # passes each HIGH check narrowly
    assert failures(f, "HIGH") == ["LOW_FACE_QUALITY"]
    assert set(REASONS) >= {"LOW_FACE_QUALITY", "EXCEEDS_MAX_FACES"}


def test_max_faces_drops_lowest_quality_band_then_smallest():
    big_blurry = face(sharp=8, area=0.3)          # band 2 (fails HIGH)
    small_sharp = face(area=0.01)                  # band 3
    mid_sharp = face(area=0.05)                    # band 3
    profile = face(yaw=70, area=0.2)               # fails AUTO
    keep, dropped = select([big_blurry, small_sharp, mid_sharp, profile], "AUTO", 2)
    assert keep == [mid_sharp, small_sharp]        # largest first
    assert dropped == [(big_blurry, ("EXCEEDS_MAX_FACES",)), (profile, ("EXTREME_POSE",))]
    keep, dropped = select([big_blurry, small_sharp, mid_sharp, profile], "NONE", 3)
    assert keep == [big_blurry, mid_sharp, small_sharp] and dropped == [(profile, ("EXCEEDS_MAX_FACES",))]
