"""Batch indexing: manifests and directories, parallel, resumable, bad images reported."""

import csv

import pytest

from faceaudit import ResourceNotFoundError
from faceaudit.collections import index_batch, read_manifest, scan_directory
from tests.collections.conftest import jpeg, variants
from tests.conftest import DATA, blank_image


def write_manifest(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "subject", "dataset", "sex"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def forty(tmp_path_factory):
    """A manifest of 40 distinct one-face photos (20 people x original and mirror)."""
    root = tmp_path_factory.mktemp("forty")
    paths = variants(root / "img")
    rows = [(f"img/{p.name}", "person:" + p.stem[:-2], p.parent.name, "F" if "C000127" in p.name else "")
            for p in paths]
    return write_manifest(root / "forty.csv", rows)


def test_parallel_batch_then_rerun_indexes_nothing_twice(fc, forty):
    items = read_manifest(forty)
    report = index_batch("c", items, collections=fc, workers=2, progress=False)
    assert report.workers == 2 and report.total == 40
    assert (report.indexed_images, report.faces_indexed, report.already_indexed, report.failed) == (40, 40, 0, 0)
    assert fc.describe_collection(collection_id="c").face_count == 40
    faces = fc.list_faces(collection_id="c").faces
    assert len({f.image_sha256 for f in faces}) == 40
    f = next(f for f in faces if "C000127" in f.external_image_id)
    assert f.external_image_id.startswith("person:") and f.labels["sex"] == "F" and f.labels["subject"]
    assert fc._cache.snapshot_path(fc._collection_row("c").rowid).exists()  # checkpointed
    again = index_batch("c", items, collections=fc, workers=2, progress=False)
    assert (again.indexed_images, again.already_indexed, again.faces_indexed) == (0, 40, 0)
    assert fc.describe_collection(collection_id="c").face_count == 40
    assert fc.verify_index("c")


def test_a_partial_run_is_completed_by_the_next(fc, forty):
    items = read_manifest(forty)
    first = index_batch("c", items[:13], collections=fc, workers=1, progress=False)
    assert first.indexed_images == 13
    rest = index_batch("c", items + items[:2], collections=fc, workers=1, progress=False)  # with duplicates
    assert rest.indexed_images == 27 and rest.already_indexed == 15 and rest.total == 42
    assert fc.describe_collection(collection_id="c").face_count == 40


def test_bad_images_are_reported_and_do_not_stop_the_run(fc, tmp_path, monkeypatch):
    import io

    from PIL import Image

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)  # the bar is drawn only on a terminal

    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    (tmp_path / "tiny.jpg").write_bytes(jpeg(Image.new("RGB", (40, 40))))
    (tmp_path / "blank.png").write_bytes(blank_image())
    good = sorted((DATA / "congress2014").glob("*.jpg"))[:3]
    rows = [("junk.jpg", "a"), ("missing.jpg", "b"), ("tiny.jpg", "c"), ("blank.png", "d")]
    rows += [(str(p), p.stem) for p in good]
    m = write_manifest(tmp_path / "m.csv", [(*r, "x", "") for r in rows])
    report = index_batch("c", read_manifest(m), collections=fc, workers=1, progress=True)
    assert report.indexed_images == 3 and report.without_faces == 1 and report.failed == 3
    assert {f.name for f in report.failures} == {"junk.jpg", "missing.jpg", "tiny.jpg"}
    codes = sorted(f.code for f in report.failures)
    assert codes == ["InvalidImageFormatException", "InvalidImageFormatException", "InvalidParameterException"]
    assert sum(report.failure_reasons().values()) == 3
    d = report.to_dict()
    assert d["Failed"] == 3 and d["IndexedImages"] == 3 and len(d["Failures"]) == 3
    err = terminal.getvalue()
    assert "7/7" in err and "img/s" in err and "indexed 3" in err  # the progress bar, on stderr


def test_directory_batch(fc):
    report = index_batch("c", scan_directory(DATA / "congress2014"), collections=fc, workers=1, progress=False)
    assert report.indexed_images == 8
    assert sorted(f.external_image_id for f in fc.list_faces(collection_id="c").faces) == sorted(
        p.name for p in (DATA / "congress2014").glob("*.jpg"))


def test_batch_needs_the_collection(fc):
    with pytest.raises(ResourceNotFoundError):
        index_batch("nope", [], collections=fc)
