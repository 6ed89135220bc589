"""Results of the collection operations: frozen dataclasses with ``to_rekognition()``.

``to_rekognition()`` returns exactly the operation's response shape (botocore
``rekognition/2016-06-27``), JSON-ready: timestamps are epoch seconds (the AWS
JSON 1.1 wire format), optional members are left out when they have no value.
Similarities are 0-100, higher is more alike (the calibrated scale: the false-match
rate a value promises is the same on every model,
``engine.spec.scale.to_similarity(cosine)``); confidences are the detector's,
0-100. Fields beyond Rekognition's (e.g. a face's manifest labels) are kept on
the dataclasses and never appear in ``to_rekognition()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self

from faceaudit._defaults import DEFAULT_FACE_MATCH_THRESHOLD, DEFAULT_SEARCH_USER_MATCH_THRESHOLD
from faceaudit.engine import BoundingBox, rekognition_model_version

CANDIDATE_NOTICE = (
    "A candidate is an investigative lead, not an identification: "
    "a trained person must verify it before anyone acts on it."
)


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Face:
    """A face stored in a collection (Rekognition's ``Face``).

    ``confidence``: the detector's confidence that the box holds a face, 0-100.
    ``labels``: metadata from a manifest (subject, group labels); not part of
    Rekognition's shape. ``image_sha256``: digest of the indexed image bytes.
    """

    face_id: str
    bounding_box: BoundingBox
    image_id: str
    external_image_id: str | None
    confidence: float
    index_faces_model_version: str
    user_id: str | None = None
    labels: Mapping[str, Any] = field(default_factory=dict, compare=False)
    image_sha256: str | None = field(default=None, compare=False)

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FaceId": self.face_id,
            "BoundingBox": self.bounding_box.to_rekognition(),
            "ImageId": self.image_id,
        }
        if self.external_image_id is not None:
            out["ExternalImageId"] = self.external_image_id
        out["Confidence"] = self.confidence
        out["IndexFacesModelVersion"] = rekognition_model_version(self.index_faces_model_version)
        if self.user_id is not None:
            out["UserId"] = self.user_id
        return out


@dataclass(frozen=True)
class FaceRecord:
    """An indexed face and its FaceDetail (the DEFAULT attributes)."""

    face: Face
    face_detail: Mapping[str, Any]

    def to_rekognition(self) -> dict[str, Any]:
        face = self.face.to_rekognition()
        face.pop("UserId", None)  # IndexFaces never reports a user
        return {"Face": face, "FaceDetail": dict(self.face_detail)}


@dataclass(frozen=True)
class UnindexedFace:
    """A detected face that was not indexed, with the reasons why."""

    reasons: tuple[str, ...]
    face_detail: Mapping[str, Any]

    def to_rekognition(self) -> dict[str, Any]:
        return {"Reasons": list(self.reasons), "FaceDetail": dict(self.face_detail)}


@dataclass(frozen=True)
class CreateCollectionResult:
    collection_arn: str
    face_model_version: str
    status_code: int = 200

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "StatusCode": self.status_code,
            "CollectionArn": self.collection_arn,
            "FaceModelVersion": rekognition_model_version(self.face_model_version),
        }


@dataclass(frozen=True)
class DescribeCollectionResult:
    """``creation_timestamp``: epoch seconds. ``model``: the face model's name (not Rekognition's)."""

    face_count: int
    face_model_version: str
    collection_arn: str
    creation_timestamp: float
    user_count: int
    model: str = ""

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "FaceCount": self.face_count,
            "FaceModelVersion": rekognition_model_version(self.face_model_version),
            "CollectionARN": self.collection_arn,
            "CreationTimestamp": self.creation_timestamp,
            "UserCount": self.user_count,
        }


@dataclass(frozen=True)
class ListCollectionsResult:
    collection_ids: tuple[str, ...]
    face_model_versions: tuple[str, ...]
    next_token: str | None = None

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "CollectionIds": list(self.collection_ids),
            "FaceModelVersions": [rekognition_model_version(v) for v in self.face_model_versions],
        }
        if self.next_token:
            out["NextToken"] = self.next_token
        return out


@dataclass(frozen=True)
class DeleteCollectionResult:
    status_code: int = 200

    def to_rekognition(self) -> dict[str, Any]:
        return {"StatusCode": self.status_code}


@dataclass(frozen=True)
class IndexFacesResult:
    """IndexFaces. ``image_id``: the ImageId of the image (also on each face).

    ``already_indexed`` (the batch indexer's resume only): True when the same bytes with the same
    ExternalImageId were indexed before; the stored faces are returned and nothing is added.
    """

    face_records: tuple[FaceRecord, ...]
    unindexed_faces: tuple[UnindexedFace, ...]
    face_model_version: str
    image_id: str | None = None
    already_indexed: bool = False

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "FaceRecords": [r.to_rekognition() for r in self.face_records],
            "FaceModelVersion": rekognition_model_version(self.face_model_version),
            "UnindexedFaces": [u.to_rekognition() for u in self.unindexed_faces],
        }


@dataclass(frozen=True)
class ListFacesResult:
    faces: tuple[Face, ...]
    face_model_version: str
    next_token: str | None = None

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Faces": [f.to_rekognition() for f in self.faces]}
        if self.next_token:
            out["NextToken"] = self.next_token
        out["FaceModelVersion"] = rekognition_model_version(self.face_model_version)
        return out


@dataclass(frozen=True)
class _UnsuccessfulFace:
    """A face an operation could not act on: its id, the reasons, and the user involved if any."""

    face_id: str
    reasons: tuple[str, ...]
    user_id: str | None = None

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"FaceId": self.face_id}
        if self.user_id is not None:
            out["UserId"] = self.user_id
        out["Reasons"] = list(self.reasons)
        return out


@dataclass(frozen=True)
class UnsuccessfulFaceDeletion(_UnsuccessfulFace):
    """Reasons: FACE_NOT_FOUND or ASSOCIATED_TO_AN_EXISTING_USER (then ``user_id``)."""


@dataclass(frozen=True)
class DeleteFacesResult:
    deleted_faces: tuple[str, ...]
    unsuccessful_face_deletions: tuple[UnsuccessfulFaceDeletion, ...] = ()

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "DeletedFaces": list(self.deleted_faces),
            "UnsuccessfulFaceDeletions": [u.to_rekognition() for u in self.unsuccessful_face_deletions],
        }


@dataclass(frozen=True)
class FaceMatch:
    """A gallery face and its similarity to the searched face (0-100, higher is more alike).

    A match is an investigative lead, not an identification.
    """

    similarity: float
    face: Face

    def to_rekognition(self) -> dict[str, Any]:
        return {"Similarity": self.similarity, "Face": self.face.to_rekognition()}


@dataclass(frozen=True)
class SearchFacesByImageResult:
    """The largest face of the image searched against the collection.

    ``face_matches`` are sorted by similarity, highest first; ``searched_face_confidence``
    is the detector's confidence (0-100).
    """

    searched_face_bounding_box: BoundingBox
    searched_face_confidence: float
    face_matches: tuple[FaceMatch, ...]
    face_model_version: str
    threshold: float = DEFAULT_FACE_MATCH_THRESHOLD

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "SearchedFaceBoundingBox": self.searched_face_bounding_box.to_rekognition(),
            "SearchedFaceConfidence": self.searched_face_confidence,
            "FaceMatches": [m.to_rekognition() for m in self.face_matches],
            "FaceModelVersion": rekognition_model_version(self.face_model_version),
        }


@dataclass(frozen=True)
class SearchFacesResult:
    """A stored face searched against its collection (itself excluded)."""

    searched_face_id: str
    face_matches: tuple[FaceMatch, ...]
    face_model_version: str
    threshold: float = DEFAULT_FACE_MATCH_THRESHOLD

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "SearchedFaceId": self.searched_face_id,
            "FaceMatches": [m.to_rekognition() for m in self.face_matches],
            "FaceModelVersion": rekognition_model_version(self.face_model_version),
        }


@dataclass(frozen=True)
class EmptyResult:
    """CreateUser and DeleteUser answer with an empty object."""

    def to_rekognition(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_rekognition(cls, data: Mapping[str, Any]) -> Self:
        return cls()


class CreateUserResult(EmptyResult):
    pass


class DeleteUserResult(EmptyResult):
    pass


@dataclass(frozen=True)
class User:
    """UserStatus: ACTIVE when the user has faces, CREATED when it has none yet."""

    user_id: str
    user_status: str

    def to_rekognition(self) -> dict[str, Any]:
        return {"UserId": self.user_id, "UserStatus": self.user_status}


@dataclass(frozen=True)
class ListUsersResult:
    users: tuple[User, ...]
    next_token: str | None = None

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Users": [u.to_rekognition() for u in self.users]}
        if self.next_token:
            out["NextToken"] = self.next_token
        return out


@dataclass(frozen=True)
class UnsuccessfulFaceAssociation:
    """Reasons: FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER (``user_id`` is that user),
    LOW_MATCH_CONFIDENCE (``confidence``: the face's similarity to the user, 0-100)."""

    face_id: str
    reasons: tuple[str, ...]
    user_id: str | None = None
    confidence: float | None = None

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"FaceId": self.face_id}
        if self.user_id is not None:
            out["UserId"] = self.user_id
        if self.confidence is not None:
            out["Confidence"] = self.confidence
        out["Reasons"] = list(self.reasons)
        return out


@dataclass(frozen=True)
class AssociateFacesResult:
    associated_faces: tuple[str, ...]
    unsuccessful_face_associations: tuple[UnsuccessfulFaceAssociation, ...]
    user_status: str

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "AssociatedFaces": [{"FaceId": f} for f in self.associated_faces],
            "UnsuccessfulFaceAssociations": [u.to_rekognition() for u in self.unsuccessful_face_associations],
            "UserStatus": self.user_status,
        }

    @classmethod
    def from_rekognition(cls, data: Mapping[str, Any]) -> AssociateFacesResult:
        return cls(
            associated_faces=tuple(f["FaceId"] for f in data["AssociatedFaces"]),
            unsuccessful_face_associations=tuple(
                UnsuccessfulFaceAssociation(
                    face_id=u["FaceId"], reasons=tuple(u["Reasons"]),
                    user_id=u.get("UserId"), confidence=u.get("Confidence"),
                )
                for u in data["UnsuccessfulFaceAssociations"]
            ),
            user_status=data["UserStatus"],
        )


