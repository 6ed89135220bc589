"""A dependency-free progress bar on stderr."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """``[#####.....] 120/300  40%  21.3 img/s  ETA 0:08  indexed 117 failed 3``.

    On a terminal the line is redrawn in place (at most 10 times a second);
    otherwise a full line is printed at most every ``interval`` seconds.
    """

    def __init__(self, total: int, stream: Optional[TextIO] = None, enabled: bool = True,
                 interval: float = 5.0, label: str = "") -> None:
        self.total = max(int(total), 0)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interval = interval
        self.label = label
        self.done = 0
        self.counts: dict = {}
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1, **counts: int) -> None:
        self.done += n
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        now = time.monotonic()
        if not self.enabled:
            return
        if now - self._last >= (0.1 if self._tty else self.interval) or self.done >= self.total:
            self._last = now
            self._draw(final=False)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        frac = self.done / self.total if self.total else 1.0
        width = 24
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        eta = f"{int(left // 60)}:{int(left % 60):02d}"
        extra = " ".join(f"{k} {v}" for k, v in self.counts.items())
        return (f"{self.label}[{bar}] {self.done}/{self.total} {100 * frac:3.0f}% "
                f"{rate:6.1f} img/s ETA {eta}  {extra}").rstrip()

    def _draw(self, final: bool) -> None:
        if final and self._drawn == self.done and not self._tty:
            return  # the last line already shows the final state
        self._drawn = self.done
        text = self.line()
        if self._tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(final=True)
