"""Limits enforced before any work: request body size and per-key request rate.

The rate limiter is a token bucket per access key kept in shared memory that the
worker processes of one ``faceaudit serve`` inherit (forked or spawned), so they
share the buckets: the limit holds for the service, not per worker.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import struct
import time
from typing import Callable

from faceaudit.engine import MAX_IMAGE_BYTES

BODY_OVERHEAD_BYTES = 1024 * 1024
"""What a request may hold besides its images (JSON, ids, lists of FaceIds): 1 MiB."""

BASE64_IMAGE_BYTES = 4 * math.ceil(MAX_IMAGE_BYTES / 3)
"""A 5 MB image as base64 text."""


def body_limit(n_images: int) -> int:
    """Largest body accepted for an operation taking ``n_images`` images.

    1 MiB plus one base64-encoded 5 MB image per image member: about 7.7 MiB for
    IndexFaces, 14.3 MiB for CompareFaces, 1 MiB for operations without images.
    """
    return BODY_OVERHEAD_BYTES + n_images * BASE64_IMAGE_BYTES


class RateLimiter:
    """Token buckets keyed by access key id, shared by the processes forked after creation.

    ``rate`` tokens per second refill each bucket up to ``burst`` (default: one
    second's worth, at least 1). Each request takes one token. ``rate <= 0``
    disables the limit.
    """

    _SLOT = struct.Struct("<32sdd")  # key digest, tokens, last refill (monotonic seconds)

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        slots: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst else max(1.0, self.rate)
        self.slots = slots
        self.clock = clock
        # shared memory and a lock that worker processes inherit, forked or spawned (pickled
        # with the worker's arguments: see __getstate__)
        context = multiprocessing.get_context("spawn")
        self._raw = context.RawArray("B", slots * self._SLOT.size)
        self._lock = context.Lock()
        self._mem = memoryview(self._raw).cast("B")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_mem"]  # a view of _raw: made again in the worker
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._mem = memoryview(self._raw).cast("B")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        start = int.from_bytes(digest[:4], "little") % self.slots
        size = self._SLOT.size
        now = self.clock()
        with self._lock:
            for probe in range(self.slots):
                offset = ((start + probe) % self.slots) * size
                stored, tokens, last = self._SLOT.unpack_from(self._mem, offset)
                if stored == digest:
                    tokens = min(self.burst, tokens + (now - last) * self.rate)
                    break
                if stored == b"\0" * 32:
                    tokens = self.burst
                    break
            else:  # every slot taken (e.g. --no-auth with very many clients): start over
                self._mem[:] = bytes(len(self._mem))
                offset = start * size
                tokens = self.burst
            if tokens >= 1.0:
                self._SLOT.pack_into(self._mem, offset, digest, tokens - 1.0, now)
                return 0.0
            self._SLOT.pack_into(self._mem, offset, digest, tokens, now)
            return (1.0 - tokens) / self.rate
