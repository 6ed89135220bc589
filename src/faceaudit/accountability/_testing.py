"""The testing API (Washington RCW 43.386.050): independent audits of the deployed model over HTTP.

An auditor key submits an audit as a ZIP archive of manifests and images
(``StartAudit``), the server runs ``faceaudit audit`` with the deployed model
(the local engine: exact scores) in the background, and the auditor fetches
``results.json`` (``DescribeAudit``) and the report (``GetAuditReport``). The
audit sees only the submitted images: it never touches a collection.

Archive limits (checked before anything is written): 48 MiB compressed, 512 MiB
uncompressed, 20,000 entries, no absolute paths or ``..`` (in entry names and in the images
the manifests name: only files of the archive), no entry that is both a file and a directory
(``x`` and ``x/y``), no duplicate entries; every bad archive is an InvalidParameterException.
Audits run one at a time per data dir (a file lock); each auditor sees only their own audits,
an admin sees all.

Disk: at most :data:`MAX_PENDING` audits queued or running per data dir, counted under a file
lock shared by the worker processes (so simultaneous StartAudit calls cannot all get in); each
auditor's audits may hold at most :data:`AUDITOR_QUOTA_BYTES` on disk (an archive is counted
at its uncompressed size before it is extracted: ServiceQuotaExceededException). The inputs
(archive contents, embedding cache) are deleted as soon as an audit ends; its results and
report are kept for :data:`RESULTS_KEPT_SECONDS` (30 days) after it ended, then deleted
(``ResultsKeptUntil`` in DescribeAudit).

Several hosts (``database_url``, a PostgreSQL database shared by them): each audit's status and
its result files (results.json, candidates.csv, report.html) live in the database (tables
``testing_audits`` and ``testing_audit_files``), so any host answers DescribeAudit, ListAudits and
GetAuditReport; the archive's contents are extracted and the audit run on the host that took the
StartAudit, and removed there once it ends. The pending count and the quota are taken under a
transaction-scoped advisory lock instead of the file lock; an audit of another host is judged
alive by its heartbeat (renewed every :data:`AUDIT_HEARTBEAT_S` by the host running or queueing
it, on the database's clock): one older than :data:`AUDIT_LEASE_S` reads as FAILED (its host
died), as an audit of a dead process of this host does. Without ``database_url`` the files stay in
the data dir as above.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from faceaudit._db import Database, Schema, is_postgres_url, open_database
from faceaudit._errors import (
    FaceAuditError,
    InvalidParameterError,
    LimitExceededError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
)
from faceaudit.accountability._files import write_private

log = logging.getLogger(__name__)

MAX_ARCHIVE_BYTES = 48 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_ENTRIES = 20_000
MAX_PENDING = 4
"""Audits queued or running at once per data dir; more are refused (LimitExceededException)."""
AUDITOR_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
"""Disk space one auditor's audits may hold (inputs while they run, results after): 2 GiB."""
RESULTS_KEPT_SECONDS = 30 * 24 * 3600
"""How long results and report of an ended audit are kept: 30 days."""
_AUDIT_ID = re.compile(r"^[0-9a-f]{32}$")
AUDIT_HEARTBEAT_S = 10.0
"""How often a host renews the heartbeat of an audit it queues or runs (with ``database_url``)."""
AUDIT_LEASE_S = 120.0
"""An audit of another host whose heartbeat is older than this reads as FAILED: its host died."""

# with database_url: every host's audits, status and result files in the shared database
_PG_SCHEMA = Schema("testing API audits", {}, initial="""
CREATE TABLE testing_audits (
    audit_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    submitted_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL
);
CREATE TABLE testing_audit_files (
    audit_id TEXT NOT NULL REFERENCES testing_audits(audit_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (audit_id, name)
);
""", version_key="testing_audits_schema_version")
_START_LOCK = int.from_bytes(hashlib.sha256(b"faceaudit-testing-start").digest()[:8], "big", signed=True)
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
_SERVED = ("results.json", "report.html")


