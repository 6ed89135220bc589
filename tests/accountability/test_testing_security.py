"""Security of the testing API: an auditor's archive can reach only its own files."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from faceaudit._errors import InvalidParameterError
from faceaudit.accountability import TestingAPI
from tests.conftest import portrait_2014


def _zip(files) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("outside", ["ABSOLUTE", "../../../secret.jpg", "img/../../outside.jpg"])
def test_manifest_images_outside_the_archive_are_refused(tmp_path, outside):
    """A manifest row naming a server file (absolute or ``..``) would let an auditor read
    server images (search probes, other audits' inputs) through the report's thumbnails."""
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(portrait_2014("B000944").read_bytes())
    if outside == "ABSOLUTE":
        outside = str(secret)
    data = tmp_path / "data"
    api = TestingAPI(data)
    archive = _zip({
        "img/a.jpg": portrait_2014("C000141").read_bytes(),
        "probes.csv": b"image,subject\nimg/a.jpg,a\n",
        "gallery.csv": f"image,subject\n{outside},b\n".encode(),
    })
    with pytest.raises(InvalidParameterError, match="outside the archive"):
        api.start("FAKIAUDITOR", {"Archive": archive, "Probes": ["probes.csv"], "Gallery": ["gallery.csv"]})
    assert not any((data / "audits").glob("*"))  # nothing queued, nothing left behind
