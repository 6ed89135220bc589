"""Routing a validated request to the code that serves it. No business logic here.

The path of one operation, explicit so that a reader (and a type checker) can follow it:
:data:`COLLECTION_ROUTES` maps each collection operation to the
:class:`~faceaudit.collections.FaceCollections` method that serves it (keyword
arguments named after the request members in snake_case, images as raw bytes,
absent optional members not passed: the backend applies Rekognition's defaults),
and :data:`ENGINE_ROUTES` maps CompareFaces and DetectFaces to the face engine.
``tests/service/test_contract.py`` checks the two tables against the botocore model:
every operation the service claims has a route and every route is an operation of
the model. The result's ``to_rekognition()`` is the response. The backend and the
engine are created lazily, once per process, the backend from a typed
:class:`~faceaudit.collections.BackendOptions` (an unknown option is an error).

An image given as an ``S3Object`` is read from the object store the service was
started with (:meth:`Dispatcher.resolve`, before the extension sees the request,
so the accountability layer logs the image itself), after checking that the
caller's role may read that bucket. A ``Video``'s S3Object is checked the same
way and passed on as it is: the backend reads it when the job runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from faceaudit._defaults import DEFAULT_SIMILARITY_THRESHOLD
from faceaudit._errors import (
    ImageTooLargeError,
    InvalidS3ObjectError,
    UnknownOperationError,
)
from faceaudit.collections import (
    BackendOptions,
    BucketAccess,
    FaceCollections,
    ObjectRef,
    ObjectStore,
    passes_quality,
)
from faceaudit.engine import (
    DEFAULT_MODEL,
    MAX_STORED_IMAGE_BYTES,
    FaceEngine,
    StoredImage,
)
from faceaudit.service._model import OPERATIONS, argument_name, operation_model

__all__ = ["COLLECTION_ROUTES", "DEFAULT_SIMILARITY_THRESHOLD", "Dispatcher", "ENGINE_ROUTES"]


class Result(Protocol):
    """What a backend or engine method returns: a typed result with its response document."""

    def to_rekognition(self) -> dict[str, Any]: ...


Arguments = dict[str, Any]
"""A request's members as keyword arguments (``FaceMatchThreshold`` -> ``face_match_threshold``)."""

CollectionRoute = Callable[[FaceCollections, Arguments], Result]
EngineRoute = Callable[["Dispatcher", Arguments], Result]

COLLECTION_ROUTES: Mapping[str, CollectionRoute] = {
    "CreateCollection": lambda b, a: b.create_collection(**a),
    "DeleteCollection": lambda b, a: b.delete_collection(**a),
    "DescribeCollection": lambda b, a: b.describe_collection(**a),
    "ListCollections": lambda b, a: b.list_collections(**a),
    "IndexFaces": lambda b, a: b.index_faces(**a),
    "ListFaces": lambda b, a: b.list_faces(**a),
    "DeleteFaces": lambda b, a: b.delete_faces(**a),
    "SearchFaces": lambda b, a: b.search_faces(**a),
    "SearchFacesByImage": lambda b, a: b.search_faces_by_image(**a),
    "CreateUser": lambda b, a: b.create_user(**a),
    "DeleteUser": lambda b, a: b.delete_user(**a),
    "ListUsers": lambda b, a: b.list_users(**a),
    "AssociateFaces": lambda b, a: b.associate_faces(**a),
    "DisassociateFaces": lambda b, a: b.disassociate_faces(**a),
    "SearchUsers": lambda b, a: b.search_users(**a),
    "SearchUsersByImage": lambda b, a: b.search_users_by_image(**a),
    "StartFaceDetection": lambda b, a: b.start_face_detection(**a),
    "GetFaceDetection": lambda b, a: b.get_face_detection(**a),
    "StartFaceSearch": lambda b, a: b.start_face_search(**a),
    "GetFaceSearch": lambda b, a: b.get_face_search(**a),
    "TagResource": lambda b, a: b.tag_resource(**a),
    "UntagResource": lambda b, a: b.untag_resource(**a),
    "ListTagsForResource": lambda b, a: b.list_tags_for_resource(**a),
}
"""Collection operation -> the FaceCollections method that serves it."""

ENGINE_ROUTES: Mapping[str, EngineRoute] = {
    "CompareFaces": lambda d, a: d.compare_faces(**a),
    "DetectFaces": lambda d, a: d.detect_faces(**a),
}
"""Operations that need no collection -> the face engine (the data dir is never opened)."""


def _default_engine() -> FaceEngine:
    return FaceEngine(DEFAULT_MODEL)


