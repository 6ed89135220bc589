"""The accountability layer over HTTP: a :class:`faceaudit.service.ServiceExtension`.

- every request is authorised for its key's role (:mod:`._roles`);
- identification operations (every operation that returns a similarity between a
  probe and stored faces, decided by :func:`identification` from the API model)
  run through :func:`guard_request`: policy check, then the call, then the
  hash-chained log record and one lead per candidate at or above the threshold.
  The case reference and purpose come from the ``x-faceaudit-case-reference``
  and ``x-faceaudit-purpose`` headers (sign them with the request);
- StartFaceSearch (a face search of stored video) needs a warrant or court-order
  reference in ``x-faceaudit-warrant`` unless the collection's video-search
  policy says otherwise; every person found is logged (:mod:`._video`);
- faceaudit's own JSON operations (``X-Amz-Target: FaceAuditService.<Op>``):
  policies, leads and review decisions, and the testing API for auditors;
- the review web page under ``/review`` (:mod:`._review_web`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from faceaudit._errors import AccessDeniedError, InvalidParameterError, ResourceNotFoundError
from faceaudit.accountability._accountability import Accountability, CallerContext
from faceaudit.accountability._holds import DELETING_OPERATIONS, guard_deletion
from faceaudit.accountability._identification import guard_request
from faceaudit.accountability._policy import DEFAULT_POLICY_ID, ThresholdPolicy
from faceaudit.accountability._probe_quality import MAX_MIN_EYE_DISTANCE_PX, LowQualityAction, check_band
from faceaudit.accountability._review import Reviewer, same_person
from faceaudit.accountability._roles import AUDIT_ENGINE_OPERATIONS, NATIVE_OPERATIONS, authorize
from faceaudit.accountability._video import WARRANT_HEADER, VideoSearches, VideoSearchPolicy

if TYPE_CHECKING:
    from faceaudit.accountability._review_web import ReviewWeb

TARGET_PREFIX = "FaceAuditService"
VIDEO_READS = frozenset({"GetFaceSearch", "GetFaceDetection", "StartFaceDetection"})
"""Stored-video operations that compare no face with a collection (GetFaceSearch reads the
results of a StartFaceSearch, whose every person was logged before the job could succeed)."""
CASE_HEADER = "x-faceaudit-case-reference"
PURPOSE_HEADER = "x-faceaudit-purpose"
AUDIT_HEADER = "x-faceaudit-audit"
"""``1`` on an audit's own requests (the rekognition audit engine signs it), honoured only from
auditor keys: a collection an auditor creates with it is the audit's, the same key may index,
search, describe and delete it, and those searches are logged but make no leads. From any other
role the header is refused (AccessDeniedException) and the refusal logged: an operator cannot
make its own searches audit traffic."""
VIDEO_RESULTS = frozenset({"GetFaceSearch", "GetFaceDetection"})
"""Reads of a stored-video job's results: only its caller (key or person), admins and auditors;
each read is logged as a ``disclosure``."""
JOB_READER_ROLES = ("admin", "auditor")
MAX_CONTEXT_CHARS = 256


class AccountabilityExtension:
    """Plugs the search log, policies, review and the testing API into ``faceaudit serve``."""

    target_prefix = TARGET_PREFIX
    operations: frozenset[str] = frozenset(NATIVE_OPERATIONS)

    def __init__(
        self,
        data_dir: str | Path,
        keys: Any = None,
        face_image: Callable[[str], bytes | None] | None = None,
        testing: Any = None,
        daily_retention: bool = False,
        database_url: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.acc = Accountability(self.data_dir, face_image=face_image, database_url=database_url)
        self._keys = keys
        self._testing = testing
        self._web: ReviewWeb | None = None
        self._daily_retention = daily_retention
        self._retention_pid: int | None = None
        self.videos = VideoSearches(self.acc)

    # -- ServiceExtension ------------------------------------------------------------------

    def authorize(self, caller, operation: str, native: bool) -> None:
        self._start_retention()
        audit = caller.header(AUDIT_HEADER).strip() == "1"
        if audit and caller.role != "auditor":
            ctx = self.context(caller)
            reason = (f"the {AUDIT_HEADER} header is honoured only from auditor keys (run `faceaudit audit "
                      "--engine rekognition` with an auditor key); a key with role "
                      f"{caller.role!r} cannot make its requests audit traffic")
            self.acc.log.append("refused", {**self.acc._who(ctx), "operation": operation, "reason": reason})
            raise AccessDeniedError(reason)
        authorize(caller.role, operation, native, audit=audit)

    def check_health(self) -> None:
        """Readiness of the search log and the policy/lead store (see :meth:`Accountability.check_health`)."""
        self.acc.check_health()

    def _start_retention(self) -> None:
        """Start the daily retention thread in this worker process (after the fork, never before)."""
        if self._daily_retention and self._retention_pid != os.getpid():
            from faceaudit.accountability._retention import DailyRetention

            self._retention_pid = os.getpid()
            DailyRetention(self.data_dir, database_url=self.database_url).start()

    def context(self, caller) -> CallerContext:
        case = caller.header(CASE_HEADER).strip()
        purpose = caller.header(PURPOSE_HEADER).strip()
        if len(case) > MAX_CONTEXT_CHARS or len(purpose) > MAX_CONTEXT_CHARS:
            raise InvalidParameterError(
                f"{CASE_HEADER} and {PURPOSE_HEADER} are at most {MAX_CONTEXT_CHARS} characters"
            )
        return CallerContext(access_key_id=caller.access_key_id, role=caller.role, case_reference=case,
                             purpose=purpose, source="http", request_id=caller.request_id,
                             person=self._person(caller.access_key_id),
                             client=caller.remote)

    def _key_store(self):
        if self._keys is None:
            from faceaudit.service import KeyStore

            self._keys = KeyStore(self.data_dir, database_url=self.database_url)
        return self._keys

    def _person(self, access_key_id: str) -> str:
        key = self._key_store().lookup(access_key_id)
        return key.person if key is not None else ""

    def wrap(self, caller, operation: str, params: Mapping[str, Any], call, model_version):
        """Every identification (decided by :func:`identification`) is checked, logged and reviewed."""
        if operation == "StartFaceSearch":  # identifies everyone in the footage: warrant, log, leads
            return self._start_face_search(caller, params, call)
        ctx = self.context(caller)
        if operation in VIDEO_RESULTS:  # no new comparison, but a disclosure: owner or admin/auditor
            return self._read_video_job(ctx, operation, params, call)
        if operation in VIDEO_READS:  # StartFaceDetection: the job belongs to its caller
            from faceaudit.collections import requested_by

            with requested_by(self.acc._who(ctx)):
                return call()
        audit = caller.header(AUDIT_HEADER).strip() == "1"  # only an auditor's gets this far
        if operation == "CreateCollection":
            result = call()
            self.acc.mark_audit_collection(ctx, params["CollectionId"], audit)
            return result
        if ctx.role == "auditor" and operation in AUDIT_ENGINE_OPERATIONS and not (
                audit and self.acc.is_audit_collection(params.get("CollectionId"), ctx.access_key_id)):
            raise AccessDeniedError("an auditor key may touch only the collections it created for an "
                                    f"audit (with the {AUDIT_HEADER} header)")
        if operation in ("TagResource", "UntagResource"):  # a faceaudit:index change is logged too
            untagged = call
            call = lambda: self._tagging(ctx, operation, params, untagged)  # noqa: E731
        if audit and self.acc.is_audit_collection(params.get("CollectionId"), ctx.access_key_id):
            ctx = replace(ctx, audit=True)
        if operation in DELETING_OPERATIONS:  # refused under a legal hold; every deletion logged
            return guard_deletion(self.acc, ctx, operation, params, call, response_of=lambda r: r[0])
        return guard_request(
            self.acc, ctx, operation, params, call, response_of=lambda r: r[0],
            model_version=lambda r: str(r[0].get("FaceModelVersion") or model_version()),
            gallery_size=self._gallery_size, probe_of_face=self.acc.face_image,
            rebuild=lambda r, doc: (doc, *r[1:]),
            index_of=self._index_kind,
        )

    def _read_video_job(self, ctx: CallerContext, operation: str, params: Mapping[str, Any], call):
        """A stored-video job's results: refused (as if there were no such job, and logged) unless
        the caller started the job (same key or same person) or is an admin or auditor; every read
        is a ``disclosure`` record (who, job, what it showed)."""
        job_id = params.get("JobId")
        started_by = self.acc.collections().video_job_requester(job_id) if isinstance(job_id, str) else None
        if started_by is not None and ctx.role not in JOB_READER_ROLES and not (
                started_by.get("access_key_id") == ctx.access_key_id
                or same_person(started_by.get("person"), ctx.person)):
            self.acc.log.append("refused", {**self.acc._who(ctx), "operation": operation, "job_id": job_id,
                                            "reason": "the stored-video job belongs to another key"})
            raise ResourceNotFoundError(f"no stored-video job with JobId {job_id!r}")
        result = call()
        doc = result[0]
        items = doc.get("Persons") if operation == "GetFaceSearch" else doc.get("Faces")
        faces = sorted({m["Face"]["FaceId"] for p in (doc.get("Persons") or [])
                        for m in p.get("FaceMatches") or [] if m.get("Face", {}).get("FaceId")})
        self.acc.log.append("disclosure", {
            **self.acc._who(ctx), "operation": operation, "job_id": job_id,
            "job_started_by": (started_by or {}).get("access_key_id", ""),
            "collection_id": (started_by or {}).get("collection_id"), "job_status": doc.get("JobStatus"),
            "items": len(items or []), "face_ids": faces, "next_token": bool(doc.get("NextToken"))})
        return result

    def _gallery_size(self, collection_id: str) -> int | None:
        from faceaudit._errors import FaceAuditError

        try:
            return self.acc.collections().describe_collection(collection_id=collection_id).face_count
        except FaceAuditError:
            return None

    def _tagging(self, ctx, operation: str, params: Mapping[str, Any], call):
        """TagResource/UntagResource; a change of the faceaudit:index tag (which index, exact or
        approximate, serves the collection's searches) is logged with the kind before and after."""
        from faceaudit._errors import FaceAuditError
        from faceaudit.collections import INDEX_TAG

        tags = params.get("Tags") or {}
        touched = INDEX_TAG in tags if operation == "TagResource" else INDEX_TAG in (params.get("TagKeys") or ())
        if not touched:
            return call()
        try:
            name = self.acc.collections().collection_of_arn(params.get("ResourceArn", ""))
        except FaceAuditError:
            return call()  # the backend answers ResourceNotFoundException itself
        before = self._index_kind(name)
        result = call()
        self.acc.record_index_tag(ctx, operation, name, tags.get(INDEX_TAG) if operation == "TagResource" else None,
                                  before, self._index_kind(name))
        return result

    def _index_kind(self, collection_id: str) -> str | None:
        from faceaudit._errors import FaceAuditError

        try:
            return self.acc.collections().index_kind(collection_id)
        except FaceAuditError:
            return None

    def _start_face_search(self, caller, params: Mapping[str, Any], call):
        from faceaudit._defaults import DEFAULT_VIDEO_MAX_FACES
        from faceaudit.accountability._identification import identification

        return self.videos.start(
            self.context(caller), caller.header(WARRANT_HEADER),
            collection_id=_string(params, "CollectionId", required=True),
            threshold=identification("StartFaceSearch").threshold(params),  # type: ignore[union-attr]  # it is one
            max_faces=DEFAULT_VIDEO_MAX_FACES, video=params.get("Video"), call=call,
            job_id_of=lambda r: r[0].get("JobId", ""),
        )

    def body_limit(self, operation: str) -> int:
        if operation == "StartAudit" and self._testing is not None:
            return self._testing.body_limit
        return 1024 * 1024

    def call(self, caller, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation in ("StartAudit", "DescribeAudit", "ListAudits", "GetAuditReport"):
            if self._testing is None:
                raise InvalidParameterError("the testing API is not enabled on this server")
            return self._testing.call(caller, operation, params)
        return getattr(self, "_op_" + _snake(operation))(caller, params)

    def handle_path(self, request, request_id: str):
        if not (request.raw_path == "/review" or request.raw_path.startswith("/review/")):
            return None
        if self._web is None:
            from faceaudit.accountability._review_web import ReviewWeb

            self._web = ReviewWeb(self.data_dir, self.acc, self._key_store())
        return self._web.handle(request, request_id)

    # -- faceaudit's own operations --------------------------------------------------------

    def _op_put_collection_policy(self, caller, params) -> dict[str, Any]:
        policy = _policy_of(params, _string(params, "CollectionId", required=True))
        stamped = self.acc.set_policy(policy, self.context(caller))
        return {"Policy": stamped.to_json()}

    def _op_put_default_policy(self, caller, params) -> dict[str, Any]:
        stamped = self.acc.set_default_policy(_policy_of(params, DEFAULT_POLICY_ID), self.context(caller))
        return {"Policy": stamped.to_json()}

    def _op_list_collection_policies(self, caller, params) -> dict[str, Any]:
        return {"DefaultPolicy": self.acc.default_policy().to_json(),
                "Policies": [p.to_json() for p in self.acc.policy_listing()]}

    def _op_get_collection_policy(self, caller, params) -> dict[str, Any]:
        return {"Policy": self.acc.policy(_string(params, "CollectionId", required=True)).to_json()}

    def _op_put_video_search_policy(self, caller, params) -> dict[str, Any]:
        required = params.get("WarrantRequired", True)
        if not isinstance(required, bool):
            raise InvalidParameterError("WarrantRequired must be true or false")
        policy = VideoSearchPolicy(_string(params, "CollectionId", required=True), required)
        return {"Policy": self.videos.set_policy(policy, self.context(caller)).to_json()}

    def _op_get_video_search_policy(self, caller, params) -> dict[str, Any]:
        return {"Policy": self.videos.policy(_string(params, "CollectionId", required=True)).to_json()}

    def _op_list_leads(self, caller, params) -> dict[str, Any]:
        status = _string(params, "Status")
        limit = _integer(params, "MaxResults", 1, 1000) or 100
        leads = self.acc.leads(status, limit, collection_id=_string(params, "CollectionId"),
                               case_reference=_string(params, "CaseReference"))
        return {"Leads": [lead.to_json() for lead in leads]}

    def _op_get_lead(self, caller, params) -> dict[str, Any]:
        return {"Lead": self.acc.reviews.get(_string(params, "LeadId", required=True)).to_json()}

    def _op_decide_lead(self, caller, params) -> dict[str, Any]:
        reviewer = Reviewer(caller.access_key_id, self._person(caller.access_key_id))
        lead = self.acc.decide(
            _string(params, "LeadId", required=True), reviewer,
            _string(params, "Decision", required=True), _string(params, "Note") or "",
        )
        return {"Lead": lead.to_json()}


def _policy_of(params, collection_id: str) -> ThresholdPolicy:
    return ThresholdPolicy(
        collection_id=collection_id,
        min_face_match_threshold=_number(params, "MinFaceMatchThreshold", 0, 100),
        max_false_match_rate=_number(params, "MaxFalseMatchRate", 1e-7, 1),
        max_faces=_integer(params, "MaxFaces", 1, 4096),
        require_case_reference=bool(params.get("RequireCaseReference", False)),
        purpose=_string(params, "Purpose") or "",
        min_eye_distance_px=_number(params, "MinEyeDistance", 0, MAX_MIN_EYE_DISTANCE_PX),
        min_probe_quality=None if params.get("MinProbeQuality") is None else check_band(params["MinProbeQuality"]),
        on_low_quality=LowQualityAction.parse(params.get("OnLowQuality", LowQualityAction.REFUSE.value)),
    )


def _snake(name: str) -> str:
    from botocore import xform_name

    return xform_name(name)


@overload
def _string(params: Mapping[str, Any], name: str, required: Literal[True]) -> str: ...


@overload
def _string(params: Mapping[str, Any], name: str, required: bool = False) -> str | None: ...


def _string(params: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidParameterError(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidParameterError(f"{name} must be a string of at most 2048 characters")
    return value


def _number(params, name, lo, hi) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be a number from {lo} to {hi}")
    return float(value)


def _integer(params, name, lo, hi) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be an integer from {lo} to {hi}")
    return value
