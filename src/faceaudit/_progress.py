"""The one progress display (audit and batch indexing): a tqdm bar on stderr.

Shown only on a terminal: when stderr is a file, a pipe or a CI log, nothing is written
(the command's result and log say what happened). The bar shows the label, done/total,
percent, elapsed time, ETA and rate, and the running counts a caller passes
(``indexed 117 failed 3``) or its latest note.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm  # type: ignore[import-untyped]  # (no stubs installed)


class Progress:
    """``with Progress("embedding", total) as bar: bar.update(1, indexed=1)``.

    ``enabled=False`` makes it silent; so does a ``stream`` (default stderr) that is not a
    terminal. ``unit`` names what is counted (the rate is shown per ``unit`` per second).
    """

    def __init__(self, label: str, total: int, *, enabled: bool = True, unit: str = "img",
                 stream: TextIO | None = None) -> None:
        self.label = label.strip()
        self.total = max(0, int(total))
        self.done = 0
        self.counts: dict[str, int] = {}
        out = stream if stream is not None else sys.stderr
        tty = bool(getattr(out, "isatty", lambda: False)())
        self.shown = bool(enabled and tty)
        self._bar = tqdm(total=self.total, desc=self.label, unit=unit, file=out, disable=not self.shown,
                         dynamic_ncols=True, mininterval=0.1, leave=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1, note: str = "", **counts: int) -> None:
        """``n`` more done; ``counts`` are added to the running counts shown beside the bar,
        ``note`` replaces them for this draw."""
        self.done += n
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        if self.shown:
            extra = note or " ".join(f"{k} {v}" for k, v in self.counts.items())
            if extra:
                self._bar.set_postfix_str(extra, refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        self._bar.close()