class TestingAPI:
    """Runs submitted audits for one data dir (shared by worker processes)."""

    __test__ = False  # not a pytest test class, whatever its name
    body_limit = 1024 * 1024 + 4 * math.ceil(MAX_ARCHIVE_BYTES / 3)

    def __init__(self, data_dir: str | Path, model: str | None = None, database_url: str | None = None) -> None:
        """``database_url`` (``postgresql://...``): the audits' status and results live in that database,
        shared by every host given it; None or ``sqlite:///path`` (one host): in ``<data_dir>/audits``."""
        self.root = Path(data_dir) / "audits"
        self.model = model
        self._db: Database | None = None
        if database_url is not None and not database_url.startswith("sqlite:///"):
            if not is_postgres_url(database_url):
                raise InvalidParameterError("testing-API audits live in the data dir or in PostgreSQL: "
                                            "use sqlite:///path or postgresql://...")
            self._db = open_database(database_url, _PG_SCHEMA, qmark=True)

    # -- the operations --------------------------------------------------------------------

    def call(self, caller, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "StartAudit":
            return self.start(caller.access_key_id, params)
        if operation == "ListAudits":
            return {"Audits": [self._public(s) for s in self._all() if self._visible(caller, s)]}
        status = self._status(_audit_id(params))
        if not self._visible(caller, status):
            raise ResourceNotFoundError(f"audit {status['AuditId']} not found")
        if operation == "DescribeAudit":
            out = self._public(status)
            results = self._result(status["AuditId"], "results.json") if status["Status"] == "SUCCEEDED" else None
            if results is not None:
                out["Results"] = _without_server_paths(json.loads(results), self.root / status["AuditId"])
            return out
        if operation == "GetAuditReport":
            report = self._result(status["AuditId"], "report.html") if status["Status"] == "SUCCEEDED" else None
            if report is None:
                raise InvalidParameterError(f"audit {status['AuditId']} has no report yet ({status['Status']})")
            return {"AuditId": status["AuditId"],
                    "ReportHtml": _without_server_paths(report.decode("utf-8"), self.root / status["AuditId"])}
        raise InvalidParameterError(f"unknown testing operation {operation}")

    def start(self, owner: str, params: dict[str, Any]) -> dict[str, Any]:
        archive = _archive(params.get("Archive"))
        probes = _names(params, "Probes")
        gallery = _names(params, "Gallery")
        thresholds = params.get("Thresholds")
        if thresholds is None:
            thresholds = [80, 90, 95, 99]
        if (not isinstance(thresholds, list) or not thresholds or len(thresholds) > 20
                or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 100
                           for t in thresholds)):
            raise InvalidParameterError("Thresholds must be a list of 1 to 20 numbers from 0 to 100")
        group_by = params.get("GroupBy")
        if group_by is not None and (not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by)):
            raise InvalidParameterError("GroupBy must be a list of column names")
        expanded = _inspect(archive)  # every entry checked before anything is written
        audit_id = uuid.uuid4().hex
        work = self.root / audit_id
        status = {
            "AuditId": audit_id, "Owner": owner, "Status": "QUEUED", "SubmittedAt": round(time.time(), 3),
            "Probes": probes, "Gallery": gallery, "Thresholds": [float(t) for t in thresholds],
            "GroupBy": group_by, "Pid": os.getpid(), "ReservedBytes": expanded,
        }
        if self._db is not None:
            status["Host"] = _host()
        with self._start_lock() as conn:  # counting and reserving are one step for every worker process
            self._sweep(conn)
            audits = self._all(conn)
            pending = sum(1 for st in audits if st["Status"] in ("QUEUED", "RUNNING"))
            if pending >= MAX_PENDING:
                raise LimitExceededError(
                    f"{pending} audits are queued or running; at most {MAX_PENDING} at once. Try again later."
                )
            used = sum(self._disk_use(st, conn) for st in audits if st.get("Owner") == owner)
            if used + expanded > AUDITOR_QUOTA_BYTES:
                raise ServiceQuotaExceededError(
                    f"this auditor's audits hold {used} bytes and the archive expands to {expanded}; "
                    f"at most {AUDITOR_QUOTA_BYTES} bytes per auditor (results are kept "
                    f"{RESULTS_KEPT_SECONDS // 86400} days after an audit ends)"
                )
            (work / "input").mkdir(parents=True)
            self._write_status(audit_id, status, conn)  # counts as pending from here on
        try:
            _extract(archive, work / "input")
            for name in probes + gallery:
                if not (work / "input" / name).is_file():
                    raise InvalidParameterError(f"manifest {name!r} is not in the archive")
                _check_manifest(work / "input", name)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            self._forget(audit_id)
            raise
        threading.Thread(target=self._run, args=(audit_id,), name=f"audit-{audit_id[:8]}", daemon=True).start()
        return self._public(status)

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[Any]:
        """One StartAudit at a time: the data dir's file lock (yields None), or, with a database, a
        write transaction holding an advisory lock (yields its connection)."""
        if self._db is not None:
            with self._db.session(write=True) as conn:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_START_LOCK,))
                yield conn
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root.parent / "audits.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield None

    @contextlib.contextmanager
    def _session(self, conn: Any, *, write: bool) -> Iterator[Any]:
        """``conn`` when given (a caller's transaction), else a new one of the database."""
        if conn is not None:
            yield conn
            return
        assert self._db is not None  # (only called with a database)
        with self._db.session(write=write) as new:
            yield new

    def _sweep(self, conn: Any = None) -> None:
        """Delete the inputs of ended audits (also of audits whose server died) and whole audits
        whose results are past :data:`RESULTS_KEPT_SECONDS`."""
        now = time.time()
        for status in self._all(conn):
            if status["Status"] in ("QUEUED", "RUNNING"):
                continue
            work = self.root / status["AuditId"]
            ended = status.get("FinishedAt") or status.get("SubmittedAt") or now
            if now - ended > RESULTS_KEPT_SECONDS:
                shutil.rmtree(work, ignore_errors=True)
                self._forget(status["AuditId"], conn)
            else:
                _remove_inputs(work)

    def _forget(self, audit_id: str, conn: Any = None) -> None:
        """Remove an audit's database rows (nothing without a database: its folder is the audit)."""
        if self._db is not None:
            with self._session(conn, write=True) as c:
                c.execute("DELETE FROM testing_audits WHERE audit_id = ?", (audit_id,))

    def _disk_use(self, status: dict[str, Any], conn: Any = None) -> int:
        """Bytes an audit holds on disk, or in the database (at least what it reserved while it is pending)."""
        work = self.root / status["AuditId"]
        if self._db is not None:
            with self._session(conn, write=False) as c:
                used = int(c.execute("SELECT COALESCE(SUM(octet_length(data)), 0) FROM testing_audit_files "
                                     "WHERE audit_id = ?", (status["AuditId"],)).fetchone()[0])
        else:
            used = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
        if status["Status"] in ("QUEUED", "RUNNING"):
            used = max(used, int(status.get("ReservedBytes") or 0))
        return used

    # -- running ---------------------------------------------------------------------------

    def _run(self, audit_id: str) -> None:
        from faceaudit.audit import AuditConfig, LocalEngine, run_audit
        from faceaudit.engine import DEFAULT_MODEL

        work = self.root / audit_id
        self.root.mkdir(parents=True, exist_ok=True)
        with self._beating(audit_id), open(self.root / "run.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one audit at a time on this host: they are CPU-bound
            status = self._status(audit_id)
            status.update(Status="RUNNING", StartedAt=round(time.time(), 3), Pid=os.getpid())
            self._write_status(audit_id, status)
            try:
                config = AuditConfig(thresholds=tuple(sorted(status["Thresholds"])),
                                     group_by=tuple(status["GroupBy"]) if status["GroupBy"] else None)
                engine = LocalEngine(self.model or DEFAULT_MODEL, cache=work / "embeddings.sqlite")
                run = run_audit([work / "input" / p for p in status["Probes"]],
                                [work / "input" / g for g in status["Gallery"]], engine, config,
                                progress=False, command=f"testing API StartAudit {audit_id}")
                run.write(work / "out")
                status.update(Status="SUCCEEDED")
            except FaceAuditError as exc:
                status.update(Status="FAILED", Error=f"{exc.aws_code}: {exc.message}")
            except Exception as exc:  # report, never crash the worker
                log.error("audit %s failed", audit_id, exc_info=True)
                status.update(Status="FAILED", Error=f"internal error: {type(exc).__name__}")
            status["FinishedAt"] = round(time.time(), 3)
            if self._db is not None:  # results and status at once, for every host; nothing stays here
                self._finish(audit_id, status, work)
                shutil.rmtree(work, ignore_errors=True)
            else:
                self._write_status(audit_id, status)
                _remove_inputs(work)  # the submitted images are not kept once the audit ended

    @contextlib.contextmanager
    def _beating(self, audit_id: str) -> Iterator[None]:
        """With a database: renew the audit's heartbeat every :data:`AUDIT_HEARTBEAT_S` while it waits
        for its turn and runs, so the other hosts know this one is alive."""
        if self._db is None:
            yield
            return
        db, done = self._db, threading.Event()

        def beat() -> None:
            while not done.wait(AUDIT_HEARTBEAT_S):
                try:
                    with db.session(write=True) as conn:
                        conn.execute(f"UPDATE testing_audits SET heartbeat = {_NOW} WHERE audit_id = ?", (audit_id,))
                except Exception:  # the database is down: the next beat tries again
                    log.warning("cannot renew the heartbeat of audit %s", audit_id, exc_info=True)

        beater = threading.Thread(target=beat, name=f"audit-beat-{audit_id[:8]}", daemon=True)
        beater.start()
        try:
            yield
        finally:
            done.set()
            beater.join()

    def _finish(self, audit_id: str, status: dict[str, Any], work: Path) -> None:
        """Store an ended audit's result files (without this host's paths) and its final status in one
        transaction: no host sees SUCCEEDED without its results."""
        files: list[tuple[str, bytes]] = []
        out = work / "out"
        if status["Status"] == "SUCCEEDED":
            for f in sorted(out.rglob("*")):
                if not f.is_file():
                    continue
                name, data = f.relative_to(out).as_posix(), f.read_bytes()
                if name == "results.json":
                    data = json.dumps(_without_server_paths(json.loads(data), work)).encode()
                elif name == "report.html":
                    data = _without_server_paths(data.decode("utf-8"), work).encode("utf-8")
                files.append((name, data))
        assert self._db is not None  # (only called with a database)
        with self._db.session(write=True) as conn:
            self._write_status(audit_id, status, conn)
            conn.execute("DELETE FROM testing_audit_files WHERE audit_id = ?", (audit_id,))
            if files:
                conn.executemany("INSERT INTO testing_audit_files (audit_id, name, data) VALUES (?, ?, ?)",
                                 [(audit_id, name, data) for name, data in files])

    def _result(self, audit_id: str, name: str) -> bytes | None:
        """One of an audit's served result files (results.json, report.html); None when missing."""
        if name not in _SERVED:
            raise ValueError(name)
        if self._db is None:
            path = self.root / audit_id / "out" / name
            return path.read_bytes() if path.is_file() else None
        with self._db.session(write=False) as conn:
            row = conn.execute("SELECT data FROM testing_audit_files WHERE audit_id = ? AND name = ?",
                               (audit_id, name)).fetchone()
        return None if row is None else bytes(row[0])

    # -- status files ----------------------------------------------------------------------

    def _status(self, audit_id: str, conn: Any = None) -> dict[str, Any]:
        if self._db is not None:
            with self._session(conn, write=False) as c:
                row = c.execute(f"SELECT status, heartbeat, {_NOW} FROM testing_audits WHERE audit_id = ?",
                                (audit_id,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"audit {audit_id} not found")
            return _judged(json.loads(row[0]), row[1], row[2])
        path = self.root / audit_id / "status.json"
        try:
            status = json.loads(path.read_text())
        except FileNotFoundError:
            raise ResourceNotFoundError(f"audit {audit_id} not found") from None
        return _judged(status, None, None)

    def _all(self, conn: Any = None) -> list[dict[str, Any]]:
        if self._db is not None:
            with self._session(conn, write=False) as c:
                rows = c.execute(f"SELECT status, heartbeat, {_NOW} FROM testing_audits "
                                 "ORDER BY submitted_at, audit_id").fetchall()
            return [_judged(json.loads(r[0]), r[1], r[2]) for r in rows]
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if _AUDIT_ID.match(d.name) and (d / "status.json").exists():
                out.append(self._status(d.name))
        return sorted(out, key=lambda s: s["SubmittedAt"])

    def _write_status(self, audit_id: str, status: dict[str, Any], conn: Any = None) -> None:
        if self._db is None:
            write_private(self.root / audit_id / "status.json", json.dumps(status).encode())
            return
        with self._session(conn, write=True) as c:
            c.execute("INSERT INTO testing_audits (audit_id, owner, submitted_at, status, heartbeat) "
                      f"VALUES (?, ?, ?, ?, {_NOW}) ON CONFLICT (audit_id) DO UPDATE SET "
                      "status = excluded.status, heartbeat = excluded.heartbeat",
                      (audit_id, str(status.get("Owner") or ""), float(status["SubmittedAt"]), json.dumps(status)))

    @staticmethod
    def _visible(caller, status: dict[str, Any]) -> bool:
        return caller.role == "admin" or status.get("Owner") == caller.access_key_id

    @staticmethod
    def _public(status: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in status.items() if k not in ("Pid", "Host", "ReservedBytes")}
        if status.get("FinishedAt"):
            out["ResultsKeptUntil"] = round(status["FinishedAt"] + RESULTS_KEPT_SECONDS, 3)
        return out


@functools.cache
def _host() -> str:
    """This host: its name and boot id (a pid is only meaningful on the host and boot that made it)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}@{boot}"


def _judged(status: dict[str, Any], heartbeat: float | None, now: float | None) -> dict[str, Any]:
    """``status`` as it stands: a pending audit whose server is gone reads as FAILED. Its server is
    judged by its pid when it ran on this host (or recorded no host), else by its heartbeat."""
    if status["Status"] not in ("QUEUED", "RUNNING"):
        return status
    host = status.get("Host")
    if host is None or host == _host():
        alive = _alive(status.get("Pid"))
    else:
        alive = heartbeat is not None and now is not None and heartbeat >= now - AUDIT_LEASE_S
    if not alive:
        status.update(Status="FAILED", Error="the server stopped before the audit finished; submit it again")
    return status


def _remove_inputs(work: Path) -> None:
    shutil.rmtree(work / "input", ignore_errors=True)
    for cache in work.glob("embeddings.sqlite*"):
        cache.unlink(missing_ok=True)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _audit_id(params: dict[str, Any]) -> str:
    value = params.get("AuditId")
    if not isinstance(value, str) or not _AUDIT_ID.match(value):
        raise InvalidParameterError("AuditId must be the 32-character id StartAudit returned")
    return value


def _names(params: dict[str, Any], key: str) -> list[str]:
    names = params.get(key)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InvalidParameterError(f"{key} must be a non-empty list of manifest paths inside the archive")
    for n in names:
        _safe_member(n)
    return names


def _archive(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidParameterError("Archive (a base64-encoded ZIP of manifests and images) is required")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterError("Archive is not valid base64") from None
    if len(data) > MAX_ARCHIVE_BYTES:
        raise InvalidParameterError(f"Archive is over {MAX_ARCHIVE_BYTES} bytes")
    return data


def _safe_member(name: str) -> PurePosixPath:
    """An archive entry name as a relative path; absolute names, ``..``, backslashes, ``~`` and drive
    letters or other colons (``C:/evil.txt``, ``x:stream``) are refused."""
    p = PurePosixPath(name)
    if (not name or p.is_absolute() or ".." in p.parts or "\\" in name or name.startswith("~")
            or ":" in name or PureWindowsPath(name).drive or PureWindowsPath(name).root):
        raise InvalidParameterError(f"unsafe path in archive: {name[:100]!r}")
    return p


def _without_server_paths(value: Any, work: Path) -> Any:
    """``value`` (JSON data or text) with the server's audit folder left out of every string: paths
    read relative to the submitted archive (the auditor never learns the server's data dir)."""
    if isinstance(value, str):
        for prefix, to in ((str(work / "input") + "/", ""), (str(work / "out") + "/", ""), (str(work), ".")):
            value = value.replace(prefix, to)
        return value
    if isinstance(value, list):
        return [_without_server_paths(v, work) for v in value]
    if isinstance(value, dict):
        return {k: _without_server_paths(v, work) for k, v in value.items()}
    return value


def _check_manifest(inputs: Path, name: str) -> None:
    """Every image a manifest names must be a file of the archive: never a server file
    (an absolute path or ``..`` would let the report's thumbnails show it to the auditor)."""
    from faceaudit.audit import read_manifest

    root = inputs.resolve()
    try:
        records = read_manifest(inputs / name).records
    except FaceAuditError:
        raise
    except Exception as exc:  # undecodable text, a directory, ...: still the auditor's input
        raise InvalidParameterError(f"manifest {name!r} cannot be read: {type(exc).__name__}") from None
    for record in records:
        if not Path(record.path).is_relative_to(root):
            raise InvalidParameterError(
                f"manifest {name!r} line {record.line}: image path is outside the archive"
            )


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise InvalidParameterError("Archive is not a ZIP file") from None


def _inspect(data: bytes) -> int:
    """Check every entry of the archive before anything is written; its uncompressed size."""
    with _open_zip(data) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise InvalidParameterError(f"Archive has more than {MAX_ENTRIES} entries")
        total = sum(i.file_size for i in infos)
        if total > MAX_UNCOMPRESSED_BYTES:
            raise InvalidParameterError(f"Archive expands to more than {MAX_UNCOMPRESSED_BYTES} bytes")
        files, dirs = set(), set()
        for info in infos:
            if info.flag_bits & 0x1:
                raise InvalidParameterError(f"Archive entry {info.filename[:100]!r} is encrypted")
            rel = _safe_member(info.filename)
            key = "/".join(rel.parts)
            if not info.is_dir():
                if key in files:
                    raise InvalidParameterError(f"Archive has the entry {key[:100]!r} twice")
                files.add(key)
            else:
                dirs.add(key)
            dirs.update("/".join(rel.parts[:i]) for i in range(1, len(rel.parts)))
        clash = files & dirs
        if clash:
            name = sorted(clash)[0]
            raise InvalidParameterError(
                f"Archive entry {name[:100]!r} is both a file and a directory (e.g. 'x' and 'x/y')"
            )
        return total


def _extract(data: bytes, dest: Path) -> None:
    """Extract an archive :func:`_inspect` accepted; any failure is an InvalidParameterException."""
    _inspect(data)
    with _open_zip(data) as zf:
        for info in zf.infolist():
            rel = _safe_member(info.filename)
            if info.is_dir():
                continue
            target = dest.joinpath(*rel.parts)
            written = 0
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        written += len(chunk)
                        if written > info.file_size:  # a lying header: stop
                            raise InvalidParameterError("Archive entry larger than it declares")
                        out.write(chunk)
            except FaceAuditError:
                raise
            except Exception as exc:  # OSError, BadZipFile, zlib.error, RuntimeError, ...
                raise InvalidParameterError(
                    f"Archive entry {info.filename[:100]!r} cannot be extracted: {type(exc).__name__}"
                ) from None
