"""Stored-video jobs: persisted in SQLite or PostgreSQL, run by pools of worker threads, never lost.

``<data dir>/video-jobs.sqlite3`` (WAL, ``synchronous=FULL``), or the tables ``video_jobs`` and
``video_job_items`` of a PostgreSQL database shared by several hosts (``database_url``), hold each job:
kind, request, who asked (:data:`requester`; its access key is the job's ``caller``, which
scopes ClientRequestToken and a per-key quota), state and progress, and, once it
has SUCCEEDED, its result items (one row each, for paging). States:
QUEUED -> IN_PROGRESS -> SUCCEEDED | FAILED (QUEUED shows as IN_PROGRESS on
the wire, as Rekognition has no such state). Results are written in the same
transaction that marks the job SUCCEEDED.

Any process serving the data dir (or, on PostgreSQL, any host of the deployment) may run any
job: a worker claims the oldest QUEUED job in one write transaction (on PostgreSQL ``SELECT ...
FOR UPDATE SKIP LOCKED``: two hosts never take the same job and never wait on each other), then
renews a heartbeat (its lease) while it works. A job's owner is ``host@boot-id:pid``. A job whose
worker died (kill -9, power loss) is found by its heartbeat older than :data:`LEASE_S` (on
PostgreSQL measured by the database's clock, so the hosts' clocks need not agree), or at once
when its owner was a dead process of this host (or of an earlier boot of it), and queued again
from the start; after :data:`MAX_ATTEMPTS` interrupted runs it FAILS with a StatusMessage saying
so. Nothing else ever removes a job. The quotas and the ClientRequestToken check of
:meth:`JobStore.submit` run in the transaction that inserts the job, serialised across hosts
(SQLite: the one writer; PostgreSQL: a transaction-scoped advisory lock).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceaudit._db import (
    Database,
    PostgreSQLDatabase,
    Schema,
    SQLiteDatabase,
    is_postgres_url,
    open_database,
    transaction,
)
from faceaudit._errors import (
    FaceAuditError,
    IdempotentParameterMismatchError,
    InvalidParameterError,
    LimitExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
)

log = logging.getLogger(__name__)

DB_NAME = "video-jobs.sqlite3"
BUSY_TIMEOUT_S = 60.0
LEASE_S = 60.0
"""A job whose heartbeat is older than this is taken to have lost its worker."""
HEARTBEAT_S = 2.0
MAX_ATTEMPTS = 3
MAX_PENDING_JOBS = 20
"""Jobs queued or in progress at once (Rekognition's default quota is 20 concurrent jobs)."""
MAX_PENDING_JOBS_PER_CALLER = 5
"""Of those, at most this many started by one caller (access key): one key cannot fill every slot."""
POLL_S = 1.0

QUEUED, IN_PROGRESS, SUCCEEDED, FAILED = "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    client_token TEXT,
    job_tag TEXT,
    requester TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    owner TEXT,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    status_message TEXT,
    metadata TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_token ON jobs(kind, client_token) WHERE client_token IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
CREATE TABLE IF NOT EXISTS job_items (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    seq INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    person_index INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""


# 2: jobs belong to their caller (the requester's access key): ClientRequestToken scoped to it
_CALLER = """
ALTER TABLE jobs ADD COLUMN caller TEXT NOT NULL DEFAULT '';
UPDATE jobs SET caller = COALESCE(json_extract(requester, '$.access_key_id'), '');
DROP INDEX IF EXISTS jobs_token;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_caller_token ON jobs(kind, caller, client_token)
    WHERE client_token IS NOT NULL;
"""

SCHEMA = Schema("video jobs", {1: _SCHEMA, 2: _CALLER})
"""The SQLite file's tables (``jobs``, ``job_items``)."""

# PostgreSQL: the SQLite tables' columns (after migration 2), named so that they cannot collide with
# the other stores sharing the database (their indexes too: PostgreSQL names them per schema)
_PG_SCHEMA = """
CREATE TABLE video_jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    client_token TEXT,
    job_tag TEXT,
    requester TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    owner TEXT,
    heartbeat DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    status_message TEXT,
    metadata TEXT,
    caller TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX video_jobs_caller_token ON video_jobs(kind, caller, client_token)
    WHERE client_token IS NOT NULL;
CREATE INDEX video_jobs_status ON video_jobs(status, created_at);
CREATE TABLE video_job_items (
    job_id TEXT NOT NULL REFERENCES video_jobs(job_id),
    seq INTEGER NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    person_index INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""

PG_SCHEMA = Schema("video jobs", {}, initial=_PG_SCHEMA, version_key="video_jobs_schema_version")
"""The same tables in a shared PostgreSQL database (``video_jobs``, ``video_job_items``)."""

_SUBMIT_LOCK = int.from_bytes(hashlib.sha256(b"faceaudit-video-jobs-submit").digest()[:8], "big", signed=True)
"""PostgreSQL advisory lock taken by every submit: quota counts and token checks of all hosts in turn."""


def caller_of(who: Mapping[str, Any]) -> str:
    """The caller a job belongs to: the requester's access key ('' when none was recorded)."""
    return str(who.get("access_key_id") or "")


requester: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("faceaudit_job_requester")
"""Who starts a job (access key, role, warrant or case reference, purpose, request id), set by the
layer that knows (the accountability layer, the CLI) around a Start* call; stored with the job."""


@contextlib.contextmanager
def requested_by(who: Mapping[str, Any]) -> Iterator[None]:
    """Jobs started inside the block are recorded as started by ``who``."""
    token = requester.set(dict(who))
    try:
        yield
    finally:
        requester.reset(token)


@dataclass(frozen=True)
class Job:
    """One stored-video job as persisted (times in epoch seconds, progress 0-1)."""

    job_id: str
    kind: str
    status: str
    request: Mapping[str, Any]
    job_tag: str | None
    requester: Mapping[str, Any]
    created_at: float
    attempts: int
    progress: float
    status_message: str | None
    metadata: Mapping[str, Any] | None

    @property
    def wire_status(self) -> str:
        """JobStatus as Rekognition names it: IN_PROGRESS | SUCCEEDED | FAILED."""
        return IN_PROGRESS if self.status == QUEUED else self.status


@dataclass(frozen=True)
class JobItem:
    """One result entry: time in ms, person index (-1 when none) and its Rekognition document."""

    timestamp_ms: int
    person_index: int
    doc: Mapping[str, Any]


@dataclass(frozen=True)
class JobOutcome:
    """What a finished run hands back: the video's metadata and the result items."""

    metadata: Mapping[str, Any]
    items: Sequence[JobItem]


Runner = Callable[[Job, Callable[[float, str], None]], JobOutcome]


@functools.cache
def _boot_id() -> str:
    """This host's boot id (Linux; '' elsewhere): a pid of an earlier boot is no process of now."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _owner() -> str:
    """This process as a job's owner: ``host@boot-id:pid`` (``host:pid`` without a boot id)."""
    boot = _boot_id()
    return f"{socket.gethostname()}{'@' + boot if boot else ''}:{os.getpid()}"


def _owner_dead(owner: str | None) -> bool:
    """True when ``owner`` was a process of this host that no longer runs (also one of an earlier
    boot of this host); an owner on another host is never judged here (its lease is)."""
    if not owner:
        return True
    where, _, pid = owner.rpartition(":")
    host, _, boot = where.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if boot and _boot_id() and boot != _boot_id():
        return True
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _close_all(connections: list[Any], pid: int) -> None:
    """Close a store's kept connections (in the process that opened them: a forked child holding a
    copy must not end its parent's sessions)."""
    if os.getpid() != pid:
        return
    for conn in connections:
        with contextlib.suppress(Exception):
            conn.close()


class JobStore:
    """The jobs database of one data dir, or of a deployment's PostgreSQL database (thread-safe;
    one connection per call).

    ``database_url`` None: ``<data_dir>/video-jobs.sqlite3``, as always; ``postgresql://...``:
    the tables ``video_jobs`` / ``video_job_items`` there, shared by every host given the same URL;
    ``sqlite:///path`` (the collections' file: one host) keeps the jobs in the data dir's own file.
    """

    def __init__(self, data_dir: str | os.PathLike[str], database_url: str | None = None) -> None:
        self.path = Path(data_dir) / DB_NAME
        self._opened = False
        self._db: Database
        self.errors: tuple[type[BaseException], ...] = (sqlite3.Error, ServiceUnavailableError)
        """What a database may raise (the workers log it and carry on)."""
        if database_url is None or database_url.startswith("sqlite:///"):
            self._db = SQLiteDatabase(self.path, SCHEMA, busy_timeout_s=BUSY_TIMEOUT_S, foreign_keys=False)
            self._jobs, self._items, self._lock = "jobs", "job_items", ""
        elif is_postgres_url(database_url):
            import psycopg

            self._db = open_database(database_url, PG_SCHEMA, qmark=True)
            self._jobs, self._items, self._lock = "video_jobs", "video_job_items", " FOR UPDATE SKIP LOCKED"
            self.errors += (psycopg.Error,)
        else:
            raise InvalidParameterError("stored-video jobs live in the data dir's SQLite file or in PostgreSQL "
                                        "(postgresql://...): use sqlite:///path or postgresql://...")
        self.postgres = self._db.dialect.name == "postgresql"
        self._idle: list[Any] = []
        self._idle_pid = os.getpid()
        self._idle_lock = threading.Lock()
        weakref.finalize(self, _close_all, self._idle, os.getpid())

    @property
    def where(self) -> str:
        """The database, for messages (a PostgreSQL URL without its password)."""
        return self._db.where if isinstance(self._db, PostgreSQLDatabase) else str(self.path)

    @contextlib.contextmanager
    def _conn(self, write: bool = False) -> Iterator[Any]:
        """One transaction. A PostgreSQL server lost on the way is a ServiceUnavailableError (503),
        as one that cannot be reached is (the transaction was rolled back: nothing half done)."""
        if not self.postgres:
            if self.gone():  # (its data dir was removed: nothing is made again in its place)
                raise ServiceUnavailableError(f"{self.path} was removed while this process used it")
            with self._db.session(write=write) as conn:
                self._opened = True
                yield conn
            return
        import psycopg

        conn = self._idle_connection()
        try:
            with transaction(conn, write=write):
                yield conn
        except psycopg.OperationalError as exc:
            conn.close()
            raise ServiceUnavailableError(
                f"the jobs database {self.where} failed: {str(exc).strip().splitlines()[-1]}") from exc
        finally:
            self._give_back(conn)

    # PostgreSQL connections are kept for the next call (a connection costs a fork on the server and
    # several round trips: about 4 times a claim's transaction); psycopg_pool would do this if the
    # project took it as a dependency
    IDLE_CONNECTIONS = 4

    def _idle_connection(self) -> Any:
        """A kept connection that still answers, or a new one (a forked child never uses its parent's)."""
        import psycopg

        while True:
            with self._idle_lock:
                if self._idle_pid != os.getpid():
                    self._idle[:], self._idle_pid = [], os.getpid()
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._db.connect()
            try:  # (a server restarted since, or an idle timeout, closed it: try the next one)
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()

    def _give_back(self, conn: Any) -> None:
        from psycopg.pq import TransactionStatus

        if not conn.closed and conn.raw.info.transaction_status == TransactionStatus.IDLE:
            with self._idle_lock:
                if self._idle_pid == os.getpid() and len(self._idle) < self.IDLE_CONNECTIONS:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        """Close the PostgreSQL connections kept for the next call (the store stays usable)."""
        with self._idle_lock:
            idle, self._idle[:] = list(self._idle), []
        for conn in idle:
            conn.close()

    def gone(self) -> bool:
        """True when the SQLite file this store opened was removed since (its data dir is gone)."""
        return not self.postgres and self._opened and not self.path.exists()

    def _now(self, conn: Any) -> float:
        """Now in epoch seconds: the database's clock on PostgreSQL (every host measures leases by
        the same clock), this host's on SQLite (one host)."""
        if self.postgres:
            return float(conn.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8").fetchone()[0])
        return time.time()

    @staticmethod
    def _job(row: Sequence[Any]) -> Job:
        (job_id, kind, status, request, job_tag, who, created, attempts, progress, message,
         metadata) = row
        return Job(job_id, kind, status, json.loads(request), job_tag, json.loads(who), created,
                   attempts, progress, message, json.loads(metadata) if metadata else None)

    _COLUMNS = ("job_id, kind, status, request, job_tag, requester, created_at, attempts, progress, "
                "status_message, metadata")

    def submit(self, kind: str, request: Mapping[str, Any], client_token: str | None,
               job_tag: str | None, who: Mapping[str, Any]) -> tuple[str, bool]:
        """(JobId, created): a new QUEUED job, or the job an earlier request of the same caller
        (:func:`caller_of` ``who``) with the same ClientRequestToken started
        (IdempotentParameterMismatchException if it asked otherwise). The token check and the
        quotas hold across processes and hosts: they run in the inserting transaction, one
        submit at a time."""
        text = json.dumps({"request": request, "job_tag": job_tag}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        caller = caller_of(who)
        jobs = self._jobs
        with self._conn(write=True) as conn:
            if self.postgres:  # (SQLite's BEGIN IMMEDIATE already admits one writer at a time)
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_SUBMIT_LOCK,))
            if client_token is not None:
                row = conn.execute(f"SELECT job_id, request_sha256 FROM {jobs} WHERE kind = ? AND caller = ? "
                                   "AND client_token = ?", (kind, caller, client_token)).fetchone()
                if row is not None:
                    if row[1] != digest:
                        raise IdempotentParameterMismatchError(
                            f"ClientRequestToken {client_token!r} was used with different parameters")
                    return row[0], False
            pending = conn.execute(f"SELECT COUNT(*) FROM {jobs} WHERE status IN (?, ?)",
                                   (QUEUED, IN_PROGRESS)).fetchone()[0]
            if pending >= MAX_PENDING_JOBS:
                raise LimitExceededError(
                    f"{pending} stored-video jobs are queued or running; at most {MAX_PENDING_JOBS} "
                    "at once: start this one when one has finished")
            mine = conn.execute(f"SELECT COUNT(*) FROM {jobs} WHERE status IN (?, ?) AND caller = ?",
                                (QUEUED, IN_PROGRESS, caller)).fetchone()[0]
            if caller and mine >= MAX_PENDING_JOBS_PER_CALLER:
                raise LimitExceededError(
                    f"this key has {mine} stored-video jobs queued or running; at most "
                    f"{MAX_PENDING_JOBS_PER_CALLER} per key at once: start this one when one has finished")
            job_id = uuid.uuid4().hex + uuid.uuid4().hex[:32]
            conn.execute(
                f"INSERT INTO {jobs} (job_id, kind, status, request, request_sha256, client_token, job_tag, "
                "requester, created_at, caller) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, kind, QUEUED, json.dumps(request, sort_keys=True), digest, client_token, job_tag,
                 json.dumps(dict(who), sort_keys=True), self._now(conn), caller),
            )
        return job_id, True

    def get(self, job_id: str, kind: str) -> Job:
        with self._conn() as conn:
            row = conn.execute(f"SELECT {self._COLUMNS} FROM {self._jobs} WHERE job_id = ? AND kind = ?",
                               (job_id, kind)).fetchone()
        if row is None:
            raise ResourceNotFoundError(f"no {kind.replace('_', ' ')} job with JobId {job_id!r}")
        return self._job(row)

    def requester_of(self, job_id: str) -> Mapping[str, Any] | None:
        """Who started the job (its stored :data:`requester`), whatever its kind; None when no such job."""
        with self._conn() as conn:
            row = conn.execute(f"SELECT requester FROM {self._jobs} WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def items(self, job_id: str, order: str, after: int, limit: int) -> tuple[list[JobItem], int | None]:
        """Up to ``limit`` items after position ``after`` in ``order`` (TIMESTAMP or INDEX);
        returns them and the position of the last one when more follow."""
        key = "timestamp_ms, person_index, seq" if order == "TIMESTAMP" else "person_index, timestamp_ms, seq"
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT timestamp_ms, person_index, doc FROM {self._items} WHERE job_id = ? "
                f"ORDER BY {key} LIMIT ? OFFSET ?", (job_id, limit + 1, after)).fetchall()
        items = [JobItem(r[0], r[1], json.loads(r[2])) for r in rows[:limit]]
        return items, (after + limit if len(rows) > limit else None)

    # -- the worker side ------------------------------------------------------------------------

    def recover(self, lease_s: float = LEASE_S) -> int:
        """Queue again (or FAIL after MAX_ATTEMPTS) the jobs whose worker is gone: a dead process of
        this host, or a heartbeat older than ``lease_s`` seconds (any host); returns how many.

        Each such job is locked and judged again before it changes (on PostgreSQL a job another
        host is updating at that moment is skipped: a later call sees it)."""
        jobs = self._jobs
        n = 0
        with self._conn(write=True) as conn:
            now = self._now(conn)

            def lost(owner: str | None, beat: float | None) -> bool:
                return _owner_dead(owner) or (beat or 0) < now - lease_s

            candidates = conn.execute(f"SELECT job_id, owner, heartbeat FROM {jobs} WHERE status = ?",
                                      (IN_PROGRESS,)).fetchall()
            for job_id, owner, beat in candidates:
                if not lost(owner, beat):
                    continue
                row = conn.execute(f"SELECT owner, heartbeat, attempts FROM {jobs} WHERE job_id = ? "
                                   f"AND status = ?{self._lock}", (job_id, IN_PROGRESS)).fetchone()
                if row is None or not lost(row[0], row[1]):
                    continue
                owner, attempts = row[0], row[2]
                n += 1
                if attempts >= MAX_ATTEMPTS:
                    conn.execute(
                        f"UPDATE {jobs} SET status = ?, finished_at = ?, status_message = ? WHERE job_id = ?",
                        (FAILED, now, f"the job was interrupted {attempts} times (its worker stopped); "
                         "start it again", job_id))
                else:
                    conn.execute(
                        f"UPDATE {jobs} SET status = ?, owner = NULL, progress = 0, status_message = ? "
                        "WHERE job_id = ?",
                        (QUEUED, "queued again after its worker stopped", job_id))
                log.warning("stored-video job %s lost its worker (%s); %s", job_id, owner,
                            "failed" if attempts >= MAX_ATTEMPTS else "queued again")
        return n

    def claim(self) -> Job | None:
        """The oldest QUEUED job, now IN_PROGRESS and owned by this process, or None. On PostgreSQL
        a job another host is claiming is skipped, never waited for (FOR UPDATE SKIP LOCKED)."""
        jobs = self._jobs
        with self._conn(write=True) as conn:
            now = self._now(conn)
            rows = conn.execute(
                f"UPDATE {jobs} SET status = ?, owner = ?, heartbeat = ?, started_at = ?, "
                "attempts = attempts + 1, status_message = NULL WHERE job_id = "
                f"(SELECT job_id FROM {jobs} WHERE status = ? ORDER BY created_at LIMIT 1{self._lock}) "
                f"AND status = ? RETURNING {self._COLUMNS}",
                (IN_PROGRESS, _owner(), now, now, QUEUED, QUEUED)).fetchall()
        return self._job(rows[0]) if rows else None

    def beat(self, job_id: str, progress: float, message: str) -> bool:
        """Renew the lease of a job this process runs; False when it is no longer this process's
        (another worker took it over)."""
        with self._conn(write=True) as conn:
            cur = conn.execute(f"UPDATE {self._jobs} SET heartbeat = ?, progress = ?, status_message = ? "
                               "WHERE job_id = ? AND status = ? AND owner = ?",
                               (self._now(conn), progress, message, job_id, IN_PROGRESS, _owner()))
            return bool(cur.rowcount == 1)

    def succeed(self, job_id: str, outcome: JobOutcome) -> None:
        with self._conn(write=True) as conn:
            cur = conn.execute(
                f"UPDATE {self._jobs} SET status = ?, finished_at = ?, progress = 1, status_message = NULL, "
                "metadata = ? WHERE job_id = ? AND status = ? AND owner = ?",
                (SUCCEEDED, self._now(conn), json.dumps(dict(outcome.metadata)), job_id, IN_PROGRESS, _owner()))
            if cur.rowcount != 1:  # another worker took it over meanwhile: its result counts
                return
            if outcome.items:
                conn.executemany(
                    f"INSERT INTO {self._items} (job_id, seq, timestamp_ms, person_index, doc) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(job_id, i, it.timestamp_ms, it.person_index, json.dumps(dict(it.doc)))
                     for i, it in enumerate(outcome.items)])

    def requeue(self, job_id: str) -> None:
        """Give back a job this process stops working on (shutdown): QUEUED, the attempt not counted."""
        with self._conn(write=True) as conn:
            conn.execute(f"UPDATE {self._jobs} SET status = ?, owner = NULL, progress = 0, "
                         "attempts = attempts - 1, status_message = ? WHERE job_id = ? AND status = ? AND owner = ?",
                         (QUEUED, "queued again: the server stopped", job_id, IN_PROGRESS, _owner()))

    def fail(self, job_id: str, message: str, metadata: Mapping[str, Any] | None = None) -> None:
        with self._conn(write=True) as conn:
            conn.execute(
                f"UPDATE {self._jobs} SET status = ?, finished_at = ?, status_message = ?, metadata = ? "
                "WHERE job_id = ? AND status = ? AND owner = ?",
                (FAILED, self._now(conn), message[:1000], json.dumps(dict(metadata)) if metadata else None,
                 job_id, IN_PROGRESS, _owner()))


