"""The generic validator: every constraint of botocore's shapes, for every served operation."""

from __future__ import annotations

import base64

import pytest

from faceaudit._errors import ImageTooLargeError, InvalidParameterError, InvalidS3ObjectError
from faceaudit.service import OPERATIONS, check_output, operation_model, parse_input
from faceaudit.service._validate import compiled_pattern


def shape(op):
    return operation_model(op).input_shape


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_every_pattern_of_the_served_operations_compiles():
    seen = set()

    def walk(s):
        if s.name in seen:
            return
        seen.add(s.name)
        if "pattern" in s.metadata:
            assert compiled_pattern(s.metadata["pattern"]) is not None, s.metadata["pattern"]
        for m in getattr(s, "members", {}).values():
            walk(m)
        for attr in ("member", "key", "value"):
            if hasattr(s, attr):
                walk(getattr(s, attr))

    for op in OPERATIONS:
        walk(shape(op))
    assert "CollectionId" in seen and "TagKey" in seen


def test_valid_request_passes_and_blobs_are_decoded():
    out = parse_input(shape("IndexFaces"), {
        "CollectionId": "c-1.x_y", "Image": {"Bytes": b64(b"\xff\xd8abc")}, "MaxFaces": 3,
        "QualityFilter": "AUTO", "DetectionAttributes": ["DEFAULT"], "ExternalImageId": "a:b",
        "Unknown": "ignored", "ExternalImageIdNull": None,
    })
    assert out == {"CollectionId": "c-1.x_y", "Image": {"Bytes": b"\xff\xd8abc"}, "MaxFaces": 3,
                   "QualityFilter": "AUTO", "DetectionAttributes": ["DEFAULT"], "ExternalImageId": "a:b"}


@pytest.mark.parametrize("op,params,fragment", [
    ("CreateCollection", {}, "at 'collectionId' failed to satisfy constraint: Member must not be null"),
    ("CreateCollection", {"CollectionId": "has space"}, "regular expression pattern: [a-zA-Z0-9_.\\-]+"),
    ("CreateCollection", {"CollectionId": "x" * 256}, "length less than or equal to 255"),
    ("CreateCollection", {"CollectionId": ""}, "length greater than or equal to 1"),
    ("CreateCollection", {"CollectionId": 5}, "Member must be a string"),
    ("CreateCollection", {"CollectionId": "c", "Tags": {"aws:x": "v"}}, "at 'tags.key'"),
    ("CreateCollection", {"CollectionId": "c", "Tags": {"k": "v" * 257}}, "less than or equal to 256"),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "not-a-uuid"}, "at 'faceId'"),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "11111111-1111-1111-1111-111111111111",
                     "MaxFaces": 4097}, "value less than or equal to 4096"),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "11111111-1111-1111-1111-111111111111",
                     "MaxFaces": 0}, "value greater than or equal to 1"),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "11111111-1111-1111-1111-111111111111",
                     "MaxFaces": 2.5}, "Member must be an integer"),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "11111111-1111-1111-1111-111111111111",
                     "MaxFaces": True}, "Member must be an integer"),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "11111111-1111-1111-1111-111111111111",
                     "FaceMatchThreshold": 100.5}, "value less than or equal to 100"),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "11111111-1111-1111-1111-111111111111",
                     "FaceMatchThreshold": "80"}, "Member must be a number"),
    ("SearchFacesByImage", {"CollectionId": "c", "Image": {"Bytes": "AAAA"}, "QualityFilter": "BEST"},
     "enum value set: [NONE, AUTO, LOW, MEDIUM, HIGH]"),
    ("DetectFaces", {"Image": {"Bytes": "AAAA"}, "Attributes": ["FACE"]}, "at 'attributes.1.member'"),
    ("DetectFaces", {"Image": {"Bytes": "not base64!"}}, "valid base64"),
    ("DetectFaces", {"Image": {"Bytes": ""}}, "length greater than or equal to 1"),
    ("DetectFaces", {"Image": "AAAA"}, "Member must be an object"),
    ("DeleteFaces", {"CollectionId": "c", "FaceIds": []}, "length greater than or equal to 1"),
    ("DeleteFaces", {"CollectionId": "c", "FaceIds": "x"}, "Member must be a list"),
    ("AssociateFaces", {"CollectionId": "c", "UserId": "u",
                        "FaceIds": ["11111111-1111-1111-1111-111111111111"] * 101}, "less than or equal to 100"),
    ("CreateUser", {"CollectionId": "c", "UserId": "u", "ClientRequestToken": "bad token"}, "clientRequestToken"),
    ("SearchUsers", {"CollectionId": "c", "MaxUsers": 501}, "less than or equal to 500"),
    ("ListCollections", {"MaxResults": -1}, "value greater than or equal to 0"),
    ("ListCollections", {"NextToken": "t" * 256}, "length less than or equal to 255"),
])
def test_constraint_violations_are_invalid_parameter(op, params, fragment):
    with pytest.raises(InvalidParameterError) as info:
        parse_input(shape(op), params)
    assert info.value.aws_code == "InvalidParameterException"
    assert fragment in info.value.message
    assert "validation error" in info.value.message


