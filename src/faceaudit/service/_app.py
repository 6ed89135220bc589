"""The service application: one request in, one response out, independent of the HTTP server.

The pipeline, in order, so that nothing is read or done before it must be:

1. route (``GET /health``: liveness; ``GET /ready``: readiness, the stores answer (503 when not);
   ``POST /`` is the API; anything else 404/405),
2. Content-Length required (411), no chunked bodies,
3. authentication checks that need no body (header, scope, time, key),
4. the operation from ``X-Amz-Target`` (UnknownOperationException),
5. the caller's role (the key's, from the headers; an extension may refuse: AccessDeniedException),
6. the body size limit of that operation (413, before reading): only a key whose role may call
   the operation gets the operation's limit,
7. read the body (its SHA-256 computed while it streams in), verify the signature over it,
8. the per-key rate limit (ThrottlingException),
9. parse JSON, validate against the model's input shape (or serve an extension's operation),
   read S3Object images from the object store (for a bucket the caller's role may read),
10. dispatch (backend or engine, wrapped by the extension), serialise ``to_rekognition()``,
11. log one JSON line.

Steps 1-6 need only the headers (:meth:`ServiceApp.begin`), step 7's reading is the server's
business (an asynchronous server reads the body without holding a thread), and steps 7-11 run
in :meth:`ServiceApp.finish`. :meth:`ServiceApp.handle` does all of it in one call.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from faceaudit import __version__
from faceaudit._errors import (
    AccessDeniedError,
    FaceAuditError,
    ImageTooLargeError,
    IncompleteBodyError,
    LengthRequiredError,
    RequestTooLargeError,
    ServiceUnavailableError,
    ThrottlingError,
    UnknownOperationError,
)
from faceaudit.collections import BackendOptions, BucketAccess, ObjectStore, normalise_request
from faceaudit.engine import DEFAULT_MODEL, FaceEngine
from faceaudit.service._auth import ANONYMOUS, ParsedAuthorization, Principal, SigV4Verifier
from faceaudit.service._dispatch import Dispatcher
from faceaudit.service._extension import Caller, ServiceExtension
from faceaudit.service._keys import KeyStore
from faceaudit.service._limits import RateLimiter, body_limit
from faceaudit.service._log import log_request
from faceaudit.service._model import OPERATIONS, operation_model
from faceaudit.service._protocol import (
    ENGINE_TIME_HEADER,
    HttpRequest,
    HttpResponse,
    check_content_type,
    error_doc,
    error_response,
    json_response,
    new_request_id,
    operation_name,
    parse_json_body,
)
from faceaudit.service._ready import Readiness
from faceaudit.service._validate import check_output, parse_input

log = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT = 50.0
"""Requests per second per access key (burst: one second's worth)."""

MAX_BODY_BYTES = body_limit(2)
"""The largest body any operation accepts (CompareFaces: two 5 MB images)."""

STORE_UNAVAILABLE = "a database or store this service needs is unavailable; retry later"
"""The message of every 503 whose cause is a store (its own message, naming the server, is logged)."""


@dataclass
class ServiceConfig:
    """Settings of one service (shared by its worker processes)."""

    data_dir: Path
    auth: bool = True
    rate_limit: float = DEFAULT_RATE_LIMIT  # requests/second per key; <= 0 disables
    rate_burst: float | None = None
    max_skew_seconds: float = 15 * 60
    strict_responses: bool = False  # check every response against its shape (tests)
    objects: ObjectStore | None = None  # for S3Object inputs (None: refused)
    bucket_access: BucketAccess | None = None  # which roles read which buckets (None: default)
    backend_options: BackendOptions | None = None  # typed options of the backend (None: defaults)
    runtime: str | None = None  # what runs the networks (Settings.runtime); None: the environment's
    database_url: str | None = field(default=None, repr=False)
    """The PostgreSQL URL the stores share (Settings.postgres_url; never in a repr: it may hold a
    password); None: the SQLite files in the data dir."""


@dataclass
class Exchange:
    """One request on its way through the pipeline: what :meth:`ServiceApp.begin` learnt from
    the headers. ``response`` is set when the request was answered without its body; otherwise
    the body (Content-Length bytes, within the operation's limit for the key's role) is to be
    read and given to :meth:`ServiceApp.finish`."""

    request: HttpRequest
    request_id: str
    started: float
    operation: str | None = None
    access_key_id: str | None = None
    engine_ms: float | None = None
    native: bool = False
    auth: ParsedAuthorization | None = None
    caller: Caller | None = field(default=None, repr=False)
    response: HttpResponse | None = None
    error_code: str | None = None

    @property
    def needs_body(self) -> bool:
        return self.response is None


class ServiceApp:
    """Turns :class:`HttpRequest` into :class:`HttpResponse` (thread-safe)."""

    def __init__(
        self,
        config: ServiceConfig,
        dispatcher: Dispatcher | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        extension: ServiceExtension | None = None,
    ) -> None:
        self.config = config
        self.extension = extension
        self.keys = KeyStore(config.data_dir, database_url=config.database_url)
        self.verifier = SigV4Verifier(self.keys, max_skew=config.max_skew_seconds, clock=clock)
        self.dispatcher = dispatcher or Dispatcher(
            config.data_dir, objects=config.objects, bucket_access=config.bucket_access,
            backend_options=config.backend_options,
            engine_factory=None if config.runtime is None else functools.partial(
                FaceEngine, DEFAULT_MODEL, config.runtime),
        )
        self.limiter = limiter or RateLimiter(config.rate_limit, config.rate_burst)
        self._n_images = {op: _count_images(op) for op in OPERATIONS}
        self.readiness = Readiness(self._ready_checks())

    def _ready_checks(self) -> list[tuple[str, Callable[[], None]]]:
        """The stores ``GET /ready`` asks, each by its own cheap check: the keys, the collections'
        database and vector store, and the extension's (search log, policies and leads)."""
        def keys() -> None:
            self.keys.lookup("")  # re-reads the keys file when it changed

        checks: list[tuple[str, Callable[[], None]]] = [("keys", keys)]

        def collections() -> None:
            check = getattr(self.dispatcher.backend, "check_health", None)  # a test's stand-in may have none
            if check is not None:
                check()

        checks.append(("collections", collections))
        ext_check = getattr(self.extension, "check_health", None)
        if ext_check is not None:
            checks.append(("accountability", ext_check))
        return checks

    def check_ready(self) -> None:
        """Fail early (at start-up) on an unsafe keys file or a missing service model."""
        self.keys.check_permissions()
        operation_model(OPERATIONS[0])

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        """The whole pipeline in one call, reading the body with ``request.body()``."""
        exchange = self.begin(request)
        if not exchange.needs_body:
            return self.done(exchange)
        try:
            body = request.body()
        except FaceAuditError as exc:
            return self.fail(exchange, exc)
        return self.finish(exchange, body, request.body_sha256)

    def begin(self, request: HttpRequest) -> Exchange:
        """Steps 1-6, from the headers alone. For ``POST /`` this never reads the body; another
        path may be served by the extension, which may read it (call that in a thread)."""
        exchange = Exchange(request, new_request_id(), time.perf_counter())
        self._guard(exchange, lambda: self._route(request, exchange))
        return exchange

    def finish(self, exchange: Exchange, body: bytes, body_sha256: str | None = None) -> HttpResponse:
        """Steps 7-11 with the body that was read (``body_sha256``: its SHA-256 in hex, computed
        while it streamed in; computed here when None)."""
        self._guard(exchange, lambda: self._api_body(exchange, body, body_sha256))
        return self.done(exchange)

    def fail(self, exchange: Exchange, exc: FaceAuditError) -> HttpResponse:
        """Answer ``exchange`` with an error found by the server (e.g. the body did not arrive)."""
        exchange.response = self._error(exc, exchange.request_id)
        exchange.error_code = exc.aws_code
        return self.done(exchange)

    def done(self, exchange: Exchange) -> HttpResponse:
        """The response, with the engine time header, after logging the request's line."""
        response = exchange.response
        if response is None:  # pragma: no cover - a server bug: finish() was never called
            raise RuntimeError("the request's body was never read")
        if exchange.engine_ms is not None:
            response.headers.append((ENGINE_TIME_HEADER, f"{exchange.engine_ms:.2f}"))
        request = exchange.request
        log_request(
            request_id=exchange.request_id,
            method=request.method,
            path=request.raw_path,
            operation=exchange.operation,
            access_key_id=exchange.access_key_id,
            status=response.status,
            error_code=exchange.error_code,
            duration_ms=(time.perf_counter() - exchange.started) * 1000.0,
            engine_ms=exchange.engine_ms,
            remote=request.remote,
        )
        return response

    def _guard(self, exchange: Exchange, step: Callable[[], HttpResponse | None]) -> None:
        try:
            exchange.response = step()
        except FaceAuditError as exc:
            exchange.response = self._error(exc, exchange.request_id)
            exchange.error_code = exc.aws_code
        except Exception:  # a bug: never leak details, log them
            log.error("unhandled error in request %s", exchange.request_id, exc_info=True)
            exchange.response = self._error(FaceAuditError("Internal server error"), exchange.request_id)
            exchange.error_code = "InternalServerError"

    @staticmethod
    def _error(exc: FaceAuditError, request_id: str) -> HttpResponse:
        extra = []
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, ServiceUnavailableError) and retry_after is None:
            # a store that failed (a database, a vector store): its message names internal
            # servers and users, so it goes to the log; the caller learns only to retry soon
            log.warning("request %s: %s", request_id, exc.message)
            exc, retry_after = ServiceUnavailableError(STORE_UNAVAILABLE), 1.0
        if retry_after is not None:
            extra.append(("Retry-After", str(max(1, int(retry_after + 0.999)))))
        response = error_response(exc, request_id, extra)
        if exc.http_status in (411, 413) or isinstance(exc, IncompleteBodyError):
            response.close = True
        return response

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, request: HttpRequest, exchange: Exchange) -> HttpResponse | None:
        request_id = exchange.request_id
        path = request.raw_path
        if path == "/health":
            if request.method not in ("GET", "HEAD"):
                return _method_not_allowed(request_id, "GET, HEAD")
            return json_response(200, {"Status": "ok", "Version": __version__}, request_id)
        if path == "/ready":
            if request.method not in ("GET", "HEAD"):
                return _method_not_allowed(request_id, "GET, HEAD")
            report = self.readiness.check()
            extra = [("Cache-Control", "no-store")]
            if not report.ready:
                extra.append(("Retry-After", "1"))
            return json_response(200 if report.ready else 503, report.to_json(), request_id, extra)
        if path != "/" and self.extension is not None:
            handled = self.extension.handle_path(request, request_id)
            if handled is not None:
                return handled
        if path != "/":
            return json_response(
                404,
                error_doc("UnknownOperationException", f"no resource {path[:100]!r}"),
                request_id,
            )
        if request.method != "POST":
            return _method_not_allowed(request_id, "POST")
        return self._api_head(request, exchange)

    def _api_head(self, request: HttpRequest, exchange: Exchange) -> HttpResponse | None:
        # 2. a declared length, so that the size limit holds before reading
        if (request.header("transfer-encoding") or "").strip():
            raise LengthRequiredError("chunked request bodies are not accepted; send Content-Length")
        if request.content_length is None:
            raise LengthRequiredError("Content-Length is required")

        # 3. authentication checks that need no body
        auth = None
        if self.config.auth:
            auth = self.verifier.precheck(request.headers, request.query)
            exchange.access_key_id = auth.key.access_key_id
        else:
            _check_loopback_host(request.header("host"))
        exchange.auth = auth

        # 4. the operation (Rekognition's, or the extension's own under its target prefix)
        ext = self.extension
        native_prefix = ext.target_prefix if ext is not None else None
        native, operation = operation_name(request.header("x-amz-target"), native_prefix)
        exchange.operation = operation
        exchange.native = native
        if native:
            if operation not in ext.operations:  # type: ignore[union-attr]  # native: there is an extension
                raise UnknownOperationError(f"{operation} is not an operation of this service")
        elif operation not in OPERATIONS:
            raise UnknownOperationError(f"{operation} is not an operation of this service")

        # 5. the key's role may run this operation (from the headers: before any body is read)
        role = auth.key.role if auth is not None else ANONYMOUS.role
        caller = Caller(
            access_key_id=auth.key.access_key_id if auth is not None else ANONYMOUS.access_key_id,
            role=role,
            request_id=exchange.request_id,
            remote=request.remote,
            headers={k.lower(): v for k, v in request.headers if k.lower().startswith("x-faceaudit-")},
        )
        if ext is not None:
            ext.authorize(caller, operation, native)
        exchange.caller = caller

        # 6. body size, before reading it
        limit = (ext.body_limit(operation) if native  # type: ignore[union-attr]  # native: there is an extension
                 else body_limit(self._n_images[operation]))
        if request.content_length > limit:
            message = (
                f"the request body is {request.content_length} bytes; {operation} accepts at most "
                f"{limit} bytes"
            )
            if not native and self._n_images[operation]:
                raise _TooLargeImage(message + " (images: at most 5 MB each)")
            raise RequestTooLargeError(message)
        return None  # the body is to be read: finish()

    def _api_body(self, exchange: Exchange, body: bytes, body_sha256: str | None) -> HttpResponse:
        request, auth, ext = exchange.request, exchange.auth, self.extension
        operation, native, caller = exchange.operation, exchange.native, exchange.caller
        if operation is None or caller is None:  # pragma: no cover - begin() was not called
            raise RuntimeError("finish() before begin() had checked the headers")

        # 7. the signature over the body (a large body comes as its spool file: read once verified)
        principal: Principal = ANONYMOUS
        if auth is not None:
            principal = self.verifier.verify(
                auth, request.method, request.raw_path, request.query, request.headers,
                body if isinstance(body, bytes) or body_sha256 is None else b"", payload_sha256=body_sha256,
            )
        if not isinstance(body, bytes):
            body = body.read()

        # 8. rate limit per key (per client address without authentication)
        bucket = principal.access_key_id if auth is not None else f"ip:{request.remote}"
        wait = self.limiter.acquire(bucket)
        if wait > 0:
            exc = ThrottlingError(
                f"Rate exceeded: at most {self.limiter.rate:g} requests per second per access key"
            )
            exc.retry_after = wait  # type: ignore[attr-defined]  # read by the edge (getattr)
            raise exc

        # 9. parse and validate
        request_id = exchange.request_id
        check_content_type(request.header("content-type"))
        if native:
            doc = ext.call(caller, operation, parse_json_body(body))  # type: ignore[union-attr]  # native: an extension
            return json_response(200, doc, request_id)
        model = operation_model(operation)
        params = parse_input(model.input_shape, parse_json_body(body))
        params = self.dispatcher.resolve(operation, params, principal.role)  # S3Object -> bytes
        # Rekognition's defaults applied once: the extension (policy, log) and the backend read these
        normalised = normalise_request(operation, params)

        # 10. dispatch and serialise (ARNs in the region the request was signed for)
        region = auth.region if auth is not None else None
        if ext is not None:
            doc, engine_ms = ext.wrap(
                caller, operation, normalised, lambda: self.dispatcher.call(operation, normalised, region),
                self.dispatcher.model_version,
            )
        else:
            doc, engine_ms = self.dispatcher.call(operation, normalised, region)
        exchange.engine_ms = engine_ms
        if self.config.strict_responses:
            problems = check_output(model.output_shape, doc)
            if problems:
                raise FaceAuditError(f"strict mode: {operation} response breaks its shape: {problems[:5]}")
        return json_response(200, doc, request_id)


