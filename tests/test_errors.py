"""One error class per error: every class the library raises on purpose lives in _errors.py."""

from __future__ import annotations

import ast
from pathlib import Path

import faceaudit
from faceaudit import _errors

SRC = Path(faceaudit.__file__).parent


def test_error_classes_are_defined_only_in_errors_module():
    elsewhere = []
    for path in SRC.rglob("*.py"):
        if path.name == "_errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                elsewhere.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert elsewhere == []


def test_the_names_other_modules_export_are_the_same_classes():
    from faceaudit.accountability._log import LogIntegrityError
    from faceaudit.accountability._policy import PolicyViolationError
    from faceaudit.accountability._testing import LimitExceededError
    from faceaudit.service._keys import KeyFileError

    assert LimitExceededError is faceaudit.LimitExceededError  # the testing API's limit too
    assert (LogIntegrityError, PolicyViolationError, KeyFileError) == (
        _errors.LogIntegrityError, _errors.PolicyViolationError, _errors.KeyFileError)
    assert issubclass(_errors.SigningKeyError, KeyFileError)
    assert issubclass(faceaudit.ManifestError, faceaudit.InvalidParameterError)
