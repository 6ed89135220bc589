"""The compute half of IndexFaces: detect, filter, embed. No storage, picklable results.

The batch indexer runs :func:`prepare_index` in worker processes and sends the
:class:`PreparedImage` to the parent, the single SQLite writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np

from faceaudit.collections import _quality
from faceaudit.engine import BoundingBox, FaceEngine, Image


@dataclass(frozen=True)
class PreparedFace:
    """A face to index: its FaceDetail, box, detector confidence (0-100), quality, embedding."""

    detail: Dict[str, Any]
    bounding_box: BoundingBox
    confidence: float
    quality: float
    vector: np.ndarray


@dataclass(frozen=True)
class PreparedImage:
    sha256: str
    width: int
    height: int
    model_version: str
    faces: Tuple[PreparedFace, ...]
    unindexed: Tuple[Tuple[Tuple[str, ...], Dict[str, Any]], ...]  # (reasons, FaceDetail)


def prepare_index(engine: FaceEngine, image: Image, *, max_faces: int, quality_filter: str) -> PreparedImage:
    """Detect the 100 largest faces, apply the quality filter and MaxFaces, embed those kept."""
    detected = engine.detect(image).faces
    keep, dropped = _quality.select(detected, quality_filter, max_faces)
    faces = tuple(
        PreparedFace(
            detail=f.to_rekognition(),
            bounding_box=f.bounding_box,
            confidence=float(f.confidence),
            quality=_quality.quality_score(f),
            vector=np.asarray(engine.embed(image, f).vector, dtype=np.float32),
        )
        for f in keep
    )
    unindexed = tuple((reasons, f.to_rekognition()) for f, reasons in dropped)
    return PreparedImage(
        sha256=image.sha256, width=image.width, height=image.height,
        model_version=engine.model_version, faces=faces, unindexed=unindexed,
    )
