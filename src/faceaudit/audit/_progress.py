"""A small progress bar on stderr (no dependency)."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """``with Progress("embedding", total) as bar: bar.update(1)``.

    On a terminal the bar redraws in place; otherwise (logs, CI) it prints a line
    every 10%. ``enabled=False`` makes it silent.
    """

    def __init__(self, label: str, total: int, stream: Optional[TextIO] = None, enabled: bool = True):
        self.label = label
        self.total = max(0, int(total))
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def __enter__(self) -> "Progress":
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        self._draw(note=note)

    def _line(self, note: str = "") -> str:
        elapsed = time.monotonic() - self.start
        frac = self.done / self.total if self.total else 1.0
        width = 28
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta = ""
        if 0 < self.done < self.total:
            eta = f" eta {elapsed / self.done * (self.total - self.done):.0f}s"
        extra = f" {note}" if note else ""
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:.0f}s{eta}{extra}"

    def _draw(self, force: bool = False, note: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self._last_draw > 0.2 or self.done >= self.total:
                self.stream.write("\r" + self._line(note)[:150].ljust(100))
                self.stream.flush()
                self._last_draw = now
            return
        decile = int(10 * self.done / self.total) if self.total else 10
        if force or decile != self._last_decile:
            self.stream.write(self._line(note) + "\n")
            self.stream.flush()
            self._last_decile = decile

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + self._line()[:150].ljust(100) + "\n")
            self.stream.flush()
