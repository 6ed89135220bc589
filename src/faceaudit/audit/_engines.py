"""Audit engines: one small interface, two implementations.

* :class:`LocalEngine` embeds every image with faceaudit's own models (any installed
  model) through an executor (worker processes on this machine, or Ray), caches
  embeddings by image SHA-256 and FaceModelVersion, and scores every probe against
  every gallery face exactly.
* :class:`RekognitionEngine` talks to any Rekognition-compatible endpoint through
  a boto3 client (Amazon Rekognition itself, or ``faceaudit serve``): it creates
  a temporary collection, indexes the gallery, searches each probe, and deletes
  the collection. It only sees candidates at or above the lowest audited
  threshold, so score curves and the FMR-target thresholds need the local engine.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from faceaudit._errors import (
    FaceAuditError,
    InvalidParameterError,
    NoFaceError,
    RemoteServiceError,
)
from faceaudit._progress import Progress
from faceaudit.audit._cache import CachedEmbedding, EmbeddingCache
from faceaudit.audit._design import AuditDesign
from faceaudit.audit._executors import AuditExecutor, LocalExecutor
from faceaudit.audit._manifest import ImageRecord
from faceaudit.audit._results import EngineInfo
from faceaudit.audit._scoring import (
    SearchOutcomes,
    outcomes_from_candidates,
    score_exact,
    vectorised_similarity,
)
from faceaudit.collections import INDEX_TAG
from faceaudit.collections import map_external_image_id as external_image_id

REKOGNITION_DEFAULT_THRESHOLD = 80.0
"""Amazon Rekognition's default FaceMatchThreshold (the threshold the ACLU used)."""

REKOGNITION_MAX_FACES = 4096
"""The largest MaxFaces SearchFacesByImage accepts."""

IMAGE_ERROR_CODES = frozenset({
    "InvalidParameterException", "InvalidImageFormatException", "ImageTooLargeException",
})
"""Error names that mean "this image cannot be used" rather than "the audit cannot go on"."""


@runtime_checkable
class AuditEngine(Protocol):
    """What the audit needs from an engine: who it is, and the outcomes of all searches."""

    def info(self) -> EngineInfo:
        """Engine kind, model name and FaceModelVersion (after :meth:`run` for remote engines)."""
        ...

    def run(self, design: AuditDesign, progress: bool = True) -> SearchOutcomes:
        """Search every probe of ``design`` against its gallery."""
        ...


def _read(record: ImageRecord) -> Tuple[Optional[bytes], Optional[str]]:
    from faceaudit.engine import read_bytes

    try:
        return read_bytes(record.path), None
    except FaceAuditError as exc:
        return None, str(exc)


def embed_largest(engine, data: bytes) -> CachedEmbedding:
    """The audit's image task: the largest face's embedding, or why there is none (never raises
    for a bad image). Runs wherever the executor puts it (a worker process, a Ray node)."""
    from faceaudit.engine import load_image

    try:
        img = load_image(data)
        faces = engine.model.detector.detect(img, 1)
        if not faces:
            return CachedEmbedding(None, "no face detected", 0, None)
        vec = engine.model.embedder.embed(img, faces[0])
        return CachedEmbedding(np.asarray(vec, np.float32), None, len(faces), float(faces[0].confidence))
    except NoFaceError as exc:
        return CachedEmbedding(None, str(exc) or "no face detected", 0, None)
    except FaceAuditError as exc:
        return CachedEmbedding(None, f"{exc.aws_code}: {exc}", 0, None)


