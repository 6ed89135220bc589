"""Retention: faces and kept probes deleted after N days per collection, unless on legal hold.

An admin sets a collection's rule (``faceaudit retention set COLLECTION --days N
[--legal-hold|--no-legal-hold]``; logged). ``faceaudit retention apply`` (and
``faceaudit serve`` once a day) deletes the faces indexed more than N days ago
(disassociating them from their user first) and the kept probes of searches of
that collection older than N days, unless the collection is on legal hold, a
probe also belongs to a search that must still be kept, or a lead of it is
still pending. Every deletion is logged (the face ids, the probe hashes); so is every expired
face a hold kept (a ``refused`` record per held collection). Under a hold every other deleting
operation is refused too (:mod:`._holds`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from faceaudit._errors import AccessDeniedError, ConflictError, InvalidParameterError
from faceaudit.accountability._accountability import Accountability, CallerContext
from faceaudit.accountability._store import RETENTION_LOCK

log = logging.getLogger(__name__)

DAY_SECONDS = 86400
MAX_DAYS = 100 * 366


@dataclass(frozen=True)
class RetentionRule:
    """``days``: faces and probes older than this are deleted (None: kept); ``legal_hold``: nothing
    of the collection is deleted while set. ``set_at``: Unix seconds."""

    collection_id: str
    days: int | None
    legal_hold: bool
    set_by: str
    set_at: float

    def to_json(self) -> dict[str, object]:
        return {"CollectionId": self.collection_id, "Days": self.days, "LegalHold": self.legal_hold,
                "SetBy": self.set_by, "SetAt": self.set_at}


@dataclass(frozen=True)
class RetentionReport:
    """What one ``apply`` deleted: face ids per collection, probe hashes; collections held."""

    faces: dict[str, tuple[str, ...]]
    probes: tuple[str, ...]
    held: tuple[str, ...]
    log_seqs: tuple[int, ...]


class Retention:
    """Retention rules of one data dir and their application."""

    def __init__(self, acc: Accountability) -> None:
        self.acc = acc

    def _conn(self):
        return self.acc._store.read()

    def set(self, ctx: CallerContext, collection_id: str, days: int | None,
            legal_hold: bool | None = None) -> RetentionRule:
        if ctx.role != "admin":
            raise AccessDeniedError("only an admin may set retention")
        if days is not None and not 1 <= days <= MAX_DAYS:
            raise InvalidParameterError(f"days must be from 1 to {MAX_DAYS}")
        old = self.rule(collection_id)
        rule = RetentionRule(collection_id, days if days is not None else (old.days if old else None),
                             bool(legal_hold) if legal_hold is not None else bool(old and old.legal_hold),
                             ctx.access_key_id, round(time.time(), 3))
        with self.acc._store.write() as conn:
            conn.execute(self.acc._store.dialect.upsert(
                "retention", ("collection_id", "days", "legal_hold", "set_by", "set_at"), ("collection_id",)),
                (rule.collection_id, rule.days, int(rule.legal_hold), rule.set_by, rule.set_at))
        self.acc.log.append("retention-rule", {"access_key_id": ctx.access_key_id, "rule": rule.to_json()})
        return rule

    def rule(self, collection_id: str) -> RetentionRule | None:
        row = self._conn().execute("SELECT * FROM retention WHERE collection_id = ?", (collection_id,)).fetchone()
        return _rule(row) if row else None

    def rules(self) -> list[RetentionRule]:
        return [_rule(r) for r in self._conn().execute("SELECT * FROM retention ORDER BY collection_id")]

    def apply(self, ctx: CallerContext, now: float | None = None) -> RetentionReport:
        """Delete what every rule has expired; one log record per collection and one for probes.

        With a database one run at a time per deployment: while another host applies retention
        this raises ConflictError (try again when it has finished)."""
        if not self.acc._store.shared:
            return self._apply(ctx, now)
        with deployment_lock(self.acc) as conn:
            if conn is None:
                raise ConflictError("retention is being applied by another host of this deployment right now; "
                                    "try again when it has finished")
            return self._apply(ctx, now)

    def _apply(self, ctx: CallerContext, now: float | None) -> RetentionReport:
        now = time.time() if now is None else now
        rules = {r.collection_id: r for r in self.rules()}
        fc = self.acc.collections()
        faces: dict[str, tuple[str, ...]] = {}
        seqs: list[int] = []
        held = tuple(sorted(c for c, r in rules.items() if r.legal_hold))
        for cid, rule in sorted(rules.items()):
            if rule.days is None:
                continue
            try:
                expired = fc.faces_indexed_before(collection_id=cid, before=now - rule.days * DAY_SECONDS)
            except Exception as exc:  # a deleted collection has nothing left to expire
                if getattr(exc, "aws_code", "") == "ResourceNotFoundException":
                    continue
                raise
            if rule.legal_hold:  # the hold wins: nothing deleted, the refusal logged
                if expired:
                    seqs.append(self.acc.log.append("refused", {
                        **self.acc._who(ctx), "operation": "RetentionApply", "collection_id": cid,
                        "legal_hold": True, "count": len(expired),
                        "reason": f"collection {cid!r} is on legal hold: {len(expired)} expired face(s) kept"}).seq)
                continue
            deleted: list[str] = []
            for user_id in sorted({u for _, u in expired if u}):
                mine = [f for f, u in expired if u == user_id]
                for i in range(0, len(mine), 100):
                    fc.disassociate_faces(collection_id=cid, user_id=user_id, face_ids=mine[i:i + 100])
            ids = [f for f, _ in expired]
            for i in range(0, len(ids), 4096):
                deleted.extend(fc.delete_faces(collection_id=cid, face_ids=ids[i:i + 4096]).deleted_faces)
            if deleted:
                faces[cid] = tuple(deleted)
                seqs.append(self.acc.log.append("retention", {
                    "access_key_id": ctx.access_key_id, "collection_id": cid, "days": rule.days,
                    "what": "faces", "face_ids": deleted, "count": len(deleted)}).seq)
        probes = self._expired_probes(rules, now)
        for digest in probes:
            self.acc.delete_probe(digest)
        if probes:
            seqs.append(self.acc.log.append("retention", {
                "access_key_id": ctx.access_key_id, "what": "probes", "probe_sha256": list(probes),
                "count": len(probes)}).seq)
        return RetentionReport(faces, tuple(probes), held, tuple(seqs))

    def _expired_probes(self, rules: dict[str, RetentionRule], now: float) -> list[str]:
        """Kept probes every one of whose searches has expired (and no pending lead uses)."""
        keep: set[str] = set()
        expire: set[str] = set()
        for rec in self.acc.log.records():
            digest = rec.data.get("probe_sha256") if rec.kind in ("search", "failed") else None
            if not digest:
                continue
            rule = rules.get(rec.data.get("collection_id") or "")
            if rule is None or rule.legal_hold or rule.days is None or rec.time >= now - rule.days * DAY_SECONDS:
                keep.add(digest)
            else:
                expire.add(digest)
        pending = {lead.probe_sha256 for lead in self.acc.leads("pending", 1_000_000)}
        return sorted(d for d in expire - keep - pending if self.acc.has_probe(d))


@contextlib.contextmanager
def deployment_lock(acc: Accountability) -> Iterator[Any]:
    """The deployment's retention lock (``pg_try_advisory_lock`` on a session of its own, held
    until the block ends): the session, or None when another host holds the lock."""
    conn = acc._store._db.connect()
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(?)", (RETENTION_LOCK,)).fetchone()
        yield conn if row[0] else None
    finally:
        conn.close()  # (releases the lock)


def _rule(row) -> RetentionRule:
    return RetentionRule(row["collection_id"], row["days"], bool(row["legal_hold"]), row["set_by"], row["set_at"])


class DailyRetention:
    """Runs :meth:`Retention.apply` once a day in a daemon thread. Every worker process may run one:
    an flock lets one apply at a time, and ``retention.last`` (the last run's time) once a day.

    With ``database_url`` (several hosts) every host may run one: ``pg_try_advisory_lock`` lets
    one host of the deployment apply at a time (the others skip), and the database's
    ``retention_runs`` row (the last run's time) once a day."""

    def __init__(self, data_dir, interval: float = DAY_SECONDS, check_every: float = 600.0,
                 database_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self._shared_acc: Accountability | None = None
        self.interval = interval
        self.check_every = min(check_every, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faceaudit-retention", daemon=True)

    def start(self) -> DailyRetention:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failed run is logged and retried tomorrow
                log.exception("retention run failed")
            self._stop.wait(self.check_every)

    def run_once(self) -> RetentionReport | None:
        if self.database_url is not None:
            return self._run_once_shared()
        lock = os.path.join(self.data_dir, "retention.lock")
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another process is applying retention right now
            last = os.path.join(self.data_dir, "retention.last")
            try:
                if time.time() - os.stat(last).st_mtime < self.interval:
                    return None  # applied within the day (by this or another worker)
            except FileNotFoundError:
                pass
            acc = Accountability(self.data_dir)
            report = Retention(acc).apply(CallerContext("server:retention", role="admin", source="server"))
            os.close(os.open(last, os.O_CREAT | os.O_WRONLY, 0o600))
            os.utime(last)
            log.info("retention: deleted %d face(s) and %d probe(s)",
                     sum(map(len, report.faces.values())), len(report.probes))
            return report
        finally:
            os.close(fd)

    def _run_once_shared(self) -> RetentionReport | None:
        """One run for the whole deployment: the host holding the advisory lock applies (at most
        once per interval, as the database's clock row says); a host that cannot take it skips."""
        if self._shared_acc is None:  # (one for the thread's life: its connections are reused)
            self._shared_acc = Accountability(self.data_dir, database_url=self.database_url)
        acc = self._shared_acc
        acc.sweep_probe_copies()  # every host: its copies of probes deleted elsewhere go
        with deployment_lock(acc) as conn:
            if conn is None:
                return None  # another host is applying retention right now
            last = conn.execute("SELECT ran_at FROM retention_runs WHERE id = 1").fetchone()
            if last is not None and time.time() - float(last[0]) < self.interval:
                return None  # applied within the day (by this or another host)
            report = Retention(acc)._apply(CallerContext("server:retention", role="admin", source="server"), None)
            conn.execute(acc._store.dialect.upsert("retention_runs", ("id", "ran_at"), ("id",)), (1, time.time()))
            log.info("retention: deleted %d face(s) and %d probe(s)",
                     sum(map(len, report.faces.values())), len(report.probes))
            return report
