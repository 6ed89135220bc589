"""Readiness (``GET /ready``): do the stores this host needs answer, within a short deadline?

``GET /health`` is liveness: the process answers. ``GET /ready`` is what a load balancer's health
check asks: each store's own check (a method of the backend and of the extension, one cheap read
each) runs in one background thread; the answer waits at most ``deadline_s``. A store that does
not answer in time, or fails, makes the host not ready (HTTP 503 with a JSON reason and
Retry-After). The reason names the store and the kind of failure only (an exception's text may
name a server or a user; it goes to the log, never to the unauthenticated caller).

Rate-safe: one check runs at a time per process; callers arriving while it runs wait for the
same one, and its result is reused for ``cache_s`` seconds, so a flood of ``/ready`` requests
costs the databases at most one read each per ``cache_s``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 2.0
"""Seconds a ``/ready`` request waits for the stores' checks (a balancer's check timeout is longer)."""
DEFAULT_CACHE_S = 1.0
"""Seconds one check's result answers every ``/ready`` request (a balancer checks every few seconds)."""

Check = tuple[str, Callable[[], None]]
"""A store's name and its check (returns when the store answered; raises when it did not)."""


@dataclass(frozen=True)
class ReadyReport:
    """The outcome of one readiness check: ``checks`` maps each store to ``"ok"`` or why not
    (``"no answer within 2 s"``, ``"failed: OperationalError"``, ``"not checked"``); ``reason``
    is the first store that is not ok, "" when ready."""

    ready: bool
    checks: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"Status": "ready" if self.ready else "unavailable", "Checks": dict(self.checks)}
        if self.reason:
            doc["Reason"] = self.reason
        return doc


class Readiness:
    """Runs the stores' checks for ``GET /ready`` (thread-safe; one background thread per process)."""

    def __init__(self, checks: Sequence[Check], deadline_s: float = DEFAULT_DEADLINE_S,
                 cache_s: float = DEFAULT_CACHE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.checks = tuple(checks)
        self.deadline_s = deadline_s
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid: int | None = None
        self._future: Future[ReadyReport] | None = None
        self._running: str = ""
        self._last: tuple[float, ReadyReport] | None = None

    def check(self) -> ReadyReport:
        """The stores' state now (or as checked less than ``cache_s`` ago)."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] < self.cache_s:
                return self._last[1]
            if self._pid != os.getpid():  # a worker forked from the parent: its own thread
                self._executor, self._future, self._pid = None, None, os.getpid()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceaudit-ready")
            if self._future is None or self._future.done():
                self._future = self._executor.submit(self._run)
            future = self._future
        try:
            report = future.result(timeout=self.deadline_s)
        except FutureTimeout:
            report = self._late()
        with self._lock:
            self._last = (self._clock(), report)
        return report

    def _run(self) -> ReadyReport:
        checks: dict[str, str] = {}
        reason = ""
        for name, check in self.checks:
            self._running = name
            try:
                check()
            except Exception as exc:  # any failure means not ready; the details go to the log only
                log.warning("readiness: %s failed: %s", name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                checks[name] = f"failed: {type(exc).__name__}"
                reason = reason or f"{name} failed ({type(exc).__name__})"
            else:
                checks[name] = "ok"
        self._running = ""
        return ReadyReport(not reason, checks, reason)

    def _late(self) -> ReadyReport:
        """The report when the checks ran past the deadline (the store being checked hangs)."""
        running = self._running
        checks: dict[str, str] = {}
        late = f"no answer within {self.deadline_s:g} s"
        state = "ok"
        for name, _ in self.checks:
            if name == running:
                checks[name], state = late, "not checked"
            else:
                checks[name] = state
        if not running:  # between two checks, or the thread never started: none is known ok
            checks = {name: "not checked" for name, _ in self.checks}
        log.warning("readiness: %s gave no answer within %g s", running or "the checks", self.deadline_s)
        return ReadyReport(False, checks, f"{running or 'the stores'}: {late}")
