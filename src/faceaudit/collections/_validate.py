"""Input validation with Rekognition's constraints (botocore ``rekognition/2016-06-27``).

boto3 only checks types, required members and minimums before sending, so the
backend enforces lengths, patterns, enums and ranges itself and raises
:class:`~faceaudit.InvalidParameterError` (``InvalidParameterException``).
Every function returns the value to use, with Rekognition's default applied
when the caller passed ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# Rekognition's defaults are written down once, in faceaudit._defaults; re-exported (`as`) for _ops_*
from faceaudit._defaults import DEFAULT_ASSOCIATE_USER_MATCH_THRESHOLD as DEFAULT_ASSOCIATE_USER_MATCH_THRESHOLD
from faceaudit._defaults import DEFAULT_FACE_MATCH_THRESHOLD as DEFAULT_FACE_MATCH_THRESHOLD
from faceaudit._defaults import DEFAULT_LIST_MAX_RESULTS as DEFAULT_LIST_MAX_RESULTS
from faceaudit._defaults import DEFAULT_LIST_USERS_MAX_RESULTS as DEFAULT_LIST_USERS_MAX_RESULTS
from faceaudit._defaults import DEFAULT_MAX_USERS as DEFAULT_MAX_USERS
from faceaudit._defaults import DEFAULT_SEARCH_MAX_FACES as DEFAULT_SEARCH_MAX_FACES
from faceaudit._defaults import DEFAULT_SEARCH_USER_MATCH_THRESHOLD as DEFAULT_SEARCH_USER_MATCH_THRESHOLD
from faceaudit._defaults import IDENTIFICATION_DEFAULTS as IDENTIFICATION_DEFAULTS
from faceaudit._defaults import MAX_LIST_MAX_RESULTS as MAX_LIST_MAX_RESULTS
from faceaudit._defaults import MAX_SEARCH_MAX_FACES as MAX_SEARCH_MAX_FACES
from faceaudit._defaults import MAX_USERS as MAX_USERS
from faceaudit._defaults import Threshold
from faceaudit._errors import InvalidParameterError

COLLECTION_ID_RE = re.compile(r"[a-zA-Z0-9_.\-]+")
EXTERNAL_IMAGE_ID_RE = re.compile(r"[a-zA-Z0-9_.\-:]+")
USER_ID_RE = re.compile(r"[a-zA-Z0-9_.\-:]+")
FACE_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CLIENT_REQUEST_TOKEN_RE = re.compile(r"[a-zA-Z0-9\-_]+")
TAG_RE = re.compile(r"[\w\s_.:/=+\-@]*")  # \p{L}\p{Z}\p{N}_.:/=+\-@, approximated by \w and \s

QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")
ATTRIBUTES = (
    "DEFAULT", "ALL", "AGE_RANGE", "BEARD", "EMOTIONS", "EYE_DIRECTION", "EYEGLASSES",
    "EYES_OPEN", "GENDER", "MOUTH_OPEN", "MUSTACHE", "FACE_OCCLUDED", "SMILE", "SUNGLASSES",
)

MAX_FACE_IDS = 4096
MAX_USER_FACE_IDS = 100
MAX_TAGS = 200


def _string(value: Any, name: str, pattern: re.Pattern[str], max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str):
        raise InvalidParameterError(f"{name} must be a string")
    if not min_len <= len(value) <= max_len:
        raise InvalidParameterError(
            f"{name} must be {min_len} to {max_len} characters long, got {len(value)}"
        )
    if not pattern.fullmatch(value):
        raise InvalidParameterError(f"{name} {value!r} must match the pattern {pattern.pattern}")
    return value


def collection_id(value: Any) -> str:
    """CollectionId: 1-255 characters of ``[a-zA-Z0-9_.\\-]``."""
    return _string(value, "CollectionId", COLLECTION_ID_RE, 255)


def external_image_id(value: Any) -> str | None:
    """ExternalImageId (optional): 1-255 characters of ``[a-zA-Z0-9_.\\-:]``."""
    if value is None:
        return None
    return _string(value, "ExternalImageId", EXTERNAL_IMAGE_ID_RE, 255)


def user_id(value: Any, name: str = "UserId") -> str:
    """UserId: 1-128 characters of ``[a-zA-Z0-9_.\\-:]``."""
    return _string(value, name, USER_ID_RE, 128)


def face_id(value: Any, name: str = "FaceId") -> str:
    """FaceId / ImageId: a lower-case UUID."""
    if not isinstance(value, str) or not FACE_ID_RE.fullmatch(value):
        raise InvalidParameterError(f"{name} {value!r} is not a face id (a lower-case UUID)")
    return value


def face_ids(value: Any, max_items: int = MAX_FACE_IDS, name: str = "FaceIds") -> tuple[str, ...]:
    """A list of 1..``max_items`` FaceIds; duplicates are kept once, order kept."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidParameterError(f"{name} must be a list of face ids")
    if not 1 <= len(value) <= max_items:
        raise InvalidParameterError(f"{name} must hold 1 to {max_items} face ids, got {len(value)}")
    return tuple(dict.fromkeys(face_id(v, "FaceId") for v in value))


