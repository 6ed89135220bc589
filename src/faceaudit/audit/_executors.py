"""Where an audit's work runs: one interface, a local process pool or a Ray cluster.

An audit has two kinds of work that parallelise: embedding images (one task per image)
and scoring blocks of probes against the gallery (one task per block, exact integer
counts). An :class:`AuditExecutor` runs both; the audit itself (the embedding cache, the
progress bars, merging the blocks' counts) stays in the calling process, which is the only
writer of the cache, so an interrupted audit resumes the same way whatever the executor.

* :class:`LocalExecutor`: the engine's :class:`~faceaudit.engine.EnginePool` (worker
  processes with one OpenCV thread each) for images; blocks are scored here, with numpy.
* :class:`RayExecutor`: images and blocks as Ray tasks (``pip install 'faceaudit[ray]'``),
  on a local Ray started for the audit or on a cluster (``address="auto"`` or a
  ``ray://host:10001`` URI); every node needs faceaudit and its model packages installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from faceaudit._errors import InvalidParameterError

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class AuditExecutor(Protocol):
    """Runs an audit's image tasks and scoring blocks."""

    name: str
    workers: int

    def map_images(self, model: str, task: Callable[..., Any], jobs: Iterable[tuple[K, bytes]]
                   ) -> Iterator[tuple[K, Any]]:
        """``(key, task(engine, data))`` per job, in completion order; a job whose worker
        died gives ``(key, WorkerLost)``. ``task`` is a module-level function."""
        ...

    def map_blocks(self, fn: Callable[..., Any], context: Any, blocks: Sequence[np.ndarray], *args: Any
                   ) -> Iterator[Any]:
        """``fn(context, rows, *args)`` per block, in the order of ``blocks``."""
        ...

    def close(self) -> None:
        ...


class LocalExecutor:
    """This machine: ``workers`` processes embed (default: the CPUs); blocks are scored here."""

    name = "local"

    def __init__(self, workers: int | None = None, engine=None) -> None:
        from faceaudit.engine import check_workers

        self.workers = check_workers(workers)
        self._engine = engine  # used in-process when workers == 1
        self._pools: dict[str, Any] = {}

    def map_images(self, model, task, jobs):
        from faceaudit.engine import EnginePool

        pool = self._pools.get(model)
        if pool is None:
            engine = self._engine if self._engine is not None and self._engine.spec.name == model else None
            pool = self._pools[model] = EnginePool(model, self.workers, engine=engine)
        return pool.map(task, jobs)

    def map_blocks(self, fn, context, blocks, *args):
        from faceaudit.audit._scoring import map_blocks_here

        return map_blocks_here(fn, context, blocks, *args)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


# -- Ray -----------------------------------------------------------------------------------------
_RAY_ENGINES: dict[str, Any] = {}


def _ray_image(model: str, task: Callable[..., Any], data: bytes):
    """A Ray task: ``task`` on one image with this worker's engine (one OpenCV thread)."""
    engine = _RAY_ENGINES.get(model)
    if engine is None:
        from faceaudit.engine import FaceEngine, single_threaded_opencv

        single_threaded_opencv()
        engine = _RAY_ENGINES[model] = FaceEngine(model)
    return task(engine, data)


def _ray_block(fn: Callable[..., Any], context: Any, rows: np.ndarray, *args: Any):
    return fn(context, rows, *args)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InvalidParameterError(
            "the ray executor needs Ray: pip install 'faceaudit[ray]'"
        ) from None
    return ray


class RayExecutor:
    """Ray tasks for images and scoring blocks.

    Uses the Ray already initialised in this process if there is one; otherwise connects to
    ``address`` ("auto": the cluster this machine belongs to; "ray://host:10001": a remote
    one) or, with no address, starts a local Ray with ``workers`` CPUs (default: all), and
    shuts down what it started on :meth:`close`. ``workers`` is then the cluster's CPUs.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        from faceaudit.engine import check_workers

        ray = _import_ray()
        self._ray = ray
        self._own = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = check_workers(workers)
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InvalidParameterError(f"cannot start or reach Ray at {address or 'a local Ray'}: {exc}") from None
            self._own = True
        self.address = address
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._image = ray.remote(num_cpus=1, max_retries=1)(_ray_image)
        self._block = ray.remote(num_cpus=1, max_retries=1)(_ray_block)

    def map_images(self, model, task, jobs):
        from faceaudit.engine import WorkerLost

        ray = self._ray
        window = 2 * self.workers
        inflight: dict[Any, Hashable] = {}
        jobs = iter(jobs)
        exhausted = False
        while True:
            while not exhausted and len(inflight) < window:
                job = next(jobs, None)
                if job is None:
                    exhausted = True
                    break
                inflight[self._image.remote(model, task, job[1])] = job[0]
            if not inflight:
                return
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                key = inflight.pop(ref)
                try:
                    yield key, ray.get(ref)
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError):
                    yield key, WorkerLost(2)

    def map_blocks(self, fn, context, blocks, *args):
        ray = self._ray
        shared = ray.put(context)  # sent to the object store once, not once per block
        window = 2 * self.workers
        refs: list[Any] = []
        for _i, rows in enumerate(blocks):
            refs.append(self._block.remote(fn, shared, rows, *args))
            if len(refs) >= window:
                yield ray.get(refs.pop(0))
        for ref in refs:
            yield ray.get(ref)

    def close(self) -> None:
        if self._own and self._ray.is_initialized():
            self._ray.shutdown()
        self._own = False
