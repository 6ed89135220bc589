"""The decode budget: what decoding images may cost a process, checked before decoding.

Two checks, both from the header alone (declared width and height, byte size):

- a declared size must be plausible for the bytes that carry it: above
  :data:`RATIO_CHECK_PIXELS`, at most :data:`MAX_PIXELS_PER_BYTE` pixels per byte of
  image (a 691-byte JPEG declaring 6000x6000 pixels would cost ~390 MiB and seconds of CPU
  to decode into nothing; a real photograph, even a flat one, carries far more bytes);
- the pixels being decoded at once in the process are bounded
  (:data:`DEFAULT_PIXEL_BUDGET`): a decode waits until its pixels fit, up to
  :data:`WAIT_SECONDS`, then is refused with ThrottlingException (clients retry it).
  Peak decoding memory is so bounded by the budget (about 3 bytes a pixel per copy), not by
  the number of requests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from faceaudit._errors import ImageTooLargeError, ThrottlingError

RATIO_CHECK_PIXELS = 4_000_000
"""Images declaring more pixels than this must also carry enough bytes (below, any ratio)."""

MAX_PIXELS_PER_BYTE = 1000
"""At most this many declared pixels per byte of image above :data:`RATIO_CHECK_PIXELS` (a
uniform 6000x6000 JPEG still takes ~140 KB, i.e. ~260 pixels a byte)."""

DEFAULT_PIXEL_BUDGET = 80_000_000
"""Pixels being decoded at once per process: two images of the largest accepted size (40 M)."""

WAIT_SECONDS = 30.0
"""How long a decode waits for room in the budget before it is refused."""


def check_declared_size(width: int, height: int, byte_size: int) -> None:
    """ImageTooLargeError when ``width`` x ``height`` is implausible for ``byte_size`` bytes."""
    pixels = width * height
    if pixels > RATIO_CHECK_PIXELS and pixels > MAX_PIXELS_PER_BYTE * byte_size:
        raise ImageTooLargeError(
            f"image declares {width}x{height} pixels in only {byte_size} bytes (more than "
            f"{MAX_PIXELS_PER_BYTE} pixels a byte above {RATIO_CHECK_PIXELS} pixels): refused "
            "before decoding as a decompression bomb"
        )


class PixelBudget:
    """Pixels being decoded at once in this process (thread-safe). A decode larger than the
    whole budget runs alone."""

    def __init__(self, pixels: int = DEFAULT_PIXEL_BUDGET, wait_seconds: float = WAIT_SECONDS) -> None:
        self.pixels = pixels
        self.wait_seconds = wait_seconds
        self.in_flight = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        deadline = time.monotonic() + self.wait_seconds
        with self._cond:
            while self.in_flight and self.in_flight + pixels > self.pixels:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ThrottlingError(
                        "too many image pixels are being decoded at once; retry the request"
                    )
                self._cond.wait(left)
            self.in_flight += pixels
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= pixels
                self._cond.notify_all()


DECODE_BUDGET = PixelBudget()
"""The process's decode budget (used by :func:`faceaudit.engine.load_image`)."""
