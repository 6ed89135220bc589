"""A pool of worker processes, each with its own face engine, for work on many images.

Batch indexing (``faceaudit index``) and the audit's embedding both map one task over
many images. :class:`EnginePool` runs that task in ``spawn``ed worker processes (a
:class:`concurrent.futures.ProcessPoolExecutor`), each holding one :class:`FaceEngine`
and running OpenCV on a single thread: the parallelism comes from the processes, so two
workers on two cores do not fight over four OpenCV threads. Results come back to the
calling process, which stays the only writer of whatever store it keeps.

* The task is a module-level function ``task(engine, data, *args)`` (it is pickled by
  name) that returns a picklable value and turns bad images into values, not exceptions.
* Jobs are ``(key, bytes)`` pairs; results come back as ``(key, result)`` in completion
  order, at most ``2 * workers`` jobs in flight, so a huge input never sits in memory.
* A worker that dies (killed, out of memory, a crash in native code) breaks the pool; it
  is rebuilt and the jobs that were in flight are retried one at a time, so that only a
  job whose worker dies again, alone, is reported as :class:`WorkerLost`.
  When a pool broke before finishing any job, the new one must first run an empty job:
  workers that cannot start at all raise :class:`~faceaudit.WorkerStartError` instead
  of every image being retried.
* Workers exit on their own when the parent dies, even under ``kill -9``.
* ``workers=1`` runs the task in this process with no pool at all.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from faceaudit._errors import InvalidParameterError, WorkerStartError
from faceaudit.engine._engine import FaceEngine

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

MAX_ATTEMPTS = 2
"""A job in flight when a worker process dies is retried once, alone, then reported as lost."""

Task = Callable[..., Any]
"""``task(engine: FaceEngine, data: bytes, *args) -> result``, a module-level function."""


@dataclass(frozen=True)
class WorkerLost:
    """The result of a job whose worker process died on each of its ``attempts``."""

    attempts: int

    @property
    def message(self) -> str:
        return "the worker process died on this image"


def default_workers() -> int:
    """The CPUs this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers: int | None) -> int:
    """``workers`` as a count of processes: None means :func:`default_workers`."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidParameterError(f"workers must be a whole number of at least 1, got {workers!r}")
    return workers


# -- worker side ---------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent is gone (kill -9 leaves idle workers blocked on their queue)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def single_threaded_opencv() -> None:
    """One OpenCV thread in this process (parallelism comes from the processes)."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def _init_worker(model: str, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    single_threaded_opencv()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    _WORKER.update(engine=FaceEngine(model), parent=parent_pid)


def _work(task: Task, data: bytes, args: tuple[Any, ...]):
    if os.getppid() != _WORKER["parent"]:  # orphaned (the parent was killed): stop
        os._exit(0)
    return task(_WORKER["engine"], data, *args)


def _ready() -> bool:
    return True


# -- parent side ---------------------------------------------------------------------------------
class EnginePool:
    """``with EnginePool("sface", workers=4) as pool: for key, result in pool.map(task, jobs): ...``

    ``workers``: processes (default: the CPUs this process may use; 1 runs the task here).
    ``engine``: the engine to use when ``workers`` is 1 (default: a new one for ``model``).
    """

    def __init__(self, model: str, workers: int | None = None, engine: FaceEngine | None = None) -> None:
        self.model = model
        self.workers = check_workers(workers)
        self._engine = engine
        self._pool: cf.ProcessPoolExecutor | None = None

    @property
    def engine(self) -> FaceEngine:
        """The in-process engine (``workers == 1``)."""
        if self._engine is None:
            self._engine = FaceEngine(self.model)
        return self._engine

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            from faceaudit.engine._registry import get_model

            try:
                get_model(self.model).prepare_for_workers()  # e.g. a converted network, cached once
            except Exception as exc:
                log.warning("model %s not prepared for the workers (%s): each worker loads it itself",
                            self.model, exc)
            self._pool = cf.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self.model, os.getpid()),
            )
        return self._pool

    def _check_start(self, pool: cf.ProcessPoolExecutor) -> None:
        """Raise WorkerStartError when a fresh worker cannot even run an empty job."""
        try:
            pool.submit(_ready).result()
        except cf.process.BrokenProcessPool:
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise WorkerStartError(
                f"the worker processes for model {self.model!r} exit before they can run any image "
                "(their error is printed above)"
            ) from None

    def map(self, task: Task, jobs: Iterable[tuple[K, bytes]], *args: Any) -> Iterator[tuple[K, Any]]:
        """``(key, task(engine, data, *args))`` for each job, in completion order.

        A job whose worker died twice gives ``(key, WorkerLost(...))``.
        """
        if self.workers == 1:
            for key, data in jobs:
                yield key, task(self.engine, data, *args)
            return
        yield from self._map_parallel(task, iter(jobs), args)

    def _map_parallel(self, task: Task, jobs: Iterator[tuple[K, bytes]], args) -> Iterator[tuple[K, Any]]:
        window = 2 * self.workers
        suspects: list[tuple[K, bytes]] = []  # in flight when a worker died: retried one at a time
        exhausted = False
        check_start = False  # the last pool broke before finishing any job: can workers start at all?
        while True:
            pool = self._executor()
            if check_start:
                self._check_start(pool)
            inflight: dict[cf.Future, tuple[K, bytes]] = {}
            isolated = False  # the one job in flight is a suspect, run alone
            broken = False
            finished = 0
            try:
                while True:
                    if suspects:
                        if not inflight:
                            job = suspects.pop(0)
                            inflight[pool.submit(_work, task, job[1], args)] = job
                            isolated = True
                    else:
                        isolated = False
                        while len(inflight) < window and not exhausted:
                            fresh = next(jobs, None)
                            if fresh is None:
                                exhausted = True
                                break
                            inflight[pool.submit(_work, task, fresh[1], args)] = fresh
                    if not inflight:
                        return
                    done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                    failed: list[tuple[K, bytes]] = []
                    for fut in done:
                        job = inflight.pop(fut)
                        try:
                            result = fut.result()
                        except cf.process.BrokenProcessPool:
                            broken = True
                            failed.append(job)
                            continue
                        finished += 1
                        yield job[0], result
                    if broken:
                        failed += list(inflight.values())
                        inflight.clear()
                        check_start = not finished
                        if isolated:  # it died alone: this job kills its worker
                            yield failed[0][0], WorkerLost(MAX_ATTEMPTS)
                        else:
                            log.warning("a worker process died; restarting the pool and retrying its %d "
                                        "image(s) one at a time", len(failed))
                            suspects.extend(failed)
                        break
            finally:
                if broken or inflight:  # broken, or the caller stopped early (an error, Ctrl-C)
                    pool.shutdown(wait=not broken, cancel_futures=True)
                    self._pool = None
