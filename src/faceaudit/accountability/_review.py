"""Human review of leads: two different people must confirm before a lead is "confirmed".

Every candidate returned by an identification search becomes a lead in state
``pending``. Leads are made from the search log itself (:meth:`ReviewQueue.catch_up`,
idempotent): a crash between the log append and the lead insert loses no lead.
Audit traffic (``data["audit"]``) and similarities disclosed under the threshold
make none. A reviewer is a named person (the person an access key belongs to);
each person records ``confirm`` or ``reject`` once per lead, and the person who
ran the search may not review its leads. The lead becomes ``confirmed`` when two
DIFFERENT people have confirmed it (EU AI Act art. 14(5)), and ``rejected`` as
soon as anyone rejects it. Every decision is appended to the same hash-chained log.
"""

from __future__ import annotations

import builtins
import json
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faceaudit._errors import AccessDeniedError, ConflictError, InvalidParameterError, ResourceNotFoundError
from faceaudit.accountability._log import AnySearchLog
from faceaudit.accountability._probe_quality import ProbeQuality
from faceaudit.accountability._store import LEAD_SYNC_LOCK, Store

CONFIRMATIONS_REQUIRED = 2
DECISIONS = ("confirm", "reject")
STATUSES = ("pending", "confirmed", "rejected")
LEAD_NOTICE = (
    "A candidate is an investigative lead, not an identification. It must not be the sole basis "
    "for any action; corroborate it independently."
)


_LEAD_COLUMNS = ("lead_id", "search_seq", "created_at", "operation", "collection_id", "requested_by",
                 "case_reference", "probe_sha256", "candidate_face_id", "candidate_external_image_id",
                 "candidate_user_id", "similarity", "threshold", "model_version", "status",
                 "requested_by_person", "rank", "candidates", "gallery_size", "probe_quality", "quality_flag")
_LEAD_IDS = uuid.UUID("5d0c6f4e-3a57-4c47-9a51-6f1f0a7c2b10")


def person_key(name: str | None) -> str:
    """A person's name as compared: NFKC-normalised, case-folded, whitespace collapsed
    ("ALICE", "alice" and fullwidth "ａｌｉｃｅ" are one person)."""  # noqa: RUF002 -- fullwidth on purpose
    return " ".join(unicodedata.normalize("NFKC", name or "").casefold().split())


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two named persons are the same one (an empty name is nobody)."""
    return bool(person_key(a)) and person_key(a) == person_key(b)


@dataclass(frozen=True)
class Reviewer:
    """Who decides: the named ``person`` holding the access key ``key_id``."""

    key_id: str
    person: str


@dataclass(frozen=True)
class Decision:
    """One reviewer's decision on a lead (``time`` in Unix seconds). ``reviewer`` is the person."""

    reviewer: str
    decision: str
    note: str
    time: float
    log_seq: int
    access_key_id: str = ""


@dataclass(frozen=True)
class Lead:
    """A candidate from an identification search, awaiting or after human review.

    similarity: 0-100, higher is more alike; threshold: the search's threshold, same scale.
    """

    lead_id: str
    search_seq: int
    created_at: float
    operation: str
    collection_id: str | None
    requested_by: str
    case_reference: str
    probe_sha256: str
    candidate_face_id: str | None
    candidate_external_image_id: str | None
    candidate_user_id: str | None
    similarity: float
    threshold: float
    model_version: str
    status: str
    decisions: tuple[Decision, ...] = ()
    requested_by_person: str = ""
    rank: int = 1
    candidates: int = 1
    gallery_size: int | None = None
    probe_quality: ProbeQuality | None = None  # None: not measured (a stored face, an older log)
    quality_flag: str = ""  # why the probe is below its policy's minimum quality (flag mode), else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "LeadId": self.lead_id, "SearchLogSeq": self.search_seq, "CreatedAt": self.created_at,
            "Operation": self.operation, "CollectionId": self.collection_id,
            "RequestedBy": self.requested_by, "CaseReference": self.case_reference,
            "ProbeSha256": self.probe_sha256, "FaceId": self.candidate_face_id,
            "ExternalImageId": self.candidate_external_image_id, "UserId": self.candidate_user_id,
            "Similarity": self.similarity, "Threshold": self.threshold,
            "FaceModelVersion": self.model_version, "Status": self.status,
            "RequestedByPerson": self.requested_by_person, "Rank": self.rank,
            "CandidatesInSearch": self.candidates, "GallerySize": self.gallery_size,
            "ProbeQuality": None if self.probe_quality is None else self.probe_quality.to_api(),
            "QualityFlag": self.quality_flag,
            "Decisions": [
                {"Reviewer": d.reviewer, "Decision": d.decision, "Note": d.note, "Time": d.time,
                 "LogSeq": d.log_seq, "AccessKeyId": d.access_key_id}
                for d in self.decisions
            ],
            "Notice": LEAD_NOTICE,
        }


