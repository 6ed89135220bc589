"""Default model: OpenCV's YuNet detector and SFace embedder (int8 ONNX builds)."""

from __future__ import annotations

import enum
import importlib.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from faceaudit._errors import FaceAuditError, ModelError, ModelNotInstalledError
from faceaudit.engine._base import Detector, Embedder, describe_runtimes, detection_scale, normalise
from faceaudit.engine._image import Image
from faceaudit.engine._quality import build_face
from faceaudit.engine._types import DetectedFace

_Network = TypeVar("_Network", Detector, Embedder)

log = logging.getLogger(__name__)

DETECT_MAX_SIDE = 1280
"""Images are downscaled so the longer side is at most this for detection; boxes map back."""


class YuNetDetector:
    """OpenCV FaceDetectorYN. Confidence is YuNet's face score times 100."""

    runtime = "opencv dnn"

    def __init__(self, weights: Path, score_threshold: float = 0.6, nms_threshold: float = 0.3):
        self._net = cv2.FaceDetectorYN.create(
            str(weights), "", (320, 320), score_threshold, nms_threshold, 5000
        )
        self._lock = threading.Lock()

    def _raw_rows(self, small: np.ndarray) -> np.ndarray | None:
        """FaceDetectorYN's rows for the (downscaled) BGR image, or None when it finds no face."""
        with self._lock:
            self._net.setInputSize((small.shape[1], small.shape[0]))
            _, rows = self._net.detect(small)
        return rows

    def detect(self, image: Image, limit: int | None = None) -> list[DetectedFace]:
        bgr = image.bgr()
        scale = detection_scale(image.width, image.height, DETECT_MAX_SIDE)
        small = bgr
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        rows = self._raw_rows(small)
        if rows is None:
            return []
        faces = []
        for row in largest_rows(rows, limit):
            px = row[:14].astype(np.float64) / scale  # back to pixels of the original image
            box = (px[0], px[1], px[2], px[3])
            faces.append(build_face(bgr, box, px[4:14].reshape(5, 2), float(row[14]) * 100.0, cv2.COLOR_BGR2GRAY))
        return faces


def largest_rows(rows: np.ndarray, limit: int | None) -> np.ndarray:
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
    """What runs the YuNet and SFace networks. Every runtime gives the same faces and embeddings
    (coordinates within 0.001 px, cosine >= 0.9999: tests/engine/test_onnx.py)."""

    AUTO = "auto"  # the fastest installed, network by network (see plan_runtime)
    OPENCV = "opencv"  # OpenCV's DNN module for both
    ONNXRUNTIME = "onnxruntime"  # ONNX Runtime for both (CUDA with onnxruntime-gpu)
    OPENVINO = "openvino"  # SFace on OpenVINO's CPU plugin, YuNet on ONNX Runtime

    @classmethod
    def from_environment(cls) -> Runtime:
        """The runtime of the environment's settings (``FACEAUDIT_RUNTIME``: auto, opencv,
        onnxruntime or openvino; default auto; read by ``faceaudit._settings``)."""
        from faceaudit._settings import environment_settings

        return cls(environment_settings().runtime)


