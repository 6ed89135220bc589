"""Issue 22 L9/L10: CSV cells a spreadsheet would run as formulas are neutralised, one rule for all."""

import pytest

from faceaudit._csv import neutralise, restore


@pytest.mark.parametrize("cell", [
    "=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", " =1+1", "   @x", "|calc", " |calc",
    "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20x", "\ufe661+1", "\u3000=1",
])
def test_formula_like_cells_are_neutralised_and_restored(cell):
    out = neutralise(cell)
    assert out == "'" + cell and restore(out) == cell


@pytest.mark.parametrize("cell", ["alice", "1.5", "a=b", "", "B000944", "'quoted"])
def test_plain_cells_are_kept(cell):
    assert neutralise(cell) == cell and restore(cell) == cell


def test_numbers_and_none():
    assert neutralise(-1.5) == -1.5 and neutralise(None) == ""
