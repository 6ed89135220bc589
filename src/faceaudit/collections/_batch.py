"""Batch indexing: many images into one collection, in parallel, resumable.

Worker processes (``spawn``ed, each with its own engine) decode, detect, filter
and embed; the parent process is the only SQLite writer and commits each image
(its image row, faces and change-log rows) in one small transaction. An image
is identified by the SHA-256 of its bytes and its ExternalImageId, exactly as
IndexFaces deduplicates: a run killed at any moment (kill -9 included) and run
again skips what was committed and indexes the rest, so every image is indexed
exactly once and nothing committed is lost. Images that cannot be read or
decoded are reported (count and reasons) and do not stop the run.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from faceaudit._errors import FaceAuditError
from faceaudit.collections import _validate as v
from faceaudit.collections._collections import FaceCollections
from faceaudit.collections._manifest import BatchItem
from faceaudit.collections._prepare import PreparedImage, prepare_index
from faceaudit.collections._progress import Progress
from faceaudit.engine import MAX_FACES_CONSIDERED, FaceEngine, load_image, read_bytes

MAX_ATTEMPTS = 2
"""An image in flight when a worker process dies is retried once, then reported."""


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
    failures: Tuple[BatchFailure, ...]
    seconds: float
    workers: int
    unindexed_reasons: Dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def failure_reasons(self) -> Dict[str, int]:
        """{"<code>: <message>": count}, most common first."""
        return dict(Counter(f"{f.code}: {f.message}" for f in self.failures).most_common())

    def to_dict(self) -> Dict[str, Any]:
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


# -- worker side ---------------------------------------------------------------------------------
_WORKER: Dict[str, Any] = {}


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent is gone (kill -9 leaves idle workers blocked on their queue)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def _init_worker(model: str, parent_pid: int, max_faces: int, quality_filter: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:  # parallelism comes from the processes: one OpenCV thread each, no oversubscription
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    _WORKER.update(engine=FaceEngine(model), parent=parent_pid, max_faces=max_faces, level=quality_filter)


def _prepare(engine: FaceEngine, data: bytes, max_faces: int, level: str):
    try:
        return prepare_index(engine, load_image(data), max_faces=max_faces, quality_filter=level), None
    except FaceAuditError as exc:
        return None, (exc.aws_code, exc.message)
    except Exception as exc:  # a bad image must not stop the run
        return None, ("InternalServerError", f"{type(exc).__name__}: {exc}")


def _work(data: bytes):
    if os.getppid() != _WORKER["parent"]:  # orphaned (the parent was killed): stop
        os._exit(0)
    return _prepare(_WORKER["engine"], data, _WORKER["max_faces"], _WORKER["level"])


# -- parent side ---------------------------------------------------------------------------------
class _Run:
    def __init__(self, fc: FaceCollections, name: str, items: Sequence[BatchItem], progress: Progress) -> None:
        self.fc, self.name, self.items, self.progress = fc, name, items, progress
        self.indexed = self.faces = self.already = self.without = self.unindexed = 0
        self.reasons: Counter = Counter()
        self.failures: List[BatchFailure] = []

    def jobs(self) -> Iterator[Tuple[int, bytes]]:
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

    def store(self, n: int, prepared: Optional[PreparedImage], error) -> None:
        if error is not None:
            self.fail(n, *error)
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


def _run_serial(run: _Run, engine: FaceEngine, max_faces: int, level: str) -> None:
    for n, data in run.jobs():
        run.store(n, *_prepare(engine, data, max_faces, level))


def _run_parallel(run: _Run, model: str, workers: int, max_faces: int, level: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    args = (model, os.getpid(), max_faces, level)
    jobs = run.jobs()
    window = 2 * workers
    attempts: Dict[int, int] = {}
    retry: List[Tuple[int, bytes]] = []
    exhausted = False
    while True:
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=args)
        inflight: Dict[cf.Future, Tuple[int, bytes]] = {}
        broken = False
        try:
            while True:
                while len(inflight) < window and (retry or not exhausted):
                    if retry:
                        job = retry.pop()
                    else:
                        job = next(jobs, None)
                        if job is None:
                            exhausted = True
                            break
                    inflight[pool.submit(_work, job[1])] = job
                if not inflight:
                    return
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    n, data = inflight.pop(fut)
                    try:
                        prepared, error = fut.result()
                    except cf.process.BrokenProcessPool:
                        broken = True
                        attempts[n] = attempts.get(n, 0) + 1
                        if attempts[n] >= MAX_ATTEMPTS:
                            run.fail(n, "InternalServerError", "the worker process died on this image")
                        else:
                            retry.append((n, data))
                        continue
                    run.store(n, prepared, error)
                if broken:
                    for fut, (n, data) in inflight.items():
                        attempts[n] = attempts.get(n, 0) + 1
                        retry.append((n, data))
                    break
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


def index_batch(
    collection_id: str,
    items: Iterable[BatchItem],
    *,
    data_dir=None,
    collections: Optional[FaceCollections] = None,
    workers: Optional[int] = None,
    max_faces: Optional[int] = None,
    quality_filter: Optional[str] = None,
    progress: bool = True,
    checkpoint: bool = True,
) -> BatchReport:
    """Index ``items`` into an existing collection; resumable and exactly-once per image.

    ``workers``: processes (default: the number of CPUs; 1 runs in this process).
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
    workers = max(1, int(workers or os.cpu_count() or 1))
    workers = min(workers, max(1, len(items)))
    bar = Progress(len(items), enabled=progress, label=f"{name} ")
    run = _Run(fc, name, items, bar)
    start = time.monotonic()
    try:
        if workers == 1:
            _run_serial(run, fc._engine(coll), limit, level)
        else:
            _run_parallel(run, coll.model, workers, limit, level)
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