class LocalEngine:
    """faceaudit's own models: exact scores for every probe-gallery pair.

    ``cache``: an :class:`EmbeddingCache`, a path to one, or None (no cache).
    ``workers``: processes that embed (default: the CPUs; 1 embeds in this process).
    ``executor``: where images are embedded and blocks scored (default: a
    :class:`LocalExecutor` with ``workers``; or a :class:`RayExecutor`). This process
    stays the only writer of the cache, so progress and resume are the same everywhere.
    ``face_engine``: a ready :class:`FaceEngine` used when embedding in this process.
    """

    kind = "local"

    def __init__(self, model: str = "sface", cache: "EmbeddingCache | str | Path | None" = None,
                 face_engine=None, workers: Optional[int] = None,
                 executor: Optional[AuditExecutor] = None) -> None:
        if face_engine is None:
            from faceaudit.engine import FaceEngine

            face_engine = FaceEngine(model)
        self.face_engine = face_engine
        self.spec = face_engine.spec
        self._cache_arg = cache
        self.executor: AuditExecutor = executor if executor is not None else LocalExecutor(workers, face_engine)
        self.embedded = 0
        self.from_cache = 0

    def info(self) -> EngineInfo:
        return EngineInfo(
            kind=self.kind, model=self.spec.name, face_model_version=self.spec.version, exact_scores=True,
            model_threshold=float(self.spec.recommended_similarity),
            model_threshold_source=self.spec.recommended_source,
            similarity=self.spec.scale.formula,
            search={"faces_per_image": "largest face only", "scores": "every probe against every gallery face"},
            similarity_scale_version=self.spec.scale.version,
            # as loaded here when this process embedded; else as planned (workers log a fallback)
            runtime=self.face_engine.loaded_runtime or self.spec.runtime() or None,
        )

    def _embed_one(self, data: bytes) -> CachedEmbedding:
        return embed_largest(self.face_engine, data)

    def embed(self, records: Sequence[ImageRecord], progress: bool = True, label: str = "embedding"):
        """(vectors[N, D], ok[N], sha[N], reason[N]) for the records, through the cache.

        Cached images are answered at once; the others go to the executor, and each result
        is written to the cache (by this process only) as it arrives, so an interrupted run
        keeps what it embedded.
        """
        from faceaudit.engine import WorkerLost

        cache = self._cache_arg
        own = False
        if cache is not None and not isinstance(cache, EmbeddingCache):
            cache = EmbeddingCache(cache)
            own = True
        version = self.spec.version
        dim = int(getattr(self.spec, "dimension", 128))
        n = len(records)
        vectors = np.zeros((n, dim), np.float32)
        ok = np.zeros(n, bool)
        shas: List[Optional[str]] = [None] * n
        reasons: List[Optional[str]] = [None] * n
        by_path: Dict[Path, Tuple[CachedEmbedding, Optional[str]]] = {}
        waiting: Dict[str, List[int]] = {}  # SHA-256 being embedded -> records waiting for it
        pending: Dict[Path, str] = {}  # path -> SHA-256 being embedded

        def settle(i: int, entry: CachedEmbedding, sha: Optional[str]) -> None:
            shas[i] = sha
            if entry.ok:
                vectors[i] = entry.vector
                ok[i] = True
            else:
                reasons[i] = entry.reason
            bar.update(1)

        def jobs():
            for i, r in enumerate(records):
                if r.path in by_path:
                    settle(i, *by_path[r.path])
                    continue
                if r.path in pending:
                    waiting[pending[r.path]].append(i)
                    continue
                data, err = _read(r)
                if data is None:
                    by_path[r.path] = (CachedEmbedding(None, err or "unreadable"), None)
                    settle(i, *by_path[r.path])
                    continue
                sha = hashlib.sha256(data).hexdigest()
                entry = cache.get(sha, version) if cache is not None else None
                if entry is not None:
                    self.from_cache += 1
                    by_path[r.path] = (entry, sha)
                    settle(i, entry, sha)
                    continue
                pending[r.path] = sha
                if sha in waiting:  # the same bytes under another path: embedded once
                    self.from_cache += 1
                    waiting[sha].append(i)
                    continue
                waiting[sha] = [i]
                yield sha, data

        try:
            with Progress(label, n, enabled=progress) as bar:
                for sha, result in self.executor.map_images(self.spec.name, embed_largest, jobs()):
                    if isinstance(result, WorkerLost):  # not cached: a rerun tries it again
                        entry = CachedEmbedding(None, f"InternalServerError: {result.message}")
                    else:
                        entry = result
                        self.embedded += 1
                        if cache is not None:
                            cache.put(sha, version, entry)
                    for i in waiting.pop(sha):
                        by_path[records[i].path] = (entry, sha)
                        settle(i, entry, sha)
        finally:
            if cache is not None:
                cache.commit()
                if own:
                    cache.close()
        return vectors, ok, shas, reasons

    def run(self, design: AuditDesign, progress: bool = True) -> SearchOutcomes:
        try:
            records = design.probes + design.gallery
            vectors, ok, shas, reasons = self.embed(records, progress=progress)
            P = design.n_probes
            return score_exact(
                design, vectors[:P], vectors[P:], ok[:P], ok[P:], shas[:P], shas[P:], reasons[:P], reasons[P:],
                vectorised_similarity(self.spec.scale), extra_thresholds=(float(self.spec.recommended_similarity),),
                progress=progress, map_blocks=self.executor.map_blocks,
            )
        finally:
            self.executor.close()


