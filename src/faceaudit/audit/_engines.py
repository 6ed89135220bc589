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

import functools
import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from faceaudit._defaults import DEFAULT_FACE_MATCH_THRESHOLD
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

_Embedded = tuple[np.ndarray, np.ndarray, list[str | None], list[str | None]]
"""What embedding a list of images gives: vectors[N, D], ok[N], SHA-256[N], reason[N]."""

REKOGNITION_DEFAULT_THRESHOLD = DEFAULT_FACE_MATCH_THRESHOLD
"""Amazon Rekognition's default FaceMatchThreshold (the threshold the ACLU used; ``faceaudit._defaults``)."""

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


def _read(record: ImageRecord) -> tuple[bytes | None, str | None]:
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


def embed_under(engine, data: bytes, condition) -> CachedEmbedding:
    """The audit's image task under a probe condition: the photo degraded (seeded by the
    condition and the photo's SHA-256), its faces detected as a system built for small faces
    does (again on the image enlarged when none is found), the largest embedded; or why there
    is none (a failure to enrol under this condition). Never raises for a bad image."""
    from faceaudit.engine import degrade, detect_upscaled, load_image

    try:
        img = load_image(data)
        degraded = degrade(engine.model.detector, img, condition)
        faces, _ = detect_upscaled(engine.model.detector, degraded.image, 1)
        if not faces:
            return CachedEmbedding(None, f"no face detected under probe condition {condition.name}", 0, None)
        vec = engine.model.embedder.embed(degraded.image, faces[0])
        return CachedEmbedding(np.asarray(vec, np.float32), None, len(faces), float(faces[0].confidence))
    except NoFaceError as exc:
        return CachedEmbedding(None, str(exc) or "no face detected", 0, None)
    except FaceAuditError as exc:
        return CachedEmbedding(None, f"{exc.aws_code}: {exc}", 0, None)


def condition_cache_version(model_version: str, condition) -> str:
    """The cache's model-version key for probes under ``condition``: the model's own version
    for the clean condition, else the model's and the condition's versions together."""
    if condition is None or condition.is_clean:
        return model_version
    return f"{model_version}|probe-condition:{condition.version}"


