"""Which operations identify people: decided once, from each operation's own API model.

An operation is an identification when it compares a probe with stored faces
and tells the caller how alike they are. That shows in its model, so no list of
operation names has to be kept in sync: its request takes a similarity
threshold (a member named ``*MatchThreshold`` or ``*SimilarityThreshold``:
SearchFaces, SearchFacesByImage, SearchUsers, SearchUsersByImage, CompareFaces,
AssociateFaces, StartFaceSearch), or its response carries a similarity
(``Similarity`` or ``MatchConfidence`` anywhere in it: GetFaceSearch,
RecognizeCelebrities). Any operation added later is classified the same way.

Every identification is policy-checked, logged and turned into leads by
:func:`guard_request`, which the HTTP service and the CLI both call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from faceaudit._defaults import request_default
from faceaudit.accountability._accountability import Accountability, CallerContext, Candidate
from faceaudit.accountability._guard import guarded
from faceaudit.collections import NormalisedRequest

THRESHOLD_SUFFIXES = ("MatchThreshold", "SimilarityThreshold")
"""A request member ending so is a similarity threshold (0-100, higher is more alike)."""

SCORE_MEMBERS = frozenset({"Similarity", "MatchConfidence"})
"""A response member so named is a similarity between a probe and a stored or target face."""

MAX_CANDIDATE_MEMBERS = ("MaxFaces", "MaxUsers")
NAMED_CANDIDATE_MEMBERS = ("FaceIds",)
"""Request members naming the stored faces to compare with (AssociateFaces): their count is the candidates."""


def _default(operation: str, member: str) -> float | None:
    """Rekognition's default for an omitted member (None when unknown), from the one module that
    holds them. A request the service passed on is already normalised (``normalise_request``):
    its members are set and this is not reached."""
    return request_default(operation, member)


@dataclass(frozen=True)
class Identification:
    """How to read an identification request: its threshold, candidate limit and probe."""

    operation: str
    threshold_member: str | None
    max_candidates_member: str | None
    named_candidates_member: str | None
    image_members: tuple[str, ...]

    def threshold(self, params: Mapping[str, Any]) -> float:
        """The request's threshold (a normalised request's: the one the backend applies), the
        backend's default, or 0 (the strictest check) when unknown."""
        if isinstance(params, NormalisedRequest) and params.threshold is not None:
            return float(params.threshold)
        if self.threshold_member and params.get(self.threshold_member) is not None:
            return float(params[self.threshold_member])
        default = _default(self.operation, self.threshold_member) if self.threshold_member else None
        return float(default) if default is not None else 0.0

    def max_candidates(self, params: Mapping[str, Any]) -> int | None:
        if isinstance(params, NormalisedRequest) and params.max_candidates is not None:
            return params.max_candidates
        if self.named_candidates_member and params.get(self.named_candidates_member) is not None:
            return len(params[self.named_candidates_member])
        if self.max_candidates_member is None:
            return None
        if params.get(self.max_candidates_member) is not None:
            return int(params[self.max_candidates_member])
        default = _default(self.operation, self.max_candidates_member)
        return int(default) if default is not None else None

    def probe(self, params: Mapping[str, Any]) -> bytes | None:
        """The probe image's bytes (the first image member: Image or SourceImage)."""
        for name in self.image_members:
            image = params.get(name)
            if isinstance(image, dict) and isinstance(image.get("Bytes"), (bytes, bytearray)):
                return bytes(image["Bytes"])
        return None


def _walk_members(shape, seen: set) -> Iterator[str]:
    if shape is None or id(shape) in seen:
        return
    seen.add(id(shape))
    for name, member in getattr(shape, "members", {}).items():
        yield name
        yield from _walk_members(member, seen)
    yield from _walk_members(getattr(shape, "member", None), seen)  # list shapes


@functools.cache
def identification(operation: str) -> Identification | None:
    """The :class:`Identification` reading of ``operation``, or None when it identifies no one."""
    from faceaudit.service import operation_model, service_model

    if operation not in service_model().operation_names:
        return None
    model = operation_model(operation)
    members = dict(getattr(model.input_shape, "members", {}) or {})
    threshold = next((n for n in members if n.endswith(THRESHOLD_SUFFIXES)), None)
    scores = any(n in SCORE_MEMBERS for n in _walk_members(model.output_shape, set()))
    if threshold is None and not scores:
        return None
    return Identification(
        operation=operation,
        threshold_member=threshold,
        max_candidates_member=next((n for n in MAX_CANDIDATE_MEMBERS if n in members), None),
        named_candidates_member=next((n for n in NAMED_CANDIDATE_MEMBERS if n in members), None),
        image_members=tuple(n for n, m in members.items() if m.name == "Image"),
    )


def identification_operations(operations: Sequence[str]) -> tuple[str, ...]:
    """Those of ``operations`` that are identifications."""
    return tuple(op for op in operations if identification(op) is not None)