def _client_error(exc: Exception) -> Tuple[str, str]:
    resp = getattr(exc, "response", None) or {}
    err = resp.get("Error", {}) if isinstance(resp, dict) else {}
    return str(err.get("Code") or type(exc).__name__), str(err.get("Message") or exc)


class RekognitionEngine:
    """Any Rekognition-compatible endpoint, through a boto3 ``rekognition`` client.

    Uses five operations: CreateCollection, IndexFaces (MaxFaces=1: the largest
    face, ExternalImageId = the subject), DescribeCollection,
    SearchFacesByImage (FaceMatchThreshold = the lowest audited threshold,
    MaxFaces = 4096) and DeleteCollection (always, in a ``finally``). Every request
    carries the signed header ``x-faceaudit-audit: 1``: ``faceaudit serve`` logs the
    audit's searches on the collection it created but makes no review leads of them.
    ``quality_filter`` is passed to IndexFaces when given (the service's own
    default otherwise; Amazon's is AUTO).
    """

    kind = "rekognition"

    def __init__(self, client, collection_prefix: str = "faceaudit-audit", quality_filter: Optional[str] = None,
                 max_faces: int = REKOGNITION_MAX_FACES, model_name: Optional[str] = None) -> None:
        self.client = client
        self.collection_prefix = collection_prefix
        self.quality_filter = quality_filter
        self.max_faces = int(max_faces)
        self.model_name = model_name
        self.face_model_version = "unknown (not run yet)"
        self.collection_id: Optional[str] = None
        self.search_threshold: Optional[float] = None
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:  # signed with the request: faceaudit serve logs it but makes no leads
            events.register("before-sign.rekognition.*", _mark_audit_traffic)

    def endpoint(self) -> Optional[str]:
        meta = getattr(self.client, "meta", None)
        return getattr(meta, "endpoint_url", None)

    def info(self) -> EngineInfo:
        return EngineInfo(
            kind=self.kind, model=self.model_name or "rekognition-compatible endpoint",
            face_model_version=self.face_model_version, exact_scores=False,
            model_threshold=REKOGNITION_DEFAULT_THRESHOLD,
            model_threshold_source="Amazon Rekognition's default FaceMatchThreshold (80)",
            similarity="as reported by the endpoint (0-100)", endpoint=self.endpoint(),
            search={"operation": "SearchFacesByImage", "FaceMatchThreshold": self.search_threshold,
                    "MaxFaces": self.max_faces, "IndexFaces.MaxFaces": 1,
                    "IndexFaces.QualityFilter": self.quality_filter or "service default"},
        )

    def _call(self, name: str, **kwargs):
        try:
            return getattr(self.client, name)(**kwargs)
        except FaceAuditError:
            raise
        except Exception as exc:  # botocore ClientError, connection errors, credentials
            code, message = _client_error(exc)
            raise RemoteServiceError(f"{name} failed: {message}", aws_code=code if "Exception" in code else None) from exc

    def _image_call(self, name: str, **kwargs):
        """A call about one image: (response, None), or (None, reason) when the image cannot be used."""
        try:
            return getattr(self.client, name)(**kwargs), None
        except FaceAuditError as exc:
            if exc.aws_code in IMAGE_ERROR_CODES:
                return None, f"{exc.aws_code}: {exc}"
            raise
        except Exception as exc:
            code, message = _client_error(exc)
            if code in IMAGE_ERROR_CODES:
                return None, f"{code}: {message}"
            raise RemoteServiceError(f"{name} failed: {message}", aws_code=code if "Exception" in code else None) from exc

    def run(self, design: AuditDesign, progress: bool = True) -> SearchOutcomes:
        floor = design.config.floor
        self.search_threshold = floor
        P, G = design.n_probes, design.n_gallery
        probe_ok = np.zeros(P, bool)
        gallery_ok = np.zeros(G, bool)
        probe_sha: List[Optional[str]] = [None] * P
        gallery_sha: List[Optional[str]] = [None] * G
        probe_reason: List[Optional[str]] = [None] * P
        gallery_reason: List[Optional[str]] = [None] * G
        cand_p: List[int] = []
        cand_g: List[int] = []
        cand_s: List[float] = []
        truncated = np.zeros(P, bool)
        cid = f"{self.collection_prefix}-{uuid.uuid4().hex[:12]}"
        # exact search whatever the server's default index (faceaudit's tag; Rekognition keeps it as a tag)
        created = self._call("create_collection", CollectionId=cid, Tags={INDEX_TAG: "flat"})
        self.collection_id = cid
        self.face_model_version = str(created.get("FaceModelVersion") or "unknown")
        try:
            face_index: Dict[str, int] = {}
            with Progress("indexing gallery", G, enabled=progress) as bar:
                for j, r in enumerate(design.gallery):
                    data, err = _read(r)
                    if data is None:
                        gallery_reason[j] = err
                        bar.update(1)
                        continue
                    gallery_sha[j] = hashlib.sha256(data).hexdigest()
                    kwargs = dict(CollectionId=cid, Image={"Bytes": data},
                                  ExternalImageId=external_image_id(r.subject), MaxFaces=1)
                    if self.quality_filter:
                        kwargs["QualityFilter"] = self.quality_filter
                    resp, err = self._image_call("index_faces", **kwargs)
                    records = (resp or {}).get("FaceRecords") or []
                    if records:
                        face_index[records[0]["Face"]["FaceId"]] = j
                        gallery_ok[j] = True
                    else:
                        reasons = [",".join(u.get("Reasons", [])) for u in (resp or {}).get("UnindexedFaces", [])]
                        gallery_reason[j] = err or ("face not indexed: " + "; ".join(reasons) if reasons
                                                    else "no face detected")
                    bar.update(1)
            desc = self._call("describe_collection", CollectionId=cid)
            self.face_model_version = str(desc.get("FaceModelVersion") or self.face_model_version)
            with Progress("searching", P, enabled=progress) as bar:
                for i, r in enumerate(design.probes):
                    data, err = _read(r)
                    if data is None:
                        probe_reason[i] = err
                        bar.update(1)
                        continue
                    probe_sha[i] = hashlib.sha256(data).hexdigest()
                    resp, err = self._image_call(
                        "search_faces_by_image", CollectionId=cid, Image={"Bytes": data},
                        FaceMatchThreshold=float(floor), MaxFaces=self.max_faces)
                    if resp is None:
                        probe_reason[i] = err
                        bar.update(1)
                        continue
                    probe_ok[i] = True
                    matches = resp.get("FaceMatches") or []
                    truncated[i] = len(matches) >= self.max_faces
                    for m in matches:
                        j = face_index.get(m["Face"]["FaceId"])
                        if j is None:
                            continue  # a face this audit did not index
                        cand_p.append(i)
                        cand_g.append(j)
                        cand_s.append(round(float(m["Similarity"]), 4))  # as candidates.csv writes it
                    bar.update(1)
        finally:
            try:
                self.client.delete_collection(CollectionId=cid)
            except Exception:  # the audit's own error matters more; the name is in the log
                import logging

                logging.getLogger(__name__).warning("could not delete the temporary collection %s", cid)
        return outcomes_from_candidates(
            design, probe_ok, gallery_ok, probe_sha, gallery_sha, probe_reason, gallery_reason,
            np.array(cand_p, np.int64), np.array(cand_g, np.int64), np.array(cand_s, np.float64),
            truncated=truncated, extra_thresholds=(REKOGNITION_DEFAULT_THRESHOLD,),
        )


AUDIT_HEADER = "x-faceaudit-audit"


def _mark_audit_traffic(request, **_):
    """Tell ``faceaudit serve`` that this is an audit's own traffic (Amazon ignores the header)."""
    request.headers[AUDIT_HEADER] = "1"


def make_client(endpoint_url: Optional[str] = None, region: Optional[str] = None):
    """A boto3 ``rekognition`` client (credentials from the usual boto3 chain)."""
    try:
        import boto3
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise InvalidParameterError("the rekognition engine needs boto3") from None
    import os

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("rekognition", endpoint_url=endpoint_url, region_name=region)