def client_request_token(value: Any) -> str | None:
    """ClientRequestToken (optional): 1-64 characters of ``[a-zA-Z0-9-_]``."""
    if value is None:
        return None
    return _string(value, "ClientRequestToken", CLIENT_REQUEST_TOKEN_RE, 64)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"{name} must be an integer")
    return int(value)


def int_range(value: Any, name: str, default: int, lo: int, hi: int | None) -> int:
    """An integer in ``lo..hi`` (``hi`` None: no maximum), ``default`` when None."""
    if value is None:
        return default
    v = _integer(value, name)
    if v < lo or (hi is not None and v > hi):
        bound = f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        raise InvalidParameterError(f"{name} must be {bound}, got {v}")
    return v


def percent(value: Any, name: str, default: float) -> float:
    """A similarity threshold 0-100 (``Percent``), ``default`` when None; a plain float. A
    :class:`~faceaudit._defaults.Threshold` (a request normalised by :func:`normalise_request`)
    was checked when it was made and is not checked again."""
    if value is None:
        return default
    return float(Threshold(value, name))


def page_size(value: Any, name: str = "MaxResults", default: int = DEFAULT_LIST_MAX_RESULTS,
              lo: int = 0, hi: int = MAX_LIST_MAX_RESULTS) -> int:
    """A page size; 0 (allowed by the model for ListCollections/ListFaces) means the default."""
    v = int_range(value, name, default, lo, hi)
    return v or default


def quality_filter(value: Any, default: str) -> str:
    """QualityFilter: NONE, AUTO, LOW, MEDIUM or HIGH."""
    if value is None:
        return default
    if value not in QUALITY_FILTERS:
        raise InvalidParameterError(
            f"QualityFilter must be one of {', '.join(QUALITY_FILTERS)}, got {value!r}"
        )
    return str(value)


def detection_attributes(value: Any) -> tuple[str, ...]:
    """DetectionAttributes: a list of Attribute names (default ``["DEFAULT"]``).

    faceaudit computes only the DEFAULT FaceDetail members (BoundingBox,
    Confidence, Pose, Quality, Landmarks); the other attributes are accepted
    for compatibility and not computed.
    """
    if value is None:
        return ("DEFAULT",)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidParameterError("DetectionAttributes must be a list of attribute names")
    for v in value:
        if v not in ATTRIBUTES:
            raise InvalidParameterError(
                f"DetectionAttributes: unknown attribute {v!r}; known: {', '.join(ATTRIBUTES)}"
            )
    return tuple(value) or ("DEFAULT",)


def image_bytes(value: Any) -> bytes:
    """Image: the raw image bytes (the service decodes base64; S3 objects are refused there)."""
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise InvalidParameterError("Image must be the image bytes (JPEG or PNG)")
    return value


