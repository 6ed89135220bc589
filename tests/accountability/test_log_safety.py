"""Crash- and error-safety of the search log's appends."""

from __future__ import annotations

import errno
import os

import pytest

from faceaudit.accountability import SearchLog, _log


def test_short_writes_never_lose_an_acknowledged_record(tmp_path, monkeypatch):
    """os.write may write only part of a line (a signal, a nearly full disk): an append that
    returned must be whole on disk, or the next append cuts it off as a torn line."""
    log = SearchLog(tmp_path / "search-log.jsonl")
    log.append("search", {"n": 0})
    real = os.write

    def short(fd, data):
        return real(fd, bytes(data)[: max(1, len(data) // 3)])

    monkeypatch.setattr(_log.os, "write", short)
    first = log.append("search", {"n": 1, "pad": "x" * 300})
    monkeypatch.setattr(_log.os, "write", real)
    log.append("search", {"n": 2})
    assert [r.data["n"] for r in log.records()] == [0, 1, 2]
    assert list(log.records())[1].hash == first.hash
    assert log.verify().ok


def test_failed_write_leaves_no_partial_line_and_raises(tmp_path, monkeypatch):
    """A write that fails part-way (ENOSPC) raises, and leaves the log as it was."""
    log = SearchLog(tmp_path / "search-log.jsonl")
    log.append("search", {"n": 0})
    before = log.path.read_bytes()
    real = os.write
    calls: list[int] = []

    def full(fd, data):
        if calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        calls.append(1)
        return real(fd, bytes(data)[:10])

    monkeypatch.setattr(_log.os, "write", full)
    with pytest.raises(OSError):
        log.append("search", {"n": 1})
    monkeypatch.setattr(_log.os, "write", real)
    assert log.path.read_bytes() == before
    assert log.verify().ok and not log.verify().torn_tail
