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
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from faceaudit._errors import ServiceUnavailableError
from faceaudit.service._app import Exchange, ServiceApp
from faceaudit.service._protocol import BodyReader, HttpRequest, HttpResponse, IncompleteBodyError

log = logging.getLogger(__name__)

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
    body in flight, however large its operation allows, if the worker's budget has room)."""
    threads: int = 32
    """Threads per worker that verify signatures and run operations."""


class BodyBudget:
    """Bytes of request bodies held before their signature is verified, in total and per key
    (used on the event loop only: no lock)."""

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self.used = 0
        self._by_key: Dict[str, int] = {}

    def reserve(self, key: str, n: int) -> bool:
        """Take ``n`` bytes for ``key``; False when they do not fit. One body of a key fits
        whatever its size if the total has room; a body larger than the total fits alone."""
        held = self._by_key.get(key, 0)
        over_total = self.used and self.used + n > self.total
        over_key = held and held + n > self.per_key
        if n and (over_total or over_key):
            return False
        self.used += n
        self._by_key[key] = held + n
        return True

    def release(self, key: str, n: int) -> None:
        self.used -= n
        left = self._by_key.get(key, 0) - n
        if left > 0:
            self._by_key[key] = left
        else:
            self._by_key.pop(key, None)


AppSource = Union[ServiceApp, Callable[[], ServiceApp]]


class AsgiService:
    """An ASGI 3 application serving one :class:`ServiceApp` (made in the worker process by
    ``factory`` when given a callable: it is pickled to worker processes, the app is not)."""

    def __init__(self, app: AppSource, limits: ServerLimits = ServerLimits(),
                 log_level: Optional[str] = None) -> None:
        self.limits = limits
        self.log_level = log_level
        self._factory: Optional[Callable[[], ServiceApp]] = None if isinstance(app, ServiceApp) else app
        self._app: Optional[ServiceApp] = app if isinstance(app, ServiceApp) else None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._budget = BodyBudget(limits.unverified_body_bytes, limits.unverified_body_bytes_per_key)

    def __getstate__(self) -> Dict[str, Any]:
        if self._factory is None:
            raise TypeError("an AsgiService made from a ServiceApp instance cannot go to another "
                            "process: give it a picklable factory")
        return {"limits": self.limits, "log_level": self.log_level, "factory": self._factory}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["factory"], state["limits"], state["log_level"])  # type: ignore[misc]

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

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.log_level is not None and self._factory is not None:  # a spawned worker
                        from faceaudit.service._log import configure_logging

                        configure_logging(self.log_level)
                    self.app  # noqa: B018 - made now, not on the first request
                except Exception as exc:  # noqa: BLE001 - reported to the server, which stops
                    log.exception("worker failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                log.info("worker started", extra={"fields": {"event": "worker_started", "worker": os.getpid()}})
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                    self._executor = None
                log.info("worker stopped", extra={"fields": {"event": "worker_stopped", "worker": os.getpid()}})
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Dict[str, Any], receive: Callable, send: Callable) -> None:
        loop = asyncio.get_running_loop()
        app = self.app
        stream = _Stream(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        lengths = {v.strip() for k, v in headers if k == "content-length"}
        content_length = int(lengths.pop()) if len(lengths) == 1 and next(iter(lengths)).isdigit() else None
        client = scope.get("client")
        request = HttpRequest(
            method=scope["method"],
            raw_path=scope.get("raw_path", scope["path"].encode()).decode("latin-1") or "/",
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            remote=client[0] if client else "-",
            content_length=content_length,
            read_body=lambda n: asyncio.run_coroutine_threadsafe(stream.read(n), loop).result(),
        )
        if request.raw_path in ("/", "/health"):
            exchange = app.begin(request)  # headers only: on the event loop
            if exchange.needs_body:
                response = await self._finish(app, exchange, request, stream, loop)
            else:
                response = app.done(exchange)
        else:  # the extension's pages may read the body: in a thread, as a whole
            response = await loop.run_in_executor(self.executor, app.handle, request)
        unread = 0 if request.body_consumed else (content_length or 0)
        expecting = any(k == "expect" and v.strip().lower() == "100-continue" for k, v in headers)
        await _respond(send, stream, response, unread, expecting)

    async def _finish(self, app: ServiceApp, exchange: Exchange, request: HttpRequest, stream: "_Stream",
                      loop: asyncio.AbstractEventLoop) -> HttpResponse:
        n = request.content_length or 0
        key = exchange.access_key_id or f"ip:{request.remote}"
        if not self._budget.reserve(key, n):
            exc = ServiceUnavailableError(
                "the service is reading as many unauthenticated request bodies as it holds; retry"
            )
            exc.retry_after = 1.0  # type: ignore[attr-defined]
            return app.fail(exchange, exc)
        try:
            request.body_consumed = True
            reader = BodyReader(n)
            try:
                while not reader.complete:
                    chunk = await stream.read(reader.wanted)
                    if not chunk:
                        break
                    reader.add(chunk)
                body, digest = reader.result()
            except IncompleteBodyError as exc:
                return app.fail(exchange, exc)
            return await loop.run_in_executor(self.executor, app.finish, exchange, body, digest)
        finally:
            self._budget.release(key, n)


class _Stream:
    """The request body as ASGI messages, read in pieces of at most ``n`` bytes."""

    def __init__(self, receive: Callable) -> None:
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

        try:
            await asyncio.wait_for(drop(), seconds)
        except asyncio.TimeoutError:
            pass


async def _respond(send: Callable, stream: _Stream, response: HttpResponse, unread: int,
                   expecting: bool) -> None:
    """Send ``response``. A body left unread: with "Expect: 100-continue" it was never sent
    (close); a small one is dropped by the server on a kept connection; otherwise the answer
    goes first and the body is dropped (up to :data:`DRAIN_LIMIT_BYTES`) before closing."""
    headers: List[Tuple[bytes, bytes]] = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    close = response.close or unread > DRAIN_LIMIT_BYTES or (unread > 0 and expecting)
    if close:
        headers.append((b"connection", b"close"))
    linger = close and unread > 0 and not expecting
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": linger})
    if linger:
        await stream.drain(unread if unread <= DRAIN_LIMIT_BYTES else 1 << 20, LINGER_SECONDS)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

