"""Acceptance: every collection and user operation through boto3, defaults, pagination, errors.

The server is strict: each response is also checked against its output shape of botocore's model.
"""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from tests.conftest import MEMBERS, blank_image, portrait_2014, portrait_2018, side_by_side
from tests.service.conftest import needs_backend

pytestmark = needs_backend

FACE_ID = "11111111-2222-3333-4444-555555555555"


def error_of(call):
    with pytest.raises(ClientError) as info:
        call()
    e = info.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]


def img(path):
    return {"Bytes": path.read_bytes()}


@pytest.fixture(scope="module")
def coll(rek):
    """A collection holding the 8 members' 2018 portraits (ExternalImageId = bioguide id)."""
    name = "acceptance"
    r = rek.create_collection(CollectionId=name, Tags={"purpose": "test"})
    assert r["StatusCode"] == 200 and r["CollectionArn"].endswith(name) and r["FaceModelVersion"]
    faces = {}
    for m in MEMBERS:
        r = rek.index_faces(CollectionId=name, Image=img(portrait_2018(m)), ExternalImageId=m)
        assert len(r["FaceRecords"]) == 1, (m, r["UnindexedFaces"])
        faces[m] = r["FaceRecords"][0]["Face"]["FaceId"]
    return name, faces


# -- collections ------------------------------------------------------------------------------------

def test_create_duplicate_and_bad_names(rek, coll):
    assert error_of(lambda: rek.create_collection(CollectionId=coll[0])) == ("ResourceAlreadyExistsException", 400)
    assert error_of(lambda: rek.create_collection(CollectionId="bad/name"))[0] == "InvalidParameterException"


def test_describe_collection(rek, coll):
    r = rek.describe_collection(CollectionId=coll[0])
    assert r["FaceCount"] == len(MEMBERS) and r["UserCount"] == 0
    assert isinstance(r["CreationTimestamp"], dt.datetime)
    assert r["CollectionARN"].endswith(coll[0]) and r["FaceModelVersion"]
    assert error_of(lambda: rek.describe_collection(CollectionId="nope")) == ("ResourceNotFoundException", 400)


def test_list_collections_pages(rek, coll):
    for i in range(3):
        rek.create_collection(CollectionId=f"page-{i}")
    try:
        first = rek.list_collections(MaxResults=2)
        assert len(first["CollectionIds"]) == 2 and len(first["FaceModelVersions"]) == 2 and first["NextToken"]
        seen = list(first["CollectionIds"])
        token = first["NextToken"]
        while token:
            r = rek.list_collections(MaxResults=2, NextToken=token)
            seen += r["CollectionIds"]
            token = r.get("NextToken")
        assert {coll[0], "page-0", "page-1", "page-2"} <= set(seen) and len(seen) == len(set(seen))
        pages = rek.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 1})
        everything = pages.build_full_result()
        assert set(everything["CollectionIds"]) == set(seen)
        assert error_of(lambda: rek.list_collections(NextToken="forged-token"))[0] == "InvalidPaginationTokenException"
    finally:
        for i in range(3):
            rek.delete_collection(CollectionId=f"page-{i}")


def test_delete_collection(rek):
    rek.create_collection(CollectionId="short-lived")
    assert rek.delete_collection(CollectionId="short-lived")["StatusCode"] == 200
    assert error_of(lambda: rek.delete_collection(CollectionId="short-lived")) == ("ResourceNotFoundException", 400)


# -- faces ----------------------------------------------------------------------------------------

def test_index_faces_response_and_max_faces(rek, coll):
    rek.create_collection(CollectionId="index-test")
    try:
        two = side_by_side(portrait_2018("C000127"), portrait_2018("B000944"))
        r = rek.index_faces(CollectionId="index-test", Image={"Bytes": two}, ExternalImageId="pair", MaxFaces=1)
        assert len(r["FaceRecords"]) == 1 and r["FaceModelVersion"]
        face = r["FaceRecords"][0]["Face"]
        assert set(face) >= {"FaceId", "BoundingBox", "ImageId", "Confidence"} and face["ExternalImageId"] == "pair"
        assert "BoundingBox" in r["FaceRecords"][0]["FaceDetail"]
        assert len(r["UnindexedFaces"]) == 1 and "EXCEEDS_MAX_FACES" in r["UnindexedFaces"][0]["Reasons"]
        # the same image with the same ExternalImageId is indexed again, with this call's MaxFaces
        # (as Rekognition does: a replay of the first answer would ignore MaxFaces/QualityFilter)
        r = rek.index_faces(CollectionId="index-test", Image={"Bytes": two}, ExternalImageId="pair", MaxFaces=2)
        assert len(r["FaceRecords"]) == 2 and r["FaceRecords"][0]["Face"]["ImageId"] != face["ImageId"]
        assert rek.describe_collection(CollectionId="index-test")["FaceCount"] == 3
        # no face: nothing indexed, no error
        r = rek.index_faces(CollectionId="index-test", Image={"Bytes": blank_image()})
        assert r["FaceRecords"] == []
    finally:
        rek.delete_collection(CollectionId="index-test")


