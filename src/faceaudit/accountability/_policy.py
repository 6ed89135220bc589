"""Threshold policies per collection, set by admin keys only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from faceaudit._errors import AccessDeniedError, InvalidParameterError
from faceaudit.accountability._store import Store


DEFAULT_POLICY_ID = "*"
"""The policies-table key of the deployment-wide default (no collection id can be ``*``)."""


class PolicyViolationError(AccessDeniedError):
    """A request falls below its collection's policy (e.g. FaceMatchThreshold under the minimum)."""


@dataclass(frozen=True)
class ThresholdPolicy:
    """What a collection's searches must respect.

    min_face_match_threshold: lowest allowed FaceMatchThreshold / similarity threshold (0-100),
        e.g. 99 for a collection used by law enforcement (Amazon's own advice).
    max_faces: most candidates one search may return.
    require_case_reference: searches must carry a case reference (and a purpose).
    purpose: what the collection is for (e.g. "law-enforcement"), shown in reports.
    """

    collection_id: str
    min_face_match_threshold: Optional[float] = None
    max_faces: Optional[int] = None
    require_case_reference: bool = False
    purpose: str = ""
    set_by: str = ""
    set_at: float = 0.0
    source: str = "collection"  # "collection" (its own), "default" (the deployment's) or "none"

    def to_json(self) -> Dict[str, Any]:
        return {
            "CollectionId": self.collection_id,
            "MinFaceMatchThreshold": self.min_face_match_threshold,
            "MaxFaces": self.max_faces,
            "RequireCaseReference": self.require_case_reference,
            "Purpose": self.purpose,
            "SetBy": self.set_by,
            "SetAt": self.set_at,
            "Source": self.source,
        }

    def check(self, threshold: float, max_faces: Optional[int], case_reference: Optional[str]) -> None:
        """Raise :class:`PolicyViolationError` when a search request breaks this policy."""
        if self.min_face_match_threshold is not None and threshold < self.min_face_match_threshold:
            raise PolicyViolationError(
                f"collection {self.collection_id!r} requires a match threshold of at least "
                f"{self.min_face_match_threshold:g}; the request used {threshold:g}"
            )
        if self.max_faces is not None and max_faces is not None and max_faces > self.max_faces:
            raise PolicyViolationError(
                f"collection {self.collection_id!r} allows at most {self.max_faces} candidates per "
                f"search; the request asked for {max_faces}"
            )
        if self.require_case_reference and not (case_reference or "").strip():
            raise PolicyViolationError(
                f"collection {self.collection_id!r} requires a case reference for every search "
                "(request tag 'faceaudit:case' or header x-faceaudit-case-reference)"
            )


class PolicyStore:
    """Reads and writes policies; only the admin role may write."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, collection_id: str) -> ThresholdPolicy:
        """The collection's own policy, else the deployment's default (``source`` says which)."""
        conn = self._store.read()
        row = conn.execute("SELECT * FROM policies WHERE collection_id = ?", (collection_id,)).fetchone()
        source = "default" if collection_id == DEFAULT_POLICY_ID else "collection"
        if row is None and collection_id != DEFAULT_POLICY_ID:
            row = conn.execute("SELECT * FROM policies WHERE collection_id = ?", (DEFAULT_POLICY_ID,)).fetchone()
            source = "default"
        if row is None:
            return ThresholdPolicy(collection_id=collection_id, source="none")
        return ThresholdPolicy(
            source=source,
            collection_id=collection_id,
            min_face_match_threshold=row["min_face_match_threshold"],
            max_faces=row["max_faces"],
            require_case_reference=bool(row["require_case_reference"]),
            purpose=row["purpose"],
            set_by=row["set_by"],
            set_at=row["set_at"],
        )

    def set(self, policy: ThresholdPolicy, *, role: str, actor: str) -> ThresholdPolicy:
        if role != "admin":
            raise AccessDeniedError("only an admin key may change a collection's policy")
        if policy.min_face_match_threshold is not None and not 0 <= policy.min_face_match_threshold <= 100:
            raise InvalidParameterError("MinFaceMatchThreshold must be from 0 to 100")
        if policy.max_faces is not None and not 1 <= policy.max_faces <= 4096:
            raise InvalidParameterError("MaxFaces must be from 1 to 4096")
        stamped = ThresholdPolicy(
            policy.collection_id, policy.min_face_match_threshold, policy.max_faces,
            policy.require_case_reference, policy.purpose, actor, round(time.time(), 3),
            source="default" if policy.collection_id == DEFAULT_POLICY_ID else "collection",
        )
        with self._store.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stamped.collection_id, stamped.min_face_match_threshold, stamped.max_faces,
                 int(stamped.require_case_reference), stamped.purpose, actor, stamped.set_at),
            )
        return stamped
