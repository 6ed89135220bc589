"""Rekognition's request defaults: one module (faceaudit._defaults), applied once (normalise_request)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faceaudit import InvalidParameterError
from faceaudit._defaults import IDENTIFICATION_DEFAULTS, request_default
from faceaudit.collections import normalise_request

SRC = Path(__file__).resolve().parents[2] / "src" / "faceaudit"


def test_normalise_applies_each_default_once_and_checks_it():
    assert normalise_request("SearchFacesByImage", {"CollectionId": "c"}) == {
        "CollectionId": "c", "FaceMatchThreshold": 80.0, "MaxFaces": 80}
    assert normalise_request("AssociateFaces", {"UserId": "u"})["UserMatchThreshold"] == 75.0
    assert normalise_request("SearchUsers", {"UserMatchThreshold": 91})["UserMatchThreshold"] == 91.0
    assert normalise_request("CompareFaces", {})["SimilarityThreshold"] == 80.0
    assert normalise_request("IndexFaces", {"MaxFaces": 2}) == {"MaxFaces": 2}  # not an identification
    for bad in ({"FaceMatchThreshold": 101}, {"FaceMatchThreshold": "80"}, {"MaxFaces": 0},
                {"MaxFaces": 5000}):
        with pytest.raises(InvalidParameterError):
            normalise_request("SearchFaces", bad)


def test_accountability_reads_the_same_defaults():
    from faceaudit.accountability import identification

    for operation in IDENTIFICATION_DEFAULTS:
        spec = identification(operation)
        assert spec is not None, operation
        assert spec.threshold({}) == request_default(operation, spec.threshold_member)
        assert spec.threshold(normalise_request(operation, {})) == spec.threshold({})


def test_the_default_threshold_is_written_down_once():
    """No module but faceaudit/_defaults.py writes Rekognition's default threshold as a literal."""
    literal = re.compile(r"(threshold|THRESHOLD)[^\n=]*(=|default=)\s*80(\.0)?\b")
    offenders = [f"{p.relative_to(SRC)}" for p in SRC.rglob("*.py")
                 if p.name != "_defaults.py" and literal.search(p.read_text())]
    assert offenders == []
