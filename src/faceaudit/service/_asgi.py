"""The service as an ASGI application: the bridge between an asynchronous HTTP server and
:class:`~faceaudit.service._app.ServiceApp`.

For ``POST /`` (the API) and ``/health`` the headers are checked on the event loop
(:meth:`ServiceApp.begin`: authentication scope, key, role, operation, size limit) before any
body byte is read; then the body is read on the event loop, hashed as it streams in, within a
per-process budget of bytes not yet verified; only then does a thread of a bounded pool verify
the signature and run the operation (:meth:`ServiceApp.finish`). A slow or hostile client so
never holds a thread, and an unauthenticated one never holds more memory than the budget
allows. Other paths (the extension's web pages) run in the pool as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from faceaudit._errors import (
    FaceAuditError,
    IncompleteBodyError,
    RequestHeaderFieldsTooLargeError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UriTooLongError,
)
from faceaudit.service._app import Exchange, ServiceApp
from faceaudit.service._limits import BodyBudget, Reservation
from faceaudit.service._protocol import BodyReader, HttpRequest, HttpResponse, new_request_id

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
"""An ASGI ``receive`` callable: the next event (a dict)."""
Send = Callable[[dict[str, Any]], Awaitable[None]]
"""An ASGI ``send`` callable: one event (a dict)."""

DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""A refused, unread body up to this size is read and dropped (never held) after the answer, so
that a client which sends everything before reading (e.g. ImageTooLargeException for a 12 MB
photo) sees the refusal rather than a broken pipe. Beyond, at most a megabyte is, then the
connection is closed."""

LINGER_SECONDS = 5.0
"""How long the dropping of a refused body may take before the connection is closed."""


@dataclass(frozen=True)
class ServerLimits:
    """What one worker process grants its clients. Sizes in bytes, times in seconds."""

    request_timeout: float = 60.0
    """Headers and body of one request must have arrived within this time of its first byte
    (or of the connection's opening); otherwise 408 (headers) or the connection is closed."""
    idle_timeout: int = 30
    """A keep-alive connection idle this long is closed."""
    max_connections: int = 4096
    """Connections per worker; beyond, requests get 503."""
    max_connections_per_client: int = 128
    """Connections per client address per worker; beyond, new ones get 503 and are closed."""
    unverified_body_bytes: int = 160 * 1024 * 1024
    """Bodies being read or run whose signature is not yet checked, per worker (by their
    declared Content-Length); a request that does not fit gets 503 (boto3 retries it)."""
    unverified_body_bytes_per_key: int = 64 * 1024 * 1024
    """The same, for the requests signed with one access key id (a key may always have one
    body in flight, however large its operation allows, if the worker's budget has room). From
    an address that verified a signature of the key before, the key has its own share there."""
    unverified_body_bytes_per_address: int = 40 * 1024 * 1024
    """The same, per client address (IPv6: per /64); one body always fits."""
    small_body_reserve: int = 4 * 1024 * 1024
    """Bodies of at most 64 KiB fit within this much more when large bodies fill the budget
    (an address at most a quarter of it)."""
    spool_above: int = 1024 * 1024
    """An unverified body larger than this is spooled to a file (0600, deleted when closed)
    in ``spool_dir``, not held in memory."""
    spool_dir: str | None = None
    """Where bodies are spooled (None: ``<data dir>/spool``, made 0700)."""
    page_body_bytes: int = 16 * 1024
    """Largest body of a request to a path other than the API (the review pages' forms);
    beyond: 413 before reading."""
    page_body_timeout: float = 10.0
    """Such a body must arrive within this time of the headers; otherwise 408."""
    page_threads: int = 4
    """Threads per worker that serve the other paths (their own pool: never the API's)."""
    max_header_bytes: int = 32 * 1024
    """Largest header block (names and values); beyond: 431."""
    max_headers: int = 100
    """Most header fields in a request; beyond: 431."""
    max_target_bytes: int = 8 * 1024
    """Longest request target (path and query); beyond: 414."""
    trusted_proxies: tuple[str, ...] = ()
    """Networks (CIDRs) of proxies whose X-Forwarded-For and X-Forwarded-Proto are believed
    (the client's address and whether it used https); nobody else's are."""
    threads: int = 32
    """Threads per worker that verify signatures and run operations."""


AppSource = ServiceApp | Callable[[], ServiceApp]

SIGNATURE_FAILURES = frozenset({"InvalidSignatureException", "IncompleteSignatureException"})
"""Outcomes of a read body that make its key id and address back off (as does a body that did
not arrive); any other outcome of :meth:`ServiceApp.finish` comes after the signature verified."""


