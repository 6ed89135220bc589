"""The accountability layer over HTTP: a :class:`faceaudit.service.ServiceExtension`.

- every request is authorised for its key's role (:mod:`._roles`);
- identification operations (SearchFaces, SearchFacesByImage, SearchUsers,
  SearchUsersByImage, CompareFaces) run through :func:`guarded`: policy check,
  then the call, then the hash-chained log record and one lead per candidate.
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
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple

from faceaudit._errors import InvalidParameterError
from faceaudit.accountability._accountability import (
    IDENTIFICATION_OPERATIONS,
    Accountability,
    CallerContext,
    Candidate,
)
from faceaudit.accountability._guard import guarded
from faceaudit.accountability._policy import ThresholdPolicy
from faceaudit.accountability._roles import NATIVE_OPERATIONS, authorize
from faceaudit.accountability._video import WARRANT_HEADER, VideoSearches, VideoSearchPolicy
from faceaudit.collections._validate import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_MAX_USERS,
    DEFAULT_SEARCH_MAX_FACES,
    DEFAULT_SEARCH_USER_MATCH_THRESHOLD,
)
from faceaudit.service._dispatch import DEFAULT_SIMILARITY_THRESHOLD

TARGET_PREFIX = "FaceAuditService"
VIDEO_READS = frozenset({"GetFaceSearch", "GetFaceDetection", "StartFaceDetection"})
"""Stored-video operations that compare no face with a collection (GetFaceSearch reads the
results of a StartFaceSearch, whose every person was logged before the job could succeed)."""
CASE_HEADER = "x-faceaudit-case-reference"
PURPOSE_HEADER = "x-faceaudit-purpose"
MAX_CONTEXT_CHARS = 256

_DEFAULTS = {
    # operation: (threshold member, default, max-candidates member, default): the backend's own
    "SearchFaces": ("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD, "MaxFaces", DEFAULT_SEARCH_MAX_FACES),
    "SearchFacesByImage": ("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD, "MaxFaces", DEFAULT_SEARCH_MAX_FACES),
    "SearchUsers": ("UserMatchThreshold", DEFAULT_SEARCH_USER_MATCH_THRESHOLD, "MaxUsers", DEFAULT_MAX_USERS),
    "SearchUsersByImage": ("UserMatchThreshold", DEFAULT_SEARCH_USER_MATCH_THRESHOLD, "MaxUsers", DEFAULT_MAX_USERS),
    "CompareFaces": ("SimilarityThreshold", DEFAULT_SIMILARITY_THRESHOLD, None, None),
}


def candidates_of(doc: Dict[str, Any]) -> Tuple[Candidate, ...]:
    """The candidates in an identification response (FaceMatches or UserMatches)."""
    out = []
    for m in doc.get("FaceMatches", []) or []:
        face = m.get("Face", {}) or {}
        out.append(Candidate(similarity=float(m.get("Similarity", 0.0)), face_id=face.get("FaceId"),
                             external_image_id=face.get("ExternalImageId"), user_id=face.get("UserId")))
    for m in doc.get("UserMatches", []) or []:
        user = m.get("User", {}) or {}
        out.append(Candidate(similarity=float(m.get("Similarity", 0.0)), user_id=user.get("UserId")))
    return tuple(out)


class AccountabilityExtension:
    """Plugs the search log, policies, review and the testing API into ``faceaudit serve``."""

    target_prefix = TARGET_PREFIX
    operations: FrozenSet[str] = frozenset(NATIVE_OPERATIONS)

    def __init__(
        self,
        data_dir: "str | Path",
        keys: Any = None,
        face_image: Optional[Callable[[str], Optional[bytes]]] = None,
        testing: Any = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.acc = Accountability(self.data_dir)
        self._keys = keys
        self._face_image = face_image
        self._testing = testing
        self._web = None
        self._collections = None
        self.videos = VideoSearches(self.acc)

    # -- ServiceExtension ------------------------------------------------------------------

    def authorize(self, caller, operation: str, native: bool) -> None:
        authorize(caller.role, operation, native)

    def context(self, caller) -> CallerContext:
        case = caller.header(CASE_HEADER).strip()
        purpose = caller.header(PURPOSE_HEADER).strip()
        if len(case) > MAX_CONTEXT_CHARS or len(purpose) > MAX_CONTEXT_CHARS:
            raise InvalidParameterError(
                f"{CASE_HEADER} and {PURPOSE_HEADER} are at most {MAX_CONTEXT_CHARS} characters"
            )
        return CallerContext(access_key_id=caller.access_key_id, role=caller.role, case_reference=case,
                             purpose=purpose, source="http", request_id=caller.request_id)

    def wrap(self, caller, operation: str, params: Dict[str, Any], call, model_version):
        if operation == "StartFaceSearch":  # identifies everyone in the footage: warrant, log, leads
            return self._start_face_search(caller, params, call)
        if operation in VIDEO_READS:  # no new comparison: the search was logged when its job ran
            return call()
        if operation not in IDENTIFICATION_OPERATIONS:
            return call()
        t_member, t_default, m_member, m_default = _DEFAULTS[operation]
        threshold = float(params.get(t_member, t_default))
        max_faces = int(params.get(m_member, m_default)) if m_member else None
        image = params.get("Image") or params.get("SourceImage") or {}
        probe = image.get("Bytes") if isinstance(image, dict) else None

        def version(result) -> str:
            return str(result[0].get("FaceModelVersion") or model_version())

        box: Dict[str, Any] = {}

        def run():
            result = call()
            box["version"] = version(result)
            return result

        result = guarded(
            self.acc, self.context(caller), operation=operation,
            collection_id=params.get("CollectionId"), threshold=threshold, max_faces=max_faces,
            model_version="", probe=probe, call=run, candidates=lambda r: candidates_of(r[0]),
            probe_face_id=params.get("FaceId"), probe_user_id=params.get("UserId"),
            model_version_of=lambda r: box.get("version", ""),
        )
        return result

    def _start_face_search(self, caller, params: Dict[str, Any], call):
        from faceaudit.collections._ops_video import DEFAULT_VIDEO_MAX_FACES

        return self.videos.start(
            self.context(caller), caller.header(WARRANT_HEADER), collection_id=params.get("CollectionId"),
            threshold=float(params.get("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD)),
            max_faces=DEFAULT_VIDEO_MAX_FACES, video=params.get("Video"), call=call,
            job_id_of=lambda r: r[0].get("JobId", ""),
        )

    def body_limit(self, operation: str) -> int:
        if operation == "StartAudit" and self._testing is not None:
            return self._testing.body_limit
        return 1024 * 1024

    def call(self, caller, operation: str, params: Dict[str, Any]) -> Dict[str, Any]:
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

            self._web = ReviewWeb(self.data_dir, self.acc, self._keys, self._face_image or self._gallery_face)
        return self._web.handle(request, request_id)

    def _gallery_face(self, face_id: str) -> Optional[bytes]:
        """The candidate's face crop kept by the collections store (for the review page)."""
        if self._collections is None:
            from faceaudit.collections import FaceCollections

            self._collections = FaceCollections(self.data_dir)
        return self._collections.face_thumbnail(face_id)

    # -- faceaudit's own operations --------------------------------------------------------

    def _op_put_collection_policy(self, caller, params) -> Dict[str, Any]:
        policy = ThresholdPolicy(
            collection_id=_string(params, "CollectionId", required=True),
            min_face_match_threshold=_number(params, "MinFaceMatchThreshold", 0, 100),
            max_false_match_rate=_number(params, "MaxFalseMatchRate", 1e-7, 1),
            max_faces=_integer(params, "MaxFaces", 1, 4096),
            require_case_reference=bool(params.get("RequireCaseReference", False)),
            purpose=_string(params, "Purpose") or "",
        )
        stamped = self.acc.set_policy(policy, self.context(caller))
        return {"Policy": stamped.to_json()}

    def _op_get_collection_policy(self, caller, params) -> Dict[str, Any]:
        return {"Policy": self.acc.policy(_string(params, "CollectionId", required=True)).to_json()}

    def _op_put_video_search_policy(self, caller, params) -> Dict[str, Any]:
        required = params.get("WarrantRequired", True)
        if not isinstance(required, bool):
            raise InvalidParameterError("WarrantRequired must be true or false")
        policy = VideoSearchPolicy(_string(params, "CollectionId", required=True), required)
        return {"Policy": self.videos.set_policy(policy, self.context(caller)).to_json()}

    def _op_get_video_search_policy(self, caller, params) -> Dict[str, Any]:
        return {"Policy": self.videos.policy(_string(params, "CollectionId", required=True)).to_json()}

    def _op_list_leads(self, caller, params) -> Dict[str, Any]:
        status = _string(params, "Status")
        limit = _integer(params, "MaxResults", 1, 1000) or 100
        return {"Leads": [lead.to_json() for lead in self.acc.leads(status, limit)]}

    def _op_get_lead(self, caller, params) -> Dict[str, Any]:
        return {"Lead": self.acc.reviews.get(_string(params, "LeadId", required=True)).to_json()}

    def _op_decide_lead(self, caller, params) -> Dict[str, Any]:
        lead = self.acc.decide(
            _string(params, "LeadId", required=True), caller.access_key_id,
            _string(params, "Decision", required=True), _string(params, "Note") or "",
        )
        return {"Lead": lead.to_json()}


def _snake(name: str) -> str:
    from botocore import xform_name

    return xform_name(name)


def _string(params, name, required=False) -> Optional[str]:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidParameterError(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidParameterError(f"{name} must be a string of at most 2048 characters")
    return value


def _number(params, name, lo, hi) -> Optional[float]:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be a number from {lo} to {hi}")
    return float(value)


def _integer(params, name, lo, hi) -> Optional[int]:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be an integer from {lo} to {hi}")
    return value
