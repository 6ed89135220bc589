"""One normalised request over HTTP (issue 20 item 2): the backend, the extension (policy check,
search log) and the service read the same typed object, and a threshold is checked once."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from faceaudit._defaults import Threshold
from faceaudit.collections import FaceCollections, NormalisedRequest
from faceaudit.service import Dispatcher, KeyStore, ServiceApp, ServiceConfig
from faceaudit.service import _validate as service_validate
from tests.service.test_app import request

FACE = "11111111-1111-1111-1111-111111111111"


@dataclass(frozen=True)
class _Result:
    doc: dict

    def to_rekognition(self):
        return self.doc


class _Backend:
    def __init__(self):
        self.calls = []

    def search_faces(self, **kwargs):
        self.calls.append(kwargs)
        return _Result({"SearchedFaceId": kwargs["face_id"], "FaceMatches": [], "FaceModelVersion": "m"})


class _Extension:
    """Records what it is given to wrap."""

    target_prefix = "FaceAuditService"
    operations = frozenset()

    def __init__(self):
        self.wrapped = []

    def authorize(self, caller, operation, native):
        pass

    def wrap(self, caller, operation, params, call, model_version):
        self.wrapped.append(params)
        return call()


def _app(tmp_path, backend_factory):
    key = KeyStore(tmp_path).create()
    extension = _Extension()
    app = ServiceApp(ServiceConfig(tmp_path, rate_limit=1000), extension=extension,
                     dispatcher=Dispatcher(tmp_path, backend_factory=backend_factory))
    return app, key, extension


@pytest.fixture()
def checks(monkeypatch):
    """Every check of a similarity threshold: the service's model check of a ``Percent`` member
    and each Threshold made from a value not checked yet."""
    seen = []
    original_new, original_range = Threshold.__new__, service_validate._Checker._range

    def new(cls, value, name="threshold"):
        if not isinstance(value, Threshold):
            seen.append(("Threshold", name, value))
        return original_new(cls, value, name)

    def check_range(self, shape, value, path):
        if shape.name == service_validate.THRESHOLD_SHAPE:
            seen.append(("model", path, value))
        return original_range(self, shape, value, path)

    monkeypatch.setattr(Threshold, "__new__", new)
    monkeypatch.setattr(service_validate._Checker, "_range", check_range)
    return seen


def test_backend_and_extension_read_one_normalised_request(tmp_path):
    backend = _Backend()
    app, key, extension = _app(tmp_path, lambda d: backend)
    r = app.handle(request(key, "SearchFaces", {"CollectionId": "c", "FaceId": FACE, "FaceMatchThreshold": 91.5}))
    assert r.status == 200, r.body
    [seen] = extension.wrapped
    assert isinstance(seen, NormalisedRequest)
    assert (seen.threshold, seen.threshold_member, seen.max_candidates, seen.max_candidates_member) == (
        91.5, "FaceMatchThreshold", 80, "MaxFaces")
    [kwargs] = backend.calls
    assert kwargs["face_match_threshold"] is seen.threshold and kwargs["max_faces"] == seen.max_candidates
    with pytest.raises(TypeError):
        seen.members["FaceMatchThreshold"] = 10.0  # read-only: nobody downstream changes it


def test_defaults_reach_the_backend_from_the_normalised_request(tmp_path):
    backend = _Backend()
    app, key, extension = _app(tmp_path, lambda d: backend)
    assert app.handle(request(key, "SearchFaces", {"CollectionId": "c", "FaceId": FACE})).status == 200
    assert backend.calls[0]["face_match_threshold"] == extension.wrapped[0].threshold == 80.0


@pytest.mark.parametrize("threshold", [None, 42.0, 100])
def test_the_threshold_is_checked_once_over_http(tmp_path, checks, threshold):
    # the real backend checks its arguments (a library call may come from anywhere); over HTTP it
    # is given the Threshold the service checked, and checks nothing again
    app, key, _extension = _app(tmp_path, lambda d: FaceCollections(d))
    body = {"CollectionId": "missing", "FaceId": FACE}
    if threshold is not None:
        body["FaceMatchThreshold"] = threshold
    r = app.handle(request(key, "SearchFaces", body))
    assert json.loads(r.body)["__type"] == "ResourceNotFoundException"  # got past every check
    if threshold is None:  # the default: made a Threshold once, by the normalisation
        assert checks == [("Threshold", "FaceMatchThreshold", 80.0)]
    else:
        assert checks == [("model", "faceMatchThreshold", threshold)]


@pytest.mark.parametrize("threshold", [100.5, -1, "80"])
def test_an_out_of_range_threshold_gets_the_model_error_before_anything_runs(tmp_path, threshold):
    backend = _Backend()
    app, key, extension = _app(tmp_path, lambda d: backend)
    r = app.handle(request(key, "SearchFaces", {"CollectionId": "c", "FaceId": FACE, "FaceMatchThreshold": threshold}))
    error = json.loads(r.body)
    assert r.status == 400 and error["__type"] == "InvalidParameterException"
    assert "at 'faceMatchThreshold' failed to satisfy constraint" in error["message"]
    assert backend.calls == [] and extension.wrapped == []