def test_index_faces_errors(rek, coll):
    assert error_of(lambda: rek.index_faces(CollectionId="nope", Image=img(portrait_2018("C000127")))) == (
        "ResourceNotFoundException", 400)
    assert error_of(lambda: rek.index_faces(CollectionId=coll[0], Image={"Bytes": b"junk"}))[0] == (
        "InvalidImageFormatException")
    s3 = {"S3Object": {"Bucket": "bkt", "Name": "k"}}
    assert error_of(lambda: rek.index_faces(CollectionId=coll[0], Image=s3))[0] == "InvalidS3ObjectException"
    assert error_of(lambda: rek.index_faces(CollectionId=coll[0], Image=img(portrait_2018("C000127")),
                                            ExternalImageId="has space"))[0] == "InvalidParameterException"


def test_list_faces_pages_and_filters(rek, coll):
    name, faces = coll
    first = rek.list_faces(CollectionId=name, MaxResults=3)
    assert len(first["Faces"]) == 3 and first["NextToken"] and first["FaceModelVersion"]
    everything = rek.get_paginator("list_faces").paginate(
        CollectionId=name, PaginationConfig={"PageSize": 3}).build_full_result()
    ids = [f["FaceId"] for f in everything["Faces"]]
    assert sorted(ids) == sorted(faces.values())
    some = list(faces.values())[:2]
    r = rek.list_faces(CollectionId=name, FaceIds=some)
    assert sorted(f["FaceId"] for f in r["Faces"]) == sorted(some)
    assert error_of(lambda: rek.list_faces(CollectionId="nope"))[0] == "ResourceNotFoundException"


def test_search_faces_by_image_defaults(rek, coll):
    name, _faces = coll
    r = rek.search_faces_by_image(CollectionId=name, Image=img(portrait_2014("C000141")))
    assert set(r) >= {"SearchedFaceBoundingBox", "SearchedFaceConfidence", "FaceMatches", "FaceModelVersion"}
    sims = [m["Similarity"] for m in r["FaceMatches"]]
    assert sims == sorted(sims, reverse=True) and all(s >= 80 for s in sims)  # default threshold 80
    assert r["FaceMatches"][0]["Face"]["ExternalImageId"] == "C000141"
    r0 = rek.search_faces_by_image(CollectionId=name, Image=img(portrait_2014("C000141")), FaceMatchThreshold=0,
                                   MaxFaces=3)
    assert len(r0["FaceMatches"]) == 3


def test_search_faces_by_image_uses_the_largest_face_and_needs_one(rek, coll):
    name, _ = coll
    assert error_of(lambda: rek.search_faces_by_image(CollectionId=name, Image={"Bytes": blank_image()})) == (
        "InvalidParameterException", 400)
    assert error_of(lambda: rek.search_faces_by_image(CollectionId="nope", Image=img(portrait_2014("C000141"))))[0] == (
        "ResourceNotFoundException")


def test_search_faces(rek, coll):
    name, faces = coll
    r = rek.search_faces(CollectionId=name, FaceId=faces["C000141"], FaceMatchThreshold=0)
    assert r["SearchedFaceId"] == faces["C000141"] and r["FaceModelVersion"]
    ids = [m["Face"]["FaceId"] for m in r["FaceMatches"]]
    assert faces["C000141"] not in ids  # the searched face itself is not a match
    sims = [m["Similarity"] for m in r["FaceMatches"]]
    assert sims == sorted(sims, reverse=True)
    assert error_of(lambda: rek.search_faces(CollectionId=name, FaceId=FACE_ID)) == ("ResourceNotFoundException", 400)