class Dispatcher:
    """Calls the backend (or the engine) for an operation; returns the response document."""

    def __init__(
        self,
        data_dir: Path | str,
        backend_factory: Callable[[Path], FaceCollections] | None = None,
        engine_factory: Callable[[], FaceEngine] | None = None,
        *,
        objects: ObjectStore | None = None,
        bucket_access: BucketAccess | None = None,
        backend_options: BackendOptions | Mapping[str, Any] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.objects = objects  # an ObjectStore, or None: S3Object inputs are refused
        self.bucket_access = bucket_access  # a BucketAccess, or None: the default by role
        if backend_options is None:
            backend_options = BackendOptions()
        elif not isinstance(backend_options, BackendOptions):  # a mapping: unknown names refused
            backend_options = BackendOptions.from_mapping(backend_options)
        self.backend_options: BackendOptions = backend_options.replace(objects=objects)
        self._backend_factory = backend_factory
        self._engine_factory = engine_factory or _default_engine
        self._backend: FaceCollections | None = None
        self._engine: FaceEngine | None = None
        self._lock = threading.Lock()
        self._images: dict[str, tuple[str, ...]] = {}

    # -- lazy, once per process ----------------------------------------------------------------

    @property
    def backend(self) -> FaceCollections:
        """The collections backend of this process (sharing this process's engine)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    if self._backend_factory is not None:
                        self._backend = self._backend_factory(self.data_dir)
                    else:  # one engine per process, shared with the backend
                        if self._engine is None:
                            self._engine = self._engine_factory()
                        self._backend = FaceCollections(
                            self.data_dir, engines={self._engine.spec.name: self._engine},
                            **self.backend_options.keywords())
        return self._backend

    @property
    def engine(self) -> FaceEngine:
        """The face engine of this process (the backend is given the same one)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._engine_factory()
        return self._engine

    def model_version(self) -> str:
        """FaceModelVersion of this process's engine (what CompareFaces ran with)."""
        return str(self.engine.model_version)

    def supports(self, operation: str) -> bool:
        return operation in OPERATIONS

    # -- objects in object stores ---------------------------------------------------------------

    def resolve(self, operation: str, params: dict[str, Any], role: str) -> dict[str, Any]:
        """The request with each image ``S3Object`` replaced by the object's bytes.

        Checks that ``role`` may read the bucket (AccessDeniedException), that the
        object exists (InvalidS3ObjectException) and is at most 15 MB
        (ImageTooLargeException). A video's S3Object is only checked for access.
        """
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

    def _image_members(self, operation: str) -> tuple[str, ...]:
        images = self._images.get(operation)
        if images is None:
            shape = operation_model(operation).input_shape
            images = tuple(n for n, m in shape.members.items() if m.name == "Image")
            self._images[operation] = images
        return images

    # -- calling ---------------------------------------------------------------------------------

    def arguments(self, operation: str, params: Mapping[str, Any]) -> Arguments:
        """Validated request members as the backend's keyword arguments (images as bytes; a
        threshold as the :class:`~faceaudit._defaults.Threshold` checked once, which the
        backend does not check again)."""
        images = self._image_members(operation)
        kwargs = {}
        for name, value in params.items():
            if name in images:
                value = value["Bytes"]
            kwargs[argument_name(name)] = value
        return kwargs

    def call(self, operation: str, params: Mapping[str, Any], region: str | None = None
             ) -> tuple[dict[str, Any], float]:
        """The operation's response document and the milliseconds spent in the backend/engine,
        for a request normalised by :func:`~faceaudit.collections.normalise_request` (the
        service's :class:`~faceaudit.collections.NormalisedRequest`).

        ``region``: the region the request was signed for; the backend's ARNs name it."""
        collection_route = COLLECTION_ROUTES.get(operation)
        engine_route = ENGINE_ROUTES.get(operation)
        if collection_route is not None:
            kwargs = self.arguments(operation, params)
            backend = self.backend
            in_region = getattr(backend, "in_region", None)  # a test's stand-in may have none
            start = time.perf_counter()
            if region and in_region is not None:
                with in_region(region):
                    result = collection_route(backend, kwargs)
            else:
                result = collection_route(backend, kwargs)
        elif engine_route is not None:
            kwargs = self.arguments(operation, params)
            start = time.perf_counter()
            result = engine_route(self, kwargs)
        else:
            raise UnknownOperationError(f"{operation} is not an operation of this service")
        elapsed = (time.perf_counter() - start) * 1000.0
        doc = result.to_rekognition()
        if not isinstance(doc, dict):
            raise TypeError(f"{operation} returned {type(result).__name__}, not a result")
        return doc, elapsed

    # -- the two operations without a collection: the face engine --------------------------------

    def detect_faces(self, image: bytes, attributes: list[str] | None = None) -> Result:
        """DetectFaces. The engine reports the DEFAULT attributes (BoundingBox, Confidence,
        Landmarks, Pose, Quality); it estimates no age, gender or emotions, so "ALL" returns the same."""
        return self.engine.detect(image)

    def compare_faces(
        self,
        source_image: bytes,
        target_image: bytes,
        similarity_threshold: float | None = None,
        quality_filter: str | None = None,
    ) -> Result:
        """CompareFaces (``similarity_threshold`` 0-100, higher is more alike; None: Rekognition's 80)."""
        threshold = DEFAULT_SIMILARITY_THRESHOLD if similarity_threshold is None else similarity_threshold
        keep = None
        if quality_filter not in (None, "NONE"):  # the same bars as IndexFaces' (collections)
            keep = passes_quality(quality_filter)
        return self.engine.compare(source_image, target_image, threshold, keep=keep)
