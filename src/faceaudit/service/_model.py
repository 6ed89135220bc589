"""Rekognition's service model (botocore's ``rekognition/2016-06-27/service-2.json``).

The model is the single source of the wire contract: operation names, request and
response shapes and their constraints. It is loaded once per process, on first use.
"""

from __future__ import annotations

import threading

from botocore import xform_name
from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel, Shape

SERVICE_NAME = "rekognition"
API_VERSION = "2016-06-27"
TARGET_PREFIX = "RekognitionService"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

COLLECTION_OPERATIONS: tuple[str, ...] = (
    "CreateCollection", "DeleteCollection", "DescribeCollection", "ListCollections",
    "IndexFaces", "ListFaces", "DeleteFaces", "SearchFaces", "SearchFacesByImage",
    "CreateUser", "DeleteUser", "ListUsers", "AssociateFaces", "DisassociateFaces",
    "SearchUsers", "SearchUsersByImage",
    "StartFaceDetection", "GetFaceDetection", "StartFaceSearch", "GetFaceSearch",
    "TagResource", "UntagResource", "ListTagsForResource",
)
"""Operations served by :class:`faceaudit.collections.FaceCollections` (Start/Get*: stored
video, jobs run by the backend's worker pool)."""

ENGINE_OPERATIONS: tuple[str, ...] = ("CompareFaces", "DetectFaces")
"""Operations that need no collection: served by the face engine directly."""

OPERATIONS: tuple[str, ...] = ENGINE_OPERATIONS + COLLECTION_OPERATIONS
"""Every operation this service speaks (anything else is UnknownOperationException)."""

_lock = threading.Lock()
_model: ServiceModel | None = None


def service_model() -> ServiceModel:
    """The Rekognition service model (botocore's), loaded once per process."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                data = Loader().load_service_model(SERVICE_NAME, "service-2", API_VERSION)
                _model = ServiceModel(data, service_name=SERVICE_NAME)
    return _model


def operation_model(name: str) -> OperationModel:
    """The model of one operation (a name from :data:`OPERATIONS`)."""
    return service_model().operation_model(name)


def method_name(operation: str) -> str:
    """The backend method of an operation: ``SearchFacesByImage`` -> ``search_faces_by_image``."""
    return str(xform_name(operation))


def argument_name(member: str) -> str:
    """The keyword argument of a request member: ``FaceMatchThreshold`` -> ``face_match_threshold``."""
    return str(xform_name(member))


def image_members(shape: Shape) -> tuple[str, ...]:
    """Top-level members of a request shape that hold an ``Image``."""
    return tuple(
        name for name, member in getattr(shape, "members", {}).items() if member.name == "Image"
    )
