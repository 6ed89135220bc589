"""Printing helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

DATA_DIR_HELP = "data dir (default $FACEAUDIT_DATA_DIR, else ~/.local/share/faceaudit)"


def print_json(obj: Any) -> None:
    """One JSON document on one line of stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> None:
    """A plain aligned text table."""
    rows = [[_fmt(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sys.stdout.write(indent + line.rstrip() + "\n")
    for r in rows:
        sys.stdout.write(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def rate_text(rate: float | None) -> str:
    """A small rate as a plain decimal with a short exponent and "1 in N": ``6.4e-5 (1 in 15,625)``,
    ``0.012 (1 in 83)``; never a percent of a percent (``6.4e-05%``). ``-`` when unknown."""
    if rate is None:
        return "-"
    if rate <= 0:
        return "0"
    if rate >= 0.1:
        return f"{rate:.2g}"
    return f"{short_g(rate)} (1 in {round(1 / rate):,})"


def short_g(value: float) -> str:
    """Two significant digits with a short exponent: ``6.4e-5``, not ``6.4e-05``."""
    mantissa, _, exponent = f"{value:.2g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa
