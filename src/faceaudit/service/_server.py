"""The HTTP server: uvicorn (h11) serving :class:`~faceaudit.service._asgi.AsgiService`, in
one process or in worker processes that faceaudit supervises. Only uvicorn's documented
interface is used (``Config``, ``Server.run(sockets=...)``, ``Config(http=<protocol class>)``,
and asyncio's ``Protocol`` calls on uvicorn's h11 protocol): no uvicorn method is overridden.

What is faceaudit's own here is only what uvicorn does not do for a service on a hostile network
(:class:`GuardedH11Protocol`, which wraps uvicorn's h11 protocol):

- a total deadline for the headers and body of each request (uvicorn has a keep-alive timeout
  only: a client sending a byte every few seconds would hold its connection for ever);
- a cap on connections per client address;
- ``505 HTTP Version Not Supported`` for HTTP/2.0 and HTTP/0.9 request lines, and JSON bodies
  for protocol errors, like the rest of the API.

Workers: one process serves in-process; more are spawned and watched by :class:`Supervisor`,
which restarts a worker that dies, with exponential backoff, never giving up, and logs each
death. ``serve()`` binds one listening socket (loopback unless told otherwise) shared by the
workers. Shutdown (SIGTERM/SIGINT) is graceful: stop accepting, close idle connections, let
requests in flight finish (up to a grace period), then exit.

The face engine and the collections backend are created lazily in each worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar, TextIO

import h11
from uvicorn import Config, Server
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from faceaudit import __version__
from faceaudit.service._app import ServiceApp
from faceaudit.service._asgi import AppSource, AsgiService, ServerLimits
from faceaudit.service._protocol import dump_json, error_doc, new_request_id

log = logging.getLogger(__name__)

DEFAULT_LIMITS = ServerLimits()
"""The limits a server gets when it is given none (a frozen value, shared)."""

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
SUPPORTED_VERSIONS = (b"HTTP/1.0", b"HTTP/1.1")
LINGER_SECONDS = 2.0
"""After a refusal outside a request cycle, how long the client's data is still read (and
dropped) before the connection closes."""
MAX_RESTART_DELAY_SECONDS = 30.0
"""The longest wait before a worker that keeps dying is started again."""
STOP_MARGIN_SECONDS = 10.0
"""How long a stopping worker may outlive its graceful-shutdown period before it is killed."""


def _raw_response(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response (JSON error body, connection closed), for answers given
    outside any request cycle (too many connections, timeouts, protocol errors)."""
    body = dump_json(error_doc(code, message))
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"Content-Length: {len(body)}\r\nx-amzn-RequestId: {new_request_id()}\r\n"
        f"x-amzn-ErrorType: {code}\r\nServer: faceaudit/{__version__}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _no_delay(transport: asyncio.Transport) -> None:
    """Send each write at once (TCP_NODELAY). uvicorn writes a response's head and body separately
    and leaves Nagle's algorithm on: on a kept-alive connection the body then waited for the
    client's delayed ACK, about 40 ms per request (GET /health: 44 ms kept-alive vs 0.8 ms on a
    new connection; 0.5 ms with this)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedH11Protocol(asyncio.Protocol):
    """uvicorn's h11 protocol behind a guard: a request deadline, a per-client cap, version
    checks and JSON refusals.

    A composition, not a subclass: uvicorn creates this class for each connection (it is
    ``Config(http=...)``) and it creates uvicorn's own :class:`H11Protocol` with the same
    arguments, passing it only asyncio's ``Protocol`` calls. It follows the request stream
    itself (with an h11 parser of its own per request; bodies pass through it, never held), so
    it knows where each request's head and body end; what it refuses never reaches
    uvicorn (the bytes of earlier requests in the same read still do). Only uvicorn writes
    responses, except this guard's refusals, which it writes only while no response is owed
    on the connection (:meth:`response_sent`, called by the ASGI app through
    ``AsgiService.response_listeners``, counts them).

    The limits are the :class:`ServerLimits` of the ASGI app (``config.app.limits``).
    """

    _per_client: ClassVar[collections.Counter[tuple[int, str]]] = collections.Counter()  # (server, address)

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.inner = H11Protocol(config=config, server_state=server_state, app_state=app_state, _loop=_loop)
        self.loop = _loop or asyncio.get_event_loop()
        self.limits: ServerLimits = getattr(config.app, "limits", None) or ServerLimits()
        self._listeners: dict[tuple[str, int], Callable[[], None]] | None = getattr(
            config.app, "response_listeners", None)
        self._server_key = id(server_state)
        self._max_head = config.h11_max_incomplete_event_size  # None: h11's default, as uvicorn's
        self.transport: asyncio.Transport | None = None
        self._peer: tuple[str, int] | None = None
        self._counted: tuple[int, str] | None = None
        self._connected = False  # uvicorn's protocol has the connection
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._owed_refusal: tuple[int, str, str, str] | None = None
        # the request being received: its parser, first line (until checked), progress
        self._parser = self._new_parser()
        self._line: bytes | None = b""
        self._started = self._head = False
        self._received = 0  # requests whose head and body arrived
        self._answered = 0  # responses sent (when the app does not report them: as many as received)

    def _new_parser(self) -> h11.Connection:
        if self._max_head is None:
            return h11.Connection(h11.SERVER)
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head)

    @property
    def _idle(self) -> bool:
        """No response is owed: every request that arrived whole was answered."""
        return self._listeners is None or self._answered >= self._received

    # -- asyncio's Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # a stream server's
        self.transport = transport
        _no_delay(transport)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else "-"
        address = (self._server_key, host)
        if self._per_client[address] >= self.limits.max_connections_per_client:
            log.warning("too many connections from %s; refused", host)
            self._refuse(503, "Service Unavailable", "ServiceUnavailableException",
                         "too many connections from this address; retry")
            return
        self._per_client[address] += 1
        self._counted = address
        if isinstance(peer, tuple) and self._listeners is not None:
            self._peer = (host, int(peer[1]))  # as uvicorn puts it in the scope's "client"
            self._listeners[self._peer] = self.response_sent
        self._connected = True
        self.inner.connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._peer is not None and self._listeners is not None:
            self._listeners.pop(self._peer, None)
        if self._counted is not None:
            self._per_client[self._counted] -= 1
            if self._per_client[self._counted] <= 0:
                del self._per_client[self._counted]
            self._counted = None
        if self._connected:
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: dropped until the lingering close
        accepted = self._watch(data)
        if accepted:
            self.inner.data_received(data if accepted == len(data) else data[:accepted])

    def eof_received(self) -> None:
        """The client will send no more: the transport closes (once what is owed was written)."""
        if self._connected and not self._refused:
            self.inner.eof_received()
        elif self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        if self._connected:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._connected:
            self.inner.resume_writing()

    # -- the request stream ------------------------------------------------------------------

    def _watch(self, data: bytes) -> int:
        """Follow ``data`` through the requests it belongs to (h11 parses them; a body's bytes
        are passed over, never held): how many of its bytes go on to uvicorn (all, or those
        before a request that was refused)."""
        total, begun = len(data), 0  # begun: where the request being read began in ``data``
        while data:
            if not self._started:
                self._started = True
                begun = total - len(data)
                if self._deadline is None and self._idle:
                    self._arm()  # a new request begins: its head and body have a deadline
            if self._line is not None and not self._check_version(data):
                return begun
            try:
                self._parser.receive_data(data)
                data = b""
                while True:
                    event = self._parser.next_event()
                    if event is h11.NEED_DATA or event is h11.PAUSED:
                        break
                    if isinstance(event, h11.Request):
                        self._head = True
                    elif isinstance(event, h11.EndOfMessage):
                        data = self._parser.trailing_data[0]  # the next request's first bytes
                        self._request_complete()
                        break
            except h11.RemoteProtocolError as exc:
                if self._head:  # the body is malformed: uvicorn has the request; it ends here
                    self._close()
                    return 0
                self._refuse(400, "Bad Request", "SerializationException", f"invalid HTTP request: {exc}")
                return begun
        return total

    def _request_complete(self) -> None:
        self._disarm()
        self._received += 1
        self._parser = self._new_parser()
        self._line = b""
        self._started = self._head = False

    def response_sent(self) -> None:
        """A response of this connection was sent (the ASGI app says so): a refusal owed, or
        the deadline of a request that waited for it (pipelined), may now start."""
        self._answered += 1
        if not self._idle:
            return
        if self._owed_refusal is not None:
            self._refuse(*self._owed_refusal)
        elif self._started and self._deadline is None and not self._refused:
            self._arm()

    # -- the request deadline ----------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.request_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._head:
            self._close()  # the body is late: the service sees an incomplete body
            return
        self._refuse(408, "Request Timeout", "RequestTimeoutException",
                     f"the request did not arrive within {self.limits.request_timeout:g} s")

    # -- protocol errors ---------------------------------------------------------------------

    def _check_version(self, data: bytes) -> bool:
        """HTTP/2.0 (prior knowledge) and HTTP/0.9 request lines: 505. False if refused."""
        line = self._line + data[:8192]  # type: ignore[operator]  # called only while not None
        end = line.find(b"\n")
        if end < 0:
            if len(line) < 8192:
                self._line = line
                return True
            self._line = None  # no line end in 8 KiB: h11 refuses it
            return True
        self._line = None
        parts = line[:end].rstrip(b"\r").split(b" ")
        if len(parts) == 2 or (len(parts) == 3 and parts[2].startswith(b"HTTP/")
                               and parts[2] not in SUPPORTED_VERSIONS):
            version = parts[2].decode("latin-1", "replace")[:16] if len(parts) == 3 else "HTTP/0.9"
            self._refuse(505, "HTTP Version Not Supported", "HttpVersionNotSupportedException",
                         f"{version} is not supported: use HTTP/1.1")
            return False
        return True

    def _close(self) -> None:
        self._disarm()
        self._refused = True
        if self.transport is not None:
            self.transport.close()

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        """Answer and close: a lingering close (what the client still sends is dropped for up
        to :data:`LINGER_SECONDS`), so that the client reads the answer rather than a reset.
        While a response is owed (a pipelining client), the answer waits for it."""
        self._disarm()
        self._refused = True
        transport = self.transport
        if not self._idle:
            self._owed_refusal = (status, reason, code, message)
            return
        self._owed_refusal = None
        if transport is not None and not transport.is_closing():
            transport.write(_raw_response(status, reason, code, message))
            if transport.can_write_eof():
                transport.write_eof()
                self.loop.call_later(LINGER_SECONDS, transport.close)
            else:  # pragma: no cover - not TCP
                transport.close()


class Worker:
    """One worker process: ``uvicorn.Server(config).run(sockets=...)`` in a spawned process.
    Its health is its liveness."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of the parent's state
        self.process = spawn.Process(target=_run_worker, args=(config, sockets), name="faceaudit-worker")

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def start(self) -> None:
        self.process.start()

    def is_alive(self, timeout: float = 0.0) -> bool:
        """Whether the process runs (``timeout``: unused, a liveness check does not wait)."""
        return self.process.is_alive()

    ping = is_alive

    def terminate(self) -> None:
        """SIGTERM: uvicorn stops gracefully."""
        self.process.terminate()

    def kill(self) -> None:
        self.process.kill()

    def join(self, timeout: float | None = None) -> None:
        self.process.join(timeout)


