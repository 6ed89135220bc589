"""AWS JSON 1.1: the request and response types, parsing and serialisation.

Nothing here knows HTTP servers, authentication or operations' meaning: a
request is a method, a path, headers and a body reader; a response is a status,
headers and bytes.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import math
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from faceaudit._errors import (
    FaceAuditError,
    IncompleteBodyError,
    SerializationError,
    UnknownOperationError,
)
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
    content_length: int | None = None
    read_body: Callable[[int], bytes] = field(default=lambda n: b"", repr=False)
    body_consumed: bool = False
    body_sha256: str | None = None  # hex SHA-256 of the body, once read
    scheme: str = "http"  # "https" when served over TLS or a trusted proxy says the client used it

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def body(self) -> bytes:
        """Read the whole body (Content-Length bytes) in chunks, hashing it as it arrives; once."""
        if self.body_consumed:
            raise RuntimeError("the body was read already")
        self.body_consumed = True
        reader = BodyReader(self.content_length or 0)
        try:
            while not reader.complete:
                chunk = self.read_body(reader.wanted)
                if not chunk:
                    break
                reader.add(chunk)
        except OSError as exc:  # the client stalled (timeout) or went away
            raise IncompleteBodyError(f"the request body did not arrive: {type(exc).__name__}") from None
        data, self.body_sha256 = reader.result()
        return data if isinstance(data, bytes) else data.read()  # (not spooled here: always bytes)


class BodyReader:
    """A body of ``length`` bytes (Content-Length) collected chunk by chunk, its SHA-256
    computed while it streams in (so that the signature check needs no second pass).

    With ``spool_above``, what goes beyond that many bytes is written to a temporary file (0600,
    gone once closed; in ``spool_dir`` or the system's temporary folder), not held in memory:
    :meth:`result` then gives that file, at its start."""

    CHUNK = 256 * 1024

    def __init__(self, length: int, spool_above: int | None = None, spool_dir: str | None = None) -> None:
        self.length = length
        self._parts = bytearray()
        self._file: BinaryIO | None = None
        if spool_above is not None:
            # open for this reader's lifetime (closed by its owner), so no `with` block
            self._file = tempfile.SpooledTemporaryFile(max_size=spool_above, dir=spool_dir)  # type: ignore[assignment]  # noqa: SIM115 (not a BinaryIO in typeshed; it acts as one)
        self._received = 0
        self._sha = hashlib.sha256()

    @property
    def received(self) -> int:
        return self._received

    @property
    def complete(self) -> bool:
        return self.received >= self.length

    @property
    def wanted(self) -> int:
        """How many bytes to ask for next (at most one chunk)."""
        return min(self.CHUNK, self.length - self.received)

    def add(self, chunk: bytes) -> None:
        if self.received + len(chunk) > self.length:
            raise IncompleteBodyError(f"the body is longer than its Content-Length of {self.length} bytes")
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._parts += chunk
        self._received += len(chunk)
        self._sha.update(chunk)

    def result(self) -> tuple[bytes | BinaryIO, str]:
        """(body, hex SHA-256); IncompleteBodyError when fewer bytes than Content-Length came.
        The body is bytes, or the spool file (the caller closes it)."""
        if not self.complete:
            raise IncompleteBodyError(f"the body ended after {self.received} of {self.length} bytes")
        if self._file is not None:
            self._file.seek(0)
            return self._file, self._sha.hexdigest()
        return bytes(self._parts), self._sha.hexdigest()

    def close(self) -> None:
        """Drop what was received (the spool file is deleted)."""
        if self._file is not None:
            self._file.close()
        self._parts = bytearray()


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False  # close the connection after this response

    def header(self, name: str) -> str | None:
        return header(self.headers, name)


def operation_name(target: str | None, native_prefix: str | None = None) -> tuple[bool, str]:
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


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";")[0].strip().lower()
    if media not in ACCEPTED_CONTENT_TYPES:
        raise SerializationError(
            f"Content-Type must be {JSON_CONTENT_TYPE}, got {(value or 'none')[:100]!r}"
        )


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); SerializationException otherwise.

    UTF-8 only (RFC 8259 section 8.1: no other encoding, no byte order mark), and every number
    anywhere in the document a finite double or a 64-bit integer: NaN, Infinity and overflowing
    numbers such as 1e400 are refused, also in members the operation does not know."""
    if not body.strip():
        return {}
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise SerializationError("the request body must be JSON encoded as UTF-8") from None
    if text.startswith("\ufeff"):
        raise SerializationError("the request body must be JSON encoded as UTF-8, without a byte order mark")
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_int64)
    except RecursionError:
        raise SerializationError("the request body nests too deeply") from None
    except ValueError as exc:
        raise SerializationError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SerializationError("the request body must be a JSON object")
    return doc


def _refuse_constant(name: str) -> Any:
    raise SerializationError(f"the request body is not valid JSON: {name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SerializationError(f"the request body holds a number out of range: {text[:40]}")
    return value


def _int64(text: str) -> int:
    if len(text) > 21:
        raise SerializationError(f"the request body holds a number out of range: {text[:40]}...")
    value = int(text)
    if not -(2 ** 63) <= value < 2 ** 64:
        raise SerializationError(f"the request body holds a number out of range: {text[:40]}")
    return value


def _default(obj: Any) -> Any:
    if isinstance(obj, _dt.datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=_dt.UTC)
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


def json_response(status: int, doc: Any, request_id: str, extra: list[tuple[str, str]] | None = None) -> HttpResponse:
    body = dump_json(doc)
    headers = [
        ("Content-Type", JSON_CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        (REQUEST_ID_HEADER, request_id),
    ]
    headers.extend(extra or [])
    return HttpResponse(status, body, headers)


def error_doc(code: str, message: str) -> dict[str, str]:
    """An AWS JSON 1.1 error body. The message is under both ``message`` (botocore, the AWS CLI)
    and ``Message`` (the AWS SDK for Go v2 reads only this one), as Rekognition's own errors."""
    return {"__type": code, "message": message, "Message": message}


def error_response(exc: FaceAuditError, request_id: str, extra: list[tuple[str, str]] | None = None) -> HttpResponse:
    """AWS JSON error: :func:`error_doc` with the error's HTTP status."""
    doc = error_doc(exc.aws_code, exc.message)
    headers = [("x-amzn-ErrorType", exc.aws_code), *list(extra or [])]
    return json_response(exc.http_status, doc, request_id, headers)
