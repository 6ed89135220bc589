"""SigV4 verification: requests signed by botocore itself verify; every alteration is refused."""

from __future__ import annotations

import datetime as dt
import os
import stat
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from faceaudit._errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from faceaudit.service import KeyFileError, KeyStore, SigV4Verifier

BODY = b'{"CollectionId":"c"}'


@pytest.fixture()
def store(tmp_path, database_url):
    """The keys of a data dir's file, or of a deployment's database (issue 21)."""
    return KeyStore(tmp_path, database_url=database_url)


FILE_ONLY = pytest.mark.parametrize("database_url", [None])
"""A test of the keys file itself (its mode, its permissions check)."""


@pytest.fixture()
def key(store):
    return store.create()


def signed(key, url="http://127.0.0.1:8080/", body=BODY, headers=None, region="eu-west-1",
           service="rekognition", secret=None, when=None):
    req = AWSRequest(method="POST", url=url, data=body, headers={
        "X-Amz-Target": "RekognitionService.DescribeCollection",
        "Content-Type": "application/x-amz-json-1.1",
        **(headers or {}),
    })
    creds = Credentials(key.access_key_id, secret or key.secret)
    if when is None:
        SigV4Auth(creds, service, region).add_auth(req)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            SigV4Auth(creds, service, region).add_auth(req)
    parts = urlsplit(url)
    hdrs = [(k, v) for k, v in req.headers.items()]
    if not any(k.lower() == "host" for k, _ in hdrs):
        hdrs.append(("Host", parts.netloc))
    return hdrs, parts.path or "/", parts.query, body


def verify(verifier, request):
    headers, path, query, body = request
    auth = verifier.precheck(headers, query)
    return verifier.verify(auth, "POST", path, query, headers, body)


def test_botocore_signature_verifies_in_any_region(store, key):
    v = SigV4Verifier(store)
    for region in ("us-east-1", "eu-west-1", "local"):
        p = verify(v, signed(key, region=region))
        assert p.access_key_id == key.access_key_id and p.role == "operator"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/a/b/../c//d",
    "http://127.0.0.1:8080/with%20space/%7Etilde",
    "http://127.0.0.1:8080/?b=2&a=1&a=0&empty=&sp=a%20b",
    "http://localhost/",
])
def test_canonical_uri_and_query_match_botocore(store, key, url):
    verify(SigV4Verifier(store), signed(key, url=url))


