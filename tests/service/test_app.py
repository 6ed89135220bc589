"""The request pipeline without sockets: routing, order of checks, limits before reading, logs."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from faceaudit.service import (
    Dispatcher,
    HttpRequest,
    JsonFormatter,
    KeyStore,
    RateLimiter,
    ServiceApp,
    ServiceConfig,
    body_limit,
)


@dataclass(frozen=True)
class _Result:
    doc: dict

    def to_rekognition(self):
        return self.doc


class FakeBackend:
    """Records calls; answers with fixed documents."""

    def __init__(self, data_dir):
        self.calls = []

    def describe_collection(self, **kwargs):
        self.calls.append(("describe_collection", kwargs))
        return _Result({"FaceCount": 0, "FaceModelVersion": "m", "CollectionARN": "arn", "CreationTimestamp": 1.0})

    def list_collections(self, **kwargs):
        self.calls.append(("list_collections", kwargs))
        return _Result({"CollectionIds": [], "FaceModelVersions": []})

    def index_faces(self, **kwargs):
        self.calls.append(("index_faces", kwargs))
        return _Result({"FaceRecords": [], "UnindexedFaces": [], "FaceModelVersion": "m"})

    def delete_collection(self, **kwargs):
        return _Result({"StatusCode": "200"})  # wrong type: strict mode must catch it


def never_read(n):
    raise AssertionError("the body must not be read")


@pytest.fixture()
def setup(tmp_path):
    key = KeyStore(tmp_path).create()
    backend = FakeBackend(tmp_path)
    dispatcher = Dispatcher(tmp_path, backend_factory=lambda d: backend)
    app = ServiceApp(ServiceConfig(tmp_path, rate_limit=1000, strict_responses=True), dispatcher=dispatcher)
    return app, key, backend


def request(key, op, doc=None, body=None, headers=None, secret=None, read=None, method="POST", path="/"):
    body = json.dumps(doc if doc is not None else {}).encode() if body is None else body
    req = AWSRequest(method=method, url="http://127.0.0.1:9/" + path.lstrip("/"), data=body, headers={
        "X-Amz-Target": f"RekognitionService.{op}", "Content-Type": "application/x-amz-json-1.1",
        "Host": "127.0.0.1:9", **(headers or {})})
    if key is not None:
        SigV4Auth(Credentials(key.access_key_id, secret or key.secret), "rekognition", "us-east-1").add_auth(req)
    stream = io.BytesIO(body)
    return HttpRequest(method=method, raw_path=path, query="", headers=list(req.headers.items()),
                       content_length=len(body), read_body=read or stream.read, remote="127.0.0.1")


def doc(response):
    return json.loads(response.body)


def test_success_has_request_id_engine_time_and_converted_arguments(setup):
    app, key, backend = setup
    r = app.handle(request(key, "DescribeCollection", {"CollectionId": "c1"}))
    assert r.status == 200, r.body
    assert r.header("x-amzn-RequestId") and r.header("x-faceaudit-engine-ms")
    assert r.header("Content-Type") == "application/x-amz-json-1.1"
    assert backend.calls == [("describe_collection", {"collection_id": "c1"})]


def test_images_are_passed_as_bytes_and_absent_members_not_passed(setup):
    app, key, backend = setup
    import base64
    r = app.handle(request(key, "IndexFaces", {"CollectionId": "c",
                                               "Image": {"Bytes": base64.b64encode(b"img").decode()},
                                               "MaxFaces": 2}))
    assert r.status == 200, r.body
    assert backend.calls[-1] == ("index_faces", {"collection_id": "c", "image": b"img", "max_faces": 2})


def test_empty_body_is_an_empty_request(setup):
    app, key, backend = setup
    assert app.handle(request(key, "ListCollections", body=b"")).status == 200
    assert backend.calls[-1] == ("list_collections", {})


def test_strict_mode_catches_a_response_that_breaks_its_shape(setup):
    app, key, _ = setup
    r = app.handle(request(key, "DeleteCollection", {"CollectionId": "c"}))
    assert r.status == 500 and "StatusCode" in doc(r)["message"]


def test_health_needs_no_auth_and_touches_nothing(setup):
    app, _, backend = setup
    r = app.handle(HttpRequest("GET", "/health", "", [("Host", "h")], read_body=never_read))
    assert r.status == 200 and doc(r)["Status"] == "ok" and backend.calls == []
    assert app.dispatcher._backend is None  # not even created


@pytest.mark.parametrize("method,path,status", [("GET", "/", 405), ("POST", "/nope", 404), ("POST", "/health", 405)])
def test_routes(setup, method, path, status):
    app, _key, _ = setup
    r = app.handle(HttpRequest(method, path, "", [("Host", "h")], content_length=0))
    assert r.status == status and r.header("x-amzn-RequestId")


def test_unsigned_refused_before_the_body_is_read(setup):
    app, _, backend = setup
    r = app.handle(request(None, "ListCollections", read=never_read))
    assert r.status == 400 and doc(r)["__type"] == "MissingAuthenticationTokenException"
    assert backend.calls == []


def test_unknown_key_refused_before_the_body_is_read(setup, tmp_path):
    app, _, backend = setup
    stranger = KeyStore(tmp_path / "other").create()
    r = app.handle(request(stranger, "ListCollections", read=never_read))
    assert doc(r)["__type"] == "UnrecognizedClientException" and backend.calls == []


def test_bad_signature_never_reaches_the_backend(setup):
    app, key, backend = setup
    r = app.handle(request(key, "DescribeCollection", {"CollectionId": "c"}, secret="y" * 40))
    assert doc(r)["__type"] == "InvalidSignatureException" and backend.calls == []


def test_unknown_operation(setup):
    app, key, _ = setup
    r = app.handle(request(key, "DetectLabels", {}, read=never_read))
    assert r.status == 400 and doc(r)["__type"] == "UnknownOperationException"
    r = app.handle(request(key, "ListCollections", headers={"X-Amz-Target": "Other.ListCollections"}, read=never_read))
    assert doc(r)["__type"] == "UnknownOperationException"


def test_content_length_required(setup):
    app, key, _ = setup
    req = request(key, "ListCollections")
    req.content_length = None
    r = app.handle(req)
    assert r.status == 411 and r.close


@pytest.mark.parametrize("op,images", [("ListCollections", 0), ("IndexFaces", 1), ("CompareFaces", 2)])
def test_body_over_the_operation_limit_refused_before_reading(setup, op, images):
    app, key, _ = setup
    req = request(key, op, read=never_read)
    req.content_length = body_limit(images) + 1
    r = app.handle(req)
    assert r.status == 413 and r.close
    assert doc(r)["__type"] == ("ImageTooLargeException" if images else "RequestEntityTooLargeException")
    assert body_limit(1) < 8 * 1024 * 1024 < body_limit(2)


def test_malformed_json_and_content_type(setup):
    app, key, _ = setup
    r = app.handle(request(key, "ListCollections", body=b"{not json"))
    assert doc(r)["__type"] == "SerializationException"
    r = app.handle(request(key, "ListCollections", body=b"[1]"))
    assert doc(r)["__type"] == "SerializationException"
    r = app.handle(request(key, "ListCollections", headers={"Content-Type": "text/plain"}))
    assert doc(r)["__type"] == "SerializationException"


def test_validation_errors_reach_no_backend(setup):
    app, key, backend = setup
    r = app.handle(request(key, "DescribeCollection", {"CollectionId": "no spaces"}))
    assert r.status == 400 and doc(r)["__type"] == "InvalidParameterException" and backend.calls == []


def test_rate_limit_per_key(tmp_path):
    store = KeyStore(tmp_path)
    a, b = store.create(), store.create()
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    app = ServiceApp(ServiceConfig(tmp_path), limiter=limiter,
                     dispatcher=Dispatcher(tmp_path, backend_factory=FakeBackend))
    codes = [app.handle(request(a, "ListCollections")).status for _ in range(3)]
    assert codes == [200, 200, 500]
    r = app.handle(request(a, "ListCollections"))
    assert doc(r)["__type"] == "ThrottlingException" and r.header("Retry-After") == "1"
    assert app.handle(request(b, "ListCollections")).status == 200  # another key has its own bucket
    now[0] += 0.5  # one token back
    assert app.handle(request(a, "ListCollections")).status == 200


def test_a_store_that_is_down_gives_503_with_retry_after(tmp_path):
    from faceaudit._errors import ServiceUnavailableError

    class DownBackend(FakeBackend):
        def describe_collection(self, **kwargs):
            raise ServiceUnavailableError("the database postgresql://db/faceaudit cannot be reached")

    key = KeyStore(tmp_path).create()
    app = ServiceApp(ServiceConfig(tmp_path), dispatcher=Dispatcher(tmp_path, backend_factory=DownBackend))
    r = app.handle(request(key, "DescribeCollection", {"CollectionId": "c"}))
    assert r.status == 503 and doc(r)["__type"] == "ServiceUnavailableException"
    assert r.header("Retry-After") == "1"
    assert "postgresql" not in doc(r)["Message"]  # which server is the log's business, not the caller's


def test_no_auth_mode(tmp_path):
    app = ServiceApp(ServiceConfig(tmp_path, auth=False),
                     dispatcher=Dispatcher(tmp_path, backend_factory=FakeBackend))
    assert app.handle(request(None, "ListCollections")).status == 200


def test_request_log_is_json_without_secrets_or_bodies(setup):
    app, key, _ = setup
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("faceaudit.service.access")
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        app.handle(request(key, "DescribeCollection", {"CollectionId": "secret-collection-name"}))
        app.handle(request(key, "DescribeCollection", {"CollectionId": "c"}, secret="w" * 40))
    finally:
        log.removeHandler(handler)
        log.setLevel(old)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    for rec in lines:
        assert {"time", "request_id", "operation", "access_key_id", "status", "error_code", "duration_ms"} <= set(rec)
    assert lines[0]["status"] == 200 and lines[0]["operation"] == "DescribeCollection"
    assert lines[1]["error_code"] == "InvalidSignatureException"
    text = stream.getvalue()
    assert key.secret not in text and "secret-collection-name" not in text and "Signature=" not in text


def test_engine_operations_do_not_open_the_data_dir(tmp_path):
    from tests.conftest import blank_image

    data = tmp_path / "never-created"
    d = Dispatcher(data)
    doc, ms = d.call("DetectFaces", {"Image": {"Bytes": blank_image()}})
    assert doc == {"FaceDetails": []} and ms > 0
    assert d._backend is None and not data.exists()


def test_backend_shares_the_process_engine(tmp_path):
    pytest.importorskip("faceaudit.collections")
    d = Dispatcher(tmp_path)
    backend = d.backend
    engines = getattr(backend, "_engines", None)
    if engines is None:
        pytest.skip("the backend does not take engines")
    assert engines[d.engine.spec.name] is d.engine


def test_short_or_stalled_body_and_deep_json(setup):
    app, key, backend = setup
    req = request(key, "ListCollections")
    req.content_length += 10  # the client promised more than it sent
    r = app.handle(req)
    assert r.status == 400 and doc(r)["__type"] == "SerializationException" and r.close

    def stalled(n):
        raise TimeoutError("timed out")

    r = app.handle(request(key, "ListCollections", read=stalled))
    assert doc(r)["__type"] == "SerializationException" and r.close
    r = app.handle(request(key, "ListCollections", body=b"[" * 100_000 + b"]" * 100_000))
    assert doc(r)["__type"] == "SerializationException" and backend.calls == []


class _BigBodyExtension:
    """An extension with one operation of a large body, for admin keys only."""

    target_prefix = "FaceAuditService"
    operations = frozenset({"StartAudit"})

    def authorize(self, caller, operation, native):
        from faceaudit import AccessDeniedError

        if caller.role != "admin":
            raise AccessDeniedError(f"role {caller.role} may not call {operation}")

    def body_limit(self, operation):
        return 64 * 1024 * 1024

    def call(self, caller, operation, params):
        return {"Called": operation}


def test_role_is_checked_before_the_body_is_read(tmp_path):
    # knowing an operator key's id (with any signature) no longer buys a 64 MiB buffer
    store = KeyStore(tmp_path)
    operator, admin = store.create(role="operator"), store.create(role="admin")
    app = ServiceApp(ServiceConfig(tmp_path, rate_limit=1000), extension=_BigBodyExtension())
    target = {"X-Amz-Target": "FaceAuditService.StartAudit"}
    req = request(operator, "x", body=b"{}", headers=target, read=never_read)
    req.content_length = 60 * 1024 * 1024
    r = app.handle(req)
    assert r.status == 400 and doc(r)["__type"] == "AccessDeniedException"
    exchange = app.begin(request(admin, "x", body=b"{}", headers=target))
    assert exchange.needs_body  # the admin's request goes on to its body
    assert json.loads(app.finish(exchange, b"{}").body) == {"Called": "StartAudit"}


def test_body_hash_is_computed_while_streaming(setup):
    import hashlib

    app, key, _backend = setup
    req = request(key, "ListCollections", {"MaxResults": 5})
    chunks = []
    read = req.read_body
    req.read_body = lambda n: chunks.append(n) or read(min(n, 7))  # a trickle of 7-byte chunks
    assert app.handle(req).status == 200
    assert len(chunks) > 2 and req.body_sha256 == hashlib.sha256(b'{"MaxResults": 5}').hexdigest()
