"""What each key role may do. Enforced by the service for every request.

- admin: everything, including threshold policies.
- operator: the Rekognition operations, reading policies, reviewing leads.
- auditor: independent testing only (the testing API and DetectFaces): no access
  to any collection's faces, no searches, no leads. Two exceptions: an audit run with
  ``faceaudit audit --engine rekognition`` (requests signed with ``x-faceaudit-audit: 1``)
  may create collections and index, search, describe and delete those it created
  (:data:`AUDIT_ENGINE_OPERATIONS`); and, as admins, auditors may read any stored-video
  job's results (GetFaceSearch, GetFaceDetection; each read is logged).
- reviewer: decides on leads (and reads them and policies); never searches, never
  touches a collection through the Rekognition API.
"""

from __future__ import annotations

from faceaudit._errors import AccessDeniedError

NATIVE_OPERATIONS = {
    "PutCollectionPolicy": ("admin",),
    "GetCollectionPolicy": ("admin", "operator", "reviewer"),
    "PutDefaultPolicy": ("admin",),
    "PutVideoSearchPolicy": ("admin",),
    "GetVideoSearchPolicy": ("admin", "operator", "reviewer"),
    "ListCollectionPolicies": ("admin", "operator", "reviewer"),
    "ListLeads": ("admin", "operator", "reviewer"),
    "GetLead": ("admin", "operator", "reviewer"),
    "DecideLead": ("admin", "operator", "reviewer"),
    "StartAudit": ("admin", "auditor"),
    "DescribeAudit": ("admin", "auditor"),
    "ListAudits": ("admin", "auditor"),
    "GetAuditReport": ("admin", "auditor"),
}
"""faceaudit's own operations (``X-Amz-Target: FaceAuditService.<Operation>``) and who may call them."""

AUDITOR_REKOGNITION_OPERATIONS = frozenset({"DetectFaces", "GetFaceSearch", "GetFaceDetection"})
"""The Rekognition operations an auditor key may always call (the video reads are logged)."""
AUDIT_ENGINE_OPERATIONS = frozenset({
    "CreateCollection", "IndexFaces", "DescribeCollection", "SearchFacesByImage", "DeleteCollection"})
"""What the rekognition audit engine calls: an auditor key may, with the audit header, on the
collections it created with it (checked by the accountability layer)."""

REVIEWER_ROLES = ("admin", "operator", "reviewer")


def authorize(role: str, operation: str, native: bool, audit: bool = False) -> None:
    """Raise AccessDeniedError unless ``role`` may run ``operation`` (``audit``: the request
    carries the audit header)."""
    if native:
        allowed = NATIVE_OPERATIONS.get(operation, ())
        if role not in allowed:
            raise AccessDeniedError(
                f"a key with role {role!r} may not call {operation}"
                + (f" (allowed: {', '.join(allowed)})" if allowed else "")
            )
        return
    if role in ("admin", "operator"):
        return
    if role == "auditor" and (operation in AUDITOR_REKOGNITION_OPERATIONS
                              or (audit and operation in AUDIT_ENGINE_OPERATIONS)):
        return
    if role == "reviewer":
        raise AccessDeniedError(
            f"a key with role 'reviewer' may not call {operation}: reviewers decide on leads and never search"
        )
    raise AccessDeniedError(
        f"a key with role {role!r} may not call {operation}: auditor keys test the model through "
        "the testing API and never see a collection's faces"
    )
