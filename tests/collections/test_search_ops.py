"""SearchFacesByImage and SearchFaces: exact, thresholded, sorted, pinned to the model."""

import uuid

import numpy as np
import pytest

from faceaudit import InvalidParameterError, ModelError, NoFaceError, ResourceNotFoundError
from faceaudit.collections import FaceCollections
from faceaudit.engine import get_model
from tests.conftest import MEMBERS, blank_image, meds, portrait_2014, portrait_2018, side_by_side

pytestmark = pytest.mark.usefixtures("on_both_databases")  # SQLite and PostgreSQL

SFACE = get_model("sface")


@pytest.fixture
def gallery(gallery, on_both_databases, request):
    """The session's gallery: on SQLite, or its twin in PostgreSQL."""
    return gallery if on_both_databases is None else request.getfixturevalue("gallery_postgresql")


def test_search_by_image_defaults_and_shape(gallery):
    fc, faces = gallery
    r = fc.search_faces_by_image(collection_id="gallery", image=portrait_2018("C000141").read_bytes())
    rk = r.to_rekognition()
    assert set(rk) == {"SearchedFaceBoundingBox", "SearchedFaceConfidence", "FaceMatches", "FaceModelVersion"}
    assert rk["FaceModelVersion"] == SFACE.numeric_version and 0 < rk["SearchedFaceConfidence"] <= 100
    sims = [m["Similarity"] for m in rk["FaceMatches"]]
    assert sims and sims == sorted(sims, reverse=True) and all(s >= 80 for s in sims)  # default 80
    assert rk["FaceMatches"][0]["Face"]["ExternalImageId"] == "C000141"
    assert rk["FaceMatches"][0]["Face"]["FaceId"] == faces["C000141"]
    assert r.threshold == 80.0


def test_every_member_finds_their_2014_portrait_first(gallery, sface_engine):
    fc, faces = gallery
    for m in MEMBERS:
        data = portrait_2018(m).read_bytes()
        r = fc.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=0, max_faces=4096)
        assert len(r.face_matches) == len(faces)  # threshold 0: every face, exhaustively
        assert r.face_matches[0].face.external_image_id == m
        # similarity is the model's documented scale of the cosine
        _, probe = sface_engine.largest(data)
        _, mate = sface_engine.largest(portrait_2014(m))
        expected = SFACE.scale.to_similarity(float(np.dot(probe.vector, mate.vector)))
        assert r.face_matches[0].similarity == pytest.approx(expected, abs=1e-3)


def test_max_faces_and_threshold(gallery):
    fc, _ = gallery
    data = portrait_2018("K000367").read_bytes()
    all_ = fc.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=0, max_faces=4096)
    three = fc.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=0, max_faces=3)
    assert [m.face.face_id for m in three.face_matches] == [m.face.face_id for m in all_.face_matches[:3]]
    cut = all_.face_matches[4].similarity
    above = fc.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=cut)
    assert [m.similarity for m in above.face_matches] == [m.similarity for m in all_.face_matches[:5]]
    # Similarity 100 (promised false-match rate 1e-7) is where the calibrated scale saturates:
    # a threshold of 100 returns exactly the faces scoring 100 (here the member's own 2014 portrait)
    at_100 = fc.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=100)
    top = [m.face.face_id for m in all_.face_matches if m.similarity >= 100]
    assert [m.face.face_id for m in at_100.face_matches] == top and len(top) <= 1


def test_only_the_largest_face_is_searched(gallery):
    fc, _ = gallery
    # the grayscale 2014 portrait pasted among 2018 ones holds the largest face
    img = side_by_side(portrait_2018("F000062"), portrait_2014("C001070"), portrait_2018("M001170"))
    r = fc.search_faces_by_image(collection_id="gallery", image=img)
    assert r.face_matches[0].face.external_image_id == "C001070"
    assert r.face_matches[0].similarity > 95  # the very same photo (re-encoded in the composite)
    assert 0.3 < r.searched_face_bounding_box.left < 0.66


def test_no_face_is_an_invalid_parameter(gallery):
    fc, _ = gallery
    with pytest.raises(NoFaceError) as info:
        fc.search_faces_by_image(collection_id="gallery", image=blank_image())
    assert info.value.aws_code == "InvalidParameterException"
    # a face filtered out by QualityFilter counts as none
    with pytest.raises(NoFaceError):
        fc.search_faces_by_image(collection_id="gallery", image=meds("S006-02-t10_01").read_bytes(),
                                 quality_filter="HIGH")
    r = fc.search_faces_by_image(collection_id="gallery", image=meds("S006-02-t10_01").read_bytes())
    assert r.face_matches[0].face.external_image_id == "S006-02-t10_01"  # default NONE


def test_search_by_image_errors(gallery):
    fc, _ = gallery
    data = portrait_2018("C000141").read_bytes()
    with pytest.raises(ResourceNotFoundError):
        fc.search_faces_by_image(collection_id="nope", image=data)
    for bad in (dict(max_faces=0), dict(max_faces=4097), dict(face_match_threshold=-0.1),
                dict(face_match_threshold=100.01), dict(face_match_threshold=float("nan")),
                dict(face_match_threshold="80"), dict(quality_filter="low"), dict(collection_id="a b")):
        with pytest.raises(InvalidParameterError):
            fc.search_faces_by_image(**{"collection_id": "gallery", "image": data, **bad})


