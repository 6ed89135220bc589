"""Group labels: --relabel joins one data set's labels to another's before grouping."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceaudit._errors import InvalidParameterError
from faceaudit.audit import parse_relabel
from faceaudit.audit._groups import build_column, relabel_records
from faceaudit.audit._manifest import ImageRecord


def rec(race: str) -> ImageRecord:
    return ImageRecord(path=Path("x.jpg"), subject="s", labels={"race": race, "sex": "B"}, manifest="m.csv", line=2)


def test_relabel_joins_labels_of_one_column_only():
    mapping = parse_relabel(["race:B=black", " race : W = white_non_hispanic "])
    assert mapping == {"race": {"B": "black", "W": "white_non_hispanic"}}
    records = relabel_records([rec("B"), rec("W"), rec("black"), rec("")], mapping)
    col = build_column(records, "race")
    assert col.groups == ("black", "white_non_hispanic", "unknown")
    assert [col.groups[c] for c in col.codes.tolist()] == ["black", "white_non_hispanic", "black", "unknown"]
    assert {r.label("sex") for r in records} == {"B"}  # another column's "B" is left alone


@pytest.mark.parametrize("spec", ["race=B", "race:B", ":B=black", "race:=black", "race:B="])
def test_relabel_refuses_a_malformed_spec(spec):
    with pytest.raises(InvalidParameterError, match="COLUMN:OLD=NEW"):
        parse_relabel([spec])


def test_relabel_refuses_two_names_for_one_label():
    with pytest.raises(InvalidParameterError, match="already relabelled"):
        parse_relabel(["race:B=black", "race:B=african_american"])