def _installed(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


def onnxruntime_installed() -> bool:
    return _installed("onnxruntime", "onnx")  # onnx folds the pinned files' quantized weights


def openvino_installed() -> bool:
    return _installed("openvino", "onnx")


def _cuda() -> bool:
    from faceaudit.engine._onnx import onnx_providers

    return "CUDAExecutionProvider" in onnx_providers()


@dataclass(frozen=True)
class RuntimePlan:
    """Which runtime runs each network."""

    detector: Runtime  # OPENCV or ONNXRUNTIME
    embedder: Runtime  # OPENCV, ONNXRUNTIME or OPENVINO

    def describe(self) -> str:
        def name(r: Runtime) -> str:
            if r is Runtime.OPENCV:
                return "opencv dnn"
            if r is Runtime.OPENVINO:
                return "openvino (CPU)"
            from faceaudit.engine._onnx import onnx_providers, onnxruntime_label

            return onnxruntime_label(onnx_providers())

        return describe_runtimes(name(self.detector), name(self.embedder), SFACE_NETWORKS)


SFACE_NETWORKS = ("YuNet", "SFace")


def plan_runtime(runtime: Runtime | None = None) -> RuntimePlan:
    """The runtime of each network for ``runtime`` (default: ``FACEAUDIT_RUNTIME``).

    ``auto``: YuNet on ONNX Runtime (twice OpenCV's speed on this small network); SFace on
    ONNX Runtime where it has a GPU, else on OpenVINO (about twice ONNX Runtime's speed on one
    x86 core), else ONNX Runtime; OpenCV for whatever is not installed. An explicit runtime
    that is not installed is a ModelNotInstalledError.
    """
    runtime = runtime or Runtime.from_environment()
    ort, ov = onnxruntime_installed(), openvino_installed()
    if runtime is Runtime.OPENCV:
        return RuntimePlan(Runtime.OPENCV, Runtime.OPENCV)
    if runtime is Runtime.ONNXRUNTIME and not ort:
        raise ModelNotInstalledError(
            "FACEAUDIT_RUNTIME=onnxruntime needs the onnxruntime and onnx packages (pip install onnxruntime onnx)"
        )
    if runtime is Runtime.OPENVINO and not ov:
        raise ModelNotInstalledError(
            "FACEAUDIT_RUNTIME=openvino needs the openvino and onnx packages (pip install openvino onnx)"
        )
    detector = Runtime.ONNXRUNTIME if ort else Runtime.OPENCV
    if runtime is not Runtime.AUTO:
        return RuntimePlan(detector, runtime)
    if ort and _cuda():
        return RuntimePlan(detector, Runtime.ONNXRUNTIME)
    return RuntimePlan(detector, Runtime.OPENVINO if ov else detector)


def planned_runtime(runtime: Runtime | None = None) -> str:
    """What :func:`sface_model` would run YuNet and SFace on, for people (loads nothing)."""
    return plan_runtime(runtime).describe()


def prepare_runtime(detector_weights: Path, embedder_weights: Path, runtime: Runtime | None = None) -> None:
    """Fold and cache the networks ONNX Runtime or OpenVINO will load (once per machine)."""
    from faceaudit.engine._onnx import ensure_folded

    plan = plan_runtime(runtime)
    if plan.embedder is not Runtime.OPENCV:
        ensure_folded(embedder_weights)
    if plan.detector is not Runtime.OPENCV:
        ensure_folded(detector_weights, any_image_size=True)


def _detector_on(runtime: Runtime, weights: Path) -> Detector:
    if runtime is Runtime.OPENCV:
        return YuNetDetector(weights)
    from faceaudit.engine._onnx import OnnxYuNetDetector

    return OnnxYuNetDetector(weights)


def _embedder_on(runtime: Runtime, weights: Path) -> Embedder:
    if runtime is Runtime.OPENCV:
        return SFaceEmbedder(weights)
    from faceaudit.engine import _onnx

    if runtime is Runtime.OPENVINO:
        return _onnx.OpenVinoSFaceEmbedder(weights)
    return _onnx.OnnxSFaceEmbedder(weights)


def _fallbacks(first: Runtime, auto: bool) -> list[Runtime]:
    """``first``, then (with ``auto``) the slower runtimes to try if it fails to load."""
    if not auto:
        return [first]
    order = [Runtime.OPENVINO, Runtime.ONNXRUNTIME, Runtime.OPENCV]
    rest = [r for r in order[order.index(first) + 1:]
            if r is Runtime.OPENCV or (r is Runtime.ONNXRUNTIME and onnxruntime_installed())]
    return [first, *rest]


def sface_model(detector_weights: Path, embedder_weights: Path,
                runtime: Runtime | None = None) -> tuple[Detector, Embedder]:
    """YuNet and SFace, each on the runtime :func:`plan_runtime` gives for ``runtime``.

    With ``auto`` a runtime that is installed but fails to load the network (an unsupported
    CPU, a broken install) is logged and the next one is used (OpenVINO -> ONNX Runtime ->
    OpenCV), with the same results; an explicitly chosen runtime that fails is a ModelError.
    """
    runtime = runtime or Runtime.from_environment()
    plan = plan_runtime(runtime)
    auto = runtime is Runtime.AUTO
    return (_first_that_loads("detector", _detector_on, _fallbacks(plan.detector, auto), detector_weights),
            _first_that_loads("embedder", _embedder_on, _fallbacks(plan.embedder, auto), embedder_weights))


def _first_that_loads(kind: str, make: Callable[[Runtime, Path], _Network], candidates: list[Runtime],
                      weights: Path) -> _Network:
    """The network built on the first of ``candidates`` that loads it (a failure before the last
    is logged); the last one's failure is raised as a ModelError."""
    for i, r in enumerate(candidates):
        try:
            return make(r, weights)
        except Exception as exc:  # the runtime's own errors (RuntimeError, C++ exceptions), a bad fold
            if i + 1 == len(candidates):
                if isinstance(exc, FaceAuditError):
                    raise
                raise ModelError(f"the sface {kind} does not load on {r.value}: {exc}") from None
            log.warning("the sface %s does not load on %s (%s): using %s", kind, r.value, exc,
                        candidates[i + 1].value)
    raise ModelError(f"the sface {kind} has no runtime to load on")  # pragma: no cover - never empty
