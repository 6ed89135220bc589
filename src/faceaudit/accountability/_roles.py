"""What each key role may do. Enforced by the service for every request.

- admin: everything, including threshold policies.
- operator: the Rekognition operations, reading policies, reviewing leads.
- auditor: independent testing only (the testing API and DetectFaces): no access
  to any collection's faces, no searches, no leads.
"""

from __future__ import annotations

from faceaudit._errors import AccessDeniedError

NATIVE_OPERATIONS = {
    "PutCollectionPolicy": ("admin",),
    "GetCollectionPolicy": ("admin", "operator"),
    "PutVideoSearchPolicy": ("admin",),
    "GetVideoSearchPolicy": ("admin", "operator"),
    "ListLeads": ("admin", "operator"),
    "GetLead": ("admin", "operator"),
    "DecideLead": ("admin", "operator"),
    "StartAudit": ("admin", "auditor"),
    "DescribeAudit": ("admin", "auditor"),
    "ListAudits": ("admin", "auditor"),
    "GetAuditReport": ("admin", "auditor"),
}
"""faceaudit's own operations (``X-Amz-Target: FaceAuditService.<Operation>``) and who may call them."""

AUDITOR_REKOGNITION_OPERATIONS = frozenset({"DetectFaces"})
"""The only Rekognition operations an auditor key may call: none touches a collection."""

REVIEWER_ROLES = ("admin", "operator")


def authorize(role: str, operation: str, native: bool) -> None:
    """Raise AccessDeniedError unless ``role`` may run ``operation``."""
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
    if role == "auditor" and operation in AUDITOR_REKOGNITION_OPERATIONS:
        return
    raise AccessDeniedError(
        f"a key with role {role!r} may not call {operation}: auditor keys test the model through "
        "the testing API and never see a collection's faces"
    )
