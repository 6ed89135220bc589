"""Security of the review web page: sessions, CSRF, paths."""

from __future__ import annotations

import threading

from faceaudit.accountability._review_web import ReviewWeb


def test_session_secret_is_whole_and_shared_under_concurrent_first_requests(tmp_path):
    """Threads of one worker creating the session key at once must all get the same 32 random
    bytes: an empty or torn key would make every session cookie forgeable (HMAC with b"")."""
    problems = []
    for trial in range(20):
        d = tmp_path / f"t{trial}"
        n = 12
        barrier = threading.Barrier(n)
        out = [None] * n

        def go(i):
            web = ReviewWeb(d, None, keys=object(), face_image=None)
            barrier.wait()
            try:
                out[i] = web._session_secret()
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                out[i] = exc

        threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = (d / "review-session.key").read_bytes()
        assert len(final) == 32
        problems += [repr(o) for o in out if not isinstance(o, bytes) or o != final]
        assert sorted(p.name for p in d.iterdir()) == ["review-session.key"]  # no temp files left
    assert problems == []
