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
    assert str(c.source) == "/abs/c.png" and c.external_image_id is None
    assert c.labels == {"dataset": "meds", "sex": "M", "age": "30"}


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


def test_one_reader_options_and_typed_errors(tmp_path):
    from faceaudit import ManifestError
    from faceaudit.collections import read_manifest_table

    m = tmp_path / "m.csv"
    m.write_text(" image , subject ,sex\na.jpg,s1,F\n\nb.jpg,,\n", encoding="utf-8")
    t = read_manifest_table(m, require_subject=False)  # header names stripped, blank line skipped
    assert t.columns == ("image", "subject", "sex") and t.label_columns == ("sex",)
    assert [(r.line, r.image, r.subject, dict(r.labels)) for r in t.rows] == [
        (2, "a.jpg", "s1", {"sex": "F"}), (4, "b.jpg", "", {"sex": ""})]
    with pytest.raises(ManifestError, match="line 4, column 'subject': empty") as exc:
        read_manifest_table(m, require_subject=True)
    assert (exc.value.line, exc.value.column) == (4, "subject")
    cases = {
        "image,sex\na.jpg,F\n": ("lacks the column", 1, "subject"),
        "image,subject,image\na.jpg,s,b\n": ("appears twice", 1, "image"),
        "image,subject\na.jpg,Doe, Jane\n": ("3 cells for 2 columns", 2, None),
    }
    for text, (message, line, column) in cases.items():
        m.write_text(text, encoding="utf-8")
        with pytest.raises(ManifestError, match=message) as exc:
            read_manifest_table(m, require_subject=True)
        assert (exc.value.line, exc.value.column) == (line, column)
    m.write_bytes(b"image,subject\na.jpg,\xff\n")
    with pytest.raises(ManifestError, match="not UTF-8 text \\(line 2\\)"):
        read_manifest(m)
