"""The collections <-> service contract (docs/design.md), checked against the backend's code."""

from __future__ import annotations

import inspect

import pytest

from faceaudit.service import COLLECTION_OPERATIONS, operation_model
from faceaudit.service._model import argument_name, method_name
from tests.service.conftest import needs_backend


@needs_backend
@pytest.mark.parametrize("operation", COLLECTION_OPERATIONS)
def test_backend_has_a_method_taking_every_request_member(operation):
    from faceaudit.collections import FaceCollections

    method = getattr(FaceCollections, method_name(operation), None)
    assert method is not None, f"FaceCollections has no {method_name(operation)}"
    params = inspect.signature(method).parameters
    members = operation_model(operation).input_shape.members
    for member in members:
        assert argument_name(member) in params, f"{operation}: no argument {argument_name(member)} for {member}"
    required = set(operation_model(operation).input_shape.required_members)
    for name, p in params.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.default is inspect.Parameter.empty:  # what the backend requires, the model requires
            assert any(argument_name(m) == name for m in required), f"{operation}: {name} required"
