"""IndexFaces, ListFaces, DeleteFaces."""

import uuid

import pytest

from faceaudit import (
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
    InvalidPaginationTokenError,
    InvalidParameterError,
    ResourceNotFoundError,
)
from faceaudit.collections import REASONS
from faceaudit.collections._validate import FACE_ID_RE
from faceaudit.engine import get_model
from tests.conftest import MEMBERS, blank_image, meds, portrait_2014, portrait_2018, side_by_side

pytestmark = pytest.mark.usefixtures("on_both_databases")  # SQLite and PostgreSQL

SFACE = get_model("sface").version
SFACE_API = get_model("sface").numeric_version  # FaceModelVersion over the API


def test_index_faces_response_shape(fc):
    r = fc.index_faces(collection_id="c", image=portrait_2018("C000127").read_bytes(),
                       external_image_id="congress:C000127")
    rk = r.to_rekognition()
    assert set(rk) == {"FaceRecords", "FaceModelVersion", "UnindexedFaces"}
    assert rk["FaceModelVersion"] == SFACE_API and rk["UnindexedFaces"] == []
    (rec,) = rk["FaceRecords"]
    face = rec["Face"]
    assert set(face) == {"FaceId", "BoundingBox", "ImageId", "ExternalImageId", "Confidence", "IndexFacesModelVersion"}
    assert FACE_ID_RE.fullmatch(face["FaceId"]) and FACE_ID_RE.fullmatch(face["ImageId"])
    assert face["ExternalImageId"] == "congress:C000127" and face["IndexFacesModelVersion"] == SFACE_API
    assert set(face["BoundingBox"]) == {"Width", "Height", "Left", "Top"}
    assert 0 < face["Confidence"] <= 100
    assert set(rec["FaceDetail"]) == {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}
    assert r.image_id == face["ImageId"] and not r.already_indexed
    assert fc.describe_collection(collection_id="c").face_count == 1


def test_no_external_image_id_is_left_out(fc):
    r = fc.index_faces(collection_id="c", image=portrait_2014("K000367").read_bytes())
    assert "ExternalImageId" not in r.to_rekognition()["FaceRecords"][0]["Face"]
    assert r.face_records[0].face.external_image_id is None


def test_reindexing_the_same_bytes_indexes_again_like_rekognition(fc):
    data = portrait_2018("F000062").read_bytes()
    first = fc.index_faces(collection_id="c", image=data, external_image_id="f")
    again = fc.index_faces(collection_id="c", image=data, external_image_id="f")
    assert not again.already_indexed and again.image_id != first.image_id
    assert again.face_records[0].face.face_id != first.face_records[0].face.face_id
    assert fc.describe_collection(collection_id="c").face_count == 2
    # with this call's parameters, not the first call's answer
    strict = fc.index_faces(collection_id="c", image=data, external_image_id="f", max_faces=1,
                            quality_filter="NONE")
    assert len(strict.face_records) == 1 and strict.image_id not in (first.image_id, again.image_id)
    none = fc.index_faces(collection_id="c", image=data)
    assert none.face_records[0].face.external_image_id is None
    assert fc.describe_collection(collection_id="c").face_count == 4


@pytest.mark.sqlite_only
def test_schema_2_images_lose_their_unique_key_and_keep_everything(tmp_path, sface_engine):
    import sqlite3

    from faceaudit.collections import FaceCollections
    from faceaudit.collections._store import SCHEMA_VERSION

    first = FaceCollections(tmp_path, engines={"sface": sface_engine})
    first.create_collection(collection_id="old")
    kept = first.index_faces(collection_id="old", image=portrait_2014("C000141").read_bytes(), external_image_id="a")
    gone = first.index_faces(collection_id="old", image=portrait_2014("C000127").read_bytes(), external_image_id="b")
    first.delete_faces(collection_id="old", face_ids=[gone.face_records[0].face.face_id])
    first.close()
    db = tmp_path / "collections.sqlite3"
    con = sqlite3.connect(db, isolation_level=None)  # rebuild the images table as schema 2 had it
    con.execute("PRAGMA foreign_keys = OFF")
    con.execute("BEGIN")
    seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'images'").fetchone()[0]
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'images'").fetchone()[0]
    con.execute(sql.replace("CREATE TABLE images", "CREATE TABLE images_v2").rstrip().rstrip(")")
                + ", UNIQUE (collection_id, sha256, external_image_id))")
    con.execute("INSERT INTO images_v2 SELECT * FROM images")
    con.execute("DROP TABLE images")
    con.execute("ALTER TABLE images_v2 RENAME TO images")
    con.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'images'", (seq,))
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.execute("COMMIT")
    con.close()
    again = FaceCollections(tmp_path, engines={"sface": sface_engine})
    faces = again.list_faces(collection_id="old").faces
    assert [f.face_id for f in faces] == [kept.face_records[0].face.face_id]  # the face and its image kept
    assert faces[0].image_id == kept.image_id and faces[0].external_image_id == "a"
    r = again.index_faces(collection_id="old", image=portrait_2014("C000141").read_bytes(), external_image_id="a")
    assert r.image_id != kept.image_id and again.describe_collection(collection_id="old").face_count == 2
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    assert con.execute("SELECT MAX(id) FROM images").fetchone()[0] > seq  # no image row id reused
    assert "UNIQUE (collection_id, sha256" not in con.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'images'").fetchone()[0]


