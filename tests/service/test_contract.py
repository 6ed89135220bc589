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


class _Recorder:
    """Stands in for the backend or the dispatcher: records the method a route calls."""

    def __init__(self):
        self.called = []

    def __getattr__(self, name):
        def method(**kwargs):
            self.called.append((name, kwargs))
            return None
        return method


def test_route_tables_match_the_botocore_model():
    """Every operation the service claims has exactly one route, every route is an operation of
    Rekognition's model, and each calls the method named after its operation."""
    from faceaudit.service import OPERATIONS, service_model
    from faceaudit.service._dispatch import COLLECTION_ROUTES, ENGINE_ROUTES

    assert set(COLLECTION_ROUTES) | set(ENGINE_ROUTES) == set(OPERATIONS)
    assert not set(COLLECTION_ROUTES) & set(ENGINE_ROUTES)
    assert set(COLLECTION_ROUTES) == set(COLLECTION_OPERATIONS)
    assert set(OPERATIONS) <= set(service_model().operation_names)
    for table in (COLLECTION_ROUTES, ENGINE_ROUTES):
        for operation, route in table.items():
            target = _Recorder()
            route(target, {"x": 1})
            assert target.called == [(method_name(operation), {"x": 1})], operation


def test_an_unknown_backend_option_is_an_error(tmp_path):
    from faceaudit import InvalidParameterError
    from faceaudit.collections import BackendOptions
    from faceaudit.service import Dispatcher

    with pytest.raises(InvalidParameterError, match="video_worker"):
        Dispatcher(tmp_path, backend_options={"video_worker": 8})
    with pytest.raises(InvalidParameterError):
        BackendOptions(video_workers=0)
    d = Dispatcher(tmp_path, backend_options={"video_workers": 3})
    assert d.backend_options == BackendOptions(video_workers=3)
    assert d.backend.video_workers == 3  # reaches the backend