def test_search_faces_excludes_the_face_itself(gallery):
    fc, faces = gallery
    r = fc.search_faces(collection_id="gallery", face_id=faces["S001-01-t10_01"], face_match_threshold=0)
    rk = r.to_rekognition()
    assert set(rk) == {"SearchedFaceId", "FaceMatches", "FaceModelVersion"}
    ids = [m["Face"]["FaceId"] for m in rk["FaceMatches"]]
    assert faces["S001-01-t10_01"] not in ids and len(ids) == len(faces) - 1
    assert rk["FaceMatches"][0]["Face"]["ExternalImageId"] == "S001-02-t10_01"  # same person
    sims = [m["Similarity"] for m in rk["FaceMatches"]]
    assert sims == sorted(sims, reverse=True)
    assert len(fc.search_faces(collection_id="gallery", face_id=faces["S001-01-t10_01"], max_faces=2,
                               face_match_threshold=0).face_matches) == 2
    default = fc.search_faces(collection_id="gallery", face_id=faces["S001-01-t10_01"])
    assert all(m.similarity >= 80 for m in default.face_matches)
    with pytest.raises(ResourceNotFoundError):
        fc.search_faces(collection_id="gallery", face_id=str(uuid.uuid4()))
    with pytest.raises(InvalidParameterError):
        fc.search_faces(collection_id="gallery", face_id="ABC")
    with pytest.raises(ResourceNotFoundError):
        fc.search_faces(collection_id="nope", face_id=faces["B000944"])


@pytest.mark.sqlite_only
def test_numpy_and_faiss_backends_agree(gallery, sface_engine):
    fc, _ = gallery
    oracle = FaceCollections(fc.data_dir, index="numpy", engines={"sface": sface_engine})
    for m in MEMBERS[:4]:
        data = portrait_2018(m).read_bytes()
        a = fc.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=0)
        b = oracle.search_faces_by_image(collection_id="gallery", image=data, face_match_threshold=0)
        assert [x.face.face_id for x in a.face_matches] == [x.face.face_id for x in b.face_matches]
        assert [x.similarity for x in a.face_matches] == pytest.approx([x.similarity for x in b.face_matches], abs=1e-3)


@pytest.mark.sqlite_only
def test_a_collection_is_pinned_to_its_model(tmp_path, sface_engine):
    fc = FaceCollections(tmp_path, engines={"sface": sface_engine})
    fc.create_collection(collection_id="d", model="dlib")
    # faces computed by another model are never stored in it
    from faceaudit.collections._prepare import prepare_index

    prepared = prepare_index(sface_engine, sface_engine.image(portrait_2014("B000944")), max_faces=100,
                             quality_filter="AUTO")
    with pytest.raises(InvalidParameterError):
        fc._store_prepared("d", prepared)
    # a collection whose FaceModelVersion this faceaudit does not have cannot be searched
    import sqlite3

    con = sqlite3.connect(str(tmp_path / "collections.sqlite3"))
    con.execute("UPDATE collections SET model_version = 'retired-model-1' WHERE name = 'd'")
    con.commit()
    con.close()
    with pytest.raises(ModelError):
        fc.search_faces_by_image(collection_id="d", image=portrait_2014("B000944").read_bytes())


def test_faceid_and_userid_searches_report_the_stored_faces_quality(fc, sface_engine):
    """Issue 19: a search by FaceId or UserId reports its stored probe face's quality (from the
    FaceDetail at indexing: eye distance, sharpness, brightness; no noise) before searching, so
    the accountability layer can log and police it; a user's search reports its smallest face."""
    import io

    from PIL import Image

    from faceaudit.engine import observe_probe

    img = Image.open(portrait_2018("C000141")).convert("RGB")
    canvas = Image.new("RGB", img.size, (128, 128, 128))
    canvas.paste(img.resize((round(img.width * 0.4), round(img.height * 0.4))), (0, 0))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    faces = {}
    for name, data in (("big", portrait_2018("C000141").read_bytes()), ("small", buf.getvalue())):
        rec = fc.index_faces(collection_id="c", image=data, quality_filter="NONE").face_records[0]
        faces[name] = (rec.face.face_id, sface_engine.detect(data).faces[0].quality)
    fc.index_faces(collection_id="c", image=portrait_2014("C000141").read_bytes())
    fc.create_user(collection_id="c", user_id="u")
    fc.associate_faces(collection_id="c", user_id="u", face_ids=[faces["big"][0], faces["small"][0]])
    seen = []
    with observe_probe(seen.append):
        fc.search_faces(collection_id="c", face_id=faces["big"][0])
        fc.search_users(collection_id="c", face_id=faces["small"][0])
        fc.search_users(collection_id="c", user_id="u")
    assert [q.noise for q in seen] == [None, None, None]
    big, small = faces["big"][1], faces["small"][1]
    for q, want in zip(seen, (big, small, small), strict=True):
        assert q.eye_distance_px == pytest.approx(want.eye_distance_px, abs=0.05)
        assert (q.brightness, q.sharpness) == (want.brightness, want.sharpness)
