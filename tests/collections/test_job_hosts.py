"""Stored-video jobs shared by several hosts through one PostgreSQL database (issue 21 item 3).

Each "host" is a JobStore (and JobPool) with a data dir of its own and the same database URL.
A worker that died on another host is simulated by its traces in the database (an owner of
another host and a heartbeat older than the lease), never by waiting for a lease to run out.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from faceaudit._errors import LimitExceededError
from faceaudit.collections._jobs import (
    IN_PROGRESS,
    LEASE_S,
    MAX_PENDING_JOBS,
    MAX_PENDING_JOBS_PER_CALLER,
    QUEUED,
    SUCCEEDED,
    Job,
    JobItem,
    JobOutcome,
    JobPool,
    JobStore,
)
from tests.conftest import wait_until

KIND = "face_detection"


def _hosts(tmp_path: Path, url: str | None) -> tuple[JobStore, JobStore]:
    """Two hosts' stores: separate data dirs on one PostgreSQL database (one data dir on SQLite)."""
    a = JobStore(tmp_path / "host-a", database_url=url)
    b = JobStore(tmp_path / ("host-b" if url else "host-a"), database_url=url)
    return a, b


def _run_in_threads(n: int, target) -> list:
    """``target(i)`` in ``n`` threads started together; their results (an exception is re-raised)."""
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = target(i)
        except BaseException as exc:  # handed to the test below
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_claims_on_two_hosts_take_each_job_once(tmp_path, postgres_url):
    a, b = _hosts(tmp_path, postgres_url)
    callers = [f"AK{i}" for i in range(MAX_PENDING_JOBS // MAX_PENDING_JOBS_PER_CALLER)]
    submitted = {(a if i % 2 else b).submit(KIND, {"n": i}, None, None,
                                            {"access_key_id": callers[i % len(callers)]})[0]
                 for i in range(MAX_PENDING_JOBS)}
    assert len(submitted) == MAX_PENDING_JOBS

    def drain(i: int) -> list[str]:
        store = (a, b)[i % 2]
        mine = []
        while (job := store.claim()) is not None:
            assert job.status == IN_PROGRESS and job.attempts == 1
            mine.append(job.job_id)
        return mine

    claimed = _run_in_threads(6, drain)
    for result in claimed:
        if isinstance(result, BaseException):
            raise result
    every = [job_id for result in claimed for job_id in result]
    assert sorted(every) == sorted(submitted)  # each job once: none twice, none left
    assert a.claim() is None and b.claim() is None


def _finish(job: Job, progress) -> JobOutcome:
    progress(0.5, "half way")
    return JobOutcome({"host": "b"}, [JobItem(1000, 0, {"Timestamp": 1000, "n": job.request["n"]})])


def _set(store: JobStore, sql: str, params: tuple) -> None:
    with store._conn(write=True) as conn:
        conn.execute(sql.format(jobs=store._jobs), params)


def _now_sql(store: JobStore) -> str:
    return "EXTRACT(EPOCH FROM clock_timestamp())" if store.postgres else "((julianday('now') - 2440587.5) * 86400.0)"


def test_a_job_whose_host_died_is_taken_over_and_succeeds_on_another(tmp_path, database_url):
    a, b = _hosts(tmp_path, database_url)
    job_id, _ = a.submit(KIND, {"n": 7}, None, None, {"access_key_id": "AKA"})
    # host A's worker ran it, then its host died (power loss): its owner is on another machine and
    # its last heartbeat is recent: the lease still holds, nobody takes it
    dead_host_owner = "host-a.example@00000000-0000-0000-0000-000000000000:4242"
    _set(a, "UPDATE {jobs} SET status = ?, owner = ?, heartbeat = " + _now_sql(a) + ", attempts = 1 "
         "WHERE job_id = ?", (IN_PROGRESS, dead_host_owner, job_id))
    assert b.recover() == 0 and b.claim() is None
    assert b.get(job_id, KIND).status == IN_PROGRESS
    # ... until its heartbeat is older than the lease (the database's clock): B queues it again
    _set(a, "UPDATE {jobs} SET heartbeat = " + _now_sql(a) + " - ? WHERE job_id = ?", (LEASE_S + 1, job_id))
    pool = JobPool(b, {KIND: _finish})
    try:
        pool.ensure_started()  # looks for jobs that lost their worker, then runs them
        done = wait_until(lambda: (job := a.get(job_id, KIND)).status == SUCCEEDED and job, "the job to succeed")
    finally:
        pool.stop()
    assert done.attempts == 2 and done.metadata == {"host": "b"} and done.progress == 1
    items, more = a.items(job_id, "TIMESTAMP", 0, 10)
    assert [i.doc["n"] for i in items] == [7] and more is None
    # a late second result changes nothing: only a job IN_PROGRESS under its owner can succeed
    a.succeed(job_id, JobOutcome({"host": "a"}, []))
    assert b.get(job_id, KIND).metadata == {"host": "b"}


def test_quotas_and_client_tokens_hold_across_hosts(tmp_path, postgres_url):
    a, b = _hosts(tmp_path, postgres_url)
    who = {"access_key_id": "AKSAME"}

    def start(i: int) -> str:
        return (a, b)[i % 2].submit(KIND, {"n": i}, None, None, who)[0]

    results = _run_in_threads(4 * MAX_PENDING_JOBS_PER_CALLER, start)
    created = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, LimitExceededError)]
    assert len(created) == MAX_PENDING_JOBS_PER_CALLER and len(refused) == len(results) - len(created)
    # one ClientRequestToken sent to both hosts at once: one job
    tokens = _run_in_threads(6, lambda i: (a, b)[i % 2].submit(KIND, {"n": "t"}, "door-1", None,
                                                                {"access_key_id": "AKTOKEN"}))
    assert len({t[0] for t in tokens}) == 1 and sum(t[1] for t in tokens) == 1
    # the deployment-wide limit: every caller's pending jobs counted on both hosts together
    results = _run_in_threads(3 * MAX_PENDING_JOBS, lambda i: (a, b)[i % 2].submit(
        KIND, {"n": i}, None, None, {"access_key_id": f"AK{i}"}))
    with a._conn() as conn:
        pending = conn.execute(f"SELECT COUNT(*) FROM {a._jobs} WHERE status IN (?, ?)",
                               (QUEUED, IN_PROGRESS)).fetchone()[0]
    assert pending == MAX_PENDING_JOBS
    assert sum(isinstance(r, LimitExceededError) for r in results) == 3 * MAX_PENDING_JOBS - (
        MAX_PENDING_JOBS - MAX_PENDING_JOBS_PER_CALLER - 1)