@dataclass(frozen=True, eq=False)
class ConditionRun:
    """The probes of a design searched under one condition: the outcomes, the vectors they
    came from (for ranks), and the cost (seconds to degrade, detect and embed the probes)."""

    outcomes: SearchOutcomes
    probe_vectors: np.ndarray
    gallery_vectors: np.ndarray
    embed_seconds: float
    embedded: int
    from_cache: int


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

    def __init__(self, model: str = "sface", cache: EmbeddingCache | str | Path | None = None,
                 face_engine=None, workers: int | None = None,
                 executor: AuditExecutor | None = None) -> None:
        if face_engine is None:
            from faceaudit.engine import FaceEngine

            face_engine = FaceEngine(model)
        self.face_engine = face_engine
        self.spec = face_engine.spec
        self._cache_arg = cache
        self.executor: AuditExecutor = executor if executor is not None else LocalExecutor(workers, face_engine)
        self.embedded = 0
        self.from_cache = 0
        # (design, probes, gallery, outcomes) of the last run, for run_condition
        self._last: tuple[AuditDesign, _Embedded, _Embedded, SearchOutcomes] | None = None

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

    def _open_cache(self) -> tuple[EmbeddingCache | None, bool]:
        """The embedding cache (None: none), and whether this call opened it (and must close it)."""
        cache = self._cache_arg
        if cache is not None and not isinstance(cache, EmbeddingCache):
            return EmbeddingCache(cache), True
        return cache, False

    def _store(self, cache: EmbeddingCache | None, sha: str, result: Any,
               version: str | None = None) -> CachedEmbedding:
        """An executor's result as a cache entry, written to the cache (under ``version``, default
        the model's); a lost worker's is not cached (a rerun tries the image again)."""
        from faceaudit.engine import WorkerLost

        if isinstance(result, WorkerLost):
            return CachedEmbedding(None, f"InternalServerError: {result.message}")
        self.embedded += 1
        if cache is not None:
            cache.put(sha, version or self.spec.version, result)
        return result

    def embed(self, records: Sequence[ImageRecord], progress: bool = True, label: str = "embedding",
              condition=None) -> _Embedded:
        """(vectors[N, D], ok[N], sha[N], reason[N]) for the records, through the cache.

        ``condition``: a probe condition to degrade each image with first (cached under
        :func:`condition_cache_version`); ``sha`` stays the original image's SHA-256.

        Cached images are answered at once; the others go to the executor, and each result
        is written to the cache (by this process only) as it arrives, so an interrupted run
        keeps what it embedded.
        """
        cache, own = self._open_cache()
        version = condition_cache_version(self.spec.version, condition)
        task = embed_largest if condition is None or condition.is_clean else functools.partial(
            embed_under, condition=condition)
        dim = int(getattr(self.spec, "dimension", 128))
        n = len(records)
        vectors = np.zeros((n, dim), np.float32)
        ok = np.zeros(n, bool)
        shas: list[str | None] = [None] * n
        reasons: list[str | None] = [None] * n
        by_path: dict[Path, tuple[CachedEmbedding, str | None]] = {}
        waiting: dict[str, list[int]] = {}  # SHA-256 being embedded -> records waiting for it
        pending: dict[Path, str] = {}  # path -> SHA-256 being embedded

        def settle(i: int, entry: CachedEmbedding, sha: str | None) -> None:
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
                for sha, result in self.executor.map_images(self.spec.name, task, jobs()):
                    entry = self._store(cache, sha, result, version)
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
            outcomes = self._score(design, (vectors[:P], ok[:P], shas[:P], reasons[:P]),
                                   (vectors[P:], ok[P:], shas[P:], reasons[P:]), progress)
            self._last = (design, (vectors[:P], ok[:P], shas[:P], reasons[:P]),
                          (vectors[P:], ok[P:], shas[P:], reasons[P:]), outcomes)
            return outcomes
        finally:
            self.executor.close()

    def _score(self, design: AuditDesign, probes, gallery, progress: bool) -> SearchOutcomes:
        return score_exact(
            design, probes[0], gallery[0], probes[1], gallery[1], probes[2], gallery[2], probes[3], gallery[3],
            vectorised_similarity(self.spec.scale), extra_thresholds=(float(self.spec.recommended_similarity),),
            progress=progress, map_blocks=self.executor.map_blocks,
        )

    def similarity_function(self):
        """Array cosine -> Similarity (0-100) of this engine's model."""
        return vectorised_similarity(self.spec.scale)

    def run_condition(self, design: AuditDesign, condition, progress: bool = True, close: bool = True
                      ) -> ConditionRun:
        """Search the probes of ``design``, degraded by ``condition``, against the unchanged gallery.

        The gallery's embeddings (and, for the clean condition, the probes' and outcomes) are
        reused from :meth:`run` on the same design; degraded probes go through the cache under
        :func:`condition_cache_version`, so a changed condition version embeds them again.
        ``close=False`` keeps the executor's workers for the next condition.
        """
        last = getattr(self, "_last", None)
        try:
            if last is not None and last[0] is design:
                gallery = last[2]
            else:
                gallery = self.embed(design.gallery, progress=progress, label="embedding gallery")
            if condition.is_clean and last is not None and last[0] is design:
                return ConditionRun(last[3], last[1][0], gallery[0], 0.0, 0, 0)
            before = (self.embedded, self.from_cache)
            t0 = time.monotonic()
            probes = self.embed(design.probes, progress=progress, label=f"probes: {condition.name}",
                                condition=condition)
            seconds = time.monotonic() - t0
            outcomes = self._score(design, probes, gallery, progress)
            return ConditionRun(outcomes, probes[0], gallery[0], seconds, self.embedded - before[0],
                                self.from_cache - before[1])
        finally:
            if close:
                self.executor.close()


def _client_error(exc: Exception) -> tuple[str, str]:
    resp = getattr(exc, "response", None) or {}
    err = resp.get("Error", {}) if isinstance(resp, dict) else {}
    message = str(err.get("Message") or exc)
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        message += (" (--engine rekognition signs with boto3's credentials: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, e.g. from `faceaudit keys create --role auditor --out key.json`)")
    return str(err.get("Code") or type(exc).__name__), message


