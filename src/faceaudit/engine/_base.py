"""The two small interfaces every face model implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from faceaudit.engine._image import Image
from faceaudit.engine._types import DetectedFace


def describe_runtimes(detector: str, embedder: str, names: tuple[str, str] = ("detector", "embedder")) -> str:
    """What runs a model's two networks, for people: one name when both run on the same."""
    if detector == embedder:
        return embedder
    return f"{names[0]} on {detector}, {names[1]} on {embedder}"


@runtime_checkable
class Detector(Protocol):
    """Finds faces in an image."""

    @property
    def runtime(self) -> str:
        """What runs it, for people: "opencv dnn", "onnxruntime (CPU)", ..."""
        ...

    def detect(self, image: Image, limit: int | None = None) -> list[DetectedFace]:
        """The faces found, in pixels of ``image``: all of them, or only the ``limit`` largest
        boxes (only those are measured: landmarks, pose, quality); any order."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns one detected face into a fixed-length vector."""

    dimension: int

    @property
    def runtime(self) -> str:
        """What runs the network, for people: "opencv dnn", "onnxruntime (CPU)", ..."""
        ...

    def embed(self, image: Image, face: DetectedFace) -> np.ndarray:
        """The face's embedding, shape (dimension,), float32, L2-normalised."""
        ...


def normalise(vector: np.ndarray) -> np.ndarray:
    """L2-normalise a vector to float32 (a zero vector stays zero)."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def detection_scale(width: int, height: int, max_side: int) -> float:
    """The factor (<= 1) that brings the longer side down to ``max_side``."""
    longest = max(width, height)
    return min(1.0, max_side / float(longest)) if longest > 0 else 1.0
