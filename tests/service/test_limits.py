"""The token bucket and the body limits."""

from __future__ import annotations

import os

from faceaudit.service import RateLimiter, body_limit


def test_bucket_refills_at_the_rate():
    now = [0.0]
    rl = RateLimiter(10, burst=5, clock=lambda: now[0])
    assert [rl.acquire("k") for _ in range(5)] == [0.0] * 5
    wait = rl.acquire("k")
    assert 0.09 < wait <= 0.1
    now[0] += 0.1
    assert rl.acquire("k") == 0.0
    assert rl.acquire("k") > 0


def test_disabled_limit():
    rl = RateLimiter(0)
    assert not rl.enabled and all(rl.acquire("k") == 0.0 for _ in range(1000))


def test_full_table_starts_over():
    now = [0.0]
    rl = RateLimiter(1, slots=4, clock=lambda: now[0])
    for i in range(10):
        assert rl.acquire(f"k{i}") == 0.0


def test_buckets_are_shared_with_forked_workers():
    now = [0.0]
    rl = RateLimiter(1, burst=3, clock=lambda: now[0])
    pid = os.fork()
    if pid == 0:  # a worker takes two tokens
        ok = rl.acquire("k") == 0.0 and rl.acquire("k") == 0.0
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert rl.acquire("k") == 0.0
    assert rl.acquire("k") > 0  # the third token is gone: the bucket is the same


def test_body_limits():
    assert body_limit(0) == 1024 * 1024
    assert 7 * 1024 * 1024 < body_limit(1) <= 8 * 1024 * 1024
    assert body_limit(2) > 2 * 4 / 3 * 5 * 1024 * 1024