def tags(value: Any) -> dict[str, str]:
    """Tags of CreateCollection: at most 200 key/value strings (keys 1-128, values 0-256)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidParameterError("Tags must be a map of strings")
    if len(value) > MAX_TAGS:
        raise InvalidParameterError(f"Tags may hold at most {MAX_TAGS} entries")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 128 or k.startswith("aws:") or not TAG_RE.fullmatch(k):
            raise InvalidParameterError(f"invalid tag key {k!r}")
        if not isinstance(v, str) or len(v) > 256 or not TAG_RE.fullmatch(v):
            raise InvalidParameterError(f"invalid tag value for {k!r}")
        out[k] = v
    return out


def one_of(values: Mapping[str, Any], names: Iterable[str]) -> str:
    """Exactly one of ``names`` is given (not None); returns its name."""
    given: list[str] = [n for n in names if values.get(n) is not None]
    if len(given) != 1:
        raise InvalidParameterError(f"exactly one of {', '.join(names)} is required")
    return given[0]


_CANDIDATE_LIMITS = {"MaxFaces": MAX_SEARCH_MAX_FACES, "MaxUsers": MAX_USERS}


@dataclass(frozen=True, eq=False)
class NormalisedRequest(Mapping[str, Any]):
    """A request after the one normalisation step (:func:`normalise_request`): Rekognition's
    members, read-only, with the similarity threshold and candidate limit of an identification
    set (Rekognition's default when the caller left them out) and checked. The backend (as its
    keyword arguments), the accountability extension (policy check) and the search log all read
    this one object, so they see the same values.

    As a mapping it is the request's members by Rekognition name (``CollectionId``,
    ``FaceMatchThreshold``, ``Image`` as ``{"Bytes": ...}``), defaults included.
    """

    operation: str
    members: Mapping[str, Any]
    threshold: float | None = None
    """The similarity threshold the backend applies, 0-100 (higher is more alike); None when
    the operation takes none."""
    threshold_member: str | None = None
    """Its member name (``FaceMatchThreshold``, ``UserMatchThreshold``, ``SimilarityThreshold``)."""
    max_candidates: int | None = None
    """The most candidates the backend returns (``MaxFaces``, ``MaxUsers``); None when the
    operation has no such limit."""
    max_candidates_member: str | None = None

    def __getitem__(self, name: str) -> Any:
        return self.members[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


def normalise_request(operation: str, params: Mapping[str, Any]) -> NormalisedRequest:
    """The request with Rekognition's defaults of its similarity threshold and candidate limit
    applied and checked (``faceaudit._defaults``): the one step after which the backend, the
    accountability layer's policy check and the search log all read the same values.

    ``params`` use Rekognition's member names (``FaceMatchThreshold``, ``MaxFaces``, ...);
    members the operation has no default for are passed through unchanged. A threshold outside
    0-100 or a limit out of range is an InvalidParameterError. A threshold that is a
    :class:`~faceaudit._defaults.Threshold` already (the service's model validation made it)
    is not checked again.
    """
    out = dict(params)
    threshold: tuple[str, Threshold] | None = None
    limit: tuple[str, int] | None = None
    for member, default in IDENTIFICATION_DEFAULTS.get(operation, {}).items():
        if member.endswith("Threshold"):
            value = out.get(member)
            out[member] = checked = Threshold(float(default) if value is None else value, member)
            threshold = (member, checked)
        else:
            out[member] = n = int_range(out.get(member), member, int(default), 1, _CANDIDATE_LIMITS.get(member))
            limit = (member, n)
    return NormalisedRequest(
        operation, MappingProxyType(out),
        threshold=threshold[1] if threshold else None, threshold_member=threshold[0] if threshold else None,
        max_candidates=limit[1] if limit else None, max_candidates_member=limit[0] if limit else None,
    )
