"""Accountability by construction: tamper-evident search log, threshold policies, human review.

    from faceaudit.accountability import Accountability, CallerContext, SearchRecord, Candidate
    acc = Accountability(data_dir)
    acc.authorize(ctx, "SearchFacesByImage", "mugshots", threshold=99, max_faces=10)
    acc.record(ctx, SearchRecord(...), probe=image_bytes)
    acc.decide(lead_id, reviewer="alice", decision="confirm")
    acc.log.verify()
"""

from faceaudit._errors import AcknowledgedRecordsMissingError
from faceaudit.accountability._accountability import (
    Accountability,
    CallerContext,
    Candidate,
    SearchRecord,
)
from faceaudit.accountability._anchors import (
    AnchorCheck,
    AnchorReport,
    DeploymentKey,
    check_anchors,
    issue_anchor,
)
from faceaudit.accountability._copy import AccountabilityCopy, copy_accountability
from faceaudit.accountability._guard import guarded
from faceaudit.accountability._holds import DELETING_OPERATIONS, guard_deletion, on_legal_hold
from faceaudit.accountability._http import TARGET_PREFIX, AccountabilityExtension
from faceaudit.accountability._identification import (
    Identification,
    candidates_of,
    guard_request,
    identification,
    identification_operations,
)
from faceaudit.accountability._log import (
    GENESIS,
    LogIntegrityError,
    LogRecord,
    PostgresSearchLog,
    Repair,
    SearchLog,
    VerifyResult,
    export_records,
    record_hash,
)
from faceaudit.accountability._policy import (
    DEFAULT_POLICY_ID,
    PolicyMeaning,
    PolicyViolationError,
    ThresholdPolicy,
    policy_meaning,
)
from faceaudit.accountability._retention import DailyRetention, Retention, RetentionReport, RetentionRule
from faceaudit.accountability._review import CONFIRMATIONS_REQUIRED, LEAD_NOTICE, Decision, Lead, Reviewer
from faceaudit.accountability._roles import NATIVE_OPERATIONS, REVIEWER_ROLES, authorize
from faceaudit.accountability._testing import TestingAPI
from faceaudit.accountability._usage import parse_day, render_html, usage_report
from faceaudit.accountability._video import WARRANT_HEADER, VideoSearches, VideoSearchPolicy

__all__ = [
    "AccountabilityCopy", "copy_accountability",
    "DailyRetention", "Retention", "RetentionReport", "RetentionRule",
    "AnchorCheck", "AnchorReport", "DeploymentKey", "check_anchors", "issue_anchor",
    "Accountability", "AccountabilityExtension", "NATIVE_OPERATIONS", "TARGET_PREFIX", "TestingAPI", "authorize",
    "CONFIRMATIONS_REQUIRED", "CallerContext", "Candidate", "Decision", "GENESIS",
    "Identification", "identification", "identification_operations", "guard_request",
    "LEAD_NOTICE", "Lead", "Reviewer", "LogIntegrityError", "LogRecord", "Repair",
    "PolicyMeaning", "PolicyViolationError", "PostgresSearchLog", "SearchLog", "SearchRecord", "ThresholdPolicy",
    "VerifyResult",
    "candidates_of", "export_records", "guarded", "policy_meaning", "record_hash",
    "VideoSearchPolicy", "VideoSearches", "WARRANT_HEADER",
    "DEFAULT_POLICY_ID", "REVIEWER_ROLES", "parse_day", "render_html", "usage_report",
    "DELETING_OPERATIONS", "guard_deletion", "on_legal_hold", "AcknowledgedRecordsMissingError",
]
