"""The HTTP server: uvicorn (h11) serving :class:`~faceaudit.service._asgi.AsgiService`, its
worker processes supervised by uvicorn's multi-process supervisor.

What is faceaudit's own here is only what uvicorn does not do for a service on a hostile network
(:class:`GuardedH11Protocol`, uvicorn's h11 protocol with):

- a total deadline for the headers and body of each request (uvicorn has a keep-alive timeout
  only: a client sending a byte every few seconds would hold its connection for ever);
- a cap on connections per client address;
- ``505 HTTP Version Not Supported`` for HTTP/2.0 and HTTP/0.9 request lines, and JSON bodies
  for protocol errors, like the rest of the API.

Workers: one process serves in-process; more are spawned by uvicorn's supervisor
(:class:`Supervisor`), which restarts a worker that dies, here with exponential backoff, never
giving up, and logs each death. ``serve()`` binds one listening socket (loopback unless told
otherwise) shared by the workers. Shutdown (SIGTERM/SIGINT) is graceful: stop accepting, close
idle connections, let requests in flight finish (up to a grace period), then exit.

The face engine and the collections backend are created lazily in each worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any, ClassVar, TextIO

import h11
from uvicorn import Config, Server
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState
from uvicorn.supervisors.multiprocess import Multiprocess, Process

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


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline, a per-client cap and version checks.

    The limits are the :class:`ServerLimits` of the ASGI app (``config.app.limits``).
    """

    _per_client: ClassVar[collections.Counter[tuple[int, str]]] = collections.Counter()  # (server, address)

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ServerLimits = getattr(config.app, "limits", None) or ServerLimits()
        self._deadline: asyncio.TimerHandle | None = None
        self._counted: tuple[int, str] | None = None
        self._first_line: bytes | None = b""  # None once the first request line was checked
        self._refused = False

    # -- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        _no_delay(transport)
        super().connection_made(transport)
        address = (id(self.server_state), self.client[0] if self.client else "-")  # per server
        if self._per_client[address] >= self.limits.max_connections_per_client:
            log.warning("too many connections from %s; refused", address[1])
            self._refuse(503, "Service Unavailable", "ServiceUnavailableException",
                         "too many connections from this address; retry")
            return
        self._per_client[address] += 1
        self._counted = address
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            self._per_client[self._counted] -= 1
            if self._per_client[self._counted] <= 0:
                del self._per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: dropped until the lingering close
        if self._first_line is not None and not self._check_version(data):
            return
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # a new request begins: its headers and body have a deadline
        super().data_received(data)

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

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
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:
                return  # the whole request arrived: the service is working on it
            self.transport.close()  # the body is late: the service sees an incomplete body
            return
        self._refuse(408, "Request Timeout", "RequestTimeoutException",
                     f"the request did not arrive within {self.limits.request_timeout:g} s")

    # -- protocol errors ---------------------------------------------------------------------

    def _check_version(self, data: bytes) -> bool:
        """HTTP/2.0 (prior knowledge) and HTTP/0.9 request lines: 505. False if refused."""
        line = self._first_line + data[:8192]  # type: ignore[operator]  # called only while not None
        end = line.find(b"\n")
        if end < 0:
            if len(line) < 8192:
                self._first_line = line
                return True
            self._first_line = None  # no line end in 8 KiB: h11 refuses it
            return True
        self._first_line = None
        parts = line[:end].rstrip(b"\r").split(b" ")
        if len(parts) == 2 or (len(parts) == 3 and parts[2].startswith(b"HTTP/")
                               and parts[2] not in SUPPORTED_VERSIONS):
            version = parts[2].decode("latin-1", "replace")[:16] if len(parts) == 3 else "HTTP/0.9"
            self._refuse(505, "HTTP Version Not Supported", "HttpVersionNotSupportedException",
                         f"{version} is not supported: use HTTP/1.1")
            return False
        return True

    def send_400_response(self, msg: str) -> None:
        """A malformed request (h11 refused it): a JSON SerializationException, connection closed."""
        self._refuse(400, "Bad Request", "SerializationException", f"invalid HTTP request: {msg}")

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        """Answer and close: a lingering close (what the client still sends is dropped for up
        to :data:`LINGER_SECONDS`), so that the client reads the answer rather than a reset."""
        self._disarm()
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_raw_response(status, reason, code, message))
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self.loop.call_later(LINGER_SECONDS, self.transport.close)
            else:  # pragma: no cover - not TCP
                self.transport.close()
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()



class Supervisor(Multiprocess):
    """uvicorn's multi-process supervisor, restarting a dead worker after a backoff (0, then
    0.5 s doubling up to 30 s while workers keep dying within a minute of their start) and never
    giving up; each death is logged."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self._started: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._due: dict[int, float] = {}

    def init_processes(self) -> None:
        super().init_processes()
        now = time.monotonic()
        for idx, process in enumerate(self.processes):
            self._started[idx] = now
            _close_child_end(process)

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        now = time.monotonic()
        for idx, process in enumerate(self.processes):
            if idx in self._due:
                continue
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung (no answer to the health ping) or dead
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
        process = Process(self.config, self.sockets)
        process.start()
        _close_child_end(process)
        self.processes[idx] = process
        self._started[idx] = now


def _close_child_end(process: Process) -> None:
    """Close the supervisor's copy of the worker's end of the health-ping pipe (the worker has
    its own). uvicorn keeps it open, so that a ping sent just before a worker is killed waits the
    whole health-check timeout (30 s) for an answer that cannot come, restarting nothing
    meanwhile: with every worker killed at once, a 30 s outage. Closed, the worker's death ends
    the wait at once (EOF)."""
    end = getattr(process, "child_conn", None)
    if end is not None:
        end.close()


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
        timeout_worker_healthcheck=30,  # a worker busy on CPU may answer the supervisor's ping late
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
    running: dict[str, Server] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:  # until uvicorn's own handlers take over
        stopped.set()
        if "server" in running:
            running["server"].should_exit = True

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
            supervisor = Supervisor(uvicorn_config(AsgiService(app, limits, log_level), grace, workers), [sock])
            if not stopped.is_set():  # from here on the supervisor queues signals itself
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