def test_delete_faces(rek):
    rek.create_collection(CollectionId="delete-test")
    try:
        indexed = rek.index_faces(CollectionId="delete-test", Image=img(portrait_2018("K000367")))
        fid = indexed["FaceRecords"][0]["Face"]["FaceId"]
        r = rek.delete_faces(CollectionId="delete-test", FaceIds=[fid, FACE_ID])
        assert r["DeletedFaces"] == [fid]
        assert r["UnsuccessfulFaceDeletions"][0]["FaceId"] == FACE_ID
        assert "FACE_NOT_FOUND" in r["UnsuccessfulFaceDeletions"][0]["Reasons"]
        assert rek.describe_collection(CollectionId="delete-test")["FaceCount"] == 0
    finally:
        rek.delete_collection(CollectionId="delete-test")


# -- users -----------------------------------------------------------------------------------------

def test_users_lifecycle(rek):
    name = "users-test"
    rek.create_collection(CollectionId=name)
    try:
        ids = {}
        for m in ("C000141", "C000127"):
            for year, path in (("2018", portrait_2018(m)), ("2014", portrait_2014(m))):
                r = rek.index_faces(CollectionId=name, Image=img(path), ExternalImageId=f"{m}-{year}",
                                    QualityFilter="NONE")
                ids[f"{m}-{year}"] = r["FaceRecords"][0]["Face"]["FaceId"]
        rek.create_user(CollectionId=name, UserId="alice")
        rek.create_user(CollectionId=name, UserId="bob", ClientRequestToken="tok-1")
        rek.create_user(CollectionId=name, UserId="bob", ClientRequestToken="tok-1")  # idempotent retry
        assert error_of(lambda: rek.create_user(CollectionId=name, UserId="alice"))[0] == "ConflictException"
        users = rek.get_paginator("list_users").paginate(
            CollectionId=name, PaginationConfig={"PageSize": 1}).build_full_result()["Users"]
        assert sorted(u["UserId"] for u in users) == ["alice", "bob"]

        r = rek.associate_faces(CollectionId=name, UserId="alice", FaceIds=[ids["C000141-2018"], ids["C000141-2014"]])
        assert sorted(f["FaceId"] for f in r["AssociatedFaces"]) == sorted([ids["C000141-2018"], ids["C000141-2014"]])
        assert r["UnsuccessfulFaceAssociations"] == [] and r["UserStatus"]
        r = rek.associate_faces(CollectionId=name, UserId="bob", FaceIds=[ids["C000127-2018"], FACE_ID])
        assert [f["FaceId"] for f in r["AssociatedFaces"]] == [ids["C000127-2018"]]
        assert r["UnsuccessfulFaceAssociations"][0]["FaceId"] == FACE_ID

        assert sorted(f["FaceId"] for f in rek.list_faces(CollectionId=name, UserId="alice")["Faces"]) == sorted(
            [ids["C000141-2018"], ids["C000141-2014"]])

        r = rek.search_users(CollectionId=name, FaceId=ids["C000141-2014"])
        assert r["UserMatches"][0]["User"]["UserId"] == "alice" and r["UserMatches"][0]["Similarity"] >= 80
        r = rek.search_users(CollectionId=name, UserId="alice", UserMatchThreshold=0)
        assert r["SearchedUser"] == {"UserId": "alice"}
        assert [m["User"]["UserId"] for m in r["UserMatches"]] == ["bob"]  # never the searched user
        r = rek.search_users(CollectionId=name, UserId="alice")  # default threshold 80
        assert r["UserMatches"] == []
        r = rek.search_users_by_image(CollectionId=name, Image=img(portrait_2014("C000141")))
        assert r["UserMatches"][0]["User"]["UserId"] == "alice" and "SearchedFace" in r
        r = rek.search_users_by_image(CollectionId=name, Image={"Bytes": blank_image()})
        assert r["UserMatches"] == []  # no face: an empty list, not an error

        # a face associated to a user cannot be deleted
        r = rek.delete_faces(CollectionId=name, FaceIds=[ids["C000141-2018"]])
        assert "ASSOCIATED_TO_AN_EXISTING_USER" in r["UnsuccessfulFaceDeletions"][0]["Reasons"]

        r = rek.disassociate_faces(CollectionId=name, UserId="alice", FaceIds=[ids["C000141-2018"]])
        assert [f["FaceId"] for f in r["DisassociatedFaces"]] == [ids["C000141-2018"]]
        rek.delete_user(CollectionId=name, UserId="bob")
        assert [u["UserId"] for u in rek.list_users(CollectionId=name)["Users"]] == ["alice"]
        assert error_of(lambda: rek.delete_user(CollectionId=name, UserId="bob"))[0] == "ResourceNotFoundException"
        assert error_of(lambda: rek.list_users(CollectionId="nope"))[0] == "ResourceNotFoundException"
    finally:
        rek.delete_collection(CollectionId=name)
