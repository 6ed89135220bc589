"""The facade the service and the CLI use: policy checks, search records, leads, review."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from faceaudit.accountability._files import write_private
from faceaudit.accountability._log import LogRecord, SearchLog
from faceaudit.accountability._policy import PolicyStore, PolicyViolationError, ThresholdPolicy
from faceaudit.accountability._review import Lead, ReviewQueue
from faceaudit.accountability._store import Store

IDENTIFICATION_OPERATIONS = frozenset(
    {"SearchFaces", "SearchFacesByImage", "SearchUsers", "SearchUsersByImage", "CompareFaces"}
)
"""Operations whose results identify people: each is logged, and its candidates become leads."""


@dataclass(frozen=True)
class CallerContext:
    """Who asks, and why. ``source`` is "http" or "cli"."""

    access_key_id: str
    role: str = "operator"
    case_reference: str = ""
    purpose: str = ""
    source: str = "cli"
    request_id: str = ""


@dataclass(frozen=True)
class Candidate:
    """One candidate of an identification search (similarity 0-100, higher is more alike)."""

    similarity: float
    face_id: Optional[str] = None
    external_image_id: Optional[str] = None
    user_id: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"similarity": self.similarity}
        for key in ("face_id", "external_image_id", "user_id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class SearchRecord:
    """What one identification operation did, for the log."""

    operation: str
    collection_id: Optional[str]
    model_version: str
    threshold: float
    max_faces: Optional[int]
    probe_sha256: Optional[str]
    candidates: Sequence[Candidate] = field(default_factory=tuple)
    started_at: Optional[float] = None
    probe_face_id: Optional[str] = None  # SearchFaces / SearchUsers by FaceId
    probe_user_id: Optional[str] = None  # SearchUsers by UserId


def similarity_scale_of(model_version: Optional[str]) -> Optional[str]:
    """The Similarity scale version of a FaceModelVersion (None when the model is unknown)."""
    from faceaudit._errors import FaceAuditError
    from faceaudit.engine import get_model

    if not model_version:
        return None
    try:
        return get_model(model_version).scale.version
    except FaceAuditError:
        return None


class Accountability:
    """Search log, threshold policies and the review queue of one data dir."""

    def __init__(self, data_dir: "str | os.PathLike[str]") -> None:
        self.data_dir = Path(data_dir)
        self.log = SearchLog(self.data_dir / "search-log.jsonl")
        self._store = Store(self.data_dir / "accountability.db")
        self.policies = PolicyStore(self._store)
        self.reviews = ReviewQueue(self._store, self.log)
        self.probe_dir = self.data_dir / "probes"

    # -- policy ------------------------------------------------------------------

    def policy(self, collection_id: str) -> ThresholdPolicy:
        return self.policies.get(collection_id)

    def set_policy(self, policy: ThresholdPolicy, ctx: CallerContext) -> ThresholdPolicy:
        stamped = self.policies.set(policy, role=ctx.role, actor=ctx.access_key_id)
        self.log.append("policy", {"access_key_id": ctx.access_key_id, "policy": stamped.to_json()})
        return stamped

    def authorize(self, ctx: CallerContext, operation: str, collection_id: Optional[str],
                  threshold: float, max_faces: Optional[int]) -> None:
        """Check a search against its collection's policy; a refusal is logged, then raised."""
        if collection_id is None:
            return
        try:
            self.policy(collection_id).check(threshold, max_faces, ctx.case_reference)
        except PolicyViolationError as exc:
            self.log.append("refused", {
                **self._who(ctx), "operation": operation, "collection_id": collection_id,
                "threshold": threshold, "max_faces": max_faces, "reason": exc.message,
            })
            raise

    # -- searches ----------------------------------------------------------------

    def record(self, ctx: CallerContext, search: SearchRecord, probe: Optional[bytes] = None) -> LogRecord:
        """Append the search to the log, keep the probe for review, and open one lead per candidate."""
        if probe is not None and search.probe_sha256:
            self._keep_probe(search.probe_sha256, probe)
        data = {
            **self._who(ctx),
            "operation": search.operation,
            "collection_id": search.collection_id,
            "model_version": search.model_version,
            "similarity_scale": similarity_scale_of(search.model_version),
            "threshold": search.threshold,
            "max_faces": search.max_faces,
            "probe_sha256": search.probe_sha256,
            "probe_face_id": search.probe_face_id,
            "probe_user_id": search.probe_user_id,
            "candidates": [c.to_json() for c in search.candidates],
            "started_at": search.started_at,
        }
        rec = self.log.append("search", data)
        if search.candidates:
            self.reviews.add_leads(rec.seq, data)
        return rec

    def probe_path(self, sha256: str) -> Optional[Path]:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            return None
        path = self.probe_dir / sha256[:2] / sha256
        return path if path.is_file() else None

    def _keep_probe(self, sha256: str, data: bytes) -> None:
        """Store the probe once, by content hash (0600); safe under concurrent threads and workers."""
        dest = self.probe_dir / sha256[:2] / sha256
        if dest.exists():
            return
        write_private(dest, data)  # same content whoever wins

    @staticmethod
    def _who(ctx: CallerContext) -> Dict[str, Any]:
        return {
            "access_key_id": ctx.access_key_id, "role": ctx.role, "source": ctx.source,
            "request_id": ctx.request_id, "case_reference": ctx.case_reference, "purpose": ctx.purpose,
        }

    # -- review ------------------------------------------------------------------

    def leads(self, status: Optional[str] = None, limit: int = 100) -> List[Lead]:
        return self.reviews.list(status, limit)

    def decide(self, lead_id: str, reviewer: str, decision: str, note: str = "") -> Lead:
        return self.reviews.decide(lead_id, reviewer, decision, note)
