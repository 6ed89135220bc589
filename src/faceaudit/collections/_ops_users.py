"""The Users API: CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces,
SearchUsers, SearchUsersByImage.

A user groups up to 100 faces of one person. A user's similarity to a face is
the highest similarity between that face and any of the user's faces (0-100,
higher is more alike); a user without faces never matches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceaudit._errors import ConflictError, ResourceNotFoundError, ServiceQuotaExceededError
from faceaudit.collections import _tokens
from faceaudit.collections import _validate as v
from faceaudit.collections._backend import Backend
from faceaudit.collections._ops_search import searchable_faces, stored_probe_quality
from faceaudit.collections._results import (
    AssociateFacesResult,
    CreateUserResult,
    DeleteUserResult,
    DisassociateFacesResult,
    ListUsersResult,
    SearchUsersByImageResult,
    SearchUsersResult,
    UnsearchedFace,
    UnsuccessfulFaceAssociation,
    UnsuccessfulFaceDisassociation,
    User,
    UserMatch,
)
from faceaudit.collections._store import CollectionRow, Connection
from faceaudit.engine import load_image, report_probe

MAX_FACES_PER_USER = 100


def _status(face_count: int) -> str:
    return "ACTIVE" if face_count else "CREATED"


class UserOps(Backend):
    def _user_row(self, conn: Connection, coll: CollectionRow, user_id: str) -> int:
        row = self._store.find_user(conn, coll.rowid, user_id)
        if row is None:
            raise ResourceNotFoundError(f"user {user_id!r} does not exist in collection {coll.name!r}")
        return row

    def create_user(
        self, *, collection_id: str, user_id: str, client_request_token: str | None = None
    ) -> CreateUserResult:
        """Create a user (no faces yet). ConflictException if the UserId exists."""
        name = v.collection_id(collection_id)
        uid = v.user_id(user_id)
        token = v.client_request_token(client_request_token)
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)

            def run() -> CreateUserResult:
                if self._store.find_user(conn, coll.rowid, uid) is not None:
                    raise ConflictError(f"user {uid!r} already exists in collection {name!r}")
                self._store.insert_user(conn, coll.rowid, uid)
                return CreateUserResult()

            return self._idempotent(conn, "CreateUser", token, {"c": coll.rowid, "u": uid}, run,
                                    CreateUserResult.from_rekognition)

    def delete_user(
        self, *, collection_id: str, user_id: str, client_request_token: str | None = None
    ) -> DeleteUserResult:
        """Delete a user; its faces stay in the collection, disassociated."""
        name = v.collection_id(collection_id)
        uid = v.user_id(user_id)
        token = v.client_request_token(client_request_token)
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)

            def run() -> DeleteUserResult:
                self._store.delete_user(conn, coll.rowid, self._user_row(conn, coll, uid))
                return DeleteUserResult()

            return self._idempotent(conn, "DeleteUser", token, {"c": coll.rowid, "u": uid}, run,
                                    DeleteUserResult.from_rekognition)

    def list_users(
        self, *, collection_id: str, max_results: int | None = None, next_token: str | None = None
    ) -> ListUsersResult:
        """Users in creation order, ``max_results`` (default 100, 1..500) per page."""
        name = v.collection_id(collection_id)
        limit = v.page_size(max_results, default=v.DEFAULT_LIST_USERS_MAX_RESULTS, lo=1, hi=v.MAX_USERS)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            scope = _tokens.scope_of("users", coll.rowid)
            after = 0
            if next_token is not None:
                after = _tokens.decode(self._store.secret(conn), next_token, "users", scope)
            rows = self._store.list_users(conn, coll.rowid, after, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            token = _tokens.encode(self._store.secret(conn), "users", scope, rows[-1][0]) if more else None
        return ListUsersResult(users=tuple(User(uid, _status(n)) for _, uid, n in rows), next_token=token)

    def associate_faces(
        self,
        *,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        user_match_threshold: float | None = None,
        client_request_token: str | None = None,
    ) -> AssociateFacesResult:
        """Associate faces with a user.

        When the user already has faces, a new face must reach ``user_match_threshold``
        (default 75) against them (its best similarity to any of them), else
        LOW_MATCH_CONFIDENCE with that similarity as Confidence. Faces already
        associated with this user are ignored; with another user:
        ASSOCIATED_TO_A_DIFFERENT_USER; unknown: FACE_NOT_FOUND.
        ServiceQuotaExceededException when the user would hold more than 100 faces.
        """
        name = v.collection_id(collection_id)
        uid = v.user_id(user_id)
        fids = v.face_ids(face_ids, max_items=v.MAX_USER_FACE_IDS)
        threshold = v.percent(user_match_threshold, "UserMatchThreshold", v.DEFAULT_ASSOCIATE_USER_MATCH_THRESHOLD)
        token = v.client_request_token(client_request_token)
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)

            def run() -> AssociateFacesResult:
                user_row = self._user_row(conn, coll, uid)
                existing = self._store.user_face_rows(conn, user_row)
                found = self._store.faces_by_face_ids(conn, coll.rowid, fids)
                failed: list[UnsuccessfulFaceAssociation] = []
                candidates = []
                for fid in fids:
                    row = found.get(fid)
                    if row is None:
                        failed.append(UnsuccessfulFaceAssociation(fid, ("FACE_NOT_FOUND",)))
                    elif row.user_row == user_row:
                        continue  # already this user's: ignored
                    elif row.user_row is not None:
                        failed.append(UnsuccessfulFaceAssociation(
                            fid, ("ASSOCIATED_TO_A_DIFFERENT_USER",), user_id=row.user_id))
                    else:
                        candidates.append(row)
                if candidates and len(existing) + len(candidates) > MAX_FACES_PER_USER:
                    raise ServiceQuotaExceededError(
                        f"user {uid!r} has {len(existing)} faces; at most {MAX_FACES_PER_USER} may be associated"
                    )
                accepted = []
                if existing and candidates:
                    _, mine = self._store.embeddings(conn, coll.rowid, coll.dimension, existing)
                    # the embeddings come back in row order, not in the order of FaceIds: pair by row
                    new_rows, new = self._store.embeddings(conn, coll.rowid, coll.dimension,
                                                           [c.rowid for c in candidates])
                    best = (new @ mine.T).max(axis=1)
                    sim_of = dict(zip(new_rows.tolist(), self._similarities(coll, best), strict=True))
                    for cand in candidates:
                        sim = sim_of[cand.rowid]
                        if sim >= threshold:
                            accepted.append(cand)
                        else:
                            failed.append(UnsuccessfulFaceAssociation(
                                cand.face_id, ("LOW_MATCH_CONFIDENCE",), confidence=sim))
                else:
                    accepted = candidates
                self._store.set_user(conn, [c.rowid for c in accepted], user_row)
                return AssociateFacesResult(
                    associated_faces=tuple(c.face_id for c in accepted),
                    unsuccessful_face_associations=tuple(failed),
                    user_status=_status(len(existing) + len(accepted)),
                )

            request = {"c": coll.rowid, "u": uid, "f": list(fids), "t": threshold}
            return self._idempotent(conn, "AssociateFaces", token, request, run,
                                    AssociateFacesResult.from_rekognition)

    def disassociate_faces(
        self,
        *,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        client_request_token: str | None = None,
    ) -> DisassociateFacesResult:
        """Remove faces from a user. Faces of no user are ignored; of another user:
        ASSOCIATED_TO_A_DIFFERENT_USER; unknown: FACE_NOT_FOUND."""
        name = v.collection_id(collection_id)
        uid = v.user_id(user_id)
        fids = v.face_ids(face_ids, max_items=v.MAX_USER_FACE_IDS)
        token = v.client_request_token(client_request_token)
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)

            def run() -> DisassociateFacesResult:
                user_row = self._user_row(conn, coll, uid)
                found = self._store.faces_by_face_ids(conn, coll.rowid, fids)
                done, failed = [], []
                for fid in fids:
                    row = found.get(fid)
                    if row is None:
                        failed.append(UnsuccessfulFaceDisassociation(fid, ("FACE_NOT_FOUND",)))
                    elif row.user_row == user_row:
                        done.append(row)
                    elif row.user_row is not None:
                        failed.append(UnsuccessfulFaceDisassociation(
                            fid, ("ASSOCIATED_TO_A_DIFFERENT_USER",), user_id=row.user_id))
                self._store.set_user(conn, [r.rowid for r in done], None)
                left = len(self._store.user_face_rows(conn, user_row))
                return DisassociateFacesResult(
                    disassociated_faces=tuple(r.face_id for r in done),
                    unsuccessful_face_disassociations=tuple(failed),
                    user_status=_status(left),
                )

            request = {"c": coll.rowid, "u": uid, "f": list(fids)}
            return self._idempotent(conn, "DisassociateFaces", token, request, run,
                                    DisassociateFacesResult.from_rekognition)

    def search_users(
        self,
        *,
        collection_id: str,
        user_id: str | None = None,
        face_id: str | None = None,
        user_match_threshold: float | None = None,
        max_users: int | None = None,
    ) -> SearchUsersResult:
        """Users similar to a stored face (``face_id``) or to a user's faces (``user_id``).

        The searched face, or the searched user, is never a match. Returns up to
        ``max_users`` (default 80, 1..500) with similarity >= ``user_match_threshold``
        (default 80), highest first. Each match is an investigative lead.
        """
        name = v.collection_id(collection_id)
        which = v.one_of({"UserId": user_id, "FaceId": face_id}, ("UserId", "FaceId"))
        searched = v.user_id(user_id) if which == "UserId" else v.face_id(face_id)
        uid = searched if which == "UserId" else None
        fid = searched if which == "FaceId" else None
        threshold = v.percent(user_match_threshold, "UserMatchThreshold", v.DEFAULT_SEARCH_USER_MATCH_THRESHOLD)
        limit = v.int_range(max_users, "MaxUsers", v.DEFAULT_MAX_USERS, 1, v.MAX_USERS)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            exclude_user = None
            if which == "UserId":
                exclude_user = self._user_row(conn, coll, searched)
                rows = self._store.user_face_rows(conn, exclude_user)
            else:
                row = self._store.faces_by_face_ids(conn, coll.rowid, [searched]).get(searched)
                if row is None:
                    raise ResourceNotFoundError(f"face {searched} is not in collection {name!r}")
                rows = [row.rowid]
            quality = stored_probe_quality(conn, rows)
            if quality is not None:
                report_probe(quality)  # the stored face(s) are the probe: a minimum-quality policy may refuse here
            _, queries = self._store.embeddings(conn, coll.rowid, coll.dimension, rows)
            ranked = self._search_users(conn, coll, queries, limit, threshold, rows, exclude_user) if rows else []
        return SearchUsersResult(
            user_matches=tuple(UserMatch(sim, u) for u, sim in ranked),
            face_model_version=coll.model_version,
            searched_face_id=fid,
            searched_user_id=uid,
            threshold=threshold,
        )

    def search_users_by_image(
        self,
        *,
        collection_id: str,
        image: bytes,
        user_match_threshold: float | None = None,
        max_users: int | None = None,
        quality_filter: str | None = None,
    ) -> SearchUsersByImageResult:
        """Users similar to the largest face of ``image`` (passing ``quality_filter``, default NONE).

        No usable face is not an error: the result has no matches and no SearchedFace.
        Each match is an investigative lead, not an identification.
        """
        name = v.collection_id(collection_id)
        threshold = v.percent(user_match_threshold, "UserMatchThreshold", v.DEFAULT_SEARCH_USER_MATCH_THRESHOLD)
        limit = v.int_range(max_users, "MaxUsers", v.DEFAULT_MAX_USERS, 1, v.MAX_USERS)
        level = v.quality_filter(quality_filter, "NONE")
        data = v.image_bytes(image)
        coll = self._collection_row(name)
        engine = self._engine(coll)
        img = load_image(data)
        face, others = searchable_faces(engine, img, level)
        unsearched = tuple(UnsearchedFace(reasons, f.to_rekognition()) for f, reasons in others)
        if face is None:
            return SearchUsersByImageResult(
                user_matches=(), face_model_version=coll.model_version, unsearched_faces=unsearched,
                threshold=threshold,
            )
        report_probe(face.quality)  # the accountability layer's minimum-quality policy may refuse here
        vector = np.asarray(engine.embed(img, face).vector, dtype=np.float32)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            self._check_pin(coll, engine)
            ranked = self._search_users(conn, coll, vector, limit, threshold)
        return SearchUsersByImageResult(
            user_matches=tuple(UserMatch(sim, u) for u, sim in ranked),
            face_model_version=coll.model_version,
            searched_face_detail=face.to_rekognition(),
            unsearched_faces=unsearched,
            threshold=threshold,
        )
