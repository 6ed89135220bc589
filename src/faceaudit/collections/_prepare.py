"""The compute half of IndexFaces: detect, filter, embed. No storage, picklable results.

The batch indexer runs :func:`prepare_index` in worker processes and sends the
:class:`PreparedImage` to the parent, the single SQLite writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from faceaudit.collections import _quality
from faceaudit.engine import BoundingBox, FaceEngine, Image


@dataclass(frozen=True)
class PreparedFace:
    """A face to index: its FaceDetail, box, detector confidence (0-100), quality, embedding."""

    detail: dict[str, Any]
    bounding_box: BoundingBox
    confidence: float
    quality: float
    vector: np.ndarray
    thumbnail: bytes = b""  # JPEG of the face, kept so a human reviewer can see the candidate


@dataclass(frozen=True)
class PreparedImage:
    sha256: str
    width: int
    height: int
    model_version: str
    faces: tuple[PreparedFace, ...]
    unindexed: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]  # (reasons, FaceDetail)


THUMBNAIL_SIDE = 200
"""Longest side of the face crop kept for review, in pixels."""


def face_thumbnail(image: Image, box: BoundingBox, margin: float = 0.3) -> bytes:
    """A JPEG crop of the face box widened by ``margin`` on each side, at most 200 px."""
    import io

    from PIL import Image as PILImage

    x, y, w, h = box.to_pixels(image.width, image.height)
    x0 = int(max(0, x - margin * w))
    y0 = int(max(0, y - margin * h))
    x1 = int(min(image.width, x + w * (1 + margin)))
    y1 = int(min(image.height, y + h * (1 + margin)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return b""
    crop = PILImage.fromarray(image.pixels[y0:y1, x0:x1])
    crop.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=85)
    return buf.getvalue()


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
            thumbnail=face_thumbnail(image, f.bounding_box),
        )
        for f in keep
    )
    unindexed = tuple((reasons, f.to_rekognition()) for f, reasons in dropped)
    return PreparedImage(
        sha256=image.sha256, width=image.width, height=image.height,
        model_version=engine.model_version, faces=faces, unindexed=unindexed,
    )