@dataclass(frozen=True)
class UnsuccessfulFaceDisassociation(_UnsuccessfulFace):
    """Reasons: FACE_NOT_FOUND or ASSOCIATED_TO_A_DIFFERENT_USER (``user_id`` is that user)."""


@dataclass(frozen=True)
class DisassociateFacesResult:
    disassociated_faces: tuple[str, ...]
    unsuccessful_face_disassociations: tuple[UnsuccessfulFaceDisassociation, ...]
    user_status: str

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "DisassociatedFaces": [{"FaceId": f} for f in self.disassociated_faces],
            "UnsuccessfulFaceDisassociations": [
                u.to_rekognition() for u in self.unsuccessful_face_disassociations
            ],
            "UserStatus": self.user_status,
        }

    @classmethod
    def from_rekognition(cls, data: Mapping[str, Any]) -> DisassociateFacesResult:
        return cls(
            disassociated_faces=tuple(f["FaceId"] for f in data["DisassociatedFaces"]),
            unsuccessful_face_disassociations=tuple(
                UnsuccessfulFaceDisassociation(
                    face_id=u["FaceId"], reasons=tuple(u["Reasons"]), user_id=u.get("UserId")
                )
                for u in data["UnsuccessfulFaceDisassociations"]
            ),
            user_status=data["UserStatus"],
        )