def test_max_faces_drops_the_smallest_and_reports_it(fc):
    # the 2014 portrait is grayscale 200x250: pasted next to 2018 portraits its face is the largest
    img = side_by_side(portrait_2018("B000944"), portrait_2014("C000141"), portrait_2018("F000062"))
    r = fc.index_faces(collection_id="c", image=img, max_faces=2, external_image_id="three")
    assert len(r.face_records) == 2 and len(r.unindexed_faces) == 1
    assert r.unindexed_faces[0].reasons == ("EXCEEDS_MAX_FACES",)
    kept = sorted(x.face.bounding_box.width * x.face.bounding_box.height for x in r.face_records)
    dropped = r.unindexed_faces[0].face_detail["BoundingBox"]
    assert dropped["Width"] * dropped["Height"] <= kept[0]
    rk = r.to_rekognition()["UnindexedFaces"][0]
    assert set(rk) == {"Reasons", "FaceDetail"} and set(rk["Reasons"]) <= set(REASONS)
    # faces of one image share the ImageId and the ExternalImageId
    assert len({x.face.image_id for x in r.face_records}) == 1
    assert {x.face.external_image_id for x in r.face_records} == {"three"}
    # the default (100) indexes all three
    r = fc.index_faces(collection_id="c", image=img)
    assert len(r.face_records) == 3


def test_quality_filter(fc):
    # S006-02 is the least sharp of the photos: sharpness ~9, passes AUTO (bar 5), fails HIGH (bar 12)
    data = meds("S006-02-t10_01").read_bytes()
    high = fc.index_faces(collection_id="c", image=data, quality_filter="HIGH", external_image_id="h")
    assert high.face_records == () and high.unindexed_faces[0].reasons == ("LOW_SHARPNESS",)
    assert "ImageId" not in str(high.to_rekognition())
    assert fc.describe_collection(collection_id="c").face_count == 0
    auto = fc.index_faces(collection_id="c", image=data, external_image_id="a")  # default AUTO
    none = fc.index_faces(collection_id="c", image=data, quality_filter="NONE", external_image_id="n")
    assert len(auto.face_records) == len(none.face_records) == 1


def test_no_face_indexes_nothing_without_error(fc):
    r = fc.index_faces(collection_id="c", image=blank_image())
    assert r.to_rekognition() == {"FaceRecords": [], "FaceModelVersion": SFACE_API, "UnindexedFaces": []}


def test_index_faces_errors(fc):
    data = portrait_2018("C000141").read_bytes()
    with pytest.raises(ResourceNotFoundError):
        fc.index_faces(collection_id="nope", image=data)
    with pytest.raises(InvalidImageFormatError):
        fc.index_faces(collection_id="c", image=b"junk")
    with pytest.raises(ImageTooLargeError):
        fc.index_faces(collection_id="c", image=b"\xff\xd8\xff" + b"0" * (5 * 1024 * 1024))
    with pytest.raises(ImageTooSmallError) as info:
        fc.index_faces(collection_id="c", image=blank_image(40, 40))
    assert info.value.aws_code == "InvalidParameterException"  # under 80x80
    bad = [
        dict(external_image_id="has space"), dict(external_image_id=""), dict(external_image_id="x" * 256),
        dict(max_faces=0), dict(max_faces=-1), dict(max_faces=1.5), dict(quality_filter="BEST"),
        dict(detection_attributes=["NOSE"]), dict(detection_attributes="ALL"), dict(image="a path"),
    ]
    for kwargs in bad:
        with pytest.raises(InvalidParameterError):
            fc.index_faces(**{"collection_id": "c", "image": data, **kwargs})
    # accepted: ExternalImageId with colons, big MaxFaces, ALL attributes (DEFAULT ones computed)
    r = fc.index_faces(collection_id="c", image=data, external_image_id="a:b.c-d_e", max_faces=1000,
                       detection_attributes=["ALL"])
    assert len(r.face_records) == 1
    assert fc.describe_collection(collection_id="c").face_count == 1


