"""The one progress display: drawn on a terminal, silent elsewhere."""

from __future__ import annotations

import io

from faceaudit._progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_with_counts_and_note():
    out = Terminal()
    with Progress("mug ", 3, stream=out) as bar:
        bar.update(indexed=1)
        bar.update(failed=1)
        bar.update(indexed=1)
    text = out.getvalue()
    assert "mug:" in text and "3/3" in text and "img/s" in text and "indexed 2 failed 1" in text
    assert bar.done == 3 and bar.counts == {"indexed": 2, "failed": 1}
    out = Terminal()
    with Progress("scoring", 2, stream=out, unit="probe") as bar:
        bar.update(2, note="two at once")
    assert "2/2" in out.getvalue() and "probe/s" in out.getvalue() and "two at once" in out.getvalue()


def test_silent_off_a_terminal_or_when_disabled():
    log = io.StringIO()
    with Progress("x", 2, stream=log) as bar:
        bar.update(2, indexed=2)
    assert log.getvalue() == "" and bar.done == 2 and bar.counts == {"indexed": 2}
    out = Terminal()
    with Progress("x", 2, stream=out, enabled=False) as bar:
        bar.update(2)
    assert out.getvalue() == ""
