"""Object stores: the folder store never serves anything outside a bucket; bucket access by role."""

from __future__ import annotations

import os

import pytest

from faceaudit._errors import AccessDeniedError, InvalidParameterError, InvalidS3ObjectError
from faceaudit.collections import BucketAccess, FolderStore, ObjectRef


@pytest.fixture()
def store(tmp_path):
    (tmp_path / "root" / "photos" / "a").mkdir(parents=True)
    (tmp_path / "root" / "photos" / "a" / "b.jpg").write_bytes(b"x" * 10)
    (tmp_path / "root" / "other").mkdir()
    (tmp_path / "root" / "other" / "c.jpg").write_bytes(b"secret")
    (tmp_path / "outside.jpg").write_bytes(b"outside")
    os.symlink(tmp_path / "outside.jpg", tmp_path / "root" / "photos" / "link.jpg")
    os.symlink(tmp_path / "root" / "other", tmp_path / "root" / "photos" / "dirlink")
    return FolderStore(tmp_path / "root")


def test_reads_objects_as_files(store):
    ref = ObjectRef("photos", "a/b.jpg")
    assert store.size(ref) == 10 and store.read(ref, 10) == b"x" * 10
    with store.local_copy(ref, 100) as path:
        assert path.read_bytes() == b"x" * 10
    with pytest.raises(InvalidS3ObjectError, match="at most 9"):
        store.read(ref, 9)


@pytest.mark.parametrize("bucket,name", [
    ("photos", "../other/c.jpg"), ("photos", "a/../../other/c.jpg"), ("photos", "/etc/passwd"),
    ("photos", "a//b.jpg"), ("photos", "a\\b.jpg"), ("photos", "link.jpg"), ("photos", "dirlink/c.jpg"),
    ("photos", "a"), ("photos", "missing.jpg"), ("...", "c.jpg"), ("nobucket", "c.jpg"), ("photos", "a/b.jpg\x00"),
])
def test_nothing_outside_a_bucket_is_served(store, bucket, name):
    with pytest.raises(InvalidS3ObjectError):
        store.read(ObjectRef(bucket, name), 1000)


def test_versions_are_refused_clearly(store):
    with pytest.raises(InvalidS3ObjectError, match="versions"):
        store.size(ObjectRef("photos", "a/b.jpg", "3"))


def test_s3object_document_is_checked():
    assert ObjectRef.from_rekognition({"Bucket": "photos", "Name": "a.jpg"}) == ObjectRef("photos", "a.jpg")
    for bad in ({"Bucket": "ph", "Name": "a"}, {"Bucket": "photos"}, {"Bucket": "photos", "Name": ""}, "x"):
        with pytest.raises(InvalidS3ObjectError):
            ObjectRef.from_rekognition(bad)


def test_bucket_access_by_role():
    default = BucketAccess()
    default.check("admin", "any")
    default.check("operator", "any")
    with pytest.raises(AccessDeniedError):
        default.check("auditor", "any")
    access = BucketAccess.parse(["operator=photos,footage", "auditor=public"])
    access.check("operator", "footage")
    access.check("auditor", "public")
    access.check("admin", "secret")
    with pytest.raises(AccessDeniedError):
        access.check("operator", "secret")
    with pytest.raises(AccessDeniedError):
        BucketAccess.parse(["operator="]).check("operator", "photos")
    with pytest.raises(InvalidParameterError):
        BucketAccess.parse(["operator"])
    with pytest.raises(InvalidParameterError):
        BucketAccess.parse(["operator=a/b"])
