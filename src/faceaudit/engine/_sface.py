"""Default model: OpenCV's YuNet detector and SFace embedder (int8 ONNX builds)."""

from __future__ import annotations

import enum
import importlib.util
import os
import threading
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from faceaudit._errors import InvalidParameterError, ModelNotInstalledError
from faceaudit.engine._base import Embedder, detection_scale, normalise
from faceaudit.engine._image import Image
from faceaudit.engine._quality import build_face
from faceaudit.engine._types import DetectedFace

DETECT_MAX_SIDE = 1280
"""Images are downscaled so the longer side is at most this for detection; boxes map back."""


class YuNetDetector:
    """OpenCV FaceDetectorYN. Confidence is YuNet's face score times 100."""

    def __init__(self, weights: Path, score_threshold: float = 0.6, nms_threshold: float = 0.3):
        self._net = cv2.FaceDetectorYN.create(
            str(weights), "", (320, 320), score_threshold, nms_threshold, 5000
        )
        self._lock = threading.Lock()

    def detect(self, image: Image, limit: Optional[int] = None) -> List[DetectedFace]:
        bgr = image.bgr()
        scale = detection_scale(image.width, image.height, DETECT_MAX_SIDE)
        small = bgr
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            self._net.setInputSize((small.shape[1], small.shape[0]))
            _, rows = self._net.detect(small)
        if rows is None:
            return []
        faces = []
        for row in largest_rows(rows, limit):
            px = row[:14].astype(np.float64) / scale  # back to pixels of the original image
            box = (px[0], px[1], px[2], px[3])
            faces.append(build_face(bgr, box, px[4:14].reshape(5, 2), float(row[14]) * 100.0, cv2.COLOR_BGR2GRAY))
        return faces


def largest_rows(rows: np.ndarray, limit: Optional[int]) -> np.ndarray:
    """YuNet's rows (x, y, w, h, ...), the ``limit`` largest boxes first (all when None)."""
    if len(rows) == 1:
        return rows
    order = np.argsort(-(rows[:, 2].astype(np.float64) * rows[:, 3]), kind="stable")
    return rows[order[:limit] if limit is not None else order]


class SFaceEmbedder:
    """OpenCV FaceRecognizerSF: aligns on the five landmarks, 128-d feature."""

    dimension = 128
    runtime = "opencv dnn"

    def __init__(self, weights: Path):
        self._net = cv2.FaceRecognizerSF.create(str(weights), "")
        self._lock = threading.Lock()

    def embed(self, image: Image, face: DetectedFace) -> np.ndarray:
        row = np.concatenate(
            [np.asarray(face.box_px, dtype=np.float32), face.landmarks_px.reshape(-1), [face.confidence / 100.0]]
        ).astype(np.float32)
        bgr = image.bgr()  # decoded and converted once per image (cached)
        with self._lock:
            aligned = self._net.alignCrop(bgr, row)
            feature = self._net.feature(aligned)
        return normalise(feature)


class Runtime(enum.Enum):
    """What runs the SFace network. Both give the same embeddings (cosine >= 0.9999)."""

    AUTO = "auto"  # ONNX Runtime when installed (faster; a GPU where onnxruntime-gpu has one), else OpenCV
    OPENCV = "opencv"  # OpenCV's DNN module
    ONNXRUNTIME = "onnxruntime"

    @classmethod
    def from_environment(cls) -> "Runtime":
        """``FACEAUDIT_RUNTIME`` (auto, opencv or onnxruntime; default auto)."""
        raw = os.environ.get("FACEAUDIT_RUNTIME", "auto").strip().lower() or "auto"
        try:
            return cls(raw)
        except ValueError:
            raise InvalidParameterError(
                f"FACEAUDIT_RUNTIME={raw!r} is not one of: {', '.join(r.value for r in cls)}"
            ) from None


def onnxruntime_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def _resolve(runtime: Optional[Runtime]) -> Runtime:
    runtime = runtime or Runtime.from_environment()
    if runtime is Runtime.AUTO:
        return Runtime.ONNXRUNTIME if onnxruntime_installed() else Runtime.OPENCV
    return runtime


def planned_runtime(runtime: Optional[Runtime] = None) -> str:
    """What :func:`sface_embedder` would run SFace on, for people (loads nothing)."""
    runtime = _resolve(runtime)
    if runtime is Runtime.OPENCV or not onnxruntime_installed():
        return "opencv dnn" + ("" if runtime is Runtime.OPENCV else " (onnxruntime not installed)")
    from faceaudit.engine._onnx import onnx_providers

    return f"onnxruntime ({', '.join(p.replace('ExecutionProvider', '') for p in onnx_providers())})"


def sface_embedder(weights: Path, runtime: Optional[Runtime] = None) -> Embedder:
    """The SFace embedder on ``runtime`` (default: :meth:`Runtime.from_environment`)."""
    runtime = _resolve(runtime)
    if runtime is Runtime.OPENCV:
        return SFaceEmbedder(weights)
    if not onnxruntime_installed():
        raise ModelNotInstalledError(
            "FACEAUDIT_RUNTIME=onnxruntime needs the onnxruntime and onnx packages (pip install onnxruntime onnx)"
        )
    from faceaudit.engine._onnx import OnnxSFaceEmbedder

    return OnnxSFaceEmbedder(weights)
