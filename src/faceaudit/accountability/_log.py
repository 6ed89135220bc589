"""The tamper-evident search log: an append-only, hash-chained JSON Lines file.

Each line is one record::

    {"seq": 7, "time": 1764000000.123, "kind": "search", "data": {...},
     "prev": "<hash of record 6>", "hash": "<sha256 of this record without 'hash'>"}

``hash = SHA-256(canonical JSON of {seq, time, kind, data, prev})`` with keys
sorted and no whitespace. Editing a record breaks its own hash; removing or
reordering records breaks ``seq`` and the ``prev`` links. Removing records at
the END is caught by the head file ``<log>.head`` (last seq and hash, replaced
atomically after every append) and, against someone who can rewrite both files,
by comparing with a head published elsewhere (``faceaudit log head``).

Appends take an exclusive ``flock`` on the log (safe across worker processes),
write one line, ``fsync``, then update the head. A crash mid-append leaves at
most a torn final line with no newline; it was never acknowledged, and the
next append cuts it off and first appends a ``repair`` record saying how many
bytes it removed, so the chain stays verifiable and the crash stays visible.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from faceaudit._errors import FaceAuditError
from faceaudit.accountability._files import write_private

log = logging.getLogger(__name__)

GENESIS = "0" * 64


class LogIntegrityError(FaceAuditError):
    """The search log fails verification (edited, removed, reordered or truncated records)."""

    aws_code = "LogVerificationFailed"
    exit_code = 8


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(seq: int, when: float, kind: str, data: Dict[str, Any], prev: str) -> str:
    """SHA-256 of the canonical JSON of a record's fields (everything but ``hash``)."""
    body = {"seq": seq, "time": when, "kind": kind, "data": data, "prev": prev}
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True)
class LogRecord:
    """One record of the search log. ``time`` is Unix seconds (UTC)."""

    seq: int
    time: float
    kind: str
    data: Dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> Dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "kind": self.kind, "data": self.data,
                "prev": self.prev, "hash": self.hash}


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`SearchLog.verify`.

    ``ok`` is True when every record checks out. Otherwise ``first_bad`` is the
    1-based line number of the first bad record (or the expected seq when
    records are missing at the end) and ``problem`` says what is wrong.
    """

    ok: bool
    records: int
    head_hash: str
    first_bad: Optional[int] = None
    problem: str = ""
    torn_tail: bool = False


class SearchLog:
    """An append-only hash-chained log file shared by every process of a deployment."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    # -- writing -----------------------------------------------------------------

    def append(self, kind: str, data: Dict[str, Any]) -> LogRecord:
        """Append one record durably (fsync) and return it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last, torn = self._repair_and_last(fd)
            if torn:  # say so in the chain itself: an unacknowledged write was cut off here
                last = self._write(fd, last, "repair", {
                    "torn_bytes_removed": torn,
                    "note": "a final line left incomplete by a crash was removed; it had never been acknowledged",
                })
            return self._write(fd, last, kind, data)
        finally:
            os.close(fd)  # releases the lock

    def _write(self, fd: int, last: Optional[LogRecord], kind: str, data: Dict[str, Any]) -> LogRecord:
        seq = (last.seq + 1) if last else 1
        prev = last.hash if last else GENESIS
        when = round(time.time(), 6)
        data = json.loads(_canonical(data))  # plain JSON types only, as stored
        rec = LogRecord(seq, when, kind, data, prev, record_hash(seq, when, kind, data, prev))
        line = _canonical(rec.to_json()) + b"\n"
        end = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:  # os.write may write only part (a signal, a nearly full disk)
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, end)  # no partial line that a later append would cut off
            raise
        self._write_head(rec)
        return rec

    def _repair_and_last(self, fd: int) -> "tuple[Optional[LogRecord], int]":
        """Cut a torn final line left by a crash; the last complete record and the bytes cut."""
        size = os.fstat(fd).st_size
        if size == 0:
            return None, 0
        torn = 0
        if os.pread(fd, 1, size - 1) != b"\n":
            keep = _rfind_newline(fd, size) + 1
            torn = size - keep
            log.warning("search log %s: cutting a torn final line (%d bytes)", self.path, torn)
            os.ftruncate(fd, keep)
            os.fsync(fd)
            size = keep
            if size == 0:
                return None, torn
        start = _rfind_newline(fd, size - 1) + 1
        return _parse(os.pread(fd, size - 1 - start, start)), torn

    def _write_head(self, rec: LogRecord) -> None:
        write_private(self.head_path, json.dumps({"seq": rec.seq, "hash": rec.hash}).encode())

    # -- reading -----------------------------------------------------------------

    def head(self) -> Optional[Dict[str, Any]]:
        """The head file: ``{"seq": N, "hash": H}`` of the last acknowledged record."""
        try:
            return json.loads(self.head_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def records(self) -> Iterator[LogRecord]:
        """Every complete record, in file order (a torn final line is skipped)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return
                rec = _parse(raw[:-1])
                if rec is not None:
                    yield rec

    def verify(self, expect_head: Optional[str] = None) -> VerifyResult:
        """Check every hash, seq and link, and the head file (and an externally kept head hash)."""
        prev, seq, count, torn = GENESIS, 0, 0, False
        if self.path.exists():
            with open(self.path, "rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        torn = True  # an unacknowledged, torn final write
                        break
                    rec = _parse(raw[:-1])
                    if rec is None:
                        return VerifyResult(False, count, prev, lineno, "record is not valid JSON")
                    if rec.seq != seq + 1:
                        return VerifyResult(False, count, prev, lineno,
                                            f"sequence broken: expected record {seq + 1}, found {rec.seq} "
                                            "(records removed or reordered)")
                    if rec.prev != prev:
                        return VerifyResult(False, count, prev, lineno,
                                            "link to the previous record broken (records removed, "
                                            "reordered or edited)")
                    if record_hash(rec.seq, rec.time, rec.kind, rec.data, rec.prev) != rec.hash:
                        return VerifyResult(False, count, prev, lineno, "record hash mismatch (record edited)")
                    prev, seq, count = rec.hash, rec.seq, count + 1
        head = self.head()
        if head is not None:
            if head.get("seq", 0) > seq:
                return VerifyResult(False, count, prev, seq + 1,
                                    f"log ends at record {seq} but the head file says {head['seq']} "
                                    "(records removed from the end)", torn)
        elif count:
            return VerifyResult(False, count, prev, None, "head file missing", torn)
        if expect_head and expect_head != prev and not self._chain_contains(expect_head):
            return VerifyResult(False, count, prev, None,
                                "the published head hash is not in this log (log rewritten or truncated)", torn)
        return VerifyResult(True, count, prev, torn_tail=torn)

    def _chain_contains(self, digest: str) -> bool:
        return any(r.hash == digest for r in self.records())


def _rfind_newline(fd: int, end: int, chunk: int = 1 << 16) -> int:
    """Offset of the last newline before ``end`` in the file, or -1."""
    pos = end
    while pos > 0:
        start = max(0, pos - chunk)
        found = os.pread(fd, pos - start, start).rfind(b"\n")
        if found >= 0:
            return start + found
        pos = start
    return -1


def _parse(raw: bytes) -> Optional[LogRecord]:
    try:
        obj = json.loads(raw)
        return LogRecord(int(obj["seq"]), float(obj["time"]), str(obj["kind"]), dict(obj["data"]),
                         str(obj["prev"]), str(obj["hash"]))
    except (ValueError, KeyError, TypeError):
        return None


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (text starting =, +, -, @ is quoted with ')."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def export_records(records: List[LogRecord], fmt: str) -> str:
    """Records as JSON (a list) or CSV (one row per record, data flattened as JSON)."""
    if fmt == "json":
        return json.dumps([r.to_json() for r in records], indent=2) + "\n"
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["seq", "time_utc", "kind", "operation", "access_key_id", "collection_id",
                    "threshold", "candidates", "case_reference", "purpose", "reviewer", "decision",
                    "data", "hash"])
        for r in records:
            d = r.data
            w.writerow([_cell(v) for v in (
                r.seq, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.time)), r.kind,
                d.get("operation", ""), d.get("access_key_id", ""), d.get("collection_id", ""),
                d.get("threshold", ""), len(d.get("candidates", []) or []),
                d.get("case_reference", ""), d.get("purpose", ""), d.get("reviewer", ""),
                d.get("decision", ""), json.dumps(d, sort_keys=True), r.hash,
            )])
        return buf.getvalue()
    from faceaudit._errors import InvalidParameterError

    raise InvalidParameterError(f"unknown export format {fmt!r}: use csv or json")
