"""AWS JSON 1.1: the request and response types, parsing and serialisation.

Nothing here knows HTTP servers, authentication or operations' meaning: a
request is a method, a path, headers and a body reader; a response is a status,
headers and bytes.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from faceaudit._errors import FaceAuditError, SerializationError, UnknownOperationError
from faceaudit.service._auth import Headers, header
from faceaudit.service._model import JSON_CONTENT_TYPE, TARGET_PREFIX

ACCEPTED_CONTENT_TYPES = (JSON_CONTENT_TYPE, "application/x-amz-json-1.0", "application/json")
REQUEST_ID_HEADER = "x-amzn-RequestId"
ENGINE_TIME_HEADER = "x-faceaudit-engine-ms"


def new_request_id() -> str:
    return str(uuid.uuid4())


@dataclass
class HttpRequest:
    """One HTTP request as the server received it; the body is read only on demand."""

    method: str
    raw_path: str  # as sent, percent-encoding kept, without the query
    query: str
    headers: Headers
    remote: str = "-"
    content_length: Optional[int] = None
    read_body: Callable[[int], bytes] = field(default=lambda n: b"", repr=False)
    body_consumed: bool = False

    def header(self, name: str) -> Optional[str]:
        return header(self.headers, name)

    def body(self) -> bytes:
        """Read the whole body (Content-Length bytes); only once."""
        if self.body_consumed:
            raise RuntimeError("the body was read already")
        self.body_consumed = True
        n = self.content_length or 0
        try:
            data = self.read_body(n) if n else b""
        except OSError as exc:  # the client stalled (timeout) or went away
            raise IncompleteBodyError(f"the request body did not arrive: {type(exc).__name__}") from None
        if len(data) != n:
            raise IncompleteBodyError(f"the body ended after {len(data)} of {n} bytes")
        return data


class IncompleteBodyError(SerializationError):
    """Fewer body bytes than Content-Length said; the connection is closed after the answer."""


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    close: bool = False  # close the connection after this response

    def header(self, name: str) -> Optional[str]:
        return header(self.headers, name)


def operation_name(target: Optional[str], native_prefix: Optional[str] = None) -> Tuple[bool, str]:
    """``(native, operation)`` of an ``X-Amz-Target`` header.

    ``RekognitionService.<Operation>`` gives ``(False, Operation)``; an extension's
    ``<native_prefix>.<Operation>`` gives ``(True, Operation)``.
    """
    if not target:
        raise UnknownOperationError("the X-Amz-Target header is missing")
    prefix, dot, name = target.strip().partition(".")
    if not dot or not name or prefix not in (TARGET_PREFIX, native_prefix):
        raise UnknownOperationError(f"unknown operation target: {target[:100]!r}")
    return prefix != TARGET_PREFIX, name


def check_content_type(value: Optional[str]) -> None:
    media = (value or "").split(";")[0].strip().lower()
    if media not in ACCEPTED_CONTENT_TYPES:
        raise SerializationError(
            f"Content-Type must be {JSON_CONTENT_TYPE}, got {(value or 'none')[:100]!r}"
        )


def parse_json_body(body: bytes) -> dict:
    """The request's JSON object ({} for an empty body); SerializationException otherwise."""
    if not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except RecursionError:
        raise SerializationError("the request body nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise SerializationError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SerializationError("the request body must be a JSON object")
    return doc


def _default(obj: Any) -> Any:
    if isinstance(obj, _dt.datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=_dt.timezone.utc)
        return obj.timestamp()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return item()
    to_rek = getattr(obj, "to_rekognition", None)
    if callable(to_rek):
        return to_rek()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dump_json(doc: Any) -> bytes:
    return json.dumps(doc, default=_default, allow_nan=False, separators=(",", ":")).encode("utf-8")


def json_response(status: int, doc: Any, request_id: str, extra: Optional[list] = None) -> HttpResponse:
    body = dump_json(doc)
    headers = [
        ("Content-Type", JSON_CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        (REQUEST_ID_HEADER, request_id),
    ]
    headers.extend(extra or [])
    return HttpResponse(status, body, headers)


def error_doc(code: str, message: str) -> dict:
    """An AWS JSON 1.1 error body. The message is under both ``message`` (botocore, the AWS CLI)
    and ``Message`` (the AWS SDK for Go v2 reads only this one), as Rekognition's own errors."""
    return {"__type": code, "message": message, "Message": message}


def error_response(exc: FaceAuditError, request_id: str, extra: Optional[list] = None) -> HttpResponse:
    """AWS JSON error: :func:`error_doc` with the error's HTTP status."""
    doc = error_doc(exc.aws_code, exc.message)
    headers = [("x-amzn-ErrorType", exc.aws_code)] + list(extra or [])
    return json_response(exc.http_status, doc, request_id, headers)
