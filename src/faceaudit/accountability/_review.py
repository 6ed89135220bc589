"""Human review of leads: two different reviewers must confirm before a lead is "confirmed".

Every candidate returned by an identification search becomes a lead in state
``pending``. A reviewer records ``confirm`` or ``reject`` once per lead. The
lead becomes ``confirmed`` when two DIFFERENT reviewers have confirmed it (EU
AI Act art. 14(5)), and ``rejected`` as soon as any reviewer rejects it. Every
decision is appended to the same hash-chained log as the searches.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from faceaudit._errors import ConflictError, InvalidParameterError, ResourceNotFoundError
from faceaudit.accountability._log import SearchLog
from faceaudit.accountability._store import Store

CONFIRMATIONS_REQUIRED = 2
DECISIONS = ("confirm", "reject")
STATUSES = ("pending", "confirmed", "rejected")
LEAD_NOTICE = (
    "A candidate is an investigative lead, not an identification. It must not be the sole basis "
    "for any action; corroborate it independently."
)


@dataclass(frozen=True)
class Decision:
    """One reviewer's decision on a lead (``time`` in Unix seconds)."""

    reviewer: str
    decision: str
    note: str
    time: float
    log_seq: int


@dataclass(frozen=True)
class Lead:
    """A candidate from an identification search, awaiting or after human review.

    similarity: 0-100, higher is more alike; threshold: the search's threshold, same scale.
    """

    lead_id: str
    search_seq: int
    created_at: float
    operation: str
    collection_id: Optional[str]
    requested_by: str
    case_reference: str
    probe_sha256: str
    candidate_face_id: Optional[str]
    candidate_external_image_id: Optional[str]
    candidate_user_id: Optional[str]
    similarity: float
    threshold: float
    model_version: str
    status: str
    decisions: Tuple[Decision, ...] = ()

    def to_json(self) -> Dict[str, Any]:
        return {
            "LeadId": self.lead_id, "SearchLogSeq": self.search_seq, "CreatedAt": self.created_at,
            "Operation": self.operation, "CollectionId": self.collection_id,
            "RequestedBy": self.requested_by, "CaseReference": self.case_reference,
            "ProbeSha256": self.probe_sha256, "FaceId": self.candidate_face_id,
            "ExternalImageId": self.candidate_external_image_id, "UserId": self.candidate_user_id,
            "Similarity": self.similarity, "Threshold": self.threshold,
            "FaceModelVersion": self.model_version, "Status": self.status,
            "Decisions": [
                {"Reviewer": d.reviewer, "Decision": d.decision, "Note": d.note, "Time": d.time,
                 "LogSeq": d.log_seq}
                for d in self.decisions
            ],
            "Notice": LEAD_NOTICE,
        }


class ReviewQueue:
    """Leads and decisions, persisted in SQLite, decisions chained into the search log."""

    def __init__(self, store: Store, log: SearchLog) -> None:
        self._store = store
        self._log = log

    def add_leads(self, search_seq: int, search: Dict[str, Any]) -> List[str]:
        """Create one pending lead per candidate of a logged search; returns the lead ids."""
        ids = []
        now = round(time.time(), 3)
        with self._store.write() as conn:
            for cand in search.get("candidates", []):
                lead_id = str(uuid.uuid4())
                conn.execute(
                    "INSERT INTO leads (lead_id, search_seq, created_at, operation, collection_id, "
                    "requested_by, case_reference, probe_sha256, candidate_face_id, "
                    "candidate_external_image_id, candidate_user_id, similarity, threshold, "
                    "model_version, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?, 'pending')",
                    (lead_id, search_seq, now, search.get("operation", ""), search.get("collection_id"),
                     search.get("access_key_id", ""), search.get("case_reference", "") or "",
                     search.get("probe_sha256", ""), cand.get("face_id"),
                     cand.get("external_image_id"), cand.get("user_id"), float(cand["similarity"]),
                     float(search.get("threshold", 0.0)), search.get("model_version", "")),
                )
                ids.append(lead_id)
        return ids

    def get(self, lead_id: str) -> Lead:
        conn = self._store.read()
        row = conn.execute("SELECT * FROM leads WHERE lead_id = ?", (lead_id,)).fetchone()
        if row is None:
            raise ResourceNotFoundError(f"lead {lead_id!r} not found")
        return self._lead(conn, row)

    def list(self, status: Optional[str] = None, limit: int = 100) -> List[Lead]:
        if status is not None and status not in STATUSES:
            raise InvalidParameterError(f"status must be one of {', '.join(STATUSES)}")
        conn = self._store.read()
        if status:
            rows = conn.execute(
                "SELECT * FROM leads WHERE status = ? ORDER BY created_at, lead_id LIMIT ?", (status, limit)
            ).fetchall()
        else:
            rows = conn.execute("SELECT * FROM leads ORDER BY created_at, lead_id LIMIT ?", (limit,)).fetchall()
        return [self._lead(conn, r) for r in rows]

    def decide(self, lead_id: str, reviewer: str, decision: str, note: str = "") -> Lead:
        """Record one reviewer's decision; returns the lead with its new status."""
        if decision not in DECISIONS:
            raise InvalidParameterError("decision must be 'confirm' or 'reject'")
        reviewer = (reviewer or "").strip()
        if not reviewer:
            raise InvalidParameterError("a reviewer identity is required")
        if len(note) > 2000:
            raise InvalidParameterError("note is longer than 2000 characters")
        with self._store.write() as conn:
            row = conn.execute("SELECT * FROM leads WHERE lead_id = ?", (lead_id,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"lead {lead_id!r} not found")
            if row["status"] != "pending":
                raise ConflictError(f"lead {lead_id} is already {row['status']}")
            done = conn.execute(
                "SELECT 1 FROM decisions WHERE lead_id = ? AND reviewer = ?", (lead_id, reviewer)
            ).fetchone()
            if done:
                raise ConflictError(
                    f"reviewer {reviewer!r} has already decided on lead {lead_id}; "
                    "a second, different reviewer is required"
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
                "lead_id": lead_id, "search_seq": row["search_seq"], "reviewer": reviewer,
                "decision": decision, "note": note, "status_after": status,
                "collection_id": row["collection_id"], "face_id": row["candidate_face_id"],
                "similarity": row["similarity"],
            })
            conn.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
                (lead_id, reviewer, decision, note, rec.time, rec.seq),
            )
            conn.execute("UPDATE leads SET status = ? WHERE lead_id = ?", (status, lead_id))
        return self.get(lead_id)

    @staticmethod
    def _lead(conn, row) -> Lead:
        decisions = tuple(
            Decision(d["reviewer"], d["decision"], d["note"], d["decided_at"], d["log_seq"])
            for d in conn.execute(
                "SELECT * FROM decisions WHERE lead_id = ? ORDER BY decided_at", (row["lead_id"],)
            )
        )
        return Lead(
            row["lead_id"], row["search_seq"], row["created_at"], row["operation"], row["collection_id"],
            row["requested_by"] or "", row["case_reference"] or "", row["probe_sha256"] or "",
            row["candidate_face_id"], row["candidate_external_image_id"], row["candidate_user_id"],
            row["similarity"], row["threshold"], row["model_version"] or "", row["status"], decisions,
        )
