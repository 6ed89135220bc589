"""Routing a validated request to the code that serves it. No business logic here.

Collection operations go to :class:`faceaudit.collections.FaceCollections`
generically, per the contract of docs/design.md: method ``xform_name(op)``,
keyword arguments ``xform_name(member)``, images as raw bytes, absent optional
members not passed (the backend applies Rekognition's defaults), and the
result's ``to_rekognition()`` is the response. CompareFaces and DetectFaces need
no collection: the backend serves them if it has the methods, otherwise the face
engine does. The backend and the engine are created lazily, once per process.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from faceaudit._errors import InvalidParameterError, UnknownOperationError
from faceaudit.service._model import (
    COLLECTION_OPERATIONS,
    ENGINE_OPERATIONS,
    OPERATIONS,
    argument_name,
    method_name,
    operation_model,
)

DEFAULT_SIMILARITY_THRESHOLD = 80.0
"""CompareFaces' SimilarityThreshold when the request has none (Rekognition's default)."""


def _backend_class() -> Any:
    """``faceaudit.collections.FaceCollections``, or None where it is not installed."""
    try:
        module = importlib.import_module("faceaudit.collections")
    except ImportError:
        return None
    return getattr(module, "FaceCollections", None)


def _default_backend(data_dir: Path, engine: Any = None) -> Any:
    """``FaceCollections(data_dir)``, sharing the service's engine when the backend takes one."""
    cls = _backend_class()
    if cls is None:
        raise ImportError("faceaudit.collections.FaceCollections is not installed")
    try:
        takes_engines = "engines" in inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover
        takes_engines = False
    if engine is not None and takes_engines:
        return cls(data_dir, engines={engine.spec.name: engine})
    return cls(data_dir)


def _default_engine() -> Any:
    from faceaudit.engine import DEFAULT_MODEL, FaceEngine

    return FaceEngine(DEFAULT_MODEL)


class Dispatcher:
    """Calls the backend (or the engine) for an operation; returns the response document."""

    def __init__(
        self,
        data_dir: "Path | str",
        backend_factory: Optional[Callable[[Path], Any]] = None,
        engine_factory: Optional[Callable[[], Any]] = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._backend_factory = backend_factory
        self._engine_factory = engine_factory or _default_engine
        self._backend: Any = None
        self._engine: Any = None
        self._lock = threading.Lock()
        self._images: Dict[str, Tuple[str, ...]] = {}

    # -- lazy, once per process ----------------------------------------------------------------

    @property
    def backend(self) -> Any:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    if self._backend_factory is not None:
                        self._backend = self._backend_factory(self.data_dir)
                    else:  # one engine per process, shared with the backend
                        if self._engine is None:
                            self._engine = self._engine_factory()
                        self._backend = _default_backend(self.data_dir, self._engine)
        return self._backend

    def _backend_or_none(self) -> Any:
        try:
            return self.backend
        except ImportError:
            return None

    @property
    def engine(self) -> Any:
        """The face engine of this process (the backend is given the same one)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._engine_factory()
        return self._engine

    def model_version(self) -> str:
        """FaceModelVersion of this process's engine (what CompareFaces ran with)."""
        return str(getattr(self.engine, "model_version", ""))

    def supports(self, operation: str) -> bool:
        return operation in OPERATIONS

    # -- calling ---------------------------------------------------------------------------------

    def arguments(self, operation: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """Validated request members as the backend's keyword arguments (images as bytes)."""
        images = self._images.get(operation)
        if images is None:
            shape = operation_model(operation).input_shape
            images = tuple(n for n, m in shape.members.items() if m.name == "Image")
            self._images[operation] = images
        kwargs = {}
        for name, value in params.items():
            if name in images:
                value = value["Bytes"]
            kwargs[argument_name(name)] = value
        return kwargs

    def call(self, operation: str, params: Dict[str, Any], region: Optional[str] = None
             ) -> Tuple[Dict[str, Any], float]:
        """The operation's response document and the milliseconds spent in the backend/engine.

        ``region``: the region the request was signed for; the backend's ARNs name it."""
        if operation not in OPERATIONS:
            raise UnknownOperationError(f"{operation} is not an operation of this service")
        kwargs = self.arguments(operation, params)
        method = None
        if operation in COLLECTION_OPERATIONS:
            backend = self._backend_or_none()
            method = getattr(backend, method_name(operation), None) if backend is not None else None
            if method is None:
                raise UnknownOperationError(
                    f"{operation} is not available: the collections backend is not installed"
                )
        elif operation in ENGINE_OPERATIONS:
            # The backend serves them if it has them; otherwise the engine does, and the backend
            # (and the data dir) is not even opened.
            name = method_name(operation)
            if self._backend_factory is not None or self._backend is not None:
                backend = self._backend_or_none()
            else:
                backend = self._backend_or_none() if hasattr(_backend_class(), name) else None
            method = getattr(backend, name, None) if backend is not None else None
            if method is None:
                method = getattr(self, "_" + name)
        in_region = getattr(getattr(method, "__self__", None), "in_region", None)
        start = time.perf_counter()
        if region and callable(in_region):
            with in_region(region):
                result = method(**kwargs)
        else:
            result = method(**kwargs)
        elapsed = (time.perf_counter() - start) * 1000.0
        doc = result.to_rekognition() if hasattr(result, "to_rekognition") else result
        if not isinstance(doc, dict):
            raise TypeError(f"{operation} returned {type(result).__name__}, not a result")
        return doc, elapsed

    # -- the two operations without a collection (when the backend has no method for them) -------

    def _detect_faces(self, image: bytes, attributes: Optional[list] = None) -> Any:
        # The engine reports the DEFAULT attributes (BoundingBox, Confidence, Landmarks, Pose,
        # Quality); it estimates no age, gender or emotions, so "ALL" returns the same.
        return self.engine.detect(image)

    def _compare_faces(
        self,
        source_image: bytes,
        target_image: bytes,
        similarity_threshold: Optional[float] = None,
        quality_filter: Optional[str] = None,
    ) -> Any:
        threshold = DEFAULT_SIMILARITY_THRESHOLD if similarity_threshold is None else similarity_threshold
        keep = None
        if quality_filter not in (None, "NONE"):  # the same bars as IndexFaces' (collections)
            try:
                passes_quality = importlib.import_module("faceaudit.collections").passes_quality
            except (ImportError, AttributeError):
                raise InvalidParameterError(
                    "QualityFilter other than NONE needs the collections package for CompareFaces"
                ) from None
            keep = passes_quality(quality_filter)
        return self.engine.compare(source_image, target_image, threshold, keep=keep)

