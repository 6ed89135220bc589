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
most a torn final line with no newline. The next append never deletes it: it
moves the bytes into a quarantine file (``<log>.quarantine/``, 0600, fsynced
first) and appends a ``repair`` record holding their SHA-256, their length, the
file's name and what the head file said. Records missing from the end (the head
file names a later record than the log holds) are recorded the same way. A
sequence number is never given twice: after a repair the chain continues after
the highest seq ever acknowledged, and the repair record says where it resumes.
``verify`` lists every repair and checks each quarantine file against its hash; a repair
that records acknowledged records as missing fails verification (a crash never does that),
as does a head file without a record's seq and hash.

Each line must be exactly the canonical serialisation of its record: verify
re-serialises every record and refuses any whose bytes differ (extra or missing
fields, duplicate keys, a seq written as "3" or 3.4, other spacing).
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
from typing import Any, Dict, Iterator, List, Optional, Tuple

from faceaudit._errors import LogIntegrityError
from faceaudit._paths import private_dir
from faceaudit.accountability._files import write_private

log = logging.getLogger(__name__)

GENESIS = "0" * 64


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
class Repair:
    """A repair record found by :meth:`SearchLog.verify`.

    ``quarantined_bytes`` bytes that followed record ``after_seq`` were moved to
    ``quarantine_file`` (SHA-256 ``quarantined_sha256``); ``acknowledged_missing`` is how many
    records the head file had acknowledged beyond ``after_seq`` (never more than 0 after a
    genuine crash: a sign of tampering). ``quarantine_ok``: the file is there, hash intact.
    """

    seq: int
    after_seq: int
    quarantined_bytes: int
    quarantined_sha256: Optional[str]
    quarantine_file: Optional[str]
    acknowledged_missing: int
    quarantine_ok: bool


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`SearchLog.verify`.

    ``ok`` is True when every record checks out. Otherwise ``first_bad`` is the
    1-based line number of the first bad record (or the expected seq when
    records are missing at the end) and ``problem`` says what is wrong.
    ``acknowledged_missing``: how many records the head file had acknowledged are gone
    (removed from the end, or cut and recorded by a repair record); any makes ``ok`` False.
    """

    ok: bool
    records: int
    head_hash: str
    first_bad: Optional[int] = None
    problem: str = ""
    torn_tail: bool = False
    repairs: Tuple[Repair, ...] = ()
    acknowledged_missing: int = 0


class SearchLog:
    """An append-only hash-chained log file shared by every process of a deployment."""

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    # -- writing -----------------------------------------------------------------

    def append(self, kind: str, data: Dict[str, Any]) -> LogRecord:
        """Append one record durably (fsync) and return it."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last, quarantined = self._quarantine_torn_tail(fd)
            head = self.head() or {}
            head_seq = head.get("seq") if isinstance(head.get("seq"), int) else 0
            last_seq = last.seq if last else 0
            if quarantined is not None or head_seq > last_seq:
                # say so in the chain itself; the evidence is kept, and no seq is given twice
                last = self._write(fd, last, "repair", {
                    "after_seq": last_seq,
                    "head_seq_before": head_seq,
                    "head_hash_before": head.get("hash"),
                    "acknowledged_missing": max(0, head_seq - last_seq),
                    **(quarantined or {"quarantined_bytes": 0, "quarantined_sha256": None,
                                       "quarantine_file": None}),
                    "note": ("bytes after the last complete record were moved to the quarantine file; "
                             "records the head file had acknowledged are missing" if head_seq > last_seq
                             else "a final line left incomplete by a crash was moved to the quarantine file"),
                }, seq=max(head_seq, last_seq) + 1)
            return self._write(fd, last, kind, data)
        finally:
            os.close(fd)  # releases the lock

    def _write(self, fd: int, last: Optional[LogRecord], kind: str, data: Dict[str, Any],
               seq: Optional[int] = None) -> LogRecord:
        seq = seq if seq is not None else ((last.seq + 1) if last else 1)
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

    @property
    def quarantine_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".quarantine")

    def _quarantine_torn_tail(self, fd: int) -> "tuple[Optional[LogRecord], Optional[Dict[str, Any]]]":
        """Move bytes after the last complete line to a quarantine file; the last complete record
        and what was quarantined (None when nothing was)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return None, None
        quarantined = None
        if os.pread(fd, 1, size - 1) != b"\n":
            keep = _rfind_newline(fd, size) + 1
            torn = os.pread(fd, size - keep, keep)
            digest = hashlib.sha256(torn).hexdigest()
            name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{keep}-{digest[:16]}.bin"
            write_private(self.quarantine_dir / name, torn, replace=False)  # fsynced before the cut
            _fsync_dir(self.quarantine_dir)
            log.warning("search log %s: moved %d bytes after the last complete line to %s",
                        self.path, len(torn), self.quarantine_dir / name)
            os.ftruncate(fd, keep)
            os.fsync(fd)
            quarantined = {"quarantined_bytes": len(torn), "quarantined_sha256": digest,
                           "quarantine_file": name}
            size = keep
            if size == 0:
                return None, quarantined
        start = _rfind_newline(fd, size - 1) + 1
        try:
            last = _parse_strict(os.pread(fd, size - 1 - start, start))
        except ValueError as exc:
            raise LogIntegrityError(f"search log {self.path}: the last record is damaged ({exc}); "
                                    "run `faceaudit log verify` and investigate before searching again") from None
        return last, quarantined

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
                try:
                    yield _parse_strict(raw[:-1])
                except ValueError:
                    continue

    def records_after(self, offset: int = 0) -> Iterator["tuple[LogRecord, int]"]:
        """Complete records starting at byte ``offset`` (a line start), each with the offset after it."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            pos = offset
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return
                pos += len(raw)
                try:
                    yield _parse_strict(raw[:-1]), pos
                except ValueError:
                    continue

    def verify(self, expect_head: Optional[str] = None) -> VerifyResult:
        """Check every record's bytes, hash, seq and link, every repair's quarantine file, the head
        file against the chain (and an externally kept head hash)."""
        prev, seq, count, torn = GENESIS, 0, 0, False
        hashes: Dict[int, str] = {}
        repairs: List[Repair] = []

        def bad(line: Optional[int], problem: str, missing: int = 0) -> VerifyResult:
            return VerifyResult(False, count, prev, line, problem, torn, tuple(repairs), missing)

        if self.path.exists():
            with open(self.path, "rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        torn = True  # an unacknowledged, torn final write
                        break
                    try:
                        rec = _parse_strict(raw[:-1])
                    except ValueError as exc:
                        return bad(lineno, f"record is not in canonical form: {exc}")
                    jump = (rec.kind == "repair" and rec.data.get("after_seq") == seq and rec.seq > seq + 1)
                    if rec.seq != seq + 1 and not jump:
                        return bad(lineno, f"sequence broken: expected record {seq + 1}, found {rec.seq} "
                                           "(records removed or reordered)")
                    if rec.prev != prev:
                        return bad(lineno, "link to the previous record broken (records removed, "
                                           "reordered or edited)")
                    if record_hash(rec.seq, rec.time, rec.kind, rec.data, rec.prev) != rec.hash:
                        return bad(lineno, "record hash mismatch (record edited)")
                    if rec.kind == "repair":
                        repair = self._repair_of(rec, seq)
                        repairs.append(repair)
                        if not repair.quarantine_ok:
                            return bad(lineno, f"repair record {rec.seq}: its quarantine file "
                                               f"{repair.quarantine_file} is missing or altered")
                    prev, seq, count = rec.hash, rec.seq, count + 1
                    hashes[seq] = prev
        head = self.head()
        if head is not None:
            head_seq = head.get("seq")
            if not isinstance(head_seq, int) or isinstance(head_seq, bool) or head_seq < 1 \
                    or not _is_hash(head.get("hash")):
                return bad(None, "head file is damaged: it must name the last acknowledged record "
                                 "(seq from 1) and carry that record's hash")
            if head_seq > seq:
                return bad(seq + 1, f"log ends at record {seq} but the head file says {head_seq} "
                                    "(acknowledged records removed from the end)", head_seq - seq)
            if hashes.get(head_seq) != head.get("hash"):
                return bad(None, f"the head file's hash is not the hash of record {head_seq} "
                                 "(the record or the head file was edited)")
        elif count:
            return bad(None, "head file missing")
        if expect_head and expect_head not in hashes.values():
            return bad(None, "the published head hash is not in this log (log rewritten or truncated)")
        cut = [r for r in repairs if r.acknowledged_missing]
        if cut:
            missing = sum(r.acknowledged_missing for r in cut)
            return bad(None, f"{missing} record(s) the head file had acknowledged are missing (repair "
                             f"record(s) {', '.join(str(r.seq) for r in cut)}; a crash never does this: "
                             "investigate)", missing)
        return VerifyResult(True, count, prev, torn_tail=torn, repairs=tuple(repairs))

    def _repair_of(self, rec: LogRecord, after: int) -> Repair:
        d = rec.data
        name = d.get("quarantine_file")
        ok = True
        if name:
            path = self.quarantine_dir / str(name)
            ok = (Path(str(name)).name == name and path.is_file()
                  and hashlib.sha256(path.read_bytes()).hexdigest() == d.get("quarantined_sha256"))
        return Repair(rec.seq, after, int(d.get("quarantined_bytes") or 0), d.get("quarantined_sha256"),
                      name, int(d.get("acknowledged_missing") or 0), ok)


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


_FIELDS = ("seq", "time", "kind", "data", "prev", "hash")


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _parse_strict(raw: bytes) -> LogRecord:
    """The record of one line, refused (ValueError, saying why) unless the line is exactly its
    canonical serialisation: the six fields with the right types, no duplicate keys anywhere."""
    obj = json.loads(raw, object_pairs_hook=_no_duplicates)
    if not isinstance(obj, dict) or sorted(obj) != sorted(_FIELDS):
        raise ValueError(f"fields must be exactly {', '.join(_FIELDS)}")
    if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or obj["seq"] < 1:
        raise ValueError("seq must be a positive integer")
    if not _is_number(obj["time"]):
        raise ValueError("time must be a number")
    if not isinstance(obj["kind"], str) or not isinstance(obj["data"], dict):
        raise ValueError("kind must be a string and data an object")
    if not _is_hash(obj["prev"]) or not _is_hash(obj["hash"]):
        raise ValueError("prev and hash must be 64 lower-case hex digits")
    rec = LogRecord(obj["seq"], obj["time"], obj["kind"], obj["data"], obj["prev"], obj["hash"])
    if _canonical(rec.to_json()) != raw:
        raise ValueError("bytes differ from the record's canonical serialisation")
    return rec


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export_records(records: List[LogRecord], fmt: str) -> str:
    """Records as JSON (a list) or CSV (one row per record, data flattened as JSON)."""
    if fmt == "json":
        return json.dumps([r.to_json() for r in records], indent=2) + "\n"
    if fmt == "csv":
        import csv
        import io

        from faceaudit._csv import neutralise

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["seq", "time_utc", "kind", "operation", "access_key_id", "collection_id",
                    "threshold", "candidates", "case_reference", "purpose", "reviewer", "decision",
                    "data", "hash"])
        for r in records:
            d = r.data
            w.writerow([neutralise(v) for v in (
                r.seq, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.time)), r.kind,
                d.get("operation", ""), d.get("access_key_id", ""), d.get("collection_id", ""),
                d.get("threshold", ""), len(d.get("candidates", []) or []),
                d.get("case_reference", ""), d.get("purpose", ""), d.get("reviewer", ""),
                d.get("decision", ""), json.dumps(d, sort_keys=True), r.hash,
            )])
        return buf.getvalue()
    from faceaudit._errors import InvalidParameterError

    raise InvalidParameterError(f"unknown export format {fmt!r}: use csv or json")