@dataclass(frozen=True)
class UserMatch:
    """A user and its similarity to the searched face(s), 0-100, higher is more alike.

    A user's similarity is the highest similarity between the searched face
    (or any face of the searched user) and any face associated with that user.
    A match is an investigative lead, not an identification.
    """

    similarity: float
    user_id: str
    user_status: str = "ACTIVE"

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "Similarity": self.similarity,
            "User": {"UserId": self.user_id, "UserStatus": self.user_status},
        }


@dataclass(frozen=True)
class SearchUsersResult:
    user_matches: tuple[UserMatch, ...]
    face_model_version: str
    searched_face_id: str | None = None
    searched_user_id: str | None = None
    threshold: float = DEFAULT_SEARCH_USER_MATCH_THRESHOLD

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "UserMatches": [m.to_rekognition() for m in self.user_matches],
            "FaceModelVersion": rekognition_model_version(self.face_model_version),
        }
        if self.searched_face_id is not None:
            out["SearchedFace"] = {"FaceId": self.searched_face_id}
        if self.searched_user_id is not None:
            out["SearchedUser"] = {"UserId": self.searched_user_id}
        return out


@dataclass(frozen=True)
class UnsearchedFace:
    """A face of the image that was not searched: FACE_NOT_LARGEST or a quality reason."""

    reasons: tuple[str, ...]
    face_detail: Mapping[str, Any]

    def to_rekognition(self) -> dict[str, Any]:
        return {"FaceDetails": dict(self.face_detail), "Reasons": list(self.reasons)}


@dataclass(frozen=True)
class SearchUsersByImageResult:
    """``searched_face_detail`` is None when the image has no (usable) face: then no matches."""

    user_matches: tuple[UserMatch, ...]
    face_model_version: str
    searched_face_detail: Mapping[str, Any] | None = None
    unsearched_faces: tuple[UnsearchedFace, ...] = ()
    threshold: float = DEFAULT_SEARCH_USER_MATCH_THRESHOLD

    def to_rekognition(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "UserMatches": [m.to_rekognition() for m in self.user_matches],
            "FaceModelVersion": rekognition_model_version(self.face_model_version),
        }
        if self.searched_face_detail is not None:
            out["SearchedFace"] = {"FaceDetail": dict(self.searched_face_detail)}
        out["UnsearchedFaces"] = [u.to_rekognition() for u in self.unsearched_faces]
        return out


@dataclass(frozen=True)
class TagResourceResult:
    """TagResource and UntagResource: an empty response."""

    def to_rekognition(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class ListTagsForResourceResult:
    """``tags``: (key, value) pairs, sorted by key."""

    tags: tuple[tuple[str, str], ...]

    def to_rekognition(self) -> dict[str, Any]:
        return {"Tags": dict(self.tags)}
