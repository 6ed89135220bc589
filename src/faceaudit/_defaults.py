"""Rekognition's request defaults and limits: the one place they are written down.

Every layer imports them from here (the engine's CompareFaces, the collections'
validation and results, the service, the accountability layer's policy check and
log, the audit's Rekognition engine, the command line), so the threshold the
backend applies, the one the policy checks and the one the search log records are
the same number. Values are Amazon Rekognition's documented defaults (API
reference, ``rekognition/2016-06-27``; botocore's service model gives ranges, not
defaults).

Thresholds are similarities 0-100, higher is more alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from faceaudit._errors import InvalidParameterError

DEFAULT_SIMILARITY_THRESHOLD = 80.0
"""CompareFaces' SimilarityThreshold when the request has none."""
DEFAULT_FACE_MATCH_THRESHOLD = 80.0
"""SearchFaces, SearchFacesByImage and StartFaceSearch's FaceMatchThreshold when the request has none."""
DEFAULT_SEARCH_USER_MATCH_THRESHOLD = 80.0
"""SearchUsers and SearchUsersByImage's UserMatchThreshold when the request has none."""
DEFAULT_ASSOCIATE_USER_MATCH_THRESHOLD = 75.0
"""AssociateFaces' UserMatchThreshold when the request has none."""

DEFAULT_SEARCH_MAX_FACES = 80
"""SearchFaces and SearchFacesByImage's MaxFaces (faces returned) when the request has none."""
MAX_SEARCH_MAX_FACES = 4096
DEFAULT_MAX_USERS = 80
"""SearchUsers and SearchUsersByImage's MaxUsers when the request has none."""
MAX_USERS = 500
DEFAULT_LIST_MAX_RESULTS = 1000
"""ListCollections and ListFaces' MaxResults when the request has none."""
MAX_LIST_MAX_RESULTS = 4096
DEFAULT_LIST_USERS_MAX_RESULTS = 100
"""ListUsers' MaxResults when the request has none."""
DEFAULT_VIDEO_MAX_FACES = 80
"""Faces a stored-video face search reports per person sighting (GetFaceSearch's matches per face)."""

Default = float | int

IDENTIFICATION_DEFAULTS: Mapping[str, Mapping[str, Default]] = {
    "CompareFaces": {"SimilarityThreshold": DEFAULT_SIMILARITY_THRESHOLD},
    "SearchFaces": {"FaceMatchThreshold": DEFAULT_FACE_MATCH_THRESHOLD, "MaxFaces": DEFAULT_SEARCH_MAX_FACES},
    "SearchFacesByImage": {"FaceMatchThreshold": DEFAULT_FACE_MATCH_THRESHOLD,
                           "MaxFaces": DEFAULT_SEARCH_MAX_FACES},
    "SearchUsers": {"UserMatchThreshold": DEFAULT_SEARCH_USER_MATCH_THRESHOLD, "MaxUsers": DEFAULT_MAX_USERS},
    "SearchUsersByImage": {"UserMatchThreshold": DEFAULT_SEARCH_USER_MATCH_THRESHOLD,
                           "MaxUsers": DEFAULT_MAX_USERS},
    "AssociateFaces": {"UserMatchThreshold": DEFAULT_ASSOCIATE_USER_MATCH_THRESHOLD},
    "StartFaceSearch": {"FaceMatchThreshold": DEFAULT_FACE_MATCH_THRESHOLD},
}
"""Operation -> the defaults of its similarity threshold and candidate limit (Rekognition member
names): what the request means when it leaves them out."""


def request_default(operation: str, member: str) -> Default | None:
    """Rekognition's default of ``member`` in ``operation``'s request, None when it has none here."""
    return IDENTIFICATION_DEFAULTS.get(operation, {}).get(member)


class Threshold(float):
    """A similarity threshold (``Percent``: 0 to 100, higher is more alike), checked once, when
    made: ``Threshold(value, name)`` raises InvalidParameterError for anything else. Every layer
    that validates a threshold (the service's model check, the normalisation, the backend, the
    engine) passes a value of this type on unchecked, so that a request's threshold is checked
    exactly once however many layers it crosses. It is a float; ``float(t)`` is the plain number.
    """

    def __new__(cls, value: object, name: str = "threshold") -> Threshold:
        if isinstance(value, Threshold):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidParameterError(f"{name} must be a number from 0 to 100")
        if not 0.0 <= float(value) <= 100.0:
            raise InvalidParameterError(f"{name} must be from 0 to 100, got {value}")
        return super().__new__(cls, float(value))

    @classmethod
    def checked(cls, value: float) -> Threshold:
        """A value its caller has just checked against the same range (the service's model
        validation, whose error message is the AWS one): not checked again."""
        return float.__new__(cls, value)
