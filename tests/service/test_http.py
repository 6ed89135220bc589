"""Over a real socket, with the real boto3 client: engine operations, errors, authentication."""

from __future__ import annotations

import datetime as dt
import http.client
import json
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.conftest import blank_image, portrait_2014, portrait_2018, side_by_side
from tests.service.conftest import cli, client, create_key


def error_of(call):
    with pytest.raises(ClientError) as info:
        call()
    e = info.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Message"]


def raw(url, method="POST", path="/", body=b"{}", headers=None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(method, path, body=body, headers={
        "X-Amz-Target": "RekognitionService.ListCollections",
        "Content-Type": "application/x-amz-json-1.1", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    return resp, (json.loads(data) if data else None), conn


# -- engine operations --------------------------------------------------------------------------

def test_detect_faces(rek):
    r = rek.detect_faces(Image={"Bytes": portrait_2018("C000127").read_bytes()})
    assert len(r["FaceDetails"]) == 1
    face = r["FaceDetails"][0]
    assert set(face) >= {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    assert r["ResponseMetadata"]["RequestId"]
    assert float(r["ResponseMetadata"]["HTTPHeaders"]["x-faceaudit-engine-ms"]) > 0


def test_detect_faces_all_attributes_and_several_faces(rek):
    img = side_by_side(portrait_2018("C000127"), portrait_2018("B000944"))
    r = rek.detect_faces(Image={"Bytes": img}, Attributes=["ALL"])
    assert len(r["FaceDetails"]) == 2


def test_detect_faces_no_face(rek):
    assert rek.detect_faces(Image={"Bytes": blank_image()})["FaceDetails"] == []


def test_compare_faces_default_threshold_80(rek):
    src = portrait_2018("C000141").read_bytes()
    r = rek.compare_faces(SourceImage={"Bytes": src}, TargetImage={"Bytes": portrait_2014("C000141").read_bytes()})
    assert len(r["FaceMatches"]) == 1 and r["FaceMatches"][0]["Similarity"] >= 80
    assert set(r) >= {"SourceImageFace", "FaceMatches", "UnmatchedFaces"}
    r = rek.compare_faces(SourceImage={"Bytes": src}, TargetImage={"Bytes": portrait_2014("C000127").read_bytes()})
    assert r["FaceMatches"] == [] and len(r["UnmatchedFaces"]) == 1


def test_compare_faces_threshold_and_many_targets(rek):
    src = portrait_2018("C000141").read_bytes()
    target = side_by_side(portrait_2014("C000141"), portrait_2014("C000127"))
    r = rek.compare_faces(SourceImage={"Bytes": src}, TargetImage={"Bytes": target}, SimilarityThreshold=0)
    sims = [m["Similarity"] for m in r["FaceMatches"]]
    assert len(sims) == 2 and sims == sorted(sims, reverse=True)


def test_compare_faces_source_without_face(rek):
    code, status, _ = error_of(lambda: rek.compare_faces(
        SourceImage={"Bytes": blank_image()}, TargetImage={"Bytes": portrait_2014("C000141").read_bytes()}))
    assert (code, status) == ("InvalidParameterException", 400)


@pytest.mark.parametrize("image,code", [
    (b"not an image at all", "InvalidImageFormatException"),
    (blank_image(40, 40), "InvalidParameterException"),  # under 80x80
])
def test_bad_images(rek, image, code):
    assert error_of(lambda: rek.detect_faces(Image={"Bytes": image}))[:2] == (code, 400)


def test_image_over_5_mb(rek):
    code, status, _ = error_of(lambda: rek.detect_faces(Image={"Bytes": b"\xff" * (5 * 1024 * 1024 + 1)}))
    assert (code, status) == ("ImageTooLargeException", 400)


def test_s3_object_images(rek):
    s3 = {"S3Object": {"Bucket": "bucket", "Name": "a.jpg"}}
    code, status, message = error_of(lambda: rek.detect_faces(Image=s3))
    assert (code, status) == ("InvalidS3ObjectException", 400) and "Image.Bytes" in message


def test_server_side_validation_boto3_does_not_do(rek):
    code, status, message = error_of(lambda: rek.detect_faces(Image={"Bytes": b"x"}, Attributes=["EVERYTHING"]))
    assert (code, status) == ("InvalidParameterException", 400) and "enum value set" in message
    code, _, message = error_of(lambda: rek.compare_faces(
        SourceImage={"Bytes": b"x"}, TargetImage={"Bytes": b"x"}, SimilarityThreshold=101))
    assert code == "InvalidParameterException" and "less than or equal to 100" in message


# -- protocol ---------------------------------------------------------------------------------------

def test_health(server):
    resp, doc, _ = raw(server, "GET", "/health", body=None, headers={})
    assert resp.status == 200 and doc["Status"] == "ok" and resp.getheader("x-amzn-RequestId")


def test_unknown_operation_over_the_wire(rek, server, key):
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest("POST", server + "/", data=b"{}", headers={
        "X-Amz-Target": "RekognitionService.DetectLabels", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "rekognition", "us-east-1").add_auth(req)
    resp, doc, _ = raw(server, body=b"{}", headers=dict(req.headers.items()))
    assert resp.status == 400 and doc["__type"] == "UnknownOperationException"
    assert botocore.session  # (imported for the signer)


def test_keep_alive_survives_a_refused_request(server):
    _resp, doc, conn = raw(server, body=b'{"a": 1}')
    assert doc["__type"] == "MissingAuthenticationTokenException"
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200


def test_oversized_body_is_refused_and_the_client_sees_it(server):
    body = b"x" * (9 * 1024 * 1024)
    resp, doc, _ = raw(server, body=body, headers={"X-Amz-Target": "RekognitionService.DetectFaces"})
    assert resp.status in (400, 413)  # auth is checked first (unsigned): never reads 9 MB into memory
    assert doc["__type"] == "MissingAuthenticationTokenException"


def test_oversized_body_with_valid_key(server, key):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = b'{"Image":{"Bytes":"' + b"A" * (9 * 1024 * 1024) + b'"}}'
    req = AWSRequest("POST", server + "/", data=body, headers={
        "X-Amz-Target": "RekognitionService.DetectFaces", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "rekognition", "us-east-1").add_auth(req)
    resp, doc, _ = raw(server, body=body, headers=dict(req.headers.items()))
    assert resp.status == 413 and doc["__type"] == "ImageTooLargeException"
    assert resp.getheader("Connection") == "close"


# -- authentication failures, through the whole stack ----------------------------------------------

def test_unsigned_request(server):
    resp, doc, _ = raw(server)
    assert resp.status == 400 and doc["__type"] == "MissingAuthenticationTokenException"
    assert resp.getheader("x-amzn-RequestId")


def test_tampered_signature(server, key):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest("POST", server + "/", data=b"{}", headers={
        "X-Amz-Target": "RekognitionService.ListCollections", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "rekognition", "us-east-1").add_auth(req)
    headers = dict(req.headers.items())
    resp, doc, _ = raw(server, body=b'{"MaxResults": 1}', headers=headers)  # body changed after signing
    assert resp.status == 400 and doc["__type"] == "InvalidSignatureException"
    sig = headers["Authorization"]
    headers["Authorization"] = sig[:-4] + ("0000" if not sig.endswith("0000") else "1111")
    resp, doc, _ = raw(server, body=b"{}", headers=headers)
    assert doc["__type"] == "InvalidSignatureException"


def test_wrong_secret(server, key):
    bad = client(server, {**key, "SecretAccessKey": "x" * 40})
    code, status, message = error_of(lambda: bad.detect_faces(Image={"Bytes": b"x"}))
    assert (code, status) == ("InvalidSignatureException", 400) and "does not match" in message


def test_unknown_key(server):
    stranger = client(server, {"AccessKeyId": "FAKIUNKNOWN000000000", "SecretAccessKey": "x" * 40})
    assert error_of(lambda: stranger.detect_faces(Image={"Bytes": b"x"}))[:2] == ("UnrecognizedClientException", 400)


def test_skewed_clock(server, key):
    rek = client(server, key)
    late = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=20)
    with mock.patch("botocore.auth.get_current_datetime", return_value=late):
        code, status, message = error_of(lambda: rek.detect_faces(Image={"Bytes": b"x"}))
    assert (code, status) == ("InvalidSignatureException", 400) and message.startswith("Signature expired")


def test_revoked_key_is_refused_at_once(server, service_dir):
    new = create_key(service_dir)
    rek = client(server, new)
    assert rek.detect_faces(Image={"Bytes": blank_image()})["FaceDetails"] == []
    cli("keys", "revoke", new["AccessKeyId"], "--data-dir", str(service_dir))
    blank = {"Bytes": blank_image()}
    assert error_of(lambda: rek.detect_faces(Image=blank))[:2] == ("UnrecognizedClientException", 400)


def test_keys_cli(service_dir, key):
    out = cli("keys", "list", "--json", "--data-dir", str(service_dir)).stdout
    listed = json.loads(out)["AccessKeys"]
    assert any(k["AccessKeyId"] == key["AccessKeyId"] and k["Role"] == "operator" for k in listed)
    assert key["SecretAccessKey"] not in out
    text = cli("keys", "list", "--data-dir", str(service_dir)).stdout
    assert key["AccessKeyId"] in text and key["SecretAccessKey"] not in text
    admin = json.loads(cli("keys", "create", "--json", "--role", "admin", "--data-dir", str(service_dir)).stdout)
    assert set(admin) == {"AccessKeyId", "SecretAccessKey"}
    bad = cli("keys", "revoke", "FAKINOSUCHKEY", "--data-dir", str(service_dir), check=False)
    assert bad.returncode != 0 and "ResourceNotFoundException" in bad.stderr