class AsgiService:
    """An ASGI 3 application serving one :class:`ServiceApp` (made in the worker process by
    ``factory`` when given a callable: it is pickled to worker processes, the app is not)."""

    def __init__(self, app: AppSource, limits: ServerLimits = ServerLimits(),
                 log_level: str | None = None) -> None:
        self.limits = limits
        self.log_level = log_level
        self._factory: Callable[[], ServiceApp] | None = None if isinstance(app, ServiceApp) else app
        self._app: ServiceApp | None = app if isinstance(app, ServiceApp) else None
        self._executor: ThreadPoolExecutor | None = None
        self._page_executor: ThreadPoolExecutor | None = None
        self._budget = BodyBudget(limits.unverified_body_bytes, limits.unverified_body_bytes_per_key,
                                  limits.unverified_body_bytes_per_address,
                                  small_reserve=limits.small_body_reserve)
        self._proxies = tuple(ipaddress.ip_network(c, strict=False) for c in limits.trusted_proxies)
        self._spool_dir: str | None = limits.spool_dir
        self.response_listeners: dict[tuple[str, int], Callable[[], None]] = {}
        """Per connection (the client's address and port, the scope's ``client``): called once
        each of its requests was answered. The server's protocol registers here
        (:class:`~faceaudit.service._server.GuardedH11Protocol`)."""

    def __getstate__(self) -> dict[str, Any]:
        if self._factory is None:
            raise TypeError("an AsgiService made from a ServiceApp instance cannot go to another "
                            "process: give it a picklable factory")
        return {"limits": self.limits, "log_level": self.log_level, "factory": self._factory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["factory"], state["limits"], state["log_level"])  # type: ignore[misc]  # unpickled: built again

    @property
    def budget(self) -> BodyBudget:
        """The worker's budget of unverified bodies."""
        return self._budget

    @property
    def app(self) -> ServiceApp:
        if self._app is None:
            if self._factory is None:  # pragma: no cover
                raise RuntimeError("no ServiceApp and no factory")
            self._app = self._factory()
        return self._app

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.limits.threads, thread_name_prefix="faceaudit-request")
        return self._executor

    @property
    def page_executor(self) -> ThreadPoolExecutor:
        """The small pool of the other paths (review pages): they never take the API's threads."""
        if self._page_executor is None:
            self._page_executor = ThreadPoolExecutor(self.limits.page_threads, thread_name_prefix="faceaudit-page")
        return self._page_executor

    def spool_dir(self) -> str | None:
        """Where large unverified bodies go: ``limits.spool_dir`` or ``<data dir>/spool`` (0700);
        None (the system's temporary folder) when that cannot be made."""
        if self._spool_dir is None:
            data_dir = getattr(getattr(self.app, "config", None), "data_dir", None)
            if data_dir is not None:
                path = os.path.join(str(data_dir), "spool")
                try:
                    os.makedirs(path, mode=0o700, exist_ok=True)
                    self._spool_dir = path
                except OSError:
                    log.warning("cannot make %s; spooling to the temporary folder", path)
                    self._spool_dir = ""
            else:
                self._spool_dir = ""
        return self._spool_dir or None

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self._http(scope, receive, send)
            finally:
                client = scope.get("client")
                listener = self.response_listeners.get((client[0], client[1])) if client else None
                if listener is not None:
                    listener()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.log_level is not None and self._factory is not None:  # a spawned worker
                        from faceaudit.service._log import configure_logging

                        configure_logging(self.log_level)
                    self.app  # noqa: B018 - made now, not on the first request
                except Exception as exc:
                    log.exception("worker failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                log.info("worker started", extra={"fields": {"event": "worker_started", "worker": os.getpid()}})
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for pool in (self._executor, self._page_executor):
                    if pool is not None:
                        pool.shutdown(wait=True)
                self._executor = self._page_executor = None
                log.info("worker stopped", extra={"fields": {"event": "worker_stopped", "worker": os.getpid()}})
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _client(self, scope: dict[str, Any], headers: list[tuple[str, str]]) -> tuple[str, str]:
        """(client address, scheme): from the connection, or from X-Forwarded-For/-Proto when
        the peer is a trusted proxy (the rightmost address not itself a trusted proxy)."""
        client = scope.get("client")
        remote = client[0] if client else "-"
        scheme = scope.get("scheme", "http")
        if not self._proxies or not self._trusted(remote):
            return remote, scheme
        forwarded: list[str] = []
        for k, v in headers:
            if k == "x-forwarded-for":
                forwarded.extend(p.strip() for p in v.split(","))
        for hop in reversed(forwarded):
            remote = hop
            if not self._trusted(hop):
                break
        protos = [v for k, v in headers if k == "x-forwarded-proto"]
        if protos:
            last = protos[-1].split(",")[-1].strip().lower()
            if last in ("http", "https"):
                scheme = last
        return remote, scheme

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._proxies)

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        app = self.app
        stream = _Stream(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        lengths = {v.strip() for k, v in headers if k == "content-length"}
        content_length = int(lengths.pop()) if len(lengths) == 1 and next(iter(lengths)).isdigit() else None
        remote, scheme = self._client(scope, headers)
        request = HttpRequest(
            method=scope["method"],
            raw_path=scope.get("raw_path", scope["path"].encode()).decode("latin-1") or "/",
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            remote=remote,
            content_length=content_length,
            read_body=lambda n: asyncio.run_coroutine_threadsafe(stream.read(n), loop).result(),
            scheme=scheme,
        )
        expecting = any(k == "expect" and v.strip().lower() == "100-continue" for k, v in headers)
        refusal = self._check_head(scope, headers)
        if refusal is not None:
            exchange = _exchange(request)
            response = app.fail(exchange, refusal)
            response.close = True
        elif request.raw_path in ("/", "/health"):
            exchange = app.begin(request)  # headers only: on the event loop
            if exchange.needs_body:
                response = await self._finish(app, exchange, request, stream, loop)
            else:
                response = app.done(exchange)
        else:  # the extension's pages: the body read here, then the page in its own small pool
            response = await self._page(app, request, stream, loop)
        unread = 0 if request.body_consumed else (content_length or 0)
        await _respond(send, stream, response, unread, expecting)

    def _check_head(self, scope: dict[str, Any], headers: list[tuple[str, str]]) -> FaceAuditError | None:
        """431 for too many or too large header fields, 414 for too long a target."""
        limits = self.limits
        if len(headers) > limits.max_headers:
            return RequestHeaderFieldsTooLargeError(
                f"the request has {len(headers)} header fields; at most {limits.max_headers} are accepted")
        size = sum(len(k) + len(v) + 4 for k, v in headers)
        if size > limits.max_header_bytes:
            return RequestHeaderFieldsTooLargeError(
                f"the request's header block is {size} bytes; at most {limits.max_header_bytes} are accepted")
        target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if target > limits.max_target_bytes:
            return UriTooLongError(
                f"the request target is {target} bytes; at most {limits.max_target_bytes} are accepted")
        return None

    async def _page(self, app: ServiceApp, request: HttpRequest, stream: _Stream,
                    loop: asyncio.AbstractEventLoop) -> HttpResponse:
        """A request to another path (the review pages: unauthenticated until their own checks):
        its body, at most ``page_body_bytes``, is read here within ``page_body_timeout``; only then
        does a thread of the page pool handle it, so a slow client never holds a thread."""
        n = request.content_length or 0
        limits = self.limits
        if n > limits.page_body_bytes or (request.header("transfer-encoding") or "").strip():
            exchange = _exchange(request)
            return app.fail(exchange, RequestTooLargeError(
                f"at most {limits.page_body_bytes} bytes are accepted here, with Content-Length"))
        key = f"ip:{request.remote}"
        if n:
            refused = self._admit(key, n, request.remote)
            if isinstance(refused, FaceAuditError):
                return app.fail(_exchange(request), refused)
            reservation = refused
            try:
                request.body_consumed = True
                try:
                    body = await asyncio.wait_for(_read_all(stream, n), limits.page_body_timeout)
                except TimeoutError:
                    self._budget.failed(key, request.remote)
                    response = app.fail(_exchange(request), RequestTimeoutError(
                        f"the request body did not arrive within {limits.page_body_timeout:g} s"))
                    response.close = True
                    return response
                if len(body) < n:
                    self._budget.failed(key, request.remote)
                    return app.fail(_exchange(request), IncompleteBodyError(
                        f"the body ended after {len(body)} of {n} bytes"))
            finally:
                self._budget.release(reservation)
            buffered = _Buffered(body)
            request.read_body = buffered.read
            request.body_consumed = False
        return await loop.run_in_executor(self.page_executor, app.handle, request)

    def _admit(self, key: str, n: int, remote: str) -> Any:
        """A reservation of ``n`` unverified bytes, or the error that refuses them (503)."""
        wait = self._budget.penalty(key, remote) if n > self._budget.small_body else 0.0
        reservation = None if wait > 0 else self._budget.reserve(key, n, remote)
        if reservation is not None:
            return reservation
        if wait > 0:
            exc = ServiceUnavailableError(
                "recent requests from this address (or with this key id from it) failed their "
                f"signature or did not arrive; retry in {wait:.0f} s")
        else:
            exc = ServiceUnavailableError(
                "the service is reading as many unauthenticated request bodies as it holds; retry")
        exc.retry_after = max(1.0, wait)  # type: ignore[attr-defined]  # read by the edge (getattr)
        return exc

    async def _finish(self, app: ServiceApp, exchange: Exchange, request: HttpRequest, stream: _Stream,
                      loop: asyncio.AbstractEventLoop) -> HttpResponse:
        n = request.content_length or 0
        key = exchange.access_key_id or f"ip:{request.remote}"
        admitted = self._admit(key, n, request.remote)
        if isinstance(admitted, FaceAuditError):
            return app.fail(exchange, admitted)
        reservation: Reservation = admitted
        body: Any = None
        try:
            request.body_consumed = True
            spool = self.spool_dir() if n > self.limits.spool_above else None
            reader = BodyReader(n, spool_above=self.limits.spool_above if n > self.limits.spool_above else None,
                                spool_dir=spool)
            reading = asyncio.ensure_future(_read_into(reader, stream))
            reservation.evict = reading.cancel
            try:
                await reading
                reservation.reading = False
                body, digest = reader.result()
            except asyncio.CancelledError:
                reader.close()
                if not reservation.evicted:
                    raise
                exc = ServiceUnavailableError(
                    "this address holds more than its share of unauthenticated request bodies; retry")
                exc.retry_after = 1.0  # type: ignore[attr-defined]  # read by the edge (getattr)
                response = app.fail(exchange, exc)
                response.close = True
                return response
            except IncompleteBodyError as exc:
                reader.close()
                self._budget.failed(key, request.remote)
                return app.fail(exchange, exc)
            response = await loop.run_in_executor(self.executor, app.finish, exchange, body, digest)
            if exchange.access_key_id is not None:
                if exchange.error_code in SIGNATURE_FAILURES:
                    self._budget.failed(key, request.remote)
                else:
                    self._budget.verified(key, request.remote)
            return response
        finally:
            self._budget.release(reservation)
            if body is not None and hasattr(body, "close"):
                body.close()


async def _read_into(reader: BodyReader, stream: _Stream) -> None:
    while not reader.complete:
        chunk = await stream.read(reader.wanted)
        if not chunk:
            return
        reader.add(chunk)


async def _read_all(stream: _Stream, n: int) -> bytes:
    parts = bytearray()
    while len(parts) < n:
        chunk = await stream.read(n - len(parts))
        if not chunk:
            break
        parts += chunk
    return bytes(parts)


class _Buffered:
    """A body already read, served to :meth:`HttpRequest.body` in pieces."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read(self, n: int) -> bytes:
        chunk, self._data = bytes(self._data[:n]), self._data[n:]
        return chunk


def _exchange(request: HttpRequest) -> Exchange:
    """An exchange for a request refused by the server before the pipeline saw it."""
    return Exchange(request, new_request_id(), time.perf_counter())


class _Stream:
    """The request body as ASGI messages, read in pieces of at most ``n`` bytes."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._pending = b""
        self._more = True

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; b"" at the end of the body or when the client went away."""
        while not self._pending and self._more:
            message = await self._receive()
            if message["type"] != "http.request":  # http.disconnect
                self._more = False
                break
            self._pending = message.get("body", b"")
            self._more = bool(message.get("more_body", False))
        chunk, self._pending = self._pending[:n], self._pending[n:]
        return chunk

    async def drain(self, n: int, seconds: float) -> None:
        """Read and drop up to ``n`` bytes, for at most ``seconds``."""
        async def drop() -> None:
            left = n
            while left > 0:
                chunk = await self.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drop(), seconds)


async def _respond(send: Send, stream: _Stream, response: HttpResponse, unread: int,
                   expecting: bool) -> None:
    """Send ``response``. A body left unread: with "Expect: 100-continue" it was never sent
    (close); a small one is dropped by the server on a kept connection; otherwise the answer
    goes first and the body is dropped (up to :data:`DRAIN_LIMIT_BYTES`) before closing."""
    headers: list[tuple[bytes, bytes]] = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    close = response.close or unread > DRAIN_LIMIT_BYTES or (unread > 0 and expecting)
    if close:
        headers.append((b"connection", b"close"))
    linger = close and unread > 0 and not expecting
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": linger})
    if linger:
        await stream.drain(unread if unread <= DRAIN_LIMIT_BYTES else 1 << 20, LINGER_SECONDS)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