def _run_worker(config: Config, sockets: list[socket.socket]) -> None:
    """A worker's life (in the spawned process): serve until SIGTERM/SIGINT."""
    Server(config).run(sockets=sockets)


class Supervisor:
    """The worker processes of ``serve(workers > 1)``: N spawned processes sharing the listening
    sockets, each running uvicorn's :class:`Server`. A worker that dies is restarted after a
    backoff (0, then 0.5 s doubling up to 30 s while workers keep dying within a minute of their
    start), one at a time, never giving up; each death is logged. :meth:`run` returns once
    :attr:`should_exit` is set (serve's signal handler) and every worker stopped: each is sent
    SIGTERM (uvicorn's graceful shutdown, ``config.timeout_graceful_shutdown``) and killed if it
    outlives that by :data:`STOP_MARGIN_SECONDS`."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self.processes: list[Worker] = []
        self.should_exit = threading.Event()
        self._started: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._due: dict[int, float] = {}

    def run(self) -> None:
        self.processes = [Worker(self.config, self.sockets) for _ in range(self.config.workers)]
        for idx, process in enumerate(self.processes):
            process.start()
            self._started[idx] = time.monotonic()
        while not self.should_exit.wait(0.5):
            self.keep_subprocess_alive()
        for process in self.processes:
            process.terminate()
        deadline = time.monotonic() + (self.config.timeout_graceful_shutdown or 0) + STOP_MARGIN_SECONDS
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %s did not stop in time; killed", process.pid)
                process.kill()
                process.join()

    def keep_subprocess_alive(self) -> None:
        """One pass: note the workers that died, start those whose backoff is over."""
        if self.should_exit.is_set():
            return
        now = time.monotonic()
        for idx, process in enumerate(self.processes):
            if idx in self._due or process.is_alive():
                continue
            process.join()
            lived = now - self._started.get(idx, now)
            failures = self._failures.get(idx, 0) + 1 if lived < 60.0 else 1
            self._failures[idx] = failures
            delay = 0.0 if failures <= 1 else min(MAX_RESTART_DELAY_SECONDS, 0.5 * 2 ** (failures - 2))
            log.error(
                "worker %s died (exit code %s) after %.1f s; starting another in %.1f s",
                process.pid, process.exitcode, lived, delay,
                extra={"fields": {"event": "worker_died", "worker": process.pid, "exit_code": process.exitcode,
                                  "lived_s": round(lived, 1), "restart_in_s": delay, "failures": failures}},
            )
            self._due[idx] = now + delay
        self._restart_due(now)

    def _restart_due(self, now: float) -> None:
        """Start the workers whose back-off is over, one per pass; and at once, whatever its
        back-off, the first due one when no other worker is alive: the back-off spares the
        machine a worker that keeps dying, it never leaves the service with no worker."""
        if not self._due or self.should_exit.is_set():
            return
        serving = any(idx not in self._due and p.process.is_alive() for idx, p in enumerate(self.processes))
        idx, due = min(self._due.items(), key=lambda item: item[1])
        if now >= due or not serving:
            if now < due:
                log.warning("no worker is alive: starting worker slot %d now, not in %.1f s", idx, due - now,
                            extra={"fields": {"event": "worker_restart_early", "slot": idx}})
            del self._due[idx]
            self._start(idx, now)

    def _start(self, idx: int, now: float) -> None:
        process = Worker(self.config, self.sockets)
        process.start()
        self.processes[idx] = process
        self._started[idx] = now


# -- binding and serving ---------------------------------------------------------------------------

def bind_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket, shared by the workers."""
    import errno

    from faceaudit._errors import InvalidParameterError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=backlog, reuse_port=False)
    except OSError as exc:  # a busy port or an address not on this machine: the user's to change
        why = {errno.EADDRINUSE: "the port is in use (another server?): choose another --port",
               errno.EADDRNOTAVAIL: "the address is not one of this machine's: check --host",
               errno.EACCES: "permission denied (ports below 1024 need privileges): choose --port 1024 or above",
               }.get(exc.errno or 0, exc.strerror or str(exc))
        raise InvalidParameterError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uvicorn_config(asgi: AsgiService, grace: float = 30.0, workers: int = 1) -> Config:
    """uvicorn's settings for faceaudit: our protocol, no proxy headers, no access log (the
    service logs each request itself), our Server header."""
    limits = asgi.limits
    return Config(
        app=asgi,
        http=GuardedH11Protocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        headers=[("Server", f"faceaudit/{__version__}")],
        timeout_keep_alive=limits.idle_timeout,
        timeout_graceful_shutdown=max(1, int(grace + 0.999)),
        limit_concurrency=limits.max_connections,
        ws="none",  # no WebSocket routes: an upgrade request is an ordinary request
        workers=workers,
        loop="asyncio",
    )