class RekognitionEngine:
    """Any Rekognition-compatible endpoint, through a boto3 ``rekognition`` client.

    Uses five operations: CreateCollection, one SearchFacesByImage of the empty
    collection (the server's policy refuses before anything is indexed), IndexFaces
    (MaxFaces=1: the largest face, ExternalImageId = the subject), DescribeCollection,
    SearchFacesByImage (FaceMatchThreshold = the lowest audited threshold,
    MaxFaces = 4096) and DeleteCollection (always, in a ``finally``). Every request
    carries the signed header ``x-faceaudit-audit: 1``: ``faceaudit serve`` logs the
    audit's searches on the collection it created but makes no review leads of them.
    ``quality_filter`` is passed to IndexFaces when given (the service's own
    default otherwise; Amazon's is AUTO).
    """

    kind = "rekognition"

    def __init__(self, client, collection_prefix: str = "faceaudit-audit", quality_filter: str | None = None,
                 max_faces: int = REKOGNITION_MAX_FACES, model_name: str | None = None) -> None:
        self.client = client
        self.collection_prefix = collection_prefix
        self.quality_filter = quality_filter
        self.max_faces = int(max_faces)
        self.model_name = model_name
        self.face_model_version = "unknown (not run yet)"
        self.collection_id: str | None = None
        self.search_threshold: float | None = None
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:  # signed with the request: faceaudit serve logs it but makes no leads
            events.register("before-sign.rekognition.*", _mark_audit_traffic)

    def endpoint(self) -> str | None:
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
            raise RemoteServiceError(f"{name} failed: {message}",
                                     aws_code=code if "Exception" in code else None) from exc

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
            raise RemoteServiceError(f"{name} failed: {message}",
                                     aws_code=code if "Exception" in code else None) from exc

    def run(self, design: AuditDesign, progress: bool = True) -> SearchOutcomes:
        """Index the gallery into a temporary collection, search every probe at the lowest audited
        threshold, delete the collection; outcomes from the candidate lists."""
        self.search_threshold = design.config.floor
        cid = f"{self.collection_prefix}-{uuid.uuid4().hex[:12]}"
        # exact search whatever the server's default index (faceaudit's tag; Rekognition keeps it as a tag)
        created = self._call("create_collection", CollectionId=cid, Tags={INDEX_TAG: "flat"})
        self.collection_id = cid
        self.face_model_version = str(created.get("FaceModelVersion") or "unknown")
        try:
            self._check_search_allowed(design, cid)  # a refusing policy refuses before 320 uploads
            gallery = self._index_gallery(design, cid, progress)
            desc = self._call("describe_collection", CollectionId=cid)
            self.face_model_version = str(desc.get("FaceModelVersion") or self.face_model_version)
            probes = self._search_probes(design, cid, gallery.face_index, progress)
        finally:
            try:
                self.client.delete_collection(CollectionId=cid)
            except Exception:  # the audit's own error matters more; the name is in the log
                import logging

                logging.getLogger(__name__).warning("could not delete the temporary collection %s", cid)
        return outcomes_from_candidates(
            design, probes.ok, gallery.ok, probes.sha, gallery.sha, probes.reason, gallery.reason,
            np.array(probes.cand_probe, np.int64), np.array(probes.cand_gallery, np.int64),
            np.array(probes.cand_similarity, np.float64),
            truncated=probes.truncated, extra_thresholds=(REKOGNITION_DEFAULT_THRESHOLD,),
        )

    def _check_search_allowed(self, design: AuditDesign, cid: str, tries: int = 5) -> None:
        """One search of the empty collection as the audit will search it, before anything is
        indexed: a server whose policy refuses the audit's threshold (AccessDeniedException) or
        a missing credential fails here, not after the whole gallery was uploaded. Probes whose
        image cannot be used are skipped (up to ``tries``); the audit reports them later."""
        for r in design.probes[:tries]:
            data, _ = _read(r)
            if data is None:
                continue
            resp, _ = self._image_call(
                "search_faces_by_image", CollectionId=cid, Image={"Bytes": data},
                FaceMatchThreshold=float(design.config.floor), MaxFaces=self.max_faces)
            if resp is not None:
                return

    def _index_gallery(self, design: AuditDesign, cid: str, progress: bool) -> _Indexed:
        """IndexFaces of every gallery image (the largest face only) into collection ``cid``."""
        G = design.n_gallery
        done = _Indexed(np.zeros(G, bool), [None] * G, [None] * G, {})
        with Progress("indexing gallery", G, enabled=progress) as bar:
            for j, r in enumerate(design.gallery):
                data, err = _read(r)
                if data is None:
                    done.reason[j] = err
                    bar.update(1)
                    continue
                done.sha[j] = hashlib.sha256(data).hexdigest()
                kwargs = dict(CollectionId=cid, Image={"Bytes": data},
                              ExternalImageId=external_image_id(r.subject), MaxFaces=1)
                if self.quality_filter:
                    kwargs["QualityFilter"] = self.quality_filter
                resp, err = self._image_call("index_faces", **kwargs)
                records = (resp or {}).get("FaceRecords") or []
                if records:
                    done.face_index[records[0]["Face"]["FaceId"]] = j
                    done.ok[j] = True
                else:
                    reasons = [",".join(u.get("Reasons", [])) for u in (resp or {}).get("UnindexedFaces", [])]
                    done.reason[j] = err or ("face not indexed: " + "; ".join(reasons) if reasons
                                             else "no face detected")
                bar.update(1)
        return done

    def _search_probes(self, design: AuditDesign, cid: str, face_index: dict[str, int],
                       progress: bool) -> _Searched:
        """SearchFacesByImage of every probe at the lowest audited threshold; candidates are gallery rows."""
        P = design.n_probes
        done = _Searched(np.zeros(P, bool), [None] * P, [None] * P, [], [], [], np.zeros(P, bool))
        with Progress("searching", P, enabled=progress) as bar:
            for i, r in enumerate(design.probes):
                data, err = _read(r)
                if data is None:
                    done.reason[i] = err
                    bar.update(1)
                    continue
                done.sha[i] = hashlib.sha256(data).hexdigest()
                resp, err = self._image_call(
                    "search_faces_by_image", CollectionId=cid, Image={"Bytes": data},
                    FaceMatchThreshold=float(design.config.floor), MaxFaces=self.max_faces)
                if resp is None:
                    done.reason[i] = err
                    bar.update(1)
                    continue
                done.ok[i] = True
                matches = resp.get("FaceMatches") or []
                done.truncated[i] = len(matches) >= self.max_faces
                for m in matches:
                    j = face_index.get(m["Face"]["FaceId"])
                    if j is None:
                        continue  # a face this audit did not index
                    done.cand_probe.append(i)
                    done.cand_gallery.append(j)
                    done.cand_similarity.append(round(float(m["Similarity"]), 4))  # as candidates.csv writes it
                bar.update(1)
        return done