def _check_loopback_host(host: str | None) -> None:
    """Without authentication (served on loopback only), refuse a Host that is not a loopback
    name: a web page whose DNS name rebinds to 127.0.0.1 is same-origin with the service and
    would otherwise call every operation as the anonymous admin. (Browsers always send Host.)"""
    if host is None:
        return
    import ipaddress
    from urllib.parse import urlsplit

    try:  # a bare host[:port]: no user info ("evil.example@127.0.0.1"), path or spaces
        parts = urlsplit("//" + host.strip())
        name = (parts.hostname or "") if parts.netloc == host.strip() and "@" not in host else ""
        parts.port  # noqa: B018 - a port that is not a number raises
    except ValueError:
        name = ""
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise AccessDeniedError(
            "authentication is off: requests are served only for a loopback Host "
            "(127.0.0.1, ::1 or localhost)"
        )


class _TooLargeImage(ImageTooLargeError):
    """A body too large for an operation with images: ImageTooLargeException, HTTP 413."""

    http_status = 413


def _method_not_allowed(request_id: str, allow: str) -> HttpResponse:
    return json_response(
        405,
        error_doc("MethodNotAllowedException", f"use {allow}"),
        request_id,
        [("Allow", allow)],
    )


def _count_images(operation: str) -> int:
    shape = operation_model(operation).input_shape
    return sum(1 for m in shape.members.values() if m.name == "Image")

