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

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, cast

from faceaudit._db import PostgreSQLDatabase, Schema, is_postgres_url, transaction
from faceaudit._errors import LogIntegrityError, ResourceAlreadyExistsError, ServiceUnavailableError
from faceaudit._paths import private_dir
from faceaudit.accountability._files import write_private

log = logging.getLogger(__name__)

GENESIS = "0" * 64


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(seq: int, when: float, kind: str, data: dict[str, Any], prev: str) -> str:
    """SHA-256 of the canonical JSON of a record's fields (everything but ``hash``)."""
    body = {"seq": seq, "time": when, "kind": kind, "data": data, "prev": prev}
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True)
class LogRecord:
    """One record of the search log. ``time`` is Unix seconds (UTC)."""

    seq: int
    time: float
    kind: str
    data: dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
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
    quarantined_sha256: str | None
    quarantine_file: str | None
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
    first_bad: int | None = None
    problem: str = ""
    torn_tail: bool = False
    repairs: tuple[Repair, ...] = ()
    acknowledged_missing: int = 0


class SearchLog:
    """An append-only hash-chained log file shared by every process of a deployment."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    # -- writing -----------------------------------------------------------------

    def append(self, kind: str, data: dict[str, Any]) -> LogRecord:
        """Append one record durably (fsync) and return it."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last, quarantined = self._quarantine_torn_tail(fd)
            head = self.head() or {}
            raw_seq = head.get("seq")
            head_seq = raw_seq if isinstance(raw_seq, int) else 0
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

    def _write(self, fd: int, last: LogRecord | None, kind: str, data: dict[str, Any],
               seq: int | None = None) -> LogRecord:
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

    def _quarantine_torn_tail(self, fd: int) -> tuple[LogRecord | None, dict[str, Any] | None]:
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

    def head(self) -> dict[str, Any] | None:
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

    def records_after(self, offset: int = 0) -> Iterator[tuple[LogRecord, int]]:
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

    def verify(self, expect_head: str | None = None) -> VerifyResult:
        """Check every record's bytes, hash, seq and link, every repair's quarantine file, the head
        file against the chain (and an externally kept head hash)."""
        chain = _Chain(self._repair_of, "head file")
        if self.path.exists():
            with open(self.path, "rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        chain.torn = True  # an unacknowledged, torn final write
                        break
                    problem = chain.feed(lineno, raw[:-1])
                    if problem is not None:
                        return problem
        return chain.finish(self.head(), expect_head)

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


class _Chain:
    """The checks of :meth:`SearchLog.verify`, record by record, shared by both log stores.

    ``feed`` each record's bytes in order (``position``: the line, or the row in seq order);
    it returns a failed :class:`VerifyResult` at the first bad one. ``finish`` checks the
    head (``{"seq", "hash"}`` or None) and a published head hash.
    """

    def __init__(self, repair_of: Callable[[LogRecord, int], Repair], head_name: str) -> None:
        self.prev, self.seq, self.count, self.torn = GENESIS, 0, 0, False
        self.hashes: dict[int, str] = {}
        self.repairs: list[Repair] = []
        self.last: LogRecord | None = None
        self._repair_of = repair_of
        self._head = head_name

    def bad(self, line: int | None, problem: str, missing: int = 0) -> VerifyResult:
        return VerifyResult(False, self.count, self.prev, line, problem, self.torn, tuple(self.repairs), missing)

    def feed(self, position: int, raw: bytes) -> VerifyResult | None:
        seq = self.seq
        try:
            rec = _parse_strict(raw)
        except ValueError as exc:
            return self.bad(position, f"record is not in canonical form: {exc}")
        jump = (rec.kind == "repair" and rec.data.get("after_seq") == seq and rec.seq > seq + 1)
        if rec.seq != seq + 1 and not jump:
            return self.bad(position, f"sequence broken: expected record {seq + 1}, found {rec.seq} "
                                      "(records removed or reordered)")
        if rec.prev != self.prev:
            return self.bad(position, "link to the previous record broken (records removed, "
                                      "reordered or edited)")
        if record_hash(rec.seq, rec.time, rec.kind, rec.data, rec.prev) != rec.hash:
            return self.bad(position, "record hash mismatch (record edited)")
        if rec.kind == "repair":
            repair = self._repair_of(rec, seq)
            self.repairs.append(repair)
            if not repair.quarantine_ok:
                return self.bad(position, f"repair record {rec.seq}: its quarantine file "
                                          f"{repair.quarantine_file} is missing or altered")
        self.prev, self.seq, self.count, self.last = rec.hash, rec.seq, self.count + 1, rec
        self.hashes[rec.seq] = rec.hash
        return None

    def finish(self, head: dict[str, Any] | None, expect_head: str | None) -> VerifyResult:
        seq, name = self.seq, self._head
        if head is not None:
            head_seq = head.get("seq")
            if not isinstance(head_seq, int) or isinstance(head_seq, bool) or head_seq < 1 \
                    or not _is_hash(head.get("hash")):
                return self.bad(None, f"{name} is damaged: it must name the last acknowledged record "
                                      "(seq from 1) and carry that record's hash")
            if head_seq > seq:
                return self.bad(seq + 1, f"log ends at record {seq} but the {name} says {head_seq} "
                                         "(acknowledged records removed from the end)", head_seq - seq)
            if self.hashes.get(head_seq) != head.get("hash"):
                return self.bad(None, f"the {name}'s hash is not the hash of record {head_seq} "
                                      f"(the record or the {name} was edited)")
        elif self.count:
            return self.bad(None, f"{name} missing")
        if expect_head and expect_head not in self.hashes.values():
            return self.bad(None, "the published head hash is not in this log (log rewritten or truncated)")
        cut = [r for r in self.repairs if r.acknowledged_missing]
        if cut:
            missing = sum(r.acknowledged_missing for r in cut)
            return self.bad(None, f"{missing} record(s) the {name} had acknowledged are missing (repair "
                                  f"record(s) {', '.join(str(r.seq) for r in cut)}; a crash never does this: "
                                  "investigate)", missing)
        return VerifyResult(True, self.count, self.prev, torn_tail=self.torn, repairs=tuple(self.repairs))


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


# -- the search log in PostgreSQL: one chain for every host of a deployment --------------------

_PG_LOG = f"""
CREATE TABLE search_log (
    seq BIGINT PRIMARY KEY CHECK (seq > 0),
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE search_log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO search_log_head (id, seq, hash) VALUES (1, 0, '{GENESIS}');
"""

PG_LOG_SCHEMA = Schema("search_log", {1: _PG_LOG}, version_key="search_log_schema_version")
"""Version 1: the records (each its canonical JSON line, as the JSONL log holds it) and the head row."""

_PAGE = 1000


class PostgresSearchLog:
    """The search log in a PostgreSQL database, shared by every host of a deployment.

    Same API and same records as :class:`SearchLog`: ``record`` holds each record's canonical
    JSON line exactly as the JSONL file would (the same ``record_hash``), so
    :meth:`export_jsonl` writes a file today's verifier checks unchanged. The head row
    (``search_log_head``) plays the head file's part.

    An append is one transaction: it locks the head row (``SELECT ... FOR UPDATE``), takes
    ``seq = head.seq + 1`` and ``prev = head.hash``, inserts the record, moves the head and
    commits. Appends from every host therefore queue on that row: the chain never forks and
    no seq is given twice; a host that dies mid-append leaves nothing (the transaction is rolled
    back), one whose COMMIT returned has its record and the head that names it on the server.
    Commits happen in seq order (the lock is held until COMMIT), so a reader paging by seq
    never skips a record that commits later. One connection per thread.
    """

    schema = PG_LOG_SCHEMA
    """The log's tables (``search_log``, ``search_log_head``) as a :class:`~faceaudit._db.Schema`."""

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        self._db = PostgreSQLDatabase(url, PG_LOG_SCHEMA, connect_timeout_s=connect_timeout_s)
        self._local = threading.local()

    @property
    def where(self) -> str:
        """The database (URL without password), for messages."""
        return self._db.where

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._db.connect()
        return conn

    def close(self) -> None:
        """Close this thread's connection (the next call opens another)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextlib.contextmanager
    def _session(self, *, write: bool) -> Iterator[Any]:
        import psycopg

        for attempt in (1, 2):
            began = False
            try:
                kept = self._conn()
            except ServiceUnavailableError as exc:  # no new connection: the server is down
                raise ServiceUnavailableError(f"the search log: {exc.message}") from None
            try:
                with transaction(kept, write=write) as conn:
                    began = True
                    yield conn
                return
            except psycopg.OperationalError as exc:  # the server went away (a commit's fate unknown)
                with contextlib.suppress(Exception):
                    self.close()
                self._local.conn = None
                # broken at BEGIN (a connection kept from before a restart): nothing was done, one
                # more try on a new connection; inside the transaction: the caller gets a 503
                if began or attempt == 2:
                    text = str(exc).strip().splitlines()
                    raise ServiceUnavailableError(f"the search log's database {self.where} failed: "
                                                  f"{text[-1].strip() if text else type(exc).__name__}") from None

    # -- writing -----------------------------------------------------------------

    def append(self, kind: str, data: dict[str, Any]) -> LogRecord:
        """Append one record (committed when this returns) and return it."""
        data = json.loads(_canonical(data))  # plain JSON types only, as stored
        with self._session(write=True) as conn:
            head = conn.execute("SELECT seq, hash FROM search_log_head WHERE id = 1 FOR UPDATE").fetchone()
            if head is None:
                raise LogIntegrityError(f"search log {self.where}: the head row is missing; run "
                                        "`faceaudit log verify` and investigate before searching again")
            seq, prev = int(head[0]) + 1, str(head[1])
            when = round(time.time(), 6)
            rec = LogRecord(seq, when, kind, data, prev, record_hash(seq, when, kind, data, prev))
            conn.execute("INSERT INTO search_log (seq, kind, hash, record) VALUES (%s, %s, %s, %s)",
                         (seq, kind, rec.hash, _canonical(rec.to_json()).decode()))
            conn.execute("UPDATE search_log_head SET seq = %s, hash = %s WHERE id = 1", (seq, rec.hash))
        return rec

    def import_jsonl(self, source: SearchLog, *, conn: Any = None) -> VerifyResult:
        """Copy a JSONL log into this log, which must be empty: the same records, byte for byte
        (seq, time, kind, data, prev and hash unchanged), and the head row on the last of them.

        The chain is verified as it is inserted (the checks of :meth:`SearchLog.verify`: canonical
        bytes, seq, links, hashes, the source's head file); the first bad record, or a repair
        record whose quarantine file would stay behind on the old host, stops the import with a
        :class:`LogIntegrityError` and nothing is kept (one transaction). A torn final line (never
        acknowledged) is not copied. A target that already holds records:
        :class:`ResourceAlreadyExistsError`. ``conn``: a psycopg connection whose transaction
        the caller holds (``faceaudit db migrate`` copies the stores in the same one); without
        it the import runs in a transaction of its own. Returns the source's verification.
        """
        if conn is not None:
            return self._import(conn, source)
        with self._session(write=True) as own:
            return self._import(own, source)

    def _import(self, conn: Any, source: SearchLog) -> VerifyResult:
        head = conn.execute("SELECT seq, hash FROM search_log_head WHERE id = 1 FOR UPDATE").fetchone()
        if head is None:
            raise LogIntegrityError(f"search log {self.where}: the head row is missing; nothing was imported")
        if int(head[0]) != 0 or conn.execute("SELECT EXISTS (SELECT 1 FROM search_log)").fetchone()[0]:
            raise ResourceAlreadyExistsError(f"the search log in {self.where} already holds records: "
                                             "import only into an empty database (nothing was copied)")
        chain = _Chain(source._repair_of, "head file")
        rows: list[tuple[int, str, str, str]] = []

        def flush() -> None:
            if rows:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO search_log (seq, kind, hash, record) VALUES (%s, %s, %s, %s)", rows)
                rows.clear()

        if source.path.exists():
            with open(source.path, "rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        chain.torn = True
                        log.warning("search log %s: a torn final line (never acknowledged) is not imported",
                                    source.path)
                        break
                    problem = chain.feed(lineno, raw[:-1])
                    if problem is not None:
                        raise LogIntegrityError(f"search log {source.path} does not verify at line "
                                                f"{problem.first_bad}: {problem.problem}; nothing was imported")
                    rec = cast(LogRecord, chain.last)  # (feed set it)
                    if rec.kind == "repair" and rec.data.get("quarantine_file"):
                        raise LogIntegrityError(
                            f"search log {source.path}: repair record {rec.seq} quarantined bytes into "
                            f"{rec.data.get('quarantine_file')}, which a database log cannot hold; keep this "
                            "log (and its quarantine folder) as the record, nothing was imported")
                    rows.append((rec.seq, rec.kind, rec.hash, raw[:-1].decode()))
                    if len(rows) >= _PAGE:
                        flush()
        flush()
        result = chain.finish(source.head(), None)
        if not result.ok:
            raise LogIntegrityError(f"search log {source.path} does not verify: {result.problem}; "
                                    "nothing was imported")
        if chain.count:
            conn.execute("UPDATE search_log_head SET seq = %s, hash = %s WHERE id = 1", (chain.seq, chain.prev))
        return result

    # -- reading -----------------------------------------------------------------

    def head(self) -> dict[str, Any] | None:
        """The head row as ``{"seq": N, "hash": H}`` (None while the log is empty)."""
        with self._session(write=False) as conn:
            row = conn.execute("SELECT seq, hash FROM search_log_head WHERE id = 1").fetchone()
        if row is None or int(row[0]) == 0:
            return None
        return {"seq": int(row[0]), "hash": row[1]}

    def _rows(self, after: int = 0) -> Iterator[tuple[int, str]]:
        """(seq column, record text) in seq order, a page per transaction."""
        while True:
            with self._session(write=False) as conn:
                page = conn.execute("SELECT seq, record FROM search_log WHERE seq > %s ORDER BY seq LIMIT %s",
                                    (after, _PAGE)).fetchall()
            for seq, record in page:
                yield int(seq), record
            if len(page) < _PAGE:
                return
            after = int(page[-1][0])

    def records(self) -> Iterator[LogRecord]:
        """Every record in seq order (a row not in canonical form is skipped, as a bad line is)."""
        for rec, _seq in self.records_after(0):
            yield rec

    def records_after(self, offset: int = 0) -> Iterator[tuple[LogRecord, int]]:
        """Records after seq ``offset`` (this store's position is the seq), each with its seq."""
        for seq, record in self._rows(offset):
            try:
                yield _parse_strict(record.encode()), seq
            except ValueError:
                continue

    def verify(self, expect_head: str | None = None) -> VerifyResult:
        """The JSONL log's checks, row by row in seq order (``first_bad`` counts rows from 1),
        plus each row's seq and hash columns against its record, and the head row."""
        chain = _Chain(self._repair_of, "head row")
        for position, (seq, record) in enumerate(self._rows(), start=1):
            problem = chain.feed(position, record.encode())
            if problem is not None:
                return problem
            if chain.last is not None and chain.last.seq != seq:
                return chain.bad(position, f"row {seq} holds record {chain.last.seq} (rows renumbered)")
        with self._session(write=False) as conn:
            row = conn.execute("SELECT seq, hash FROM search_log_head WHERE id = 1").fetchone()
        head = None if row is None else {"seq": int(row[0]), "hash": row[1]}
        if head is not None and head["seq"] == 0 and head["hash"] == GENESIS:
            head = None if not chain.count else {"seq": 0, "hash": GENESIS}  # empty; or records behind it
        return chain.finish(head, expect_head)

    @staticmethod
    def _repair_of(rec: LogRecord, after: int) -> Repair:
        """A repair record (one copied from a JSONL log: this store never writes them); its
        quarantine file stayed with that log, so only a repair that quarantined nothing holds."""
        d = rec.data
        name = d.get("quarantine_file")
        return Repair(rec.seq, after, int(d.get("quarantined_bytes") or 0), d.get("quarantined_sha256"),
                      name, int(d.get("acknowledged_missing") or 0), not name)

    def export_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write the log as a JSONL file and its head file (0600 each), as :class:`SearchLog`
        keeps them: ``SearchLog(path).verify()`` checks the export. Returns the record count."""
        path = Path(path)
        with self._session(write=False) as conn:  # one snapshot: the head and the records agree
            row = conn.execute("SELECT seq, hash FROM search_log_head WHERE id = 1").fetchone()
            if row is None:
                raise LogIntegrityError(f"search log {self.where}: the head row is missing; nothing exported")
            lines = [r[0].encode() + b"\n" for r in conn.execute("SELECT record FROM search_log "
                                                                  "WHERE seq <= %s ORDER BY seq", (row[0],))]
        write_private(path, b"".join(lines))
        if int(row[0]) > 0:
            write_private(path.with_name(path.name + ".head"),
                          json.dumps({"seq": int(row[0]), "hash": row[1]}).encode())
        return len(lines)


AnySearchLog: TypeAlias = SearchLog | PostgresSearchLog


def open_search_log(data_dir: str | os.PathLike[str], database_url: str | None = None) -> AnySearchLog:
    """The deployment's search log: ``search-log.jsonl`` in the data dir (the default), or the
    PostgreSQL database ``database_url`` names (``postgresql://...``)."""
    if database_url is None:
        return SearchLog(Path(data_dir) / "search-log.jsonl")
    if not is_postgres_url(database_url):
        from faceaudit._errors import InvalidParameterError

        raise InvalidParameterError("the search log goes to the data dir's JSONL file or to PostgreSQL "
                                    "(postgresql://...): no other database holds it")
    return PostgresSearchLog(database_url)


def export_records(records: list[LogRecord], fmt: str) -> str:
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
