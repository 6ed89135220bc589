"""Telling the caller's caller which face a search used as its probe, and how good it is.

An identification (SearchFacesByImage, SearchUsersByImage, CompareFaces) picks one
face of its probe image and searches with it. The accountability layer must know
that face's quality (eye distance, sharpness, brightness) to log it and to apply a
collection's minimum-quality policy *before* the face is searched; Rekognition's
response shapes have no place for it, and the HTTP path hands back only the response
document. So the code that picks the probe face reports it here, between detection and
search, to whoever asked with :func:`observe_probe` in the same thread (a context
variable: concurrent requests on other threads or tasks never see each other's probes).
An observer may raise to stop the search before any stored face is compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from faceaudit.engine._types import Quality

ProbeObserver = Callable[[Quality], None]

_observer: ContextVar[ProbeObserver | None] = ContextVar("faceaudit_probe_observer", default=None)


@contextmanager
def observe_probe(observer: ProbeObserver) -> Iterator[None]:
    """Within the block, ``observer(quality)`` is called with the probe face's quality each time a
    search of this thread picks its probe face (before the face is searched)."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def report_probe(quality: Quality) -> None:
    """Called by a search once it has picked its probe face: hands the face's quality to the
    observer of this thread, if any (which may raise to refuse the search)."""
    observer = _observer.get()
    if observer is not None:
        observer(quality)