def test_list_faces_pages_and_filters(gallery):
    fc, faces = gallery
    everything = fc.list_faces(collection_id="gallery")
    assert {f.face_id for f in everything.faces} == set(faces.values())
    assert everything.next_token is None and everything.face_model_version == SFACE
    rk = everything.to_rekognition()
    assert set(rk) == {"Faces", "FaceModelVersion"}
    assert set(rk["Faces"][0]) == {"FaceId", "BoundingBox", "ImageId", "ExternalImageId", "Confidence",
                                   "IndexFacesModelVersion"}
    seen, token = [], None
    while True:
        page = fc.list_faces(collection_id="gallery", max_results=5, next_token=token)
        assert len(page.faces) <= 5
        seen += [f.face_id for f in page.faces]
        token = page.next_token
        if token is None:
            break
    assert seen == [f.face_id for f in everything.faces]  # indexing order, no repeats
    some = [faces["B000944"], faces["S006-01-t10_01"], str(uuid.uuid4())]
    r = fc.list_faces(collection_id="gallery", face_ids=some)
    assert sorted(f.face_id for f in r.faces) == sorted(some[:2])
    # a token is bound to its filters
    t = fc.list_faces(collection_id="gallery", face_ids=some, max_results=1).next_token
    with pytest.raises(InvalidPaginationTokenError):
        fc.list_faces(collection_id="gallery", next_token=t)
    assert fc.list_faces(collection_id="gallery", user_id="nobody").faces == ()
    with pytest.raises(ResourceNotFoundError):
        fc.list_faces(collection_id="nope")
    for bad in (dict(face_ids=[]), dict(face_ids=["not-a-uuid"]), dict(face_ids="x"), dict(user_id="a b"),
                dict(max_results=5000)):
        with pytest.raises(InvalidParameterError):
            fc.list_faces(collection_id="gallery", **bad)


def test_list_faces_carries_labels_but_not_in_the_response(fc):
    from faceaudit.collections import BatchItem, index_batch

    item = BatchItem(source=portrait_2014("C000174"), external_image_id="congress:C000174",
                     labels={"subject": "congress:C000174", "sex": "M"}, name="x.jpg")
    index_batch("c", [item], collections=fc, workers=1, progress=False)
    (face,) = fc.list_faces(collection_id="c").faces
    assert face.labels == {"subject": "congress:C000174", "sex": "M"}
    assert face.image_sha256 and "labels" not in str(face.to_rekognition())


def test_delete_faces(fc):
    ids = []
    for m in MEMBERS[:3]:
        ids.append(fc.index_faces(collection_id="c", image=portrait_2014(m).read_bytes()).face_records[0].face.face_id)
    missing = str(uuid.uuid4())
    r = fc.delete_faces(collection_id="c", face_ids=[ids[0], missing, ids[0]])
    assert r.to_rekognition() == {
        "DeletedFaces": [ids[0]],
        "UnsuccessfulFaceDeletions": [{"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}],
    }
    fc.create_user(collection_id="c", user_id="u1")
    fc.associate_faces(collection_id="c", user_id="u1", face_ids=[ids[1]])
    r = fc.delete_faces(collection_id="c", face_ids=[ids[1], ids[2]])
    assert r.deleted_faces == (ids[2],)
    assert r.to_rekognition()["UnsuccessfulFaceDeletions"] == [
        {"FaceId": ids[1], "UserId": "u1", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]}
    ]
    assert fc.describe_collection(collection_id="c").face_count == 1
    assert [f.face_id for f in fc.list_faces(collection_id="c").faces] == [ids[1]]
    assert fc.verify_index("c")
    with pytest.raises(ResourceNotFoundError):
        fc.delete_faces(collection_id="nope", face_ids=[missing])
    for bad in ([], ["nope"], [missing] * 4097, None):
        with pytest.raises(InvalidParameterError):
            fc.delete_faces(collection_id="c", face_ids=bad)


@pytest.mark.sqlite_only
def test_face_crop_kept_for_review_and_deleted_with_the_face(fc):
    import io
    import sqlite3

    from PIL import Image as PILImage

    from tests.conftest import portrait_2014

    r = fc.index_faces(collection_id="c", image=portrait_2014("B000944").read_bytes(), external_image_id="x")
    face_id = r.face_records[0].face.face_id
    jpeg = fc.face_thumbnail(face_id)
    crop = PILImage.open(io.BytesIO(jpeg))
    assert crop.format == "JPEG" and max(crop.size) <= 200 and min(crop.size) > 50
    assert fc.face_thumbnail("00000000-0000-0000-0000-000000000000") is None
    fc.delete_faces(collection_id="c", face_ids=[face_id])
    assert fc.face_thumbnail(face_id) is None
    con = sqlite3.connect(fc.data_dir / "collections.sqlite3")
    assert con.execute("SELECT COUNT(*) FROM face_thumbnails").fetchone()[0] == 0


@pytest.mark.sqlite_only
def test_schema_1_database_is_migrated(tmp_path, sface_engine):
    import sqlite3

    from faceaudit.collections import FaceCollections
    from tests.conftest import portrait_2014

    first = FaceCollections(tmp_path, engines={"sface": sface_engine})
    first.create_collection(collection_id="old")
    first.index_faces(collection_id="old", image=portrait_2014("C000141").read_bytes())
    db = next(p for p in tmp_path.iterdir() if p.suffix in (".sqlite", ".db", ".sqlite3"))
    con = sqlite3.connect(db)
    con.execute("DROP TABLE face_thumbnails")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    again = FaceCollections(tmp_path, engines={"sface": sface_engine})
    assert again.describe_collection(collection_id="old").face_count == 1
    r = again.index_faces(collection_id="old", image=portrait_2014("C000127").read_bytes())
    assert again.face_thumbnail(r.face_records[0].face.face_id)
    con = sqlite3.connect(db)
    from faceaudit.collections._store import SCHEMA_VERSION

    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