def test_empty_body_and_content_sha256_header(store, key):
    v = SigV4Verifier(store)
    verify(v, signed(key, body=b""))
    import hashlib
    verify(v, signed(key, headers={"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()}))


def test_declared_payload_hash_must_match(store, key):
    headers, path, query, _ = signed(key, headers={"X-Amz-Content-SHA256": "0" * 64})
    v = SigV4Verifier(store)
    with pytest.raises(InvalidSignatureError, match="x-amz-content-sha256"):
        v.verify(v.precheck(headers), "POST", path, query, headers, BODY)


def test_unsigned_payload_is_refused(store, key):
    headers, path, query, body = signed(key, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    v = SigV4Verifier(store)
    with pytest.raises(InvalidSignatureError, match="signed payload"):
        v.verify(v.precheck(headers), "POST", path, query, headers, body)


@pytest.mark.parametrize("change", ["body", "target", "path", "query", "method", "host", "signature"])
def test_any_alteration_breaks_the_signature(store, key, change):
    headers, path, query, body = signed(key)
    method = "POST"
    if change == "body":
        body = body.replace(b'"c"', b'"d"')
    elif change == "target":
        headers = [(k, "RekognitionService.DeleteCollection" if k.lower() == "x-amz-target" else v) for k, v in headers]
    elif change == "path":
        path = "/other"
    elif change == "query":
        query = "x=1"
    elif change == "method":
        method = "PUT"
    elif change == "host":
        headers = [(k, "evil:8080" if k.lower() == "host" else v) for k, v in headers]
    elif change == "signature":
        headers = [(k, v[:-1] + ("0" if v[-1] != "0" else "1") if k.lower() == "authorization" else v)
                   for k, v in headers]
    v = SigV4Verifier(store)
    with pytest.raises(InvalidSignatureError, match="does not match"):
        v.verify(v.precheck(headers, query), method, path, query, headers, body)


def test_wrong_secret(store, key):
    with pytest.raises(InvalidSignatureError, match="does not match"):
        verify(SigV4Verifier(store), signed(key, secret="x" * 40))


def test_unsigned_request(store):
    with pytest.raises(MissingAuthenticationTokenError) as info:
        SigV4Verifier(store).precheck([("Host", "h"), ("X-Amz-Target", "RekognitionService.ListCollections")])
    assert info.value.aws_code == "MissingAuthenticationTokenException" and info.value.http_status == 400


@pytest.mark.parametrize("minutes,message", [(-16, "Signature expired: "), (16, "Signature not yet current: ")])
def test_clock_skew_over_15_minutes(store, key, minutes, message):
    when = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=minutes)
    with pytest.raises(InvalidSignatureError) as info:
        verify(SigV4Verifier(store), signed(key, when=when))
    assert info.value.message.startswith(message) and "15 min." in info.value.message


def test_clock_skew_within_15_minutes_is_fine(store, key):
    when = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=14)
    verify(SigV4Verifier(store), signed(key, when=when))


def test_unknown_and_revoked_keys(store, key):
    other = KeyStore(store.data_dir / "elsewhere").create()
    v = SigV4Verifier(store)
    with pytest.raises(UnrecognizedClientError, match="security token included in the request is invalid"):
        verify(v, signed(other))
    request = signed(key)
    verify(v, request)
    store.revoke(key.access_key_id)
    with pytest.raises(UnrecognizedClientError):
        verify(v, request)


def test_session_token_is_not_recognised(store, key):
    headers, _path, _query, _body = signed(key, headers={"X-Amz-Security-Token": "tok"})
    with pytest.raises(UnrecognizedClientError):
        SigV4Verifier(store).precheck(headers)


def test_wrong_service_and_terminator(store, key):
    with pytest.raises(InvalidSignatureError, match="correct service: 'rekognition'"):
        verify(SigV4Verifier(store), signed(key, service="s3"))
    headers, *_ = signed(key)
    headers = [(k, v.replace("/aws4_request", "/aws5_request") if k.lower() == "authorization" else v)
               for k, v in headers]
    with pytest.raises(InvalidSignatureError, match="terminator"):
        SigV4Verifier(store).precheck(headers)


@pytest.mark.parametrize("auth", [
    "Bearer abc",
    "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/rekognition/aws4_request, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AK/20240101/rekognition/aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/rekognition/aws4_request, SignedHeaders=host, Signature=xyz",
    "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/rekognition/aws4_request, SignedHeaders=x-amz-date;host, "
    "Signature=" + "0" * 64,
])
def test_malformed_authorization_headers(store, auth):
    with pytest.raises(IncompleteSignatureError):
        SigV4Verifier(store).precheck([("Authorization", auth), ("X-Amz-Date", "20240101T000000Z"), ("Host", "h")])


def test_target_must_be_signed_other_unsigned_headers_are_ignored(store, key):
    headers, path, query, body = signed(key)
    v = SigV4Verifier(store)
    extra = [*headers, ("X-Amz-User-Agent", "other-sdk/1.0")]  # some SDKs add headers unsigned
    v.verify(v.precheck(extra), "POST", path, query, extra, body)
    auth = next(h for h in headers if h[0].lower() == "authorization")[1]
    stripped = [(k, auth.replace(";x-amz-target", "") if k.lower() == "authorization" else val)
                for k, val in headers]
    with pytest.raises(InvalidSignatureError, match="x-amz-target"):
        v.precheck(stripped)


def test_scope_date_must_match_request_date(store, key):
    headers, *_ = signed(key)
    headers = [(k, "20200101T000000Z" if k.lower() == "x-amz-date" else v) for k, v in headers]
    with pytest.raises(InvalidSignatureError, match="Credential scope"):
        SigV4Verifier(store, clock=lambda: 1577836800.0).precheck(headers)


def test_date_header_instead_of_x_amz_date(store, key):
    """SigV4 allows the HTTP Date header to carry the signing time."""
    import hashlib
    import hmac
    from email.utils import formatdate

    from faceaudit.service import canonical_request, signing_key

    now = dt.datetime.now(dt.UTC)
    amz = now.strftime("%Y%m%dT%H%M%SZ")
    headers = [("Host", "h:1"), ("Date", formatdate(now.timestamp(), usegmt=True)),
               ("X-Amz-Target", "RekognitionService.ListCollections")]
    signed_headers = ("date", "host", "x-amz-target")
    creq = canonical_request("POST", "/", "", headers, signed_headers, hashlib.sha256(b"{}").hexdigest())
    scope = f"{amz[:8]}/us-east-1/rekognition/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = signing_key(key.secret, amz[:8], "us-east-1", "rekognition")
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers.append(("Authorization", f"AWS4-HMAC-SHA256 Credential={key.access_key_id}/{scope}, "
                                     f"SignedHeaders={';'.join(signed_headers)}, Signature={sig}"))
    v = SigV4Verifier(store)
    assert v.verify(v.precheck(headers), "POST", "/", "", headers, b"{}").access_key_id == key.access_key_id


def test_presigned_query_auth_is_refused(store):
    with pytest.raises(IncompleteSignatureError, match="presigned"):
        SigV4Verifier(store).precheck([("Host", "h")], "X-Amz-Credential=a&X-Amz-Signature=b")


# -- the key store ---------------------------------------------------------------------------------

@FILE_ONLY
def test_key_file_is_private_and_secrets_never_listed(store, key):
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode == 0o600
    assert key.secret not in repr(key) and key.secret not in str(store.list())
    assert all("SecretAccessKey" not in k.public() for k in store.list())
    assert key.role == "operator" and key.active
    assert len(key.access_key_id) == 20 and len(key.secret) == 40


def test_roles(store):
    assert store.create(role="admin").role == "admin"
    assert store.create(role="auditor").role == "auditor"
    from faceaudit._errors import InvalidParameterError
    with pytest.raises(InvalidParameterError):
        store.create(role="root")


@FILE_ONLY
def test_readable_key_file_is_refused(store, key):
    os.chmod(store.path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        KeyStore(store.data_dir).lookup(key.access_key_id)


def test_revoke_unknown_key(store):
    from faceaudit._errors import ResourceNotFoundError
    with pytest.raises(ResourceNotFoundError):
        store.revoke("FAKINOPE")


def test_keys_in_a_sqlite_database_url(tmp_path):
    """database_url may name a SQLite file (sqlite:///path): the same table, the same API."""
    url = f"sqlite:///{tmp_path}/data/deployment.db"
    store = KeyStore(tmp_path / "data", database_url=url)
    key = store.create("reviewer", person="Rita")
    other = KeyStore(tmp_path / "elsewhere", database_url=url)
    assert other.lookup(key.access_key_id).person == "Rita"
    other.revoke(key.access_key_id)
    assert not store.lookup(key.access_key_id).active
    assert not (tmp_path / "data" / "access-keys.json").exists()