class _Stopping(Exception):
    """Raised inside a run when its pool stops (the process exits)."""


_POOLS: weakref.WeakSet[JobPool] = weakref.WeakSet()


def _stop_all() -> None:
    for pool in list(_POOLS):
        pool.stop()


atexit.register(_stop_all)


class JobPool:
    """Worker threads of this process that run the jobs of a :class:`JobStore`.

    Started on first use; each thread claims a job, runs it with ``runners[kind]``
    and records the outcome. A run's FaceAuditError FAILS the job with its message;
    any other exception FAILS it with a generic message (the details go to the log).
    When the process exits, a job being run is given back (QUEUED) for the next start.
    """

    def __init__(self, store: JobStore, runners: Mapping[str, Runner], workers: int = 1) -> None:
        self.store = store
        self._runners = dict(runners)
        self._workers = max(1, int(workers))
        self._wake = threading.Event()
        self._started_pid: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def ensure_started(self) -> None:
        with self._lock:
            if self._started_pid == os.getpid():
                return
            self._stop.clear()
            self.store.recover()  # (may raise: the database is down; the next call tries again)
            self._started_pid = os.getpid()
            self._threads = [threading.Thread(target=self._loop, name=f"faceaudit-video-{i}", daemon=True)
                             for i in range(self._workers)]
            for t in self._threads:
                t.start()
            _POOLS.add(self)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers (a running job is given back); waits up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        last_recover = time.monotonic()
        errors = self.store.errors
        failing = False  # an outage is logged once as it starts and once as it ends, not every poll
        while not self._stop.is_set():
            try:
                job = self.store.claim()
            except errors:
                if self.store.gone():
                    log.info("stored-video workers stop: %s is gone", self.store.where)
                    return
                if not failing:
                    log.warning("cannot claim a stored-video job from %s", self.store.where, exc_info=True)
                failing, job = True, None
            else:
                if failing:
                    log.info("stored-video jobs: %s answers again", self.store.where)
                failing = False
            if job is None:
                self._wake.wait(POLL_S)
                self._wake.clear()
                if time.monotonic() - last_recover > LEASE_S / 4:
                    last_recover = time.monotonic()
                    try:
                        self.store.recover()
                    except errors:
                        log.debug("cannot look for stored-video jobs that lost their worker", exc_info=True)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        # the heartbeat runs in its own thread, so a long step (a download, a slow frame) never
        # lets the lease expire while the job is alive; it also writes the latest progress
        state: dict[str, Any] = {"fraction": 0.0, "message": "started"}
        done = threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_S):
                try:
                    if not self.store.beat(job.job_id, state["fraction"], state["message"]):
                        log.info("stored-video job %s is no longer this worker's", job.job_id)
                except self.store.errors:
                    if self.store.gone():
                        return
                    log.warning("cannot renew the heartbeat of job %s", job.job_id, exc_info=True)

        def progress(fraction: float, message: str) -> None:
            if self._stop.is_set():
                raise _Stopping()
            state["fraction"], state["message"] = max(0.0, min(1.0, fraction)), message

        beater = threading.Thread(target=beat, name=f"faceaudit-video-beat-{job.job_id[:8]}", daemon=True)
        beater.start()
        try:
            self._execute(job, progress)
        except self.store.errors:  # the outcome cannot be recorded: the lease runs out, another worker retries
            if self.store.gone():
                log.info("stored-video job %s: %s is gone", job.job_id, self.store.where)
            else:
                log.warning("cannot record the outcome of stored-video job %s", job.job_id, exc_info=True)
        finally:
            done.set()
            beater.join()

    def _execute(self, job: Job, progress: Callable[[float, str], None]) -> None:
        try:
            outcome = self._runners[job.kind](job, progress)
        except _Stopping:
            self.store.requeue(job.job_id)
            return
        except FaceAuditError as exc:
            log.info("stored-video job %s failed: %s: %s", job.job_id, exc.aws_code, exc.message)
            self.store.fail(job.job_id, f"{exc.aws_code}: {exc.message}")
            return
        except Exception:
            log.error("stored-video job %s failed with an internal error", job.job_id, exc_info=True)
            self.store.fail(job.job_id, "InternalServerError: the job failed inside faceaudit (see its log)")
            return
        self.store.succeed(job.job_id, outcome)
        log.info("stored-video job %s succeeded (%d items)", job.job_id, len(outcome.items))
