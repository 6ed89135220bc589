"""The facade the service and the CLI use: policy checks, search records, leads, review."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from faceaudit._paths import check_private_dir
from faceaudit.accountability._files import write_private
from faceaudit.accountability._log import AnySearchLog, LogRecord, open_search_log
from faceaudit.accountability._policy import DEFAULT_POLICY_ID, PolicyStore, PolicyViolationError, ThresholdPolicy
from faceaudit.accountability._probe_quality import ProbeQuality
from faceaudit.accountability._review import Lead, Reviewer, ReviewQueue
from faceaudit.accountability._store import Store


@dataclass(frozen=True)
class CallerContext:
    """Who asks, and why. ``source`` is "http" or "cli".

    ``person``: the named person holding the key (may not review the search's leads).
    ``audit``: the request is an audit's own traffic (on a collection the audit made): logged,
    never a lead.
    """

    access_key_id: str
    role: str = "operator"
    case_reference: str = ""
    purpose: str = ""
    source: str = "cli"
    request_id: str = ""
    person: str = ""
    audit: bool = False
    client: str = ""  # the client's address over HTTP (a trusted proxy's X-Forwarded-For); "" from the CLI


@dataclass(frozen=True)
class Candidate:
    """One candidate of an identification search (similarity 0-100, higher is more alike)."""

    similarity: float
    face_id: str | None = None
    external_image_id: str | None = None
    user_id: str | None = None
    below_threshold: bool = False  # a similarity disclosed although it missed the threshold (no lead)
    withheld: bool = False  # below the collection policy's minimum: logged, not handed back

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"similarity": self.similarity}
        for key in ("face_id", "external_image_id", "user_id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.below_threshold:
            out["below_threshold"] = True
        if self.withheld:
            out["withheld"] = True
        return out


@dataclass(frozen=True)
class SearchRecord:
    """What one identification operation did, for the log."""

    operation: str
    collection_id: str | None
    model_version: str
    threshold: float
    max_faces: int | None
    probe_sha256: str | None
    candidates: Sequence[Candidate] = field(default_factory=tuple)
    started_at: float | None = None
    probe_face_id: str | None = None  # SearchFaces / SearchUsers by FaceId
    probe_user_id: str | None = None  # SearchUsers by UserId
    gallery_size: int | None = None  # faces in the searched collection
    index: str | None = None  # the index that served it: flat, milvus (exact), fastscan, hnsw (approximate)
    probe_quality: ProbeQuality | None = None  # the searched face's quality (None: not measured)
    quality_flag: str = ""  # why the probe is below the policy's minimum quality (flag mode)


def similarity_scale_of(model_version: str | None) -> str | None:
    """The Similarity scale version of a FaceModelVersion (None when the model is unknown)."""
    from faceaudit._errors import FaceAuditError
    from faceaudit.engine import get_model

    if not model_version:
        return None
    try:
        return get_model(model_version).scale.version
    except FaceAuditError:
        return None


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class Accountability:
    """Search log, threshold policies and the review queue of one data dir (or, with
    ``database_url``, of every host of a deployment on that database)."""

    def __init__(self, data_dir: str | os.PathLike[str],
                 face_image: Callable[[str], bytes | None] | None = None,
                 database_url: str | None = None) -> None:
        """``database_url`` (``postgresql://...``): everything every host must share lives in
        that database: the search log, one chain for every host (:class:`PostgresSearchLog`),
        policies, leads, decisions, retention rules, review sessions and their signing key, and
        the probe images kept for review. Without it: ``search-log.jsonl``, ``accountability.db``
        and ``probes/`` in the data dir, as always."""
        self.data_dir = Path(data_dir)
        if self.data_dir.is_dir():
            check_private_dir(self.data_dir)  # UnsafePermissionsError: open to other local users
        self._face_image = face_image
        self._collections: Any = None
        self._collections_provider: Callable[[], Any] | None = None
        self.log: AnySearchLog = open_search_log(self.data_dir, database_url)
        self.database_url = database_url
        self._store = Store(self.data_dir / "accountability.db", database_url)
        self.policies = PolicyStore(self._store)
        self.reviews = ReviewQueue(self._store, self.log)
        self.probe_dir = self.data_dir / "probes"

    def check_health(self) -> None:
        """Readiness: the search log's head and the policy/lead store answer one read each (an
        exception when either does not)."""
        self.log.head()
        self._store.read().execute("SELECT 1").fetchone()

    # -- policy ------------------------------------------------------------------

    def policy(self, collection_id: str) -> ThresholdPolicy:
        return self.policies.get(collection_id)

    def set_policy(self, policy: ThresholdPolicy, ctx: CallerContext) -> ThresholdPolicy:
        stamped = self.policies.set(policy, role=ctx.role, actor=ctx.access_key_id)
        self.log.append("policy", {"access_key_id": ctx.access_key_id, "policy": stamped.to_json()})
        return stamped

    def default_policy(self) -> ThresholdPolicy:
        """The deployment-wide default: it applies to every collection without a policy of its own."""
        return self.policies.get(DEFAULT_POLICY_ID)

    def set_default_policy(self, policy: ThresholdPolicy, ctx: CallerContext) -> ThresholdPolicy:
        return self.set_policy(replace(policy, collection_id=DEFAULT_POLICY_ID), ctx)

    def policy_listing(self) -> list[ThresholdPolicy]:
        """Every collection's policy (its own, the default's, or none), collections in name order."""
        fc, ids, token = self.collections(), [], None
        while True:
            page = fc.list_collections(next_token=token)
            ids.extend(page.collection_ids)
            token = page.next_token
            if not token:
                break
        return [self.policy(cid) for cid in sorted(ids)]

    def authorize(self, ctx: CallerContext, operation: str, collection_id: str | None,
                  threshold: float, max_faces: int | None) -> None:
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

    def record(self, ctx: CallerContext, search: SearchRecord, probe: bytes | None = None) -> LogRecord:
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
            "gallery_size": search.gallery_size,
            "index": search.index,
            "probe_quality": None if search.probe_quality is None else search.probe_quality.to_json(),
        }
        if search.quality_flag:
            data["quality_flag"] = search.quality_flag
        rec = self.log.append("search", data)
        self.reviews.catch_up()  # leads come from the log: a crash here loses none
        return rec

    def probe_path(self, sha256: str) -> Path | None:
        """The kept probe image with this SHA-256 as a file (None when not kept).

        With a database the database holds the probe (every host sees it); the file is this
        host's copy, made on demand (``faceaudit leads show`` names it) and removed once the
        database no longer holds the probe (retention deleted it on some host): by the next call
        here, or by :meth:`sweep_probe_copies` (every host's daily retention thread)."""
        if not _is_sha256(sha256):
            return None
        path = self.probe_dir / sha256[:2] / sha256
        if self._store.shared:
            data = self._store.probe(sha256)
            if data is None:
                path.unlink(missing_ok=True)
                return None
            if not path.is_file():
                write_private(path, data)  # same content whoever wins
            return path
        return path if path.is_file() else None

    def _keep_probe(self, sha256: str, data: bytes) -> None:
        """Store the probe once, by content hash (0600; with a database: a row of
        ``probe_images``); safe under concurrent threads, workers and hosts."""
        if self._store.shared:
            if not self._store.probe_kept(sha256):  # (the same probe searched again: no re-upload)
                self._store.keep_probe(sha256, data, round(time.time(), 3))
            return
        dest = self.probe_dir / sha256[:2] / sha256
        if dest.exists():
            return
        write_private(dest, data)  # same content whoever wins

    def probe_bytes(self, sha256: str) -> bytes | None:
        """The kept probe image with this SHA-256 (None when not kept); no file made."""
        if self._store.shared:
            return self._store.probe(sha256) if _is_sha256(sha256) else None
        path = self.probe_path(sha256)
        return path.read_bytes() if path is not None else None

    def sweep_probe_copies(self) -> int:
        """With a database: remove this host's copies of probes the database no longer holds
        (deleted by retention on another host); returns how many. Without one: 0."""
        if not self._store.shared:
            return 0
        removed = 0
        for path in self.probe_dir.glob("??/*"):
            if path.is_file() and not self._store.probe_kept(path.name):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def has_probe(self, sha256: str) -> bool:
        """Whether the probe with this SHA-256 is kept (without making a file of it)."""
        if self._store.shared:
            return _is_sha256(sha256) and self._store.probe_kept(sha256)
        return self.probe_path(sha256) is not None

    def delete_probe(self, sha256: str) -> None:
        """Delete a kept probe (retention): the file, and with a database its row."""
        if not _is_sha256(sha256):
            return
        if self._store.shared:
            self._store.forget_probe(sha256)
        (self.probe_dir / sha256[:2] / sha256).unlink(missing_ok=True)

    def session_signing_key(self) -> bytes | None:
        """The review sessions' HMAC key shared by every host (with a database; made once by
        the first host to ask), or None: the data dir keeps its own ``review-session.key``."""
        return self._store.secret("review-session") if self._store.shared else None

    @staticmethod
    def _who(ctx: CallerContext) -> dict[str, Any]:
        return {
            "access_key_id": ctx.access_key_id, "role": ctx.role, "source": ctx.source,
            "request_id": ctx.request_id, "case_reference": ctx.case_reference, "purpose": ctx.purpose,
            "person": ctx.person, "audit": ctx.audit, **({"client": ctx.client} if ctx.client else {}),
        }

    def record_index_tag(self, ctx: CallerContext, operation: str, collection_id: str,
                         tag: str | None, before: str | None, after: str | None) -> LogRecord:
        """Log a change of a collection's ``faceaudit:index`` tag (TagResource, or UntagResource:
        ``tag`` None) and the index kind that served its searches before and serves them after:
        which searches are exact is part of the record."""
        return self.log.append("index-tag", {
            **self._who(ctx), "operation": operation, "collection_id": collection_id, "tag": tag,
            "index_before": before, "index_after": after,
        })

    # -- audit traffic -------------------------------------------------------------

    def mark_audit_collection(self, ctx: CallerContext, collection_id: str, audit: bool) -> None:
        """Record whether a collection was just created for an audit (by ``ctx``'s key): the
        audit's searches on it make no leads. A collection created otherwise is never one."""
        with self._store.write() as conn:
            conn.execute("DELETE FROM audit_collections WHERE collection_id = ?", (collection_id,))
            if audit:
                conn.execute("INSERT INTO audit_collections VALUES (?, ?, ?)",
                             (collection_id, ctx.access_key_id, round(time.time(), 3)))
        if audit:
            self.log.append("audit-collection", {**self._who(ctx), "collection_id": collection_id})

    def is_audit_collection(self, collection_id: str | None, access_key_id: str) -> bool:
        if not collection_id:
            return False
        row = self._store.read().execute(
            "SELECT 1 FROM audit_collections WHERE collection_id = ? AND created_by = ?",
            (collection_id, access_key_id)).fetchone()
        return row is not None

    # -- review web sessions (server-side: signing out ends them everywhere) -------

    def open_session(self, access_key_id: str, seconds: int) -> str:
        session_id = secrets.token_urlsafe(24)
        with self._store.write() as conn:
            conn.execute("INSERT INTO review_sessions (session_id, access_key_id, expires) VALUES (?, ?, ?)",
                         (session_id, access_key_id, time.time() + seconds))
        return session_id

    def session_key(self, session_id: str) -> str | None:
        """The access key of a live session (not ended, not expired), or None."""
        row = self._store.read().execute(
            "SELECT access_key_id, expires, ended FROM review_sessions WHERE session_id = ?",
            (session_id,)).fetchone()
        if row is None or row["ended"] is not None or row["expires"] < time.time():
            return None
        return row["access_key_id"]

    def end_session(self, session_id: str) -> None:
        with self._store.write() as conn:
            conn.execute("UPDATE review_sessions SET ended = ? WHERE session_id = ? AND ended IS NULL",
                         (time.time(), session_id))

    def set_notice(self, session_id: str, notice: str) -> None:
        """A message for the session's next page (kept server-side: never text from a URL)."""
        with self._store.write() as conn:
            conn.execute("UPDATE review_sessions SET notice = ? WHERE session_id = ?", (notice[:500], session_id))

    def take_notice(self, session_id: str) -> str:
        with self._store.write() as conn:
            row = conn.execute("SELECT notice FROM review_sessions WHERE session_id = ?", (session_id,)).fetchone()
            conn.execute("UPDATE review_sessions SET notice = NULL WHERE session_id = ?", (session_id,))
        return (row["notice"] or "") if row else ""

    # -- review ------------------------------------------------------------------

    def leads(self, status: str | None = None, limit: int = 100, *, collection_id: str | None = None,
              case_reference: str | None = None) -> list[Lead]:
        return self.reviews.list(status, limit, collection_id=collection_id, case_reference=case_reference)

    def decide(self, lead_id: str, reviewer: Reviewer | str, decision: str, note: str = "") -> Lead:
        """One person's decision; a lead lacking its evidence (images) can only be rejected."""
        return self.reviews.decide(lead_id, reviewer, decision, note, missing_evidence=self.missing_evidence)

    def use_collections(self, provider: Callable[[], Any]) -> None:
        """Read collections through ``provider`` (the service's own backend, with the server's
        settings) instead of opening a FaceCollections of its own."""
        self._collections_provider = provider

    def collections(self) -> Any:
        """The data dir's :class:`faceaudit.collections.FaceCollections` (the one given to
        :meth:`use_collections`, else one opened on first use)."""
        if self._collections_provider is not None:
            return self._collections_provider()
        if self._collections is None:
            from faceaudit.collections import FaceCollections

            self._collections = FaceCollections(self.data_dir, database_url=self.database_url)
        return self._collections

    def face_image(self, face_id: str | None) -> bytes | None:
        """The stored face crop of a candidate (None when the face or its collection is gone)."""
        if not face_id:
            return None
        if self._face_image is not None:
            return self._face_image(face_id)
        return self.collections().face_thumbnail(face_id)

    def missing_evidence(self, lead: Lead) -> str:
        """Why a reviewer cannot compare the lead's two faces ("" when both images are there)."""
        if not self.has_probe(lead.probe_sha256):
            return "the probe image was not kept"
        if not lead.candidate_face_id:
            return "the candidate has no stored face image (a user or a compared image)"
        if not self.face_image(lead.candidate_face_id):
            return "the candidate's face is no longer stored (face or collection deleted)"
        return ""
