"""IndexFaces, ListFaces, DeleteFaces."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from faceaudit._errors import InvalidParameterError, ServiceQuotaExceededError
from faceaudit.collections import _tokens
from faceaudit.collections import _validate as v
from faceaudit.collections._backend import MAX_FACES_PER_COLLECTION, Backend
from faceaudit.collections._prepare import PreparedImage, prepare_index
from faceaudit.collections._results import (
    DeleteFacesResult,
    FaceRecord,
    IndexFacesResult,
    ListFacesResult,
    UnindexedFace,
    UnsuccessfulFaceDeletion,
)
from faceaudit.collections._store import CollectionRow, Connection
from faceaudit.engine import MAX_FACES_CONSIDERED, load_image

DEFAULT_INDEX_MAX_FACES = MAX_FACES_CONSIDERED


class FaceOps(Backend):
    def index_faces(
        self,
        *,
        collection_id: str,
        image: bytes,
        external_image_id: str | None = None,
        detection_attributes: Sequence[str] | None = None,
        max_faces: int | None = None,
        quality_filter: str | None = None,
    ) -> IndexFacesResult:
        """Detect the faces of ``image`` and add them to the collection.

        Of the 100 largest faces, those failing ``quality_filter`` (default AUTO,
        see :mod:`faceaudit.collections._quality`) are not indexed, nor those beyond
        ``max_faces`` (lowest quality first, then smallest): they come back in
        UnindexedFaces with their reasons. Indexing the same bytes again indexes
        them again (new ImageId and FaceIds, with this call's MaxFaces and
        QualityFilter), as Rekognition does; the batch indexer (``faceaudit index
        DIR``) skips what it indexed before. DetectionAttributes other than DEFAULT
        are accepted but not computed.
        """
        name = v.collection_id(collection_id)
        ext = v.external_image_id(external_image_id)
        v.detection_attributes(detection_attributes)
        limit = v.int_range(max_faces, "MaxFaces", DEFAULT_INDEX_MAX_FACES, 1, None)
        level = v.quality_filter(quality_filter, "AUTO")
        data = v.image_bytes(image)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
        engine = self._engine(coll)
        img = load_image(data)
        prepared = prepare_index(engine, img, max_faces=min(limit, MAX_FACES_CONSIDERED), quality_filter=level)
        return self._store_prepared(name, prepared, external_image_id=ext, resume=False)

    def _store_prepared(
        self,
        collection_id: str,
        prepared: PreparedImage,
        *,
        external_image_id: str | None = None,
        labels: Mapping[str, Any] | None = None,
        source: str | None = None,
        resume: bool = True,
    ) -> IndexFacesResult:
        """Store a prepared image in one write transaction. ``resume`` (the batch indexer): the
        same bytes with the same ExternalImageId already stored are not stored again."""
        unindexed: list[dict[str, Any]] = [{"Reasons": list(r), "FaceDetail": d} for r, d in prepared.unindexed]
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, collection_id)
            if coll.model_version != prepared.model_version:
                raise InvalidParameterError(
                    f"collection {coll.name!r} is pinned to FaceModelVersion {coll.model_version}; "
                    f"the faces were computed with {prepared.model_version}"
                )
            row = self._store.find_image(conn, coll.rowid, prepared.sha256, external_image_id) if resume else None
            if row is not None:
                return self._existing(conn, coll, row)
            if not prepared.faces:
                return IndexFacesResult(
                    face_records=(), face_model_version=coll.model_version,
                    unindexed_faces=tuple(UnindexedFace(tuple(u["Reasons"]), u["FaceDetail"]) for u in unindexed),
                )
            if coll.face_count + len(prepared.faces) > MAX_FACES_PER_COLLECTION:
                raise ServiceQuotaExceededError(
                    f"collection {coll.name!r} would exceed {MAX_FACES_PER_COLLECTION} faces"
                )
            image_id = str(uuid.uuid4())
            image_row = self._store.insert_image(
                conn, coll.rowid, image_id, prepared.sha256, external_image_id, prepared.width,
                prepared.height, unindexed, dict(labels or {}), source,
            )
            rows = [
                self._store.insert_face(
                    conn, coll.rowid, str(uuid.uuid4()), image_row, f.bounding_box, f.confidence,
                    f.quality, f.detail, f.vector, f.thumbnail,
                )
                for f in prepared.faces
            ]
            self._store.log_changes(conn, coll.rowid, rows, len(rows))
            return self._existing(conn, coll, (image_row, image_id, json.dumps(unindexed)), fresh=True)

    def _existing(self, conn: Connection, coll: CollectionRow, image_row: tuple[int, str, str],
                  fresh: bool = False) -> IndexFacesResult:
        row_id, image_id, unindexed_json = image_row
        details = self._store.face_details(conn, row_id)
        faces = self._face_rows(conn, [r for r, _ in details])
        records = tuple(
            FaceRecord(face=self._face(faces[r], coll), face_detail=json.loads(d)) for r, d in details
        )
        return IndexFacesResult(
            face_records=records,
            unindexed_faces=tuple(
                UnindexedFace(tuple(u["Reasons"]), u["FaceDetail"]) for u in json.loads(unindexed_json)
            ),
            face_model_version=coll.model_version,
            image_id=image_id,
            already_indexed=not fresh,
        )

    def _indexed_image_keys(self, collection_id: str) -> set[tuple[str, str]]:
        """{(sha256, ExternalImageId or '')} already in the collection (for the batch indexer)."""
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, collection_id)
            return self._store.image_keys(conn, coll.rowid)

    def list_faces(
        self,
        *,
        collection_id: str,
        next_token: str | None = None,
        max_results: int | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> ListFacesResult:
        """Faces in indexing order, ``max_results`` (default 1000, at most 4096) per page.

        ``user_id`` and ``face_ids`` filter (both: faces matching both); an unknown
        user or face id simply matches nothing.
        """
        name = v.collection_id(collection_id)
        limit = v.page_size(max_results)
        uid = v.user_id(user_id) if user_id is not None else None
        fids = v.face_ids(face_ids) if face_ids is not None else None
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            scope = _tokens.scope_of("faces", coll.rowid, uid, sorted(fids) if fids else None)
            after = 0
            if next_token is not None:
                after = _tokens.decode(self._store.secret(conn), next_token, "faces", scope)
            user_row = None
            if uid is not None:
                user_row = self._store.find_user(conn, coll.rowid, uid)
                if user_row is None:
                    return ListFacesResult(faces=(), face_model_version=coll.model_version)
            rows = self._store.list_faces(conn, coll.rowid, after, limit + 1, user_row, fids)
            more = len(rows) > limit
            rows = rows[:limit]
            token = _tokens.encode(self._store.secret(conn), "faces", scope, rows[-1].rowid) if more else None
        return ListFacesResult(
            faces=tuple(self._face(r, coll) for r in rows),
            face_model_version=coll.model_version,
            next_token=token,
        )

    def faces_indexed_before(self, *, collection_id: str, before: float) -> tuple[tuple[str, str | None], ...]:
        """(FaceId, UserId or None) of the faces indexed before ``before`` (Unix seconds), oldest
        first: what a retention period of the collection has expired (not a Rekognition operation)."""
        name = v.collection_id(collection_id)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            return tuple(self._store.faces_created_before(conn, coll.rowid, float(before)))

    def delete_faces(self, *, collection_id: str, face_ids: Sequence[str]) -> DeleteFacesResult:
        """Delete faces; per face failures: FACE_NOT_FOUND, ASSOCIATED_TO_AN_EXISTING_USER."""
        name = v.collection_id(collection_id)
        fids = v.face_ids(face_ids)
        deleted: list[str] = []
        failed: list[UnsuccessfulFaceDeletion] = []
        with self._store.write() as conn:
            conn, coll = self._store.require_collection(conn, name)
            found = self._store.faces_by_face_ids(conn, coll.rowid, fids)
            rows: list[int] = []
            for fid in fids:
                row = found.get(fid)
                if row is None:
                    failed.append(UnsuccessfulFaceDeletion(fid, ("FACE_NOT_FOUND",)))
                elif row.user_id is not None:
                    failed.append(
                        UnsuccessfulFaceDeletion(fid, ("ASSOCIATED_TO_AN_EXISTING_USER",), user_id=row.user_id)
                    )
                else:
                    rows.append(row.rowid)
                    deleted.append(fid)
            self._store.delete_face_rows(conn, rows)
            self._store.log_changes(conn, coll.rowid, rows, -len(rows))
        return DeleteFacesResult(deleted_faces=tuple(deleted), unsuccessful_face_deletions=tuple(failed))
