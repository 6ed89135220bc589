"""Second model: dlib's HOG detector, 5-point landmarks and ResNet-128 embedder.

Only the 5-point landmark file is ever loaded (the 68-point file is licensed
for non-commercial use). dlib's 5 points are the two corners of each eye and
the base of the nose; the mouth corners that Rekognition reports are
*estimated* from them (placed so that a frontal face reads pitch 0), so dlib's
pitch is always about 0 and its mouth landmarks are approximate.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np

from faceaudit.engine._base import detection_scale, normalise
from faceaudit.engine._image import Image
from faceaudit.engine._quality import build_face
from faceaudit.engine._types import DetectedFace

DETECT_MAX_SIDE = 1024
_UPSAMPLE_BELOW = 600  # upsample once when the detection image's longer side is below this


def _import_dlib():
    import dlib

    return dlib


def _score_to_confidence(score: float) -> float:
    """dlib's HOG SVM margin to 0-100: ``100 / (1 + exp(-3 (score + 0.5)))``."""
    return 100.0 / (1.0 + math.exp(-3.0 * (score + 0.5)))


class DlibHogDetector:
    """dlib's frontal-face HOG detector with the 5-point shape predictor."""

    runtime = "dlib"

    def __init__(self, shape_predictor: Path):
        dlib = _import_dlib()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(shape_predictor))
        self._lock = threading.Lock()

    def _five_points(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        x, y, w, h = box
        rect = self._dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
        shape = self._predictor(rgb, rect)
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        eye_a, eye_b, nose = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0), pts[4]
        eye_l, eye_r = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
        eye_mid = (eye_l + eye_r) / 2
        mouth_mid = eye_mid + (nose - eye_mid) / 0.55
        half = (eye_r - eye_l) * 0.4
        return np.array([eye_l, eye_r, nose, mouth_mid - half, mouth_mid + half], dtype=np.float32)

    def detect(self, image: Image, limit: int | None = None) -> list[DetectedFace]:
        rgb = image.pixels
        scale = detection_scale(image.width, image.height, DETECT_MAX_SIDE)
        small = rgb
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        upsample = 1 if max(small.shape[:2]) < _UPSAMPLE_BELOW else 0
        with self._lock:
            rects, scores, _ = self._detector.run(np.ascontiguousarray(small), upsample, 0.0)
        found = sorted(zip(rects, scores, strict=True), key=lambda rs: rs[0].width() * rs[0].height(), reverse=True)
        faces = []
        for rect, score in found[:limit] if limit is not None else found:
            box = (
                rect.left() / scale,
                rect.top() / scale,
                rect.width() / scale,
                rect.height() / scale,
            )
            with self._lock:
                landmarks = self._five_points(rgb, box)
            faces.append(build_face(rgb, box, landmarks, _score_to_confidence(float(score)), cv2.COLOR_RGB2GRAY))
        return faces

    def shape(self, rgb: np.ndarray, face: DetectedFace):
        x, y, w, h = face.box_px
        rect = self._dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
        with self._lock:
            return self._predictor(rgb, rect)


class DlibResNetEmbedder:
    """dlib's ResNet face descriptor (128-d), L2-normalised."""

    dimension = 128
    runtime = "dlib"

    def __init__(self, recognition_model: Path, detector: DlibHogDetector):
        dlib = _import_dlib()
        self._net = dlib.face_recognition_model_v1(str(recognition_model))
        self._detector = detector
        self._lock = threading.Lock()

    def embed(self, image: Image, face: DetectedFace) -> np.ndarray:
        rgb = np.ascontiguousarray(image.pixels)
        shape = self._detector.shape(rgb, face)
        with self._lock:
            descriptor = self._net.compute_face_descriptor(rgb, shape, 0)
        return normalise(np.array(descriptor, dtype=np.float32))
