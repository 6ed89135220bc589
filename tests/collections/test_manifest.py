"""Manifests, directories and the ExternalImageId mapping."""

from pathlib import Path

import pytest

from faceaudit import InvalidParameterError
from faceaudit.collections import map_external_image_id, read_manifest, scan_directory
from faceaudit.collections._validate import EXTERNAL_IMAGE_ID_RE


@pytest.mark.parametrize("subject, mapped", [
    ("congress:B000944", "congress:B000944"),
    ("meds:S001", "meds:S001"),
    ("Jane Doe", "Jane_Doe"),
    ("José/Ñ#1", "Jos____1"),
    ("  padded  ", "padded"),
    ("", None),
    ("x" * 300, "x" * 255),
    (None, None),
])
def test_mapping(subject, mapped):
    got = map_external_image_id(subject)
    assert got == mapped
    assert got is None or EXTERNAL_IMAGE_ID_RE.fullmatch(got)


def test_read_manifest(tmp_path):
    (tmp_path / "img").mkdir()
    m = tmp_path / "m.csv"
    m.write_text("image,subject,dataset,sex,age\n"
                 "img/a.jpg,congress:A1,c2014,F,50\n"
                 "img/b.jpg,Jane Doe,c2014,,\n"
                 "/abs/c.png,,meds,M,30\n", encoding="utf-8")
    a, b, c = read_manifest(m)
    assert a.source == tmp_path / "img" / "a.jpg" and a.external_image_id == "congress:A1"
    assert a.labels == {"subject": "congress:A1", "dataset": "c2014", "sex": "F", "age": "50"}
    assert b.external_image_id == "Jane_Doe" and b.labels == {"subject": "Jane Doe", "dataset": "c2014"}
    assert str(c.source) == "/abs/c.png" and c.external_image_id is None and c.labels == {"dataset": "meds", "sex": "M", "age": "30"}


def test_bad_manifests(tmp_path):
    with pytest.raises(InvalidParameterError):
        read_manifest(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,subject\na.jpg,x\n")
    with pytest.raises(InvalidParameterError):
        read_manifest(bad)
    bad.write_text("image,subject\n,x\n")
    with pytest.raises(InvalidParameterError):
        read_manifest(bad)


def test_scan_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.JPG", "a.png", "sub/c d.jpeg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    items = scan_directory(tmp_path)
    assert [i.name for i in items] == ["a.png", "b.JPG", "sub/c d.jpeg"]
    assert [i.external_image_id for i in items] == ["a.png", "b.JPG", "sub_c_d.jpeg"]
    with pytest.raises(InvalidParameterError):
        scan_directory(tmp_path / "a.png")


SHARED = Path("/work/shared/data/manifests")


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared data (/work/shared/data) is not here")
def test_the_shared_manifests_map_to_valid_ids():
    sizes = {"congress_2018.csv": 535, "congress_2014.csv": 399, "former_members.csv": 2437, "meds.csv": 114}
    for name, n in sizes.items():
        items = read_manifest(SHARED / name)
        assert len(items) == n
        assert all(i.external_image_id and EXTERNAL_IMAGE_ID_RE.fullmatch(i.external_image_id) for i in items)
        assert all(i.external_image_id == i.labels["subject"] for i in items)  # no character needed mapping
        assert all(i.source.is_file() for i in items[:20])
