"""FaceEngine: detect, embed and compare faces with one model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceaudit._defaults import DEFAULT_SIMILARITY_THRESHOLD, Threshold
from faceaudit._errors import NoFaceError
from faceaudit.engine._image import Image, ImageSource, load_image
from faceaudit.engine._probe import report_probe
from faceaudit.engine._registry import DEFAULT_MODEL, FaceModel, ModelSpec, get_model, load_model
from faceaudit.engine._types import DetectedFace, FaceEmbedding

MAX_FACES_CONSIDERED = 100
"""DetectFaces / CompareFaces / IndexFaces consider the 100 largest faces, as Rekognition does."""


def check_similarity_threshold(value: float, name: str = "SimilarityThreshold") -> float:
    """Validate a similarity threshold: a number from 0 to 100 (a plain float). A
    :class:`~faceaudit._defaults.Threshold` was checked when it was made: not checked again."""
    return float(Threshold(value, name))


@dataclass(frozen=True)
class FaceMatch:
    """A target face and its similarity to the source (0-100, higher is more alike)."""

    similarity: float
    face: DetectedFace

    def to_rekognition(self) -> dict[str, Any]:
        return {"Similarity": self.similarity, "Face": self.face.compare_face()}


@dataclass(frozen=True)
class CompareResult:
    """Result of comparing the largest source face against every target face."""

    source_face: DetectedFace
    matches: tuple[FaceMatch, ...]
    unmatched: tuple[FaceMatch, ...]  # below the threshold; Rekognition omits their similarity
    threshold: float
    model_version: str

    def to_rekognition(self) -> dict[str, Any]:
        """Rekognition's CompareFaces response."""
        return {
            "SourceImageFace": {
                "BoundingBox": self.source_face.bounding_box.to_rekognition(),
                "Confidence": self.source_face.confidence,
            },
            "FaceMatches": [m.to_rekognition() for m in self.matches],
            "UnmatchedFaces": [m.face.compare_face() for m in self.unmatched],
        }


@dataclass(frozen=True)
class DetectResult:
    """Faces found in one image, largest first."""

    faces: tuple[DetectedFace, ...]
    image_width: int
    image_height: int

    def to_rekognition(self) -> dict[str, Any]:
        """Rekognition's DetectFaces response."""
        return {"FaceDetails": [f.to_rekognition() for f in self.faces]}


def largest_first(faces: list[DetectedFace], limit: int = MAX_FACES_CONSIDERED) -> list[DetectedFace]:
    """Faces sorted by box area, largest first, at most ``limit``."""
    return sorted(faces, key=lambda f: f.area, reverse=True)[:limit]


class FaceEngine:
    """Detect, embed and compare faces with one model (default: YuNet + SFace).

    The model loads on first use, not at construction. Methods accept image
    bytes, a path, or an already decoded :class:`Image`.
    """

    def __init__(self, model: str = DEFAULT_MODEL, runtime: str | None = None) -> None:
        """``runtime``: what runs the networks (``Settings.runtime``: auto, opencv, onnxruntime,
        openvino); None: the environment's settings."""
        self.spec: ModelSpec = get_model(model)
        self.runtime = runtime
        self._model: FaceModel | None = None

    @property
    def model(self) -> FaceModel:
        if self._model is None:
            self._model = load_model(self.spec.name, self.runtime)
        return self._model

    @property
    def loaded_runtime(self) -> str | None:
        """What runs the networks in this process, as loaded; None before the model is loaded."""
        return self._model.runtime if self._model is not None else None

    @property
    def model_version(self) -> str:
        return self.spec.version

    @staticmethod
    def image(source: ImageSource | Image) -> Image:
        return source if isinstance(source, Image) else load_image(source)

    def detect(self, source: ImageSource | Image, limit: int = MAX_FACES_CONSIDERED) -> DetectResult:
        """Detect faces (the ``limit`` largest), largest first."""
        img = self.image(source)
        faces = largest_first(self.model.detector.detect(img, limit), limit)
        return DetectResult(faces=tuple(faces), image_width=img.width, image_height=img.height)

    def embed(self, image: Image, face: DetectedFace) -> FaceEmbedding:
        return FaceEmbedding(face=face, vector=self.model.embedder.embed(image, face))

    def analyze(
        self, source: ImageSource | Image, limit: int = MAX_FACES_CONSIDERED
    ) -> tuple[Image, list[FaceEmbedding]]:
        """Detect and embed every face (the ``limit`` largest), largest first."""
        img = self.image(source)
        faces = largest_first(self.model.detector.detect(img, limit), limit)
        return img, [self.embed(img, f) for f in faces]

    def largest(self, source: ImageSource | Image) -> tuple[Image, FaceEmbedding]:
        """The largest face of an image, embedded; NoFaceError if there is none."""
        img, faces = self.analyze(source, limit=1)
        if not faces:
            raise NoFaceError("no face was found in the image")
        return img, faces[0]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Similarity 0-100 of two embeddings of this model (higher is more alike)."""
        return round(self.spec.scale.to_similarity(float(np.dot(a, b))), 4)

    def compare(
        self,
        source: ImageSource | Image,
        target: ImageSource | Image,
        similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        keep: Callable[[DetectedFace], bool] | None = None,
    ) -> CompareResult:
        """CompareFaces: the largest source face against each of the 100 largest target faces.

        Target faces at or above the threshold are matches (highest similarity
        first); the others are unmatched. NoFaceError if the source has no face.
        ``keep`` (CompareFaces' QualityFilter): only faces it accepts take part, in the
        source (its largest accepted face) and in the target (the others are not compared).
        """
        threshold = check_similarity_threshold(similarity_threshold)
        if keep is None:
            _, src = self.largest(source)
            report_probe(src.face.quality)  # before any target face is compared
            _, targets = self.analyze(target)
        else:
            src_img = self.image(source)
            accepted = [f for f in self.detect(src_img).faces if keep(f)]
            if not accepted:
                raise NoFaceError("no face in the source image passes the QualityFilter")
            report_probe(accepted[0].quality)  # before any target face is compared
            src = self.embed(src_img, accepted[0])
            tgt_img = self.image(target)
            targets = [self.embed(tgt_img, f) for f in self.detect(tgt_img).faces if keep(f)]
        scored = sorted(
            (FaceMatch(self.similarity(src.vector, t.vector), t.face) for t in targets),
            key=lambda m: m.similarity,
            reverse=True,
        )
        matches = [m for m in scored if m.similarity >= threshold]
        unmatched = tuple(m for m in scored if m.similarity < threshold)
        return CompareResult(
            source_face=src.face,
            matches=tuple(matches),
            unmatched=unmatched,
            threshold=threshold,
            model_version=self.model_version,
        )
