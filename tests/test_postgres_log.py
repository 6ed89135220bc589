"""The search log in PostgreSQL: one chain for every host (issue 21).

Appenders in separate OS processes stand for hosts; the chain must never fork, never reuse a
seq, and never lose a record whose append returned, even when an appender is killed (-9)."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faceaudit._errors import InvalidParameterError
from faceaudit.accountability import (
    Accountability,
    CallerContext,
    Candidate,
    PostgresSearchLog,
    SearchLog,
    SearchRecord,
)
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]

_APPENDER = """
import sys
from faceaudit.accountability import PostgresSearchLog
url, host, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = PostgresSearchLog(url)
i = 0
while count < 0 or i < count:
    rec = log.append("search", {"operation": "SearchFacesByImage", "host": host, "i": i})
    print(rec.seq, rec.hash, flush=True)  # acknowledged: the append returned
    i += 1
"""


def _appender(url: str, host: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _APPENDER, url, host, str(count)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)


def _acknowledged(out: str) -> dict:
    return {int(seq): digest for seq, digest in (line.split() for line in out.splitlines() if line.strip())}


def _count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM search_log").fetchone()
            assert row is not None
            return row[0]
        except psycopg.errors.UndefinedTable:  # the first append has not made the tables yet
            return 0


def test_two_hosts_append_one_chain(postgres_url, tmp_path):
    procs = [_appender(postgres_url, host, 250) for host in ("a", "b")]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    acks = [_acknowledged(o) for o in outs]
    assert len(acks[0]) == len(acks[1]) == 250 and not set(acks[0]) & set(acks[1])  # no seq given twice
    log = PostgresSearchLog(postgres_url)
    records = list(log.records())
    assert [r.seq for r in records] == list(range(1, 501))
    assert {r.seq: r.hash for r in records} == {**acks[0], **acks[1]}
    assert {r.data["host"] for r in records} == {"a", "b"}
    assert all(r.prev == p.hash for p, r in itertools.pairwise(records))  # one chain, no fork
    result = log.verify()
    assert result.ok and result.records == 500 and log.head() == {"seq": 500, "hash": records[-1].hash}
    exported = tmp_path / "export" / "search-log.jsonl"
    assert log.export_jsonl(exported) == 500
    jsonl = SearchLog(exported).verify()  # today's verifier, unchanged
    assert jsonl.ok and jsonl.records == 500 and jsonl.head_hash == result.head_hash
    assert [r.to_json() for r in SearchLog(exported).records()] == [r.to_json() for r in records]
    log.close()


def test_kill_9_of_an_appender_loses_no_acknowledged_record(postgres_url):
    survivor = _appender(postgres_url, "survivor", -1)
    victim = _appender(postgres_url, "victim", -1)
    try:
        wait_until(lambda: _count(postgres_url) >= 100, "both appenders to append")
        victim.send_signal(signal.SIGKILL)  # very likely mid-transaction: it appends in a loop
        victim.wait()
        after_kill = _count(postgres_url)
        # the dead host's transaction was rolled back and its lock released: the other goes on
        wait_until(lambda: _count(postgres_url) >= after_kill + 50, "the surviving appender to go on")
    finally:
        for p in (survivor, victim):
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
    assert victim.stdout is not None and survivor.stdout is not None
    acked = {**_acknowledged(victim.stdout.read()), **_acknowledged(survivor.stdout.read())}
    log = PostgresSearchLog(postgres_url)
    stored = {r.seq: r.hash for r in log.records()}
    assert acked and all(stored.get(seq) == digest for seq, digest in acked.items())  # none lost
    assert sorted(stored) == list(range(1, len(stored) + 1))
    assert log.verify().ok
    assert log.append("search", {"after": "kill -9"}).seq == len(stored) + 1
    log.close()


def test_accountability_selects_the_postgres_log(postgres_url, tmp_path):
    ctx = CallerContext("AKIDEXAMPLE", case_reference="case-1")
    search = SearchRecord("SearchFacesByImage", "mugshots", "sface-1", 99.0, 5, "a" * 64,
                          (Candidate(99.5, face_id="f1"),))
    data_a, data_b = tmp_path / "a", tmp_path / "b"
    for d in (data_a, data_b):
        d.mkdir(mode=0o700)
    host_a = Accountability(data_a, database_url=postgres_url)
    host_b = Accountability(data_b, database_url=postgres_url)
    assert isinstance(host_a.log, PostgresSearchLog) and isinstance(host_b.log, PostgresSearchLog)
    first = host_a.record(ctx, search)
    second = host_b.record(ctx, search)
    assert (first.seq, second.seq, second.prev) == (1, 2, first.hash)  # one chain across both
    assert not (data_a / "search-log.jsonl").exists()
    assert [lead.search_seq for lead in host_a.leads()] == [2, 1]  # leads follow the log by seq (newest first)
    assert host_a.log.verify().ok
    assert isinstance(Accountability(tmp_path / "c").log, SearchLog)  # JSONL stays the default
    with pytest.raises(InvalidParameterError):
        Accountability(tmp_path / "d", database_url=f"sqlite:///{tmp_path}/x.db")
    host_a.log.close()
    host_b.log.close()


def test_a_deleted_head_row_stops_appends_and_fails_verify(postgres_url):
    import psycopg

    from faceaudit._errors import LogIntegrityError

    log = PostgresSearchLog(postgres_url)
    log.append("search", {})
    with psycopg.connect(postgres_url) as conn:
        conn.execute("DELETE FROM search_log_head")
    with pytest.raises(LogIntegrityError, match="head row is missing"):
        log.append("search", {})
    result = log.verify()
    assert not result.ok and "head row missing" in result.problem
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT record FROM search_log").fetchone()
        assert row is not None
        conn.execute("INSERT INTO search_log_head VALUES (1, 1, %s)", (json.loads(row[0])["hash"],))
        conn.execute("UPDATE search_log SET seq = 7")  # a row renumbered, its record unchanged
    result = log.verify()
    assert not result.ok and "row 7 holds record 1" in result.problem
    log.close()


def test_a_lost_server_is_a_503_and_the_log_keeps_every_committed_record():
    """The server crashes between appends: the next append fails with a clear 503 (never a fork,
    never a traceback); once it is back, the same log object reconnects and the chain goes on
    from every record committed before the crash."""
    from faceaudit._errors import ServiceUnavailableError
    from tests import _postgres

    if _postgres.find_bin_dir() is None:
        _postgres.unavailable("no binaries")
    with _postgres.throwaway_server(fsync=True) as server:
        url = server.new_database()
        log = PostgresSearchLog(url)
        committed = [log.append("search", {"i": i}) for i in range(3)]
        server.crash()
        with pytest.raises(ServiceUnavailableError) as err:
            log.append("search", {"i": 3})
        assert err.value.http_status == 503 and "search log" in str(err.value)
        with pytest.raises(ServiceUnavailableError):
            log.verify()
        server.start()  # crash recovery replays the WAL
        after = log.append("search", {"i": 3})
        assert (after.seq, after.prev) == (4, committed[-1].hash)
        assert [r.hash for r in log.records()][:3] == [r.hash for r in committed]
        assert log.verify().ok and log.verify().records == 4
        log.close()


def test_a_connection_kept_across_a_server_restart_is_replaced_at_begin():
    """The server restarts between two requests of a thread: its kept connection is found broken
    at BEGIN (nothing done yet), replaced, and the append succeeds on the first call."""
    from tests import _postgres

    if _postgres.find_bin_dir() is None:
        _postgres.unavailable("no binaries")
    with _postgres.throwaway_server(fsync=False) as server:
        log = PostgresSearchLog(server.new_database())
        first = log.append("search", {"i": 0})
        server.crash()
        server.start()
        after = log.append("search", {"i": 1})
        assert (after.seq, after.prev) == (2, first.hash) and log.verify().ok
        log.close()


def test_threads_of_one_host_share_the_log_object(postgres_url):
    """The service appends from many request threads: one connection per thread, one chain."""
    import threading

    log = PostgresSearchLog(postgres_url)
    seqs: list[int] = []
    errors: list[BaseException] = []

    def work():
        try:
            seqs.extend(log.append("search", {"t": threading.get_ident()}).seq for _ in range(25))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            log.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(seqs) == list(range(1, 101))
    assert log.verify().ok and log.verify().records == 100
    log.close()
