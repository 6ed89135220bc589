"""CSV cells a spreadsheet cannot run: one rule for every CSV faceaudit writes.

A spreadsheet (Excel, LibreOffice, Google Sheets) reads a cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula, also after
leading spaces, and ``|`` starts a DDE link in some of them; their fullwidth and
small forms (``＝``, ``＋``, ``－``, ``＠``, ``﹦``...) are normalised to those by
some. :func:`neutralise` puts a ``'`` before any such text cell (OWASP's advice
for CSV injection), so it is shown as text; numbers are left as they are.
:func:`restore` undoes it for faceaudit's own readers of its CSV files.
"""  # noqa: RUF002 -- the fullwidth forms named above are the subject, not typos

from __future__ import annotations

import unicodedata
from typing import Any

FORMULA_STARTS = frozenset("=+-@|")
"""First characters (after leading whitespace and NFKC normalisation) that make a formula."""
_CONTROL_STARTS = ("\t", "\r", "\n")


def _risky(text: str) -> bool:
    if text.startswith(_CONTROL_STARTS):
        return True
    stripped = text.lstrip()
    return bool(stripped) and unicodedata.normalize("NFKC", stripped[0])[:1] in FORMULA_STARTS


def neutralise(value: Any) -> Any:
    """``value`` as a CSV cell no spreadsheet runs: risky text gets a leading ``'``; None is ""."""
    if value is None:
        return ""
    if isinstance(value, str) and _risky(value):
        return "'" + value
    return value


def restore(cell: str) -> str:
    """The text :func:`neutralise` was given, from the cell it wrote."""
    if cell.startswith("'") and _risky(cell[1:]):
        return cell[1:]
    return cell
