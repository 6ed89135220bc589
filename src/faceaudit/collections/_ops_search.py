"""SearchFacesByImage and SearchFaces: 1:N search (exact with the flat index and Milvus,
approximate candidates with exact similarities with the fast scan and HNSW)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from faceaudit._errors import NoFaceError, ResourceNotFoundError
from faceaudit.collections import _quality
from faceaudit.collections import _validate as v
from faceaudit.collections._backend import Backend
from faceaudit.collections._results import SearchFacesByImageResult, SearchFacesResult
from faceaudit.engine import DetectedFace, FaceEngine, Image, Quality, load_image, report_probe, stored_quality


def searchable_faces(
    engine: FaceEngine, img: Image, level: str
) -> tuple[DetectedFace | None, list[tuple[DetectedFace, tuple[str, ...]]]]:
    """(the face to search, [(other face, reasons)]): the largest face passing ``level``.

    Every other face is returned with FACE_NOT_LARGEST if it passes the bar, else
    with its quality reasons.
    """
    chosen = None
    others = []
    for face in engine.detect(img).faces:  # largest first
        reasons = tuple(_quality.failures(face, level))
        if not reasons and chosen is None:
            chosen = face
        else:
            others.append((face, reasons or ("FACE_NOT_LARGEST",)))
    return chosen, others


def stored_probe_quality(conn: Any, face_rows: Sequence[int]) -> Quality | None:
    """The quality of the stored face(s) a FaceId or UserId search uses as its probe, from each
    face's FaceDetail at indexing and its image's size (:func:`faceaudit.engine.stored_quality`;
    no noise). For several faces (a user's) the lowest, by eye distance: each of them is searched
    and any may make a lead. None when no face's quality is known."""
    known = []
    for rowid in face_rows:
        row = conn.execute("SELECT f.detail, i.width, i.height FROM faces f JOIN images i ON i.id = f.image_row "
                           "WHERE f.id = ?", (int(rowid),)).fetchone()
        if row is None:
            continue
        try:
            detail = json.loads(row[0]) if isinstance(row[0], (str, bytes)) else row[0]
        except ValueError:
            continue
        quality = stored_quality(detail, row[1], row[2])
        if quality is not None:
            known.append(quality)
    return min(known, key=lambda q: q.eye_distance_px) if known else None


class SearchOps(Backend):
    def search_faces_by_image(
        self,
        *,
        collection_id: str,
        image: bytes,
        max_faces: int | None = None,
        face_match_threshold: float | None = None,
        quality_filter: str | None = None,
    ) -> SearchFacesByImageResult:
        """Search the collection for the largest face of ``image``.

        With the flat index and Milvus every face of the collection is scored (exact search);
        with the fast scan or HNSW only the candidates they propose are (approximate search,
        exact similarities). Returns up to
        ``max_faces`` (default 80, 1..4096) faces with similarity >= ``face_match_threshold``
        (default 80), highest first. ``quality_filter`` (default NONE) skips faces
        below that bar; InvalidParameterException when no face is left.
        Each match is an investigative lead, not an identification.
        """
        name = v.collection_id(collection_id)
        k = v.int_range(max_faces, "MaxFaces", v.DEFAULT_SEARCH_MAX_FACES, 1, v.MAX_SEARCH_MAX_FACES)
        threshold = v.percent(face_match_threshold, "FaceMatchThreshold", v.DEFAULT_FACE_MATCH_THRESHOLD)
        level = v.quality_filter(quality_filter, "NONE")
        data = v.image_bytes(image)
        coll = self._collection_row(name)
        engine = self._engine(coll)
        img = load_image(data)
        face, others = searchable_faces(engine, img, level)
        if face is None:
            if others:
                raise NoFaceError(
                    f"no face in the image passes QualityFilter {level} "
                    f"(largest face: {', '.join(others[0][1])})"
                )
            raise NoFaceError("no face was found in the image")
        report_probe(face.quality)  # the accountability layer's minimum-quality policy may refuse here
        vector = engine.embed(img, face).vector
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            self._check_pin(coll, engine)
            hits = self._search(conn, coll, vector, k, threshold)[0]
            matches = self._matches(conn, coll, hits)
        return SearchFacesByImageResult(
            searched_face_bounding_box=face.bounding_box,
            searched_face_confidence=face.confidence,
            face_matches=matches,
            face_model_version=coll.model_version,
            threshold=threshold,
        )

    def search_faces(
        self,
        *,
        collection_id: str,
        face_id: str,
        max_faces: int | None = None,
        face_match_threshold: float | None = None,
    ) -> SearchFacesResult:
        """Search the collection for a face it holds (the face itself is never a match)."""
        name = v.collection_id(collection_id)
        fid = v.face_id(face_id)
        k = v.int_range(max_faces, "MaxFaces", v.DEFAULT_SEARCH_MAX_FACES, 1, v.MAX_SEARCH_MAX_FACES)
        threshold = v.percent(face_match_threshold, "FaceMatchThreshold", v.DEFAULT_FACE_MATCH_THRESHOLD)
        with self._store.read() as conn:
            conn, coll = self._store.require_collection(conn, name)
            row = self._store.faces_by_face_ids(conn, coll.rowid, [fid]).get(fid)
            if row is None:
                raise ResourceNotFoundError(f"face {fid} is not in collection {name!r}")
            quality = stored_probe_quality(conn, [row.rowid])
            if quality is not None:
                report_probe(quality)  # the stored face is the probe: a minimum-quality policy may refuse here
            vector = self._store.face_embedding(conn, row.rowid, coll.dimension)
            hits = self._search(conn, coll, vector, k, threshold, exclude=[row.rowid])[0]
            matches = self._matches(conn, coll, hits)
        return SearchFacesResult(
            searched_face_id=fid, face_matches=matches, face_model_version=coll.model_version,
            threshold=threshold,
        )