@dataclass(frozen=True)
class _Indexed:
    """The gallery as indexed: enrolled or not, SHA-256 and reason per image; FaceId -> gallery row."""

    ok: np.ndarray
    sha: list[str | None]
    reason: list[str | None]
    face_index: dict[str, int]


@dataclass(frozen=True)
class _Searched:
    """The probes as searched: ok, SHA-256 and reason per image; candidates (probe row, gallery row,
    Similarity); whether a search was cut at MaxFaces."""

    ok: np.ndarray
    sha: list[str | None]
    reason: list[str | None]
    cand_probe: list[int]
    cand_gallery: list[int]
    cand_similarity: list[float]
    truncated: np.ndarray


AUDIT_HEADER = "x-faceaudit-audit"


def _mark_audit_traffic(request, **_):
    """Tell ``faceaudit serve`` that this is an audit's own traffic (Amazon ignores the header)."""
    request.headers[AUDIT_HEADER] = "1"


def make_client(endpoint_url: str | None = None, region: str | None = None):
    """A boto3 ``rekognition`` client (credentials from the usual boto3 chain)."""
    try:
        import boto3
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise InvalidParameterError("the rekognition engine needs boto3") from None
    import os

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        return boto3.client("rekognition", endpoint_url=endpoint_url, region_name=region)
    except Exception as exc:  # botocore: ProfileNotFound, a malformed endpoint URL or config file
        raise InvalidParameterError(f"cannot make the rekognition client: {exc}") from None
