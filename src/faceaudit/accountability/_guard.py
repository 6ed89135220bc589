"""One code path for every identification operation, from the CLI or over HTTP.

``guarded(...)`` checks the collection's policy (a refusal is logged and
raised), runs the operation, and appends the search record (probe hash,
threshold, candidates, the probe face's quality) before the result is handed
back. An operation that fails after the policy check is logged as ``failed``
with its error name. The probe face's quality reaches the guard while the
operation runs, between detection and search (:func:`faceaudit.engine.observe_probe`):
a probe below the policy's minimum quality is refused there, before any stored
face is compared (logged ``refused`` with the reason), or flagged.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from faceaudit._errors import FaceAuditError
from faceaudit.accountability._accountability import (
    Accountability,
    CallerContext,
    Candidate,
    SearchRecord,
)
from faceaudit.accountability._policy import PolicyViolationError, ThresholdPolicy
from faceaudit.accountability._probe_quality import LowQualityAction, ProbeQuality
from faceaudit.engine import Quality, observe_probe

R = TypeVar("R")


class _ProbeGate:
    """Receives the probe face's quality while the operation runs and applies the policy's minimum."""

    def __init__(self, policy: ThresholdPolicy | None) -> None:
        self.policy = policy
        self.quality: ProbeQuality | None = None
        self.flag = ""
        self.refusal: PolicyViolationError | None = None

    def __call__(self, quality: Quality) -> None:
        self.see(ProbeQuality.of(quality))

    def see(self, quality: ProbeQuality) -> None:
        if self.quality is not None:
            return  # one probe face per identification: the first reported
        self.quality = quality
        if self.policy is None or not self.policy.has_probe_minimum:
            return
        why = self.policy.probe_shortfall(quality)
        if not why:
            return
        if self.policy.on_low_quality is LowQualityAction.FLAG:
            self.flag = why
            return
        self.refusal = PolicyViolationError(
            f"collection {self.policy.collection_id!r} requires a better probe: {why} "
            "(a probe this small or poor is refused before it is searched)")
        raise self.refusal


def guarded(
    acc: Accountability,
    ctx: CallerContext,
    *,
    operation: str,
    collection_id: str | None,
    threshold: float,
    max_faces: int | None,
    model_version: str,
    probe: bytes | None,
    call: Callable[[], R],
    candidates: Callable[[R], Sequence[Candidate]],
    probe_sha256: str | None = None,
    probe_face_id: str | None = None,
    probe_user_id: str | None = None,
    model_version_of: Callable[[R], str] | None = None,
    gallery_size: int | None = None,
    index: str | None = None,
    probe_quality: ProbeQuality | None = None,
) -> R:
    """Authorize, run and log one identification operation; returns the operation's result.

    ``probe_quality``: the probe face's quality when the caller knows it before the call
    (a video search's best frame); otherwise the operation reports it while it runs.
    """
    acc.authorize(ctx, operation, collection_id, threshold, max_faces)
    started = round(time.time(), 6)
    if probe is not None and probe_sha256 is None:
        probe_sha256 = hashlib.sha256(probe).hexdigest()
    gate = _ProbeGate(acc.policy(collection_id) if collection_id else None)
    try:
        if probe_quality is not None:
            gate.see(probe_quality)
        with observe_probe(gate):
            result = call()
    except Exception as exc:  # every failure is logged; a bug logs as InternalServerError
        if exc is gate.refusal and gate.quality is not None:  # below the minimum probe quality
            acc.log.append("refused", {
                **acc._who(ctx), "operation": operation, "collection_id": collection_id,
                "threshold": threshold, "max_faces": max_faces, "probe_sha256": probe_sha256,
                "reason": exc.message, "probe_quality": gate.quality.to_json(), "started_at": started,
            })
            raise
        code = exc.aws_code if isinstance(exc, FaceAuditError) else "InternalServerError"
        acc.log.append("failed", {
            "access_key_id": ctx.access_key_id, "role": ctx.role, "source": ctx.source,
            "request_id": ctx.request_id, "operation": operation, "collection_id": collection_id,
            "threshold": threshold, "max_faces": max_faces, "probe_sha256": probe_sha256,
            "case_reference": ctx.case_reference, "purpose": ctx.purpose, "error": code,
            "started_at": started, "person": ctx.person, "audit": ctx.audit, "index": index,
            "probe_quality": None if gate.quality is None else gate.quality.to_json(),
        })
        raise
    acc.record(ctx, SearchRecord(
        operation=operation, collection_id=collection_id,
        model_version=model_version_of(result) if model_version_of else model_version,
        threshold=threshold, max_faces=max_faces, probe_sha256=probe_sha256,
        candidates=tuple(candidates(result)), started_at=started,
        probe_face_id=probe_face_id, probe_user_id=probe_user_id, gallery_size=gallery_size,
        index=index,
        probe_quality=gate.quality, quality_flag=gate.flag,
    ), probe=probe)
    return result
