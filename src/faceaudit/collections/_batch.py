"""Batch indexing: many images into one collection, in parallel, resumable.

Worker processes (the engine's :class:`~faceaudit.engine.EnginePool`, each with its
own engine and one OpenCV thread) decode, detect, filter and embed; the parent process
is the only SQLite writer and commits each image
(its image row, faces and change-log rows) in one small transaction. An image
is identified by the SHA-256 of its bytes and its ExternalImageId, exactly as
IndexFaces deduplicates: a run killed at any moment (kill -9 included) and run
again skips what was committed and indexes the rest, so every image is indexed
exactly once and nothing committed is lost. Images that cannot be read or
decoded are reported (count and reasons) and do not stop the run.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from faceaudit._errors import FaceAuditError
from faceaudit._progress import Progress
from faceaudit.collections import _validate as v
from faceaudit.collections._collections import FaceCollections
from faceaudit.collections._manifest import BatchItem
from faceaudit.collections._prepare import PreparedImage, prepare_index
from faceaudit.engine import (
    MAX_FACES_CONSIDERED,
    EnginePool,
    FaceEngine,
    WorkerLost,
    check_workers,
    load_image,
    read_bytes,
)


@dataclass(frozen=True)
class BatchFailure:
    """An image that could not be indexed: its name, the error's AWS code and message."""

    name: str
    code: str
    message: str


@dataclass(frozen=True)
class BatchReport:
    """What a batch run did. Counts are images unless they say faces."""

    collection_id: str
    total: int
    indexed_images: int
    faces_indexed: int
    already_indexed: int
    without_faces: int
    unindexed_faces: int
    failures: tuple[BatchFailure, ...]
    seconds: float
    workers: int
    unindexed_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def failure_reasons(self) -> dict[str, int]:
        """{"<code>: <message>": count}, most common first."""
        return dict(Counter(f"{f.code}: {f.message}" for f in self.failures).most_common())

    def to_dict(self) -> dict[str, Any]:
        return {
            "CollectionId": self.collection_id,
            "Images": self.total,
            "IndexedImages": self.indexed_images,
            "FacesIndexed": self.faces_indexed,
            "AlreadyIndexed": self.already_indexed,
            "ImagesWithoutIndexedFaces": self.without_faces,
            "UnindexedFaces": self.unindexed_faces,
            "UnindexedReasons": dict(self.unindexed_reasons),
            "Failed": self.failed,
            "FailureReasons": self.failure_reasons(),
            "Failures": [{"Image": f.name, "Code": f.code, "Message": f.message} for f in self.failures],
            "Seconds": round(self.seconds, 3),
            "Workers": self.workers,
        }


def _prepare(engine: FaceEngine, data: bytes, max_faces: int,
             level: str) -> tuple[PreparedImage, None] | tuple[None, tuple[str, str]]:
    """The pool's task: detect, filter and embed one image (errors become values: (aws code, message))."""
    try:
        return prepare_index(engine, load_image(data), max_faces=max_faces, quality_filter=level), None
    except FaceAuditError as exc:
        return None, (exc.aws_code, exc.message)
    except Exception as exc:  # a bad image must not stop the run
        return None, ("InternalServerError", f"{type(exc).__name__}: {exc}")


# -- parent side ---------------------------------------------------------------------------------
class _Run:
    def __init__(self, fc: FaceCollections, name: str, items: Sequence[BatchItem], progress: Progress) -> None:
        self.fc, self.name, self.items, self.progress = fc, name, items, progress
        self.indexed = self.faces = self.already = self.without = self.unindexed = 0
        self.reasons: Counter[str] = Counter()
        self.failures: list[BatchFailure] = []

    def jobs(self) -> Iterator[tuple[int, bytes]]:
        """(item number, bytes) of every item not yet in the collection."""
        seen = self.fc._indexed_image_keys(self.name)
        for n, item in enumerate(self.items):
            try:
                data = read_bytes(item.source)
            except FaceAuditError as exc:
                self.fail(n, exc.aws_code, exc.message)
                continue
            key = (hashlib.sha256(data).hexdigest(), item.external_image_id or "")
            if key in seen:
                self.already += 1
                self.progress.update(skipped=1)
                continue
            seen.add(key)
            yield n, data

    def fail(self, n: int, code: str, message: str) -> None:
        self.failures.append(BatchFailure(self.items[n].name or str(self.items[n].source), code, message))
        self.progress.update(failed=1)

    def store(self, n: int, prepared: PreparedImage | None, error: tuple[str, str] | None) -> None:
        if prepared is None or error is not None:  # _prepare gives an error whenever it has no image
            self.fail(n, *(error or ("InternalServerError", "no prepared image")))
            return
        item = self.items[n]
        result = self.fc._store_prepared(
            self.name, prepared, external_image_id=item.external_image_id,
            labels=item.labels, source=str(item.source),
        )
        if result.already_indexed:
            self.already += 1
            self.progress.update(skipped=1)
            return
        self.faces += len(result.face_records)
        self.unindexed += len(result.unindexed_faces)
        for u in result.unindexed_faces:
            self.reasons.update(u.reasons)
        if result.face_records:
            self.indexed += 1
            self.progress.update(indexed=1)
        else:
            self.without += 1
            self.progress.update(no_face=1)


def index_batch(
    collection_id: str,
    items: Iterable[BatchItem],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    collections: FaceCollections | None = None,
    workers: int | None = None,
    max_faces: int | None = None,
    quality_filter: str | None = None,
    progress: bool = True,
    checkpoint: bool = True,
) -> BatchReport:
    """Index ``items`` into an existing collection; resumable and exactly-once per image.

    ``workers``: processes of the shared :class:`~faceaudit.engine.EnginePool` (default: the
    CPUs; 1 runs in this process).
    ``max_faces`` / ``quality_filter``: as IndexFaces (defaults 100 and AUTO).
    ``progress``: draw a progress bar on stderr. ``checkpoint``: write the index
    snapshot at the end, so searching processes start fast.
    """
    fc = collections or FaceCollections(data_dir)
    name = v.collection_id(collection_id)
    limit = min(v.int_range(max_faces, "MaxFaces", MAX_FACES_CONSIDERED, 1, None), MAX_FACES_CONSIDERED)
    level = v.quality_filter(quality_filter, "AUTO")
    coll = fc._collection_row(name)
    fc._spec(coll)  # the pinned model must be available before any work
    items = list(items)
    workers = min(check_workers(workers), max(1, len(items)))
    bar = Progress(name, len(items), enabled=progress)
    run = _Run(fc, name, items, bar)
    start = time.monotonic()
    try:
        with EnginePool(coll.model, workers, engine=fc._engine(coll) if workers == 1 else None) as pool:
            for n, result in pool.map(_prepare, run.jobs(), limit, level):
                if isinstance(result, WorkerLost):
                    run.fail(n, "InternalServerError", result.message)
                else:
                    run.store(n, *result)
    finally:
        bar.close()
    if checkpoint and run.faces:
        fc.checkpoint_index(name)
    return BatchReport(
        collection_id=name, total=len(items), indexed_images=run.indexed, faces_indexed=run.faces,
        already_indexed=run.already, without_faces=run.without, unindexed_faces=run.unindexed,
        failures=tuple(run.failures), seconds=time.monotonic() - start, workers=workers,
        unindexed_reasons=dict(run.reasons),
    )
