"""Routing a validated request to the code that serves it. No business logic here.

Collection operations go to :class:`faceaudit.collections.FaceCollections`
generically, per the contract of docs/design.md: method ``xform_name(op)``,
keyword arguments ``xform_name(member)``, images as raw bytes, absent optional
members not passed (the backend applies Rekognition's defaults), and the
result's ``to_rekognition()`` is the response. CompareFaces and DetectFaces need
no collection: the backend serves them if it has the methods, otherwise the face
engine does. The backend and the engine are created lazily, once per process.

An image given as an ``S3Object`` is read from the object store the service was
started with (:meth:`Dispatcher.resolve`, before the extension sees the request,
so the accountability layer logs the image itself), after checking that the
caller's role may read that bucket. A ``Video``'s S3Object is checked the same
way and passed on as it is: the backend reads it when the job runs.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from faceaudit._errors import (
    ImageTooLargeError,
    InvalidParameterError,
    InvalidS3ObjectError,
    UnknownOperationError,
)
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


def _default_backend(data_dir: Path, engine: Any = None,
                     options: Optional[Mapping[str, Any]] = None) -> Any:
    """``FaceCollections(data_dir, **options)``, sharing the service's engine when the backend
    takes one (options the backend does not take are not passed)."""
    cls = _backend_class()
    if cls is None:
        raise ImportError("faceaudit.collections.FaceCollections is not installed")
    try:
        accepted = set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        accepted = set()
    kwargs = {k: v for k, v in (options or {}).items() if k in accepted and v is not None}
    if engine is not None and "engines" in accepted:
        kwargs["engines"] = {engine.spec.name: engine}
    return cls(data_dir, **kwargs)


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
        *,
        objects: Any = None,
        bucket_access: Any = None,
        backend_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.objects = objects  # an ObjectStore, or None: S3Object inputs are refused
        self.bucket_access = bucket_access  # a BucketAccess, or None: the default by role
        self._backend_options = {"objects": objects, **(backend_options or {})}
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
                        self._backend = _default_backend(self.data_dir, self._engine,
                                                         self._backend_options)
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

    # -- objects in object stores ---------------------------------------------------------------

    def resolve(self, operation: str, params: Dict[str, Any], role: str) -> Dict[str, Any]:
        """The request with each image ``S3Object`` replaced by the object's bytes.

        Checks that ``role`` may read the bucket (AccessDeniedException), that the
        object exists (InvalidS3ObjectException) and is at most 15 MB
        (ImageTooLargeException). A video's S3Object is only checked for access.
        """
        from faceaudit.collections import BucketAccess, ObjectRef
        from faceaudit.engine import MAX_STORED_IMAGE_BYTES, StoredImage

        images = self._image_members(operation)
        out = dict(params)
        for name, value in params.items():
            obj = value.get("S3Object") if isinstance(value, dict) else None
            if obj is None or (name not in images and name != "Video"):
                continue
            ref = ObjectRef.from_rekognition(obj, f"{name}.S3Object")
            (self.bucket_access or BucketAccess()).check(role, ref.bucket)
            if self.objects is None:
                raise InvalidS3ObjectError(
                    f"{name}.S3Object: this server reads no object store (start it with --buckets DIR "
                    "or --s3-endpoint-url URL); send the image inline instead (Image.Bytes, at most 5 MB)"
                )
            if name == "Video":
                continue
            size = self.objects.size(ref)
            if size > MAX_STORED_IMAGE_BYTES:
                raise ImageTooLargeError(
                    f"{ref} is {size} bytes; an image in an object store may be at most "
                    f"{MAX_STORED_IMAGE_BYTES} bytes (15 MB)"
                )
            out[name] = {"Bytes": StoredImage(self.objects.read(ref, MAX_STORED_IMAGE_BYTES))}
        return out

    def _image_members(self, operation: str) -> Tuple[str, ...]:
        images = self._images.get(operation)
        if images is None:
            shape = operation_model(operation).input_shape
            images = tuple(n for n, m in shape.members.items() if m.name == "Image")
            self._images[operation] = images
        return images

    # -- calling ---------------------------------------------------------------------------------

    def arguments(self, operation: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """Validated request members as the backend's keyword arguments (images as bytes)."""
        images = self._image_members(operation)
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