def test_every_problem_is_listed():
    with pytest.raises(InvalidParameterError) as info:
        parse_input(shape("SearchFaces"), {"CollectionId": "bad id", "FaceId": "x", "MaxFaces": 0})
    assert info.value.message.startswith("3 validation errors detected: ")


def test_unicode_tag_pattern():
    parse_input(shape("CreateCollection"), {"CollectionId": "c", "Tags": {"Zürich équipe": "värde 1"}})
    with pytest.raises(InvalidParameterError):
        parse_input(shape("CreateCollection"), {"CollectionId": "c", "Tags": {"k": "tab\tno"}})


def test_image_over_5_mb_is_image_too_large_before_decoding():
    text = "A" * (4 * (5 * 1024 * 1024 // 3 + 2))
    with pytest.raises(ImageTooLargeError) as info:
        parse_input(shape("DetectFaces"), {"Image": {"Bytes": text}})
    assert info.value.aws_code == "ImageTooLargeException"


def test_s3_object_passes_validation_for_the_dispatcher_to_read():
    params = {"CollectionId": "c", "Image": {"S3Object": {"Bucket": "bkt", "Name": "k"}}}
    assert parse_input(shape("SearchFacesByImage"), params) == params


def test_s3_object_shape_is_validated():
    with pytest.raises(InvalidParameterError, match=r"s3Object\.bucket"):
        parse_input(shape("DetectFaces"), {"Image": {"S3Object": {"Bucket": "b", "Name": "k"}}})


def test_image_with_bytes_and_s3_object():
    with pytest.raises(InvalidParameterError, match="exactly one"):
        parse_input(shape("DetectFaces"), {"Image": {"Bytes": "AAAA", "S3Object": {"Bucket": "bbb", "Name": "k"}}})


def test_without_an_object_store_s3_object_is_refused_with_a_clear_message(tmp_path):
    from faceaudit.service import Dispatcher

    with pytest.raises(InvalidS3ObjectError) as info:
        Dispatcher(tmp_path).resolve("DetectFaces", {"Image": {"S3Object": {"Bucket": "bbb", "Name": "k"}}}, "admin")
    assert info.value.aws_code == "InvalidS3ObjectException"
    assert "Image.Bytes" in info.value.message and "--buckets" in info.value.message


def test_image_without_bytes():
    with pytest.raises(InvalidParameterError, match="Bytes"):
        parse_input(shape("DetectFaces"), {"Image": {}})


def test_body_must_be_an_object():
    with pytest.raises(InvalidParameterError):
        parse_input(shape("ListCollections"), [1, 2])


def test_check_output_finds_unknown_members_and_wrong_types():
    out = operation_model("DescribeCollection").output_shape
    assert check_output(out, {"FaceCount": 3, "FaceModelVersion": "x", "CollectionARN": "a",
                              "CreationTimestamp": 1.5, "UserCount": 0}) == []
    problems = check_output(out, {"FaceCount": "3", "Extra": 1})
    assert any("FaceCount" in p for p in problems) and any("Extra" in p for p in problems)
