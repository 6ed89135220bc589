"""Where clients notice Rekognition's behaviour (issue 11): error bodies, model versions,
QualityFilter on CompareFaces, tags, ARNs, unsupported HTTP versions."""

from __future__ import annotations

import re

import pytest

from tests.conftest import portrait_2014, portrait_2018
from tests.service.conftest import needs_backend
from tests.service.test_http import raw


def test_error_bodies_carry_message_and_Message(server):
    # the AWS SDK for Go v2 reads "Message"; botocore and the AWS CLI read "message"
    resp, doc, _ = raw(server)
    assert resp.status == 400 and doc["__type"] == "MissingAuthenticationTokenException"
    assert doc["message"] and doc["Message"] == doc["message"]
    resp, doc, _ = raw(server, "GET", "/nowhere", body=None)
    assert resp.status == 404 and doc["Message"] == doc["message"]


# -- model versions --------------------------------------------------------------------------------

def _version_pattern() -> re.Pattern:
    from faceaudit.service import service_model

    pattern = service_model().shape_for("IndexFacesModelVersion").metadata["pattern"]
    assert pattern == r"[0-9\.]+"
    return re.compile(pattern)


@needs_backend
def test_model_versions_match_botocores_pattern(rek):
    ok = _version_pattern()
    name = "versions"
    versions = [rek.create_collection(CollectionId=name)["FaceModelVersion"]]
    try:
        r = rek.index_faces(CollectionId=name, Image={"Bytes": portrait_2018("C000141").read_bytes()})
        versions += [r["FaceModelVersion"], r["FaceRecords"][0]["Face"]["IndexFacesModelVersion"]]
        r = rek.list_faces(CollectionId=name)
        versions += [r["FaceModelVersion"]] + [f["IndexFacesModelVersion"] for f in r["Faces"]]
        versions.append(rek.describe_collection(CollectionId=name)["FaceModelVersion"])
        versions += rek.list_collections()["FaceModelVersions"]
        r = rek.search_faces_by_image(CollectionId=name, Image={"Bytes": portrait_2014("C000141").read_bytes()})
        versions.append(r["FaceModelVersion"])
    finally:
        rek.delete_collection(CollectionId=name)
    assert versions and all(ok.fullmatch(v) for v in versions), versions


# -- CompareFaces' QualityFilter ------------------------------------------------------------------

@pytest.mark.parametrize("level", ["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"])
def test_compare_faces_takes_every_quality_filter(rek, level):
    r = rek.compare_faces(SourceImage={"Bytes": portrait_2018("C000141").read_bytes()},
                          TargetImage={"Bytes": portrait_2014("C000141").read_bytes()}, QualityFilter=level)
    assert len(r["FaceMatches"]) == 1 and r["FaceMatches"][0]["Similarity"] >= 80


# -- tags and ARNs -----------------------------------------------------------------------------------

@needs_backend
def test_tags_on_collections_and_arns_in_the_signed_region(server, key):
    import boto3
    from botocore.exceptions import ClientError

    def client(region):
        return boto3.client("rekognition", endpoint_url=server, region_name=region,
                            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])

    rek = client("eu-west-2")
    arn = rek.create_collection(CollectionId="tagged", Tags={"team": "a"})["CollectionArn"]
    try:
        assert arn.startswith("arn:aws:rekognition:eu-west-2:") and arn.endswith(":collection/tagged")
        assert rek.describe_collection(CollectionId="tagged")["CollectionARN"] == arn
        assert rek.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "a"}
        rek.tag_resource(ResourceArn=arn, Tags={"team": "b", "purpose": "audit"})
        assert rek.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "b", "purpose": "audit"}
        rek.untag_resource(ResourceArn=arn, TagKeys=["team", "absent"])
        assert rek.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"purpose": "audit"}
        # the same collection, named in another region's ARN, as the client that signed there sees it
        other = client("ap-south-1")
        other_arn = other.describe_collection(CollectionId="tagged")["CollectionARN"]
        assert ":ap-south-1:" in other_arn
        assert other.list_tags_for_resource(ResourceArn=other_arn)["Tags"] == {"purpose": "audit"}
        for bad in (arn.replace("tagged", "nope"), "arn:aws:s3:::some-bucket", arn.replace(":collection/", ":user/")):
            with pytest.raises(ClientError) as info:
                rek.list_tags_for_resource(ResourceArn=bad)
            assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    finally:
        rek.delete_collection(CollectionId="tagged")
