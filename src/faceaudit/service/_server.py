"""The HTTP server: a threaded server per process, pre-forked workers sharing one socket.

``serve()`` binds one listening socket (loopback unless told otherwise), then
either serves in this process (one worker) or forks N workers that each run a
threaded server on the inherited socket; the parent only supervises (restarts a
worker that dies, forwards SIGTERM/SIGINT). Shutdown is graceful: stop
accepting, close idle keep-alive connections, let requests in flight finish (up
to a grace period), then exit.

The face engine and the collections backend are created lazily in each worker,
after the fork, on the first request that needs them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from faceaudit import __version__
from faceaudit.service._app import ServiceApp
from faceaudit.service._protocol import HttpRequest, HttpResponse, error_doc, json_response, new_request_id

log = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 60.0
"""A connection idle (or a client silent mid-request) this long is closed."""

DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""A refused, unread body up to this size is read and dropped (never held) so that the client,
which sends it all before reading, sees the refusal (e.g. ImageTooLargeException for a 12 MB
photo) rather than a broken pipe. Beyond, the connection is closed at once."""

MAX_CONNECTIONS = 256
"""Concurrent connections per worker; beyond, new connections get 503 and are closed."""

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"faceaudit/{__version__}"
    server: "ServiceHTTPServer"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not TCP
            pass
        self.busy = False
        self.server._register(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server._unregister(self)

    # Same as BaseHTTPRequestHandler's, with the idle/busy state graceful shutdown needs.
    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            with self.server._conn_lock:
                self.busy = True
            try:
                if len(self.raw_requestline) > 65536:
                    self.requestline = self.request_version = self.command = ""
                    self.send_error(414)
                    return
                if not self.raw_requestline:
                    self.close_connection = True
                    return
                self._expecting = False
                if not self.parse_request():
                    return
                method = getattr(self, "do_" + self.command, None)
                if method is None:
                    self.send_error(501, f"Unsupported method ({self.command!r})")
                    return
                method()
                self.wfile.flush()
            finally:
                with self.server._conn_lock:
                    self.busy = False
                    if self.server.stopping:
                        self.close_connection = True
        except (TimeoutError, ConnectionError, OSError):
            self.close_connection = True

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_POST

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        lengths = self.headers.get_all("Content-Length") or []
        content_length: Optional[int] = None
        if lengths:
            values = {v.strip() for v in lengths}
            value = values.pop() if len(values) == 1 else ""
            if not value.isdigit():
                self._send(
                    json_response(
                        400,
                        error_doc("SerializationException", "invalid Content-Length"),
                        new_request_id(),
                    ),
                    head=False,
                )
                self.close_connection = True
                return
            content_length = int(value)
        request = HttpRequest(
            method=self.command,
            raw_path=parts.path or "/",
            query=parts.query,
            headers=list(self.headers.items()),
            remote=self.client_address[0] if self.client_address else "-",
            content_length=content_length,
            read_body=self._read_body,
        )
        response = self.server.app.handle(request)
        unread = 0 if request.body_consumed else (content_length or 0)
        chunked = bool((self.headers.get("Transfer-Encoding") or "").strip())
        if unread and self._expecting:
            # "Expect: 100-continue" and refused before reading: the client has not sent the
            # body and will not; close instead of waiting for it.
            unread = 0
            response.close = True
        if unread > DRAIN_LIMIT_BYTES or chunked or response.close:
            response.headers.append(("Connection", "close"))
            self.close_connection = True
        self._send(response, head=self.command == "HEAD")
        if unread and not self._discard(unread):
            self.close_connection = True

    def handle_expect_100(self) -> bool:
        """Send "100 Continue" only when the service reads the body (it may refuse first)."""
        self._expecting = True
        return True

    def _read_body(self, n: int) -> bytes:
        if self._expecting:
            self._expecting = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        return self.rfile.read(n)

    def _send(self, response: HttpResponse, head: bool) -> None:
        """Status, headers and body in one write (two small writes meet Nagle and delayed ACK:
        +40 ms per response)."""
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n")
        if not head:
            self._headers_buffer.append(response.body)
        self.flush_headers()

    def _discard(self, n: int) -> bool:
        """Read and drop a body the service refused without reading, so that the client
        receives the response (and a small one keeps its connection). True if all was read."""
        try:
            if n > DRAIN_LIMIT_BYTES:  # too much to drain: a short lingering close
                self.connection.shutdown(socket.SHUT_WR)
                n = 1024 * 1024
            self.connection.settimeout(5.0)
            while n > 0:
                chunk = self.rfile.read(min(n, 65536))
                if not chunk:
                    return False
                n -= len(chunk)
            self.connection.settimeout(self.timeout)
            return True
        except OSError:
            return False

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Protocol-level errors (bad request line, ...) as JSON, like the rest of the API."""
        self.close_connection = True
        response = json_response(
            code,
            error_doc("SerializationException" if code < 500 else "InternalServerError",
                      message or self.responses.get(code, ("",))[0]),
            new_request_id(),
        )
        response.headers.append(("Connection", "close"))
        try:
            self._send(response, head=getattr(self, "command", "") == "HEAD")
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("http: " + format, *args)


class ServiceHTTPServer(ThreadingMixIn, HTTPServer):
    """A threaded HTTP/1.1 server for one :class:`ServiceApp`, on a socket bound elsewhere."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        app: ServiceApp,
        sock: socket.socket,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        address = sock.getsockname()[:2]
        super().__init__(address, _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_name, self.server_port = str(address[0]), int(address[1])
        self.app = app
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.stopping = False
        self._conn_lock = threading.Lock()
        self._conns: Dict[_Handler, None] = {}
        self._active = 0

    def process_request(self, request, client_address) -> None:
        with self._conn_lock:
            refuse = self.stopping or self._active >= self.max_connections
            if not refuse:
                self._active += 1
        if refuse:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            with self._conn_lock:
                self._active -= 1
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._active -= 1

    def _refuse(self, request: socket.socket) -> None:
        response = json_response(
            503,
            error_doc("ServiceUnavailableException", "too many connections; retry"),
            new_request_id(),
        )
        head = ["HTTP/1.1 503 Service Unavailable"] + [f"{k}: {v}" for k, v in response.headers]
        head.append("Connection: close")
        try:
            request.settimeout(2.0)
            request.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)

    def _register(self, handler: _Handler) -> None:
        with self._conn_lock:
            self._conns[handler] = None

    def _unregister(self, handler: _Handler) -> None:
        with self._conn_lock:
            self._conns.pop(handler, None)

    def close_idle_and_wait(self, grace: float) -> bool:
        """After shutdown(): close idle connections, wait for busy ones. True if all finished."""
        deadline = time.monotonic() + grace
        while True:
            with self._conn_lock:
                self.stopping = True
                busy = 0
                for handler in list(self._conns):
                    if handler.busy:
                        busy += 1
                    else:
                        try:
                            handler.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                remaining = len(self._conns)
            if remaining == 0:
                return True
            if time.monotonic() >= deadline:
                log.warning("shutdown: %d connection(s) still busy after %.0f s", busy, grace)
                return False
            time.sleep(0.05)


def bind_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """The listening socket (non-blocking, so that workers sharing it never block in accept)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog, reuse_port=False)
    sock.setblocking(False)
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


class _Stop:
    """A flag set by SIGTERM/SIGINT; the first signal asks for a graceful stop."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: Optional[int] = None

    def install(self, on_stop=None) -> None:
        def handler(signum, frame):
            first = not self.event.is_set()
            self.signum = signum
            self.event.set()
            if first and on_stop is not None:
                threading.Thread(target=on_stop, daemon=True).start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def run_worker(app: ServiceApp, sock: socket.socket, grace: float, stop: Optional[_Stop] = None,
               **server_args) -> int:
    """Serve on ``sock`` in this process until SIGTERM/SIGINT; returns an exit status."""
    server = ServiceHTTPServer(app, sock, **server_args)
    stop = stop or _Stop()
    stop.install(on_stop=server.shutdown)
    if stop.event.is_set():  # signalled before the server existed
        return 0
    log.info("worker started", extra={"fields": {"event": "worker_started", "worker": os.getpid()}})
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.close_idle_and_wait(grace)
        server.server_close()
        log.info("worker stopped", extra={"fields": {"event": "worker_stopped", "worker": os.getpid()}})
    return 0


def serve(
    app: ServiceApp,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    grace: float = 30.0,
    ready_stream=None,
    **server_args,
) -> int:
    """Bind, announce ``serving http://HOST:PORT`` on ``ready_stream`` (stdout), serve until signalled."""
    app.check_ready()
    sock = bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    log.info(
        "listening",
        extra={"fields": {"event": "listening", "url": url, "workers": workers, "auth": app.config.auth,
                          "rate_limit": app.config.rate_limit}},
    )
    # Signals are caught from here on: a SIGTERM right after the announcement stops cleanly.
    stop = _Stop()
    stop.install()
    stream = ready_stream or sys.stdout
    stream.write(f"serving {url} ({workers} worker{'s' if workers != 1 else ''}, "
                 f"authentication {'on' if app.config.auth else 'OFF'})\n")
    stream.flush()
    if workers <= 1:
        try:
            return run_worker(app, sock, grace, stop=stop, **server_args)
        finally:
            sock.close()
    return _supervise(app, sock, workers, grace, server_args, stop)


def _supervise(app: ServiceApp, sock: socket.socket, workers: int, grace: float, server_args,
               stop: _Stop) -> int:
    children: Dict[int, float] = {}

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                status = run_worker(app, sock, grace, **server_args)
            except BaseException:
                log.exception("worker failed")
            finally:
                logging.shutdown()
                os._exit(status)
        children[pid] = time.monotonic()

    for _ in range(workers):
        spawn()
    failures: List[float] = []
    while not stop.event.is_set():
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
        if pid and pid in children:
            children.pop(pid)
            now = time.monotonic()
            failures = [t for t in failures if now - t < 60] + [now]
            log.error("worker %d exited (status %d); starting another", pid, status)
            if len(failures) > 5 * workers:
                log.error("workers keep failing; stopping")
                break
            spawn()
            continue
        stop.event.wait(0.2)

    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace + 5.0
    while children and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            children.pop(pid, None)
        else:
            time.sleep(0.05)
    for pid in children:  # still there after the grace period
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    sock.close()
    log.info("stopped", extra={"fields": {"event": "stopped"}})
    return 0


def start_in_thread(app: ServiceApp, host: str = "127.0.0.1", port: int = 0, **server_args
                    ) -> Tuple[ServiceHTTPServer, threading.Thread, str]:
    """A server in a background thread of this process (tests, benchmarks): (server, thread, url)."""
    sock = bind_socket(host, port)
    server = ServiceHTTPServer(app, sock, **server_args)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    h, p = sock.getsockname()[:2]
    return server, thread, f"http://{h}:{p}"


def stop_thread_server(server: ServiceHTTPServer, thread: threading.Thread, grace: float = 5.0) -> None:
    server.shutdown()
    server.close_idle_and_wait(grace)
    server.server_close()
    thread.join(grace)