def candidates_of(doc: Mapping[str, Any]) -> tuple[Candidate, ...]:
    """Every similarity a response discloses, as candidates (whatever the operation).

    A dict with ``Similarity`` (or ``MatchConfidence``) is a match: its ``Face`` or ``User``
    names the candidate. An AssociateFaces face refused with LOW_MATCH_CONFIDENCE discloses
    its similarity as ``Confidence``.
    """
    out = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            score = next((node[k] for k in SCORE_MEMBERS if isinstance(node.get(k), (int, float))), None)
            if score is None and "LOW_MATCH_CONFIDENCE" in (node.get("Reasons") or ()) \
                    and isinstance(node.get("Confidence"), (int, float)):
                score = node["Confidence"]
                out.append(Candidate(similarity=float(score), face_id=node.get("FaceId"), below_threshold=True))
                return
            if score is not None:
                raw_face, raw_user = node.get("Face"), node.get("User")
                face: dict[str, Any] = raw_face if isinstance(raw_face, dict) else {}
                user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
                out.append(Candidate(
                    similarity=float(score), face_id=face.get("FaceId") or node.get("FaceId"),
                    external_image_id=face.get("ExternalImageId"),
                    user_id=user.get("UserId") or face.get("UserId")))
                return
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(dict(doc))
    return tuple(out)


def withhold_below(doc: Mapping[str, Any], minimum: float) -> tuple[dict[str, Any], int]:
    """``doc`` without any similarity below ``minimum`` (a collection policy's lowest threshold):
    a match (a dict with ``Similarity`` or ``MatchConfidence``) below it is dropped from its list;
    an AssociateFaces refusal (LOW_MATCH_CONFIDENCE) keeps its reason but loses its ``Confidence``.
    Returns the new document and how many scores were withheld."""
    withheld = 0

    def score(node: Any) -> float | None:
        if isinstance(node, dict):
            return next((float(node[k]) for k in SCORE_MEMBERS if isinstance(node.get(k), (int, float))), None)
        return None

    def visit(node: Any) -> Any:
        nonlocal withheld
        if isinstance(node, list):
            kept = []
            for item in node:
                s = score(item)
                if s is not None and s < minimum:
                    withheld += 1
                    continue
                kept.append(visit(item))
            return kept
        if isinstance(node, dict):
            out = {k: visit(v) for k, v in node.items()}
            confidence = node.get("Confidence")
            if "LOW_MATCH_CONFIDENCE" in (node.get("Reasons") or ()) and isinstance(confidence, (int, float)) \
                    and confidence < minimum:
                del out["Confidence"]
                withheld += 1
            return out
        return node

    return visit(dict(doc)), withheld


def guard_request(
    acc: Accountability,
    ctx: CallerContext,
    operation: str,
    params: Mapping[str, Any],
    call: Callable[[], Any],
    response_of: Callable[[Any], Mapping[str, Any]],
    *,
    model_version: Callable[[Any], str] = lambda result: "",
    probe_sha256: str | None = None,
    gallery_size: Callable[[str], int | None] | None = None,
    probe_of_face: Callable[[str], bytes | None] | None = None,
    rebuild: Callable[[Any, dict[str, Any]], Any] | None = None,
    index_of: Callable[[str], str | None] | None = None,
) -> Any:
    """Run one request: an identification is policy-checked, logged and makes leads; others just run.

    ``params`` are the request's members (Rekognition names: ``CollectionId``,
    ``FaceMatchThreshold``, ``Image`` as ``{"Bytes": ...}``); ``response_of`` turns the
    call's result into the response document. ``rebuild(result, document)``: the result
    answering with ``document`` instead; given, no similarity below the collection policy's
    minimum threshold is handed back (:func:`withhold_below`; the log keeps them, marked
    ``withheld``). ``index_of(collection_id)``: the index kind that serves the collection
    (flat, fastscan, hnsw, milvus), recorded in the log record.
    """
    spec = identification(operation)
    if spec is None:
        return call()
    collection_id = params.get("CollectionId")
    probe = spec.probe(params)
    if probe is None and probe_sha256 is None and params.get("FaceId") and probe_of_face is not None:
        probe = probe_of_face(params["FaceId"])  # kept: shows what was searched after DeleteFaces
    minimum = acc.policy(collection_id).effective_min_threshold if collection_id else None

    def found(result: Any) -> tuple[Candidate, ...]:
        return tuple(replace(c, withheld=True) if minimum is not None and c.similarity < minimum else c
                     for c in candidates_of(response_of(result)))

    result = guarded(
        acc, ctx, operation=operation, collection_id=collection_id,
        threshold=spec.threshold(params), max_faces=spec.max_candidates(params), model_version="",
        probe=probe, probe_sha256=probe_sha256,
        gallery_size=gallery_size(collection_id) if (gallery_size and collection_id) else None,
        index=index_of(collection_id) if (index_of and collection_id) else None,
        call=call, candidates=found,
        probe_face_id=params.get("FaceId"), probe_user_id=params.get("UserId"),
        model_version_of=lambda result: model_version(result) or str(
            response_of(result).get("FaceModelVersion") or ""),
    )
    if rebuild is not None and minimum is not None:
        doc, withheld = withhold_below(response_of(result), minimum)
        if withheld:
            result = rebuild(result, doc)
    return result


def request_params(**members: Any) -> dict[str, Any]:
    """Request members without the ones left out (None)."""
    return {k: v for k, v in members.items() if v is not None}