class ReviewQueue:
    """Leads and decisions, persisted in the accountability store (SQLite or PostgreSQL),
    decisions chained into the search log."""

    def __init__(self, store: Store, log: AnySearchLog) -> None:
        self._store = store
        self._log = log

    def catch_up(self) -> int:
        """Make the leads of every logged search not yet turned into leads; returns how many.

        Lead ids derive from the search record's hash, so running this twice (or in two
        processes, or on two hosts) makes each lead once. The sync position is the log's own:
        a byte offset in the JSONL file, a seq in the PostgreSQL log.
        """
        made = 0
        with self._store.write() as conn:
            # hosts sharing a PostgreSQL store catch up one at a time (SQLite: BEGIN IMMEDIATE is
            # that lock), so the sync position never moves back; lead ids make a repeat harmless
            self._store.lock(conn, LEAD_SYNC_LOCK)
            row = conn.execute("SELECT last_seq, log_offset FROM lead_sync WHERE id = 1").fetchone()
            last_seq, offset = (row[0], row[1]) if row else (0, 0)
            # a database from before leads were made from the log already holds those searches' leads
            made_before = 0 if row else (conn.execute("SELECT MAX(search_seq) FROM leads").fetchone()[0] or 0)
            for rec, end in self._log.records_after(offset):
                last_seq, offset = rec.seq, end
                if rec.kind == "search" and rec.seq > made_before:
                    made += self._insert_leads(conn, rec.seq, rec.hash, rec.time, rec.data)
            if row is None or (last_seq, offset) != (row[0], row[1]):  # (nothing read: nothing to write)
                conn.execute(self._store.dialect.upsert("lead_sync", ("id", "last_seq", "log_offset"), ("id",)),
                             (1, last_seq, offset))
        return made

    def _insert_leads(self, conn, search_seq: int, search_hash: str, when: float, search: dict[str, Any]) -> int:
        if search.get("audit"):
            return 0  # an audit's own traffic: logged, never a lead
        cands = [c for c in search.get("candidates") or [] if not c.get("below_threshold")]
        made = 0
        for rank, cand in enumerate(cands, start=1):
            lead_id = str(uuid.uuid5(_LEAD_IDS, f"{search_hash}:{rank}"))
            cur = conn.execute(
                self._store.dialect.insert_ignore("leads", _LEAD_COLUMNS),
                (lead_id, search_seq, round(when, 3), search.get("operation", ""), search.get("collection_id"),
                 search.get("access_key_id", ""), search.get("case_reference", "") or "",
                 search.get("probe_sha256", "") or "", cand.get("face_id"),
                 cand.get("external_image_id"), cand.get("user_id"), float(cand["similarity"]),
                 float(search.get("threshold") or 0.0), search.get("model_version", "") or "",
                 "pending", search.get("person", "") or "", rank, len(cands), search.get("gallery_size"),
                 json.dumps(search["probe_quality"]) if search.get("probe_quality") else None,
                 search.get("quality_flag", "") or ""),
            )
            made += cur.rowcount
        return made

    def get(self, lead_id: str) -> Lead:
        conn = self._store.read()
        row = conn.execute("SELECT * FROM leads WHERE lead_id = ?", (lead_id,)).fetchone()
        if row is None:
            raise ResourceNotFoundError(f"lead {lead_id!r} not found")
        return self._lead(row, self._decisions(conn, [lead_id]).get(lead_id, ()))

    def list(self, status: str | None = None, limit: int = 100, *, collection_id: str | None = None,
             case_reference: str | None = None) -> builtins.list[Lead]:
        """Leads, newest search first, each search's candidates in rank order."""
        if status is not None and status not in STATUSES:
            raise InvalidParameterError(f"status must be one of {', '.join(STATUSES)}")
        self.catch_up()
        where, args = [], []
        for column, value in (("status", status), ("collection_id", collection_id),
                              ("case_reference", case_reference)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = ("SELECT * FROM leads" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY search_seq DESC, rank, lead_id LIMIT ?")
        conn = self._store.read()
        rows = conn.execute(sql, (*args, limit)).fetchall()
        decisions = self._decisions(conn, [r["lead_id"] for r in rows])
        return [self._lead(r, decisions.get(r["lead_id"], ())) for r in rows]

    def decide(self, lead_id: str, reviewer: Reviewer | str, decision: str, note: str = "",
               missing_evidence: Callable[[Lead], str] | None = None) -> Lead:
        """Record one person's decision; returns the lead with its new status.

        ``reviewer`` is a :class:`Reviewer` (a bare string names a person holding a key of the
        same name). ``missing_evidence(lead)`` says why a lead cannot be confirmed ("" when it can).
        """
        if decision not in DECISIONS:
            raise InvalidParameterError("decision must be 'confirm' or 'reject'")
        if isinstance(reviewer, str):
            reviewer = Reviewer(reviewer.strip(), reviewer.strip())
        if not reviewer.key_id:
            raise InvalidParameterError("a reviewer identity is required")
        if not reviewer.person:
            raise AccessDeniedError(
                f"access key {reviewer.key_id} belongs to no named person; reviewing needs a key made "
                "with `faceaudit keys create --person NAME`")
        if len(note) > 2000:
            raise InvalidParameterError("note is longer than 2000 characters")
        lead = self.get(lead_id)
        if lead.requested_by == reviewer.key_id or same_person(lead.requested_by_person, reviewer.person):
            raise AccessDeniedError("the person who ran the search may not review its leads")
        problem = missing_evidence(lead) if (missing_evidence and decision == "confirm") else ""
        if problem:
            raise ConflictError(f"lead {lead_id} cannot be confirmed: {problem}; it can only be rejected")
        with self._store.write() as conn:
            # the lead's row is locked until COMMIT (PostgreSQL; SQLite holds the whole database):
            # two hosts deciding at once queue here, so the decision rows read below are the truth
            row = conn.execute("SELECT * FROM leads WHERE lead_id = ?" + self._store.for_update(),
                               (lead_id,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"lead {lead_id!r} not found")
            if row["status"] != "pending":
                raise ConflictError(f"lead {lead_id} is already {row['status']}")
            done = [r[0] for r in conn.execute("SELECT reviewer FROM decisions WHERE lead_id = ?", (lead_id,))]
            if any(same_person(person, reviewer.person) for person in done):
                raise ConflictError(
                    f"{reviewer.person!r} has already decided on lead {lead_id}; "
                    "a second, different person is required"
                )
            confirms = conn.execute(
                "SELECT COUNT(*) FROM decisions WHERE lead_id = ? AND decision = 'confirm'", (lead_id,)
            ).fetchone()[0]
            if decision == "reject":
                status = "rejected"
            elif confirms + 1 >= CONFIRMATIONS_REQUIRED:
                status = "confirmed"
            else:
                status = "pending"
            # the log append happens inside the transaction: a decision is stored only if logged
            rec = self._log.append("review", {
                "lead_id": lead_id, "search_seq": row["search_seq"], "reviewer": reviewer.person,
                "access_key_id": reviewer.key_id,
                "decision": decision, "note": note, "status_after": status,
                "collection_id": row["collection_id"], "face_id": row["candidate_face_id"],
                "similarity": row["similarity"],
            })
            conn.execute(
                "INSERT INTO decisions (lead_id, reviewer, decision, note, decided_at, log_seq, access_key_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (lead_id, reviewer.person, decision, note, rec.time, rec.seq, reviewer.key_id),
            )
            conn.execute("UPDATE leads SET status = ? WHERE lead_id = ?", (status, lead_id))
        return self.get(lead_id)

    @staticmethod
    def _decisions(conn, lead_ids: builtins.list[str]) -> dict[str, tuple[Decision, ...]]:
        """The decisions on these leads, each lead's in time order: a query per 500 leads (not
        one per lead: a round trip each to a database server)."""
        out: dict[str, builtins.list[Decision]] = {}
        for i in range(0, len(lead_ids), 500):
            chunk = lead_ids[i:i + 500]
            for d in conn.execute(
                f"SELECT * FROM decisions WHERE lead_id IN ({', '.join('?' for _ in chunk)}) "
                "ORDER BY decided_at, log_seq", chunk,
            ):
                out.setdefault(d["lead_id"], []).append(Decision(
                    d["reviewer"], d["decision"], d["note"], d["decided_at"], d["log_seq"], d["access_key_id"]))
        return {lead_id: tuple(ds) for lead_id, ds in out.items()}

    @staticmethod
    def _lead(row, decisions: tuple[Decision, ...]) -> Lead:
        return Lead(
            row["lead_id"], row["search_seq"], row["created_at"], row["operation"], row["collection_id"],
            row["requested_by"] or "", row["case_reference"] or "", row["probe_sha256"] or "",
            row["candidate_face_id"], row["candidate_external_image_id"], row["candidate_user_id"],
            row["similarity"], row["threshold"], row["model_version"] or "", row["status"], decisions,
            row["requested_by_person"] or "", row["rank"], row["candidates"], row["gallery_size"],
            ProbeQuality.from_json(json.loads(row["probe_quality"])) if row["probe_quality"] else None,
            row["quality_flag"] or "",
        )
