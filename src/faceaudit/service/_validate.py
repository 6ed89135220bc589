"""Generic validation of request parameters against botocore's shapes.

boto3 checks only required members, minimums and types before sending; the
service enforces everything the model says (types, required members, string and
list lengths, numeric ranges, regex patterns, enums, blob sizes) the same way for
every operation. Problems are reported as AWS does: ``1 validation error
detected: Value 'x' at 'collectionId' failed to satisfy constraint: ...``.

:func:`parse_input` returns the parameters with blobs decoded to ``bytes``.
:func:`check_output` checks a response against its shape (used by the strict
mode of the service in tests: a result whose ``to_rekognition()`` strays from the
contract is a server bug, not something to send).
"""

from __future__ import annotations

import binascii
import math
import re
from functools import cache
from typing import Any

from botocore.model import Shape

from faceaudit._defaults import Threshold
from faceaudit._errors import ImageTooLargeError, InvalidParameterError

IMAGE_SHAPE = "Image"
THRESHOLD_SHAPE = "Percent"
"""The model's shape of every similarity threshold (FaceMatchThreshold, UserMatchThreshold,
SimilarityThreshold): checked here, it is passed on as a :class:`~faceaudit._defaults.Threshold`."""
IMAGE_BLOB_SHAPE = "ImageBlob"

# Java's \p{Z} (Unicode space separators), which Python's ``re`` lacks.
_Z_CHARS = " \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _translate(pattern: str) -> str:
    """A Java/ECMA regex from the model as a Python regex.

    ``\\p{L}`` and ``\\p{N}`` (letters, numbers) become ``\\w`` inside a character
    class (which adds ``_`` and combining marks; every pattern that uses them
    allows ``_`` already), ``\\p{Z}`` becomes the Unicode space separators.
    """
    out = pattern.replace(r"\p{Z}", _Z_CHARS)
    out = out.replace(r"\p{L}\p{N}", r"\w").replace(r"\p{N}\p{L}", r"\w")
    out = out.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\d")
    return out


@cache
def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """The pattern compiled for :func:`re.fullmatch`, or None if Python cannot compile it."""
    try:
        return re.compile(_translate(pattern))
    except re.error:  # pragma: no cover - every pattern of the served operations compiles (tested)
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