_WORKER = """
import sys, threading
from faceaudit.collections._jobs import JobPool, JobStore
store = JobStore(sys.argv[1], database_url=sys.argv[2])
def hang(job, progress):
    threading.Event().wait()
pool = JobPool(store, {"face_detection": hang})
pool.ensure_started()
threading.Event().wait()
"""


def test_kill_9_of_a_worker_process_then_another_process_finishes_the_job(tmp_path, postgres_url):
    a, b = _hosts(tmp_path, postgres_url)
    job_id, _ = a.submit(KIND, {"n": 9}, None, None, {})
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "host-a"), postgres_url])
    try:
        wait_until(lambda: a.get(job_id, KIND).status == IN_PROGRESS or proc.poll() is not None,
                   "the worker process to claim the job")
        assert proc.poll() is None, "the worker process ended"
    finally:
        proc.kill()  # SIGKILL: no shutdown code runs
        proc.wait()
    # a dead process of this host: taken over at once, without waiting for its lease
    pool = JobPool(b, {KIND: _finish})
    try:
        pool.ensure_started()
        done = wait_until(lambda: (job := b.get(job_id, KIND)).status == SUCCEEDED and job, "the job to succeed")
    finally:
        pool.stop()
    assert done.attempts == 2


@pytest.mark.parametrize("removed", ["file", "dir"])
def test_workers_stop_quietly_when_the_data_dir_is_removed(tmp_path, caplog, removed):
    import shutil

    store = JobStore(tmp_path / "data")
    pool = JobPool(store, {KIND: _finish})
    pool.ensure_started()
    if removed == "file":
        for f in (tmp_path / "data").glob("video-jobs.sqlite3*"):
            f.unlink()
    else:  # (renamed first: a worker's connection opened meanwhile must not fill it again under rmtree)
        (tmp_path / "data").rename(tmp_path / "removed")
        shutil.rmtree(tmp_path / "removed")
    pool.wake()
    wait_until(lambda: not any(t.is_alive() for t in pool._threads), "the workers to stop", limit=60)
    assert not (tmp_path / "data" / "video-jobs.sqlite3").exists()  # nothing made again in its place
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_a_database_that_is_down_is_a_503_and_the_pool_starts_once_it_is_back(tmp_path, postgres_server,
                                                                               postgres_url):
    from faceaudit._errors import ServiceUnavailableError

    store = JobStore(tmp_path / "host-a", database_url=postgres_url)
    job_id, _ = store.submit(KIND, {"n": 1}, None, None, {})
    pool = JobPool(store, {KIND: _finish})
    postgres_server.crash()
    try:
        with pytest.raises(ServiceUnavailableError):
            store.submit(KIND, {"n": 2}, None, None, {})
        with pytest.raises(ServiceUnavailableError):
            store.get(job_id, KIND)
        with pytest.raises(ServiceUnavailableError):
            pool.ensure_started()  # (no worker started: the next call tries again)
    finally:
        postgres_server.start()
    try:
        pool.ensure_started()
        wait_until(lambda: store.get(job_id, KIND).status == SUCCEEDED, "the job to succeed")
    finally:
        pool.stop()


def test_database_urls_the_jobs_accept(tmp_path):
    from faceaudit._errors import InvalidParameterError

    store = JobStore(tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'collections.db'}")
    store.submit(KIND, {"n": 1}, None, None, {})  # one host on SQLite: the jobs keep the data dir's file
    assert (tmp_path / "data" / "video-jobs.sqlite3").is_file() and not (tmp_path / "collections.db").exists()
    with pytest.raises(InvalidParameterError, match="postgresql://"):
        JobStore(tmp_path / "data", database_url="mysql://db.example/faceaudit")
