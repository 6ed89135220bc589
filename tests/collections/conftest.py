"""Fixtures of the collection tests: a session-wide gallery, fresh data dirs, synthetic faces."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.conftest import DATA, MEMBERS, SCRIPTS_SUPPORT, meds, portrait_2014

MEDS = ["S001-01-t10_01", "S001-02-t10_01", "S006-01-t10_01", "S006-02-t10_01"]


@pytest.fixture(scope="session")
def gallery(tmp_path_factory, sface_engine):
    """(FaceCollections, {ExternalImageId: FaceId}): collection "gallery" of the 8 members'
    2014 portraits (ExternalImageId = bioguide id) and the 4 MEDS mugshots. Read-only."""
    from faceaudit.collections import FaceCollections

    fc = FaceCollections(tmp_path_factory.mktemp("gallery"), engines={"sface": sface_engine})
    return fc, _fill_gallery(fc)


def _fill_gallery(fc):
    fc.create_collection(collection_id="gallery")
    faces = {}
    for m in MEMBERS:
        r = fc.index_faces(collection_id="gallery", image=portrait_2014(m).read_bytes(), external_image_id=m)
        faces[m] = r.face_records[0].face.face_id
    for name in MEDS:
        r = fc.index_faces(collection_id="gallery", image=meds(name).read_bytes(), external_image_id=name)
        faces[name] = r.face_records[0].face.face_id
    return faces


@pytest.fixture
def on_both_databases(request, database_url, monkeypatch):
    """Run a module's tests on SQLite and on PostgreSQL (``pytestmark =
    pytest.mark.usefixtures("on_both_databases")``): on PostgreSQL the module's
    ``FaceCollections`` and the ``fc`` fixture open the test's fresh database; a test marked
    ``sqlite_only`` (it opens the SQLite file itself, or needs two data dirs to be two stores)
    runs on SQLite only."""
    if database_url is None:
        return None
    if request.node.get_closest_marker("sqlite_only") is not None:
        pytest.skip("SQLite only: the test reads the data dir's SQLite file or needs separate stores")
    from faceaudit.collections import FaceCollections

    if hasattr(request.module, "FaceCollections"):
        monkeypatch.setattr(request.module, "FaceCollections",
                            functools.partial(FaceCollections, database_url=database_url))
    return database_url


@pytest.fixture(scope="session")
def gallery_postgresql(tmp_path_factory, sface_engine, postgres_server):
    """The ``gallery`` fixture's collection in a PostgreSQL database of the session's server."""
    from faceaudit.collections import FaceCollections

    fc = FaceCollections(tmp_path_factory.mktemp("gallery-pg"), engines={"sface": sface_engine},
                         database_url=postgres_server.new_database())
    return fc, _fill_gallery(fc)


@pytest.fixture
def fc(request, tmp_path, sface_engine):
    """A FaceCollections on an empty data dir, with collection "c" (in the test's PostgreSQL
    database when the module runs ``on_both_databases`` with PostgreSQL)."""
    from faceaudit.collections import FaceCollections

    url = request.getfixturevalue("on_both_databases") if "on_both_databases" in request.fixturenames else None
    backend = FaceCollections(tmp_path / "data", engines={"sface": sface_engine}, database_url=url)
    backend.create_collection(collection_id="c")
    yield backend
    backend.close()


def jpeg(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def variants(out_dir: Path) -> list[Path]:
    """The 20 committed photos and their mirror images: 40 distinct one-face JPEGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in sorted(DATA.rglob("*.jpg")):
        img = Image.open(src).convert("RGB")
        for tag, im in (("a", img), ("b", ImageOps.mirror(img))):
            p = out_dir / f"{src.parent.name}_{src.stem}_{tag}.jpg"
            p.write_bytes(jpeg(im))
            paths.append(p)
    return paths


synthetic_image = SCRIPTS_SUPPORT.synthetic_image
"""A PreparedImage with random unit vectors (no engine needed): scripts/_support.py."""