def serve(
    app: AppSource,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    grace: float = 30.0,
    ready_stream: TextIO | None = None,
    limits: ServerLimits = DEFAULT_LIMITS,
    log_level: str | None = None,
) -> int:
    """Bind, announce ``serving http://HOST:PORT`` on ``ready_stream`` (stdout), serve until
    signalled. ``app``: a :class:`ServiceApp`, or (needed for ``workers > 1``: each worker makes
    its own) a picklable callable returning one; ``log_level``: the workers' JSON log level."""
    if workers > 1 and isinstance(app, ServiceApp):
        raise TypeError("serve(workers > 1) needs a factory of the ServiceApp, not an instance")
    instance = app if isinstance(app, ServiceApp) else app()  # checked here; served if one worker
    instance.check_ready()
    sock = bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    auth = instance.config.auth
    log.info("listening", extra={"fields": {"event": "listening", "url": url, "workers": workers, "auth": auth}})
    # Signals are caught from here on: a SIGTERM right after the announcement stops cleanly.
    stopped = threading.Event()
    running: dict[str, Server | Supervisor] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:  # one worker: until uvicorn's own handlers take over
        stopped.set()
        current = running.get("server")
        if isinstance(current, Server):
            current.should_exit = True
        elif isinstance(current, Supervisor):
            current.should_exit.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    stream = ready_stream or sys.stdout
    stream.write(f"serving {url} ({workers} worker{'s' if workers != 1 else ''}, "
                 f"authentication {'on' if auth else 'OFF'})\n")
    stream.flush()
    try:
        if workers <= 1:
            server = running["server"] = Server(uvicorn_config(AsgiService(instance, limits), grace))
            if not stopped.is_set():
                server.run(sockets=[sock])
        else:
            supervisor = running["server"] = Supervisor(
                uvicorn_config(AsgiService(app, limits, log_level), grace, workers), [sock])
            if not stopped.is_set():
                supervisor.run()
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped", extra={"fields": {"event": "stopped"}})
    return 0


# -- a server in a thread (tests, benchmarks) -------------------------------------------------------

def start_in_thread(app: ServiceApp, host: str = "127.0.0.1", port: int = 0,
                    limits: ServerLimits = DEFAULT_LIMITS, timeout: float = 30.0
                    ) -> tuple[Server, threading.Thread, str]:
    """A server in a background thread of this process: (server, thread, url)."""
    sock = bind_socket(host, port)
    server = Server(uvicorn_config(AsgiService(app, limits)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="faceaudit-server")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    h, p = sock.getsockname()[:2]
    return server, thread, f"http://{h}:{p}"


def stop_thread_server(server: Server, thread: threading.Thread, grace: float = 5.0) -> None:
    server.should_exit = True
    thread.join(grace + 5.0)

