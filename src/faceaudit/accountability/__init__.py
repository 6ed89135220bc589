"""Accountability by construction: tamper-evident search log, threshold policies, human review.

    from faceaudit.accountability import Accountability, CallerContext, SearchRecord, Candidate
    acc = Accountability(data_dir)
    acc.authorize(ctx, "SearchFacesByImage", "mugshots", threshold=99, max_faces=10)
    acc.record(ctx, SearchRecord(...), probe=image_bytes)
    acc.decide(lead_id, reviewer="alice", decision="confirm")
    acc.log.verify()
"""

from faceaudit.accountability._accountability import (
    IDENTIFICATION_OPERATIONS,
    Accountability,
    CallerContext,
    Candidate,
    SearchRecord,
)
from faceaudit.accountability._guard import compare_candidates, guarded
from faceaudit.accountability._http import TARGET_PREFIX, AccountabilityExtension, candidates_of
from faceaudit.accountability._log import (
    GENESIS,
    LogIntegrityError,
    LogRecord,
    SearchLog,
    VerifyResult,
    export_records,
    record_hash,
)
from faceaudit.accountability._policy import (
    PolicyMeaning,
    PolicyViolationError,
    ThresholdPolicy,
    policy_meaning,
)
from faceaudit.accountability._review import CONFIRMATIONS_REQUIRED, LEAD_NOTICE, Decision, Lead
from faceaudit.accountability._roles import NATIVE_OPERATIONS, authorize
from faceaudit.accountability._testing import TestingAPI
from faceaudit.accountability._video import WARRANT_HEADER, VideoSearches, VideoSearchPolicy

__all__ = [
    "Accountability", "AccountabilityExtension", "NATIVE_OPERATIONS", "TARGET_PREFIX", "TestingAPI", "authorize", "CONFIRMATIONS_REQUIRED", "CallerContext", "Candidate", "Decision", "GENESIS",
    "IDENTIFICATION_OPERATIONS", "LEAD_NOTICE", "Lead", "LogIntegrityError", "LogRecord",
    "PolicyMeaning", "PolicyViolationError", "SearchLog", "SearchRecord", "ThresholdPolicy", "VerifyResult",
    "candidates_of", "compare_candidates", "export_records", "guarded", "policy_meaning", "record_hash",
    "VideoSearchPolicy", "VideoSearches", "WARRANT_HEADER",
]