class _Checker:
    """Walks a value along its shape; collects AWS-style problems; decodes blobs."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.image_too_large: str | None = None

    def problem(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else _show(value)
        self.problems.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: {constraint}"
        )

    def check(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        method = getattr(self, f"_{kind}", None)
        if method is None:  # pragma: no cover - no such shapes in the served operations
            return value
        return method(shape, value, path)

    # -- containers --------------------------------------------------------------------------

    def _structure(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.problem(value, path, "Member must be an object")
            return value
        if shape.name == IMAGE_SHAPE:
            self._image_source(value, path)
        out = {}
        for name in shape.required_members:
            if value.get(name) is None:
                self.problem(None, _join(path, name), "Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[name] = self.check(member, value[name], _join(path, name))
        # Unknown members are ignored, as AWS's JSON services do (newer clients may send more).
        return out

    def _image_source(self, value: dict[str, Any], path: str) -> None:
        has_bytes, has_object = value.get("Bytes") is not None, value.get("S3Object") is not None
        if has_bytes == has_object:
            raise InvalidParameterError(
                f"'{path}' must have exactly one of Bytes (the image, base64 encoded, at most 5 MB) "
                "and S3Object (an image in an object store, at most 15 MB)"
            )

    def _list(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            self.problem(value, path, "Member must be a list")
            return value
        self._length(shape, value, path, "length")
        return [self.check(shape.member, v, f"{path}.{i + 1}.member") for i, v in enumerate(value)]

    def _map(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.problem(value, path, "Member must be a map")
            return value
        self._length(shape, value, path, "length")
        out = {}
        for k, v in value.items():
            key = self.check(shape.key, k, f"{path}.key")
            if v is None:
                self.problem(None, f"{path}.{k}", "Member must not be null")
                continue
            out[key] = self.check(shape.value, v, f"{path}.{k}")
        return out

    # -- scalars -----------------------------------------------------------------------------

    def _string(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.problem(value, path, "Member must be a string")
            return value
        self._length(shape, value, path, "length")
        enum = shape.enum
        if enum and value not in enum:
            self.problem(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern")
        if pattern is not None:
            rx = compiled_pattern(pattern)
            if rx is not None and rx.fullmatch(value) is None:
                self.problem(
                    value, path, f"Member must satisfy regular expression pattern: {pattern}"
                )
        return value

    def _integer(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(value, path, "Member must be an integer")
            return value
        self._range(shape, value, path)
        return value

    _long = _integer

    def _float(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.problem(value, path, "Member must be a number")
            return value
        problems = len(self.problems)
        self._range(shape, value, path)
        if shape.name == THRESHOLD_SHAPE and len(self.problems) == problems:
            return Threshold.checked(float(value))  # checked here, once: no later layer checks it again
        return float(value)

    _double = _float

    def _boolean(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            self.problem(value, path, "Member must be a boolean")
        return value

    def _timestamp(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(value, path, "Member must be a timestamp (epoch seconds)")
        return value

    def _blob(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.problem(value, path, "Member must be a base64 encoded string")
            return value
        limit = shape.metadata.get("max")
        # The decoded size is known from the text's length: refuse before decoding.
        approx = len(value) * 3 // 4 - value[-2:].count("=")
        if limit is not None and approx > limit:
            self._too_large(shape, approx, limit, path)
            return b""
        try:
            data = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            self.problem("<blob>", path, "Member must be valid base64")
            return b""
        if limit is not None and len(data) > limit:
            self._too_large(shape, len(data), limit, path)
        minimum = shape.metadata.get("min")
        if minimum is not None and len(data) < minimum:
            self.problem("<blob>", path, f"Member must have length greater than or equal to {minimum}")
        return data

    def _too_large(self, shape: Shape, size: int, limit: int, path: str) -> None:
        if shape.name == IMAGE_BLOB_SHAPE:
            self.image_too_large = (
                f"the image at '{path}' is {size} bytes; the limit is {limit} bytes (5 MB)"
            )
        else:
            self.problem("<blob>", path, f"Member must have length less than or equal to {limit}")

    # -- constraints -------------------------------------------------------------------------

    def _length(self, shape: Shape, value: Any, path: str, what: str) -> None:
        minimum = shape.metadata.get("min")
        maximum = shape.metadata.get("max")
        if minimum is not None and len(value) < minimum:
            self.problem(value, path, f"Member must have {what} greater than or equal to {minimum}")
        if maximum is not None and len(value) > maximum:
            self.problem(value, path, f"Member must have {what} less than or equal to {maximum}")

    def _range(self, shape: Shape, value: Any, path: str) -> None:
        minimum = shape.metadata.get("min")
        maximum = shape.metadata.get("max")
        if minimum is not None and value < minimum:
            self.problem(value, path, f"Member must have value greater than or equal to {minimum}")
        if maximum is not None and value > maximum:
            self.problem(value, path, f"Member must have value less than or equal to {maximum}")


def _join(path: str, member: str) -> str:
    return f"{path}.{_camel(member)}" if path else _camel(member)


def parse_input(shape: Shape | None, params: Any) -> dict[str, Any]:
    """Validate request parameters against the operation's input shape.

    Returns the parameters with blobs decoded to ``bytes`` and nulls and unknown
    members dropped. Raises :class:`InvalidParameterError` listing every problem,
    and :class:`ImageTooLargeError` for image bytes over 5 MB. An image given as an
    ``S3Object`` is left as it is (the dispatcher reads it from the object store).
    """
    if not isinstance(params, dict):
        raise InvalidParameterError("the request body must be a JSON object")
    if shape is None:
        return {}
    checker = _Checker()
    out: dict[str, Any] = checker.check(shape, params, "")  # a structure checks to a dict
    if checker.image_too_large:
        raise ImageTooLargeError(checker.image_too_large)
    if checker.problems:
        n = len(checker.problems)
        raise InvalidParameterError(
            f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(checker.problems)
        )
    return out


def check_output(shape: Shape | None, value: Any, path: str = "") -> list[str]:
    """Problems of a response against its output shape (types and unknown members).

    Constraints are not checked (AWS does not promise them on output), only that
    every key is a member of the shape and every value has the member's type.
    """
    problems: list[str] = []
    if shape is None:
        if value not in ({}, None):
            problems.append(f"{path or 'response'}: expected an empty response")
        return problems
    _check_out(shape, value, path or shape.name, problems)
    return problems


_OUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "long": (int,), "boolean": (bool,),
    "float": (int, float), "double": (int, float), "timestamp": (int, float), "blob": (str,),
}


def _check_out(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for key, v in value.items():
            member = shape.members.get(key)
            if member is None:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            elif v is not None:
                _check_out(member, v, f"{path}.{key}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            _check_out(shape.member, v, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            _check_out(shape.value, v, f"{path}.{k}", problems)
    else:
        types: tuple[type, ...] = _OUT_TYPES.get(kind, (object,))
        ok = isinstance(value, types) and (kind == "boolean" or not isinstance(value, bool))
        if not ok:
            problems.append(f"{path}: expected {kind}, got {type(value).__name__} {_show(value)}")
        elif kind == "string" and shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")
