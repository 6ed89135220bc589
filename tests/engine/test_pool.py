"""EnginePool: worker processes with their own engine give what this process gives."""

from __future__ import annotations

import os

import numpy as np
import pytest

from faceaudit._errors import InvalidParameterError
from faceaudit.engine import EnginePool, WorkerLost, check_workers
from tests.conftest import MEMBERS, portrait_2014, portrait_2018


def largest_vector(engine, data: bytes):
    """A task: the largest face's embedding and the OpenCV threads of the process running it."""
    import cv2

    _, face = engine.largest(data)
    return face.vector, cv2.getNumThreads(), os.getpid()


def die_on_marker(engine, data: bytes):
    """A task whose worker process dies on the bytes b"die" (as a crash in native code would)."""
    if data == b"die":
        os._exit(3)
    return len(data)


def rendezvous(engine, data: bytes) -> bool:
    """A task that announces itself in a folder, then waits (up to a minute) to see the other task there."""
    import time
    from pathlib import Path

    folder, me, other = data.decode().split("|")
    (Path(folder) / me).touch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (Path(folder) / other).exists():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def jobs():
    paths = [portrait_2018(m) for m in MEMBERS] + [portrait_2014(m) for m in MEMBERS[:4]]
    return [(str(p), p.read_bytes()) for p in paths]


def test_workers_embed_as_this_process_does(jobs, sface_engine):
    with EnginePool("sface", workers=1, engine=sface_engine) as here:
        expected = dict(here.map(largest_vector, jobs))
    with EnginePool("sface", workers=2) as pool:
        got = dict(pool.map(largest_vector, jobs))
    assert got.keys() == expected.keys()
    for key, (vec, threads, pid) in got.items():
        assert np.array_equal(vec, expected[key][0]), key
        assert threads == 1 and pid != os.getpid()  # one OpenCV thread per worker, not this process
    assert all(pid == os.getpid() for _, _, pid in expected.values())


def test_two_workers_run_at_the_same_time(tmp_path):
    work = [("a", f"{tmp_path}|a|b".encode()), ("b", f"{tmp_path}|b|a".encode())]
    with EnginePool("sface", workers=2) as pool:
        assert dict(pool.map(rendezvous, work)) == {"a": True, "b": True}


def test_a_dead_worker_is_retried_then_reported(jobs):
    work = [("a", b"x" * 5), ("dead", b"die"), ("b", b"y" * 7)] + [(f"n{i}", b"z" * i) for i in range(1, 6)]
    with EnginePool("sface", workers=2) as pool:
        got = dict(pool.map(die_on_marker, work))
    assert got.keys() == {k for k, _ in work}
    assert got["dead"] == WorkerLost(2)
    assert {k: v for k, v in got.items() if k != "dead"} == {k: len(d) for k, d in work if k != "dead"}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_whole_number(bad):
    with pytest.raises(InvalidParameterError):
        check_workers(bad)
    assert check_workers(None) >= 1


def test_workers_that_cannot_start_stop_the_run_with_a_clear_error():
    from faceaudit._errors import WorkerStartError

    # every worker's initialiser fails
    with EnginePool("no-such-model", workers=2) as pool, pytest.raises(WorkerStartError, match="no-such-model"):
        list(pool.map(die_on_marker, [(i, b"x") for i in range(50)]))
