"""The face engine: images, detectors, embedders, the model registry and calibration.

Public surface::

    from faceaudit.engine import FaceEngine, load_image, list_models, get_model
    engine = FaceEngine("sface")
    result = engine.compare("a.jpg", "b.jpg")      # CompareResult
    result.to_rekognition()                        # CompareFaces response shape

Nothing loads at import time: models load on first use.
"""

from faceaudit.engine._base import Detector, Embedder, normalise
from faceaudit.engine._calibration import BAND_THRESHOLDS, BandRateAt, BandRates, Calibration
from faceaudit.engine._conditions import (
    CLEAN,
    PRESETS,
    DegradedProbe,
    ProbeCondition,
    Step,
    conditions_with_clean,
    degrade,
    detect_upscaled,
    eye_distance_px,
    parse_steps,
    probe_condition,
)
from faceaudit.engine._engine import (
    MAX_FACES_CONSIDERED,
    CompareResult,
    DetectResult,
    FaceEngine,
    FaceMatch,
    check_similarity_threshold,
    largest_first,
)
from faceaudit.engine._image import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_STORED_IMAGE_BYTES,
    MIN_IMAGE_SIDE,
    Image,
    ImageSource,
    StoredImage,
    load_image,
    read_bytes,
)
from faceaudit.engine._pool import (
    EnginePool,
    WorkerLost,
    check_workers,
    default_workers,
    single_threaded_opencv,
)
from faceaudit.engine._probe import ProbeObserver, observe_probe, report_probe
from faceaudit.engine._quality import (
    NOISY_LEVELS,
    PROBE_BANDS,
    QUALITY_BANDS,
    SIZE_ONLY_BANDS,
    ProbeBand,
    QualityBand,
    measure_noise,
    probe_band,
    probe_band_named,
    quality_band,
    stored_quality,
)
from faceaudit.engine._registry import (
    DEFAULT_MODEL,
    FaceModel,
    ModelSpec,
    SimilarityScale,
    WeightFile,
    get_model,
    list_models,
    load_model,
    rekognition_model_version,
    sha256_file,
)
from faceaudit.engine._riskscale import one_in, promised_fmr, similarity_for_fmr
from faceaudit.engine._types import (
    LANDMARK_TYPES,
    BoundingBox,
    DetectedFace,
    FaceEmbedding,
    Landmark,
    Pose,
    Quality,
)

__all__ = [
    "BAND_THRESHOLDS", "BandRateAt", "BandRates", "Calibration",
    "CLEAN", "DegradedProbe", "PRESETS", "ProbeCondition", "QUALITY_BANDS", "QualityBand", "Step",
    "conditions_with_clean", "degrade", "detect_upscaled", "eye_distance_px", "parse_steps", "probe_condition",
    "quality_band", "NOISY_LEVELS", "PROBE_BANDS", "SIZE_ONLY_BANDS", "ProbeBand", "measure_noise", "probe_band",
    "probe_band_named", "stored_quality", "ProbeObserver", "observe_probe", "report_probe",
    "BoundingBox", "CompareResult", "DEFAULT_MODEL", "DetectResult", "DetectedFace", "Detector",
    "Embedder", "EnginePool", "FaceEmbedding", "FaceEngine", "FaceMatch", "FaceModel", "Image",
    "ImageSource", "LANDMARK_TYPES", "Landmark", "MAX_FACES_CONSIDERED", "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS", "MAX_STORED_IMAGE_BYTES", "MIN_IMAGE_SIDE", "ModelSpec", "Pose", "Quality",
    "SimilarityScale", "StoredImage", "WeightFile", "WorkerLost", "check_similarity_threshold",
    "check_workers", "default_workers", "get_model", "largest_first", "list_models", "load_image",
    "load_model", "normalise", "one_in", "promised_fmr", "read_bytes", "rekognition_model_version", "sha256_file",
    "similarity_for_fmr", "single_threaded_opencv",
]
