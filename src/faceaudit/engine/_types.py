"""Typed results of the face engine, shaped after Rekognition's FaceDetail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LANDMARK_TYPES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
"""The five landmarks every detector reports, in this order (Rekognition's names).

"Left" and "right" are from the viewer's side of the image, as in Rekognition.
"""


@dataclass(frozen=True)
class BoundingBox:
    """A face box as ratios of the image: left/top/width/height, each 0-1 (may stray past at edges)."""

    left: float
    top: float
    width: float
    height: float

    def to_rekognition(self) -> dict[str, float]:
        return {"Width": self.width, "Height": self.height, "Left": self.left, "Top": self.top}

    def to_pixels(self, image_width: int, image_height: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) in pixels of an image of the given size."""
        return (
            self.left * image_width,
            self.top * image_height,
            self.width * image_width,
            self.height * image_height,
        )


@dataclass(frozen=True)
class Landmark:
    """A facial landmark; x and y are ratios of the image width and height."""

    type: str
    x: float
    y: float

    def to_rekognition(self) -> dict[str, Any]:
        return {"Type": self.type, "X": self.x, "Y": self.y}


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees, estimated from the landmarks (Rekognition's Pose: -180..180)."""

    roll: float
    yaw: float
    pitch: float

    def to_rekognition(self) -> dict[str, float]:
        return {"Roll": self.roll, "Yaw": self.yaw, "Pitch": self.pitch}


@dataclass(frozen=True)
class Quality:
    """Image quality of one face.

    brightness: mean luminance of the face box, 0-100 (higher is brighter).
    sharpness: focus measure of the face box, 0-100 (higher is sharper).
    face_size_px: the shorter side of the face box in pixels of the original image.
    eye_distance_px: pixels between the two eye landmarks (inter-ocular distance) in the
    original image; the size measure of probe quality (:func:`faceaudit.engine.quality_band`).
    noise: sensor noise of the face box, the estimated standard deviation of pixel noise in
    8-bit gray levels (higher is noisier; low light raises it): the capture measure of probe
    quality (:func:`faceaudit.engine.probe_band`); None where it was not measured (a face
    known only from its stored FaceDetail).
    Neither is part of Rekognition's Quality: both are kept out of :meth:`to_rekognition`.
    """

    brightness: float
    sharpness: float
    face_size_px: float
    eye_distance_px: float = 0.0
    noise: float | None = None

    def to_rekognition(self) -> dict[str, float]:
        return {"Brightness": self.brightness, "Sharpness": self.sharpness}


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face found by a detector.

    ``confidence`` is the detector's confidence that this is a face, 0-100.
    ``landmarks_px`` holds the five landmarks in pixels of the original image
    (shape (5, 2), order of :data:`LANDMARK_TYPES`); embedders align with it.
    """

    bounding_box: BoundingBox
    confidence: float
    landmarks: tuple[Landmark, ...]
    pose: Pose
    quality: Quality
    box_px: tuple[float, float, float, float]
    landmarks_px: np.ndarray

    @property
    def area(self) -> float:
        """Box area as a fraction of the image (used to pick the largest face)."""
        return max(self.bounding_box.width, 0.0) * max(self.bounding_box.height, 0.0)

    def to_rekognition(self) -> dict[str, Any]:
        """Rekognition's FaceDetail with the DEFAULT attributes."""
        return {
            "BoundingBox": self.bounding_box.to_rekognition(),
            "Landmarks": [lm.to_rekognition() for lm in self.landmarks],
            "Pose": self.pose.to_rekognition(),
            "Quality": self.quality.to_rekognition(),
            "Confidence": self.confidence,
        }

    def compare_face(self) -> dict[str, Any]:
        """Rekognition's ComparedFace shape (CompareFaces)."""
        return self.to_rekognition()


@dataclass(frozen=True, eq=False)
class FaceEmbedding:
    """A detected face with its embedding: an L2-normalised float32 vector."""

    face: DetectedFace
    vector: np.ndarray
