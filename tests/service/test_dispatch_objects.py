"""S3Object images in the dispatcher: role check, the 15 MB limit of images in a bucket."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from faceaudit._errors import AccessDeniedError, ImageTooLargeError
from faceaudit.collections import BucketAccess, FolderStore
from faceaudit.engine import MAX_IMAGE_BYTES, MAX_STORED_IMAGE_BYTES, StoredImage, load_image
from faceaudit.service import Dispatcher


def _big_png(min_bytes: int) -> bytes:
    side = 1600
    while True:
        buf = io.BytesIO()
        noise = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(noise).save(buf, "PNG", compress_level=0)
        if buf.tell() > min_bytes:
            return buf.getvalue()
        side += 400


@pytest.fixture()
def dispatcher(tmp_path):
    (tmp_path / "b" / "photos").mkdir(parents=True)
    (tmp_path / "b" / "photos" / "six.png").write_bytes(_big_png(MAX_IMAGE_BYTES + 1))
    (tmp_path / "b" / "photos" / "huge.bin").write_bytes(b"\0" * (MAX_STORED_IMAGE_BYTES + 1))
    return Dispatcher(tmp_path / "data", objects=FolderStore(tmp_path / "b"),
                      bucket_access=BucketAccess.parse(["operator=photos"]))


def test_images_in_a_bucket_may_be_15_mb(dispatcher):
    params = dispatcher.resolve("DetectFaces", {"Image": {"S3Object": {"Bucket": "photos", "Name": "six.png"}}},
                                "operator")
    data = params["Image"]["Bytes"]
    assert isinstance(data, StoredImage) and MAX_IMAGE_BYTES < len(data) <= MAX_STORED_IMAGE_BYTES
    assert load_image(data).width >= 1600
    with pytest.raises(ImageTooLargeError):  # the same bytes inline: over 5 MB
        load_image(bytes(data))
    with pytest.raises(ImageTooLargeError, match="15 MB"):
        dispatcher.resolve("DetectFaces", {"Image": {"S3Object": {"Bucket": "photos", "Name": "huge.bin"}}},
                           "operator")


def test_bucket_access_is_checked_before_reading(dispatcher):
    with pytest.raises(AccessDeniedError):
        dispatcher.resolve("DetectFaces", {"Image": {"S3Object": {"Bucket": "photos", "Name": "six.png"}}},
                           "auditor")
    with pytest.raises(AccessDeniedError):
        dispatcher.resolve("StartFaceSearch", {"CollectionId": "c", "Video": {"S3Object": {"Bucket": "other",
                                                                                          "Name": "v.mp4"}}},
                           "operator")
