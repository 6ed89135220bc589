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


def test_a_bucket_folder_that_is_a_link_out_of_the_root_is_refused(tmp_path):
    """Issue 22 L3: a bucket folder that was itself a symlink out of the --buckets root was served."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.jpg").write_bytes(b"outside")
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "linked")
    store = FolderStore(tmp_path / "root")
    for call in (lambda r: store.read(r, 100), store.size):
        with pytest.raises(InvalidS3ObjectError, match="does not exist"):
            call(ObjectRef("linked", "x.jpg"))


def test_a_folder_swapped_for_a_link_after_opening_cannot_redirect_the_read(tmp_path):
    """Issue 22 M5: swapping a folder in an object's path with a symlink out of the bucket made some
    reads return the outside file. The object is opened once (no link followed) and that open file
    is what is read, also through local_copy while a decoder works on it."""
    bucket = tmp_path / "root" / "footage"
    (bucket / "cam").mkdir(parents=True)
    (bucket / "cam" / "v.mp4").write_bytes(b"inside")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "v.mp4").write_bytes(b"OUTSIDE")
    store = FolderStore(tmp_path / "root")
    ref = ObjectRef("footage", "cam/v.mp4")
    with store.local_copy(ref, 100) as path:
        os.rename(bucket / "cam", bucket / "cam-old")
        os.symlink(tmp_path / "evil", bucket / "cam")
        assert path.read_bytes() == b"inside"
    with pytest.raises(InvalidS3ObjectError, match="does not exist"):
        store.read(ref, 100)


def _exchange():
    """renameat2(RENAME_EXCHANGE): swaps two paths atomically (Linux), or None where unavailable."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return None
    at_fdcwd, rename_exchange = -100, 2

    def exchange(a, b):
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return exchange


def _swap_until_stopped(bucket, stop, swaps):
    exchange = _exchange()
    while not stop.is_set():
        exchange(bucket / "cam", bucket / "alt")  # the folder <-> a link out of the bucket, atomically
        with swaps.get_lock():
            swaps.value += 1


def test_racing_a_symlink_swap_never_reads_outside(tmp_path):
    """Issue 22 M5 as the attack ran it: another process keeps swapping a folder of the object's
    path with a symlink out of the bucket while this one reads (28 of 2,000 reads got the outside
    file). The path always exists, as the folder or as the link."""
    import multiprocessing

    if _exchange() is None:
        pytest.skip("renameat2 is not available here")
    bucket = tmp_path / "root" / "footage"
    (bucket / "cam").mkdir(parents=True)
    (bucket / "cam" / "v.jpg").write_bytes(b"inside")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "v.jpg").write_bytes(b"OUTSIDE")
    os.symlink(tmp_path / "evil", bucket / "alt")
    store = FolderStore(tmp_path / "root")
    ctx = multiprocessing.get_context("fork")
    stop, swaps = ctx.Event(), ctx.Value("i", 0)
    swapper = ctx.Process(target=_swap_until_stopped, args=(bucket, stop, swaps))
    swapper.start()
    seen = {}
    try:
        for _ in range(2000):
            try:
                got = store.read(ObjectRef("footage", "cam/v.jpg"), 100)
            except InvalidS3ObjectError:
                got = None
            seen[got] = seen.get(got, 0) + 1
    finally:
        stop.set()
        swapper.join(60)
    assert b"OUTSIDE" not in seen and seen.get(b"inside") and swaps.value > 0, seen
