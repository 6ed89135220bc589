"""One code path for every identification operation, from the CLI or over HTTP.

``guarded(...)`` checks the collection's policy (a refusal is logged and
raised), runs the operation, and appends the search record (probe hash,
threshold, candidates) before the result is handed back. An operation that
fails after the policy check is logged as ``failed`` with its error name.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable, Optional, Sequence, TypeVar

from faceaudit._errors import FaceAuditError
from faceaudit.accountability._accountability import (
    Accountability,
    CallerContext,
    Candidate,
    SearchRecord,
)

R = TypeVar("R")


def guarded(
    acc: Accountability,
    ctx: CallerContext,
    *,
    operation: str,
    collection_id: Optional[str],
    threshold: float,
    max_faces: Optional[int],
    model_version: str,
    probe: Optional[bytes],
    call: Callable[[], R],
    candidates: Callable[[R], Sequence[Candidate]],
    probe_sha256: Optional[str] = None,
    probe_face_id: Optional[str] = None,
    probe_user_id: Optional[str] = None,
    model_version_of: Optional[Callable[[R], str]] = None,
    gallery_size: Optional[int] = None,
    index: Optional[str] = None,
) -> R:
    """Authorize, run and log one identification operation; returns the operation's result."""
    acc.authorize(ctx, operation, collection_id, threshold, max_faces)
    started = round(time.time(), 6)
    if probe is not None and probe_sha256 is None:
        probe_sha256 = hashlib.sha256(probe).hexdigest()
    try:
        result = call()
    except Exception as exc:  # every failure is logged; a bug logs as InternalServerError
        code = exc.aws_code if isinstance(exc, FaceAuditError) else "InternalServerError"
        acc.log.append("failed", {
            "access_key_id": ctx.access_key_id, "role": ctx.role, "source": ctx.source,
            "request_id": ctx.request_id, "operation": operation, "collection_id": collection_id,
            "threshold": threshold, "max_faces": max_faces, "probe_sha256": probe_sha256,
            "case_reference": ctx.case_reference, "purpose": ctx.purpose, "error": code,
            "started_at": started, "person": ctx.person, "audit": ctx.audit, "index": index,
        })
        raise
    acc.record(ctx, SearchRecord(
        operation=operation, collection_id=collection_id,
        model_version=model_version_of(result) if model_version_of else model_version,
        threshold=threshold, max_faces=max_faces, probe_sha256=probe_sha256,
        candidates=tuple(candidates(result)), started_at=started,
        probe_face_id=probe_face_id, probe_user_id=probe_user_id, gallery_size=gallery_size,
        index=index,
    ), probe=probe)
    return result
