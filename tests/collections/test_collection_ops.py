"""CreateCollection, DescribeCollection, ListCollections, DeleteCollection."""

import time

import pytest

from faceaudit import (
    InvalidPaginationTokenError,
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from faceaudit.collections import FaceCollections
from faceaudit.engine import get_model

pytestmark = pytest.mark.usefixtures("on_both_databases")  # SQLite and PostgreSQL


@pytest.mark.sqlite_only
def test_nothing_is_created_until_the_first_write(tmp_path):
    d = tmp_path / "never"
    fc = FaceCollections(d)
    assert fc.list_collections().to_rekognition() == {"CollectionIds": [], "FaceModelVersions": []}
    with pytest.raises(ResourceNotFoundError):
        fc.describe_collection(collection_id="x")
    with pytest.raises(ResourceNotFoundError):
        fc.delete_collection(collection_id="x")
    with pytest.raises(InvalidPaginationTokenError):
        fc.list_collections(next_token="abc.def")
    assert not d.exists()
    fc.create_collection(collection_id="x")
    assert (d / "collections.sqlite3").exists()


def test_data_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEAUDIT_DATA_DIR", str(tmp_path / "env"))
    fc = FaceCollections(None)
    assert fc.data_dir == tmp_path / "env"


def test_create_and_describe(tmp_path):
    fc = FaceCollections(tmp_path, region="eu-west-1", account_id="123456789012")
    before = time.time()
    r = fc.create_collection(collection_id="My.col-1_x")
    sface = get_model("sface")
    assert r.to_rekognition() == {
        "StatusCode": 200,
        "CollectionArn": "arn:aws:rekognition:eu-west-1:123456789012:collection/My.col-1_x",
        "FaceModelVersion": sface.numeric_version,  # the API's form: [0-9.]+
    }
    d = fc.describe_collection(collection_id="My.col-1_x").to_rekognition()
    assert set(d) == {"FaceCount", "FaceModelVersion", "CollectionARN", "CreationTimestamp", "UserCount"}
    assert d["FaceCount"] == 0 and d["UserCount"] == 0 and d["FaceModelVersion"] == sface.numeric_version
    assert d["CollectionARN"] == r.collection_arn
    assert before - 1 <= d["CreationTimestamp"] <= time.time() + 1


def test_create_duplicate_and_pin_to_another_model(tmp_path):
    fc = FaceCollections(tmp_path)
    fc.create_collection(collection_id="a")
    with pytest.raises(ResourceAlreadyExistsError):
        fc.create_collection(collection_id="a")
    r = fc.create_collection(collection_id="b", model="dlib")  # pinning needs no dlib install
    assert r.face_model_version == get_model("dlib").version
    assert fc.describe_collection(collection_id="b").model == "dlib"
    with pytest.raises(InvalidParameterError):
        fc.create_collection(collection_id="c", model="nosuchmodel")


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "x" * 256, None, 12, "é"])
def test_bad_collection_ids(tmp_path, bad):
    fc = FaceCollections(tmp_path)
    for call in (fc.create_collection, fc.describe_collection, fc.delete_collection):
        with pytest.raises(InvalidParameterError):
            call(collection_id=bad)


def test_tags(tmp_path):
    fc = FaceCollections(tmp_path)
    fc.create_collection(collection_id="t", tags={"purpose": "test", "team": "a b:c"})
    for bad in ({"aws:x": "y"}, {"": "y"}, {"k": "v" * 257}, {f"k{i}": "v" for i in range(201)}, ["k"]):
        with pytest.raises(InvalidParameterError):
            fc.create_collection(collection_id="u", tags=bad)


def test_list_pages_with_validated_tokens(tmp_path):
    fc = FaceCollections(tmp_path)
    names = [f"c{i}" for i in range(7)]
    for n in names:
        fc.create_collection(collection_id=n)
    assert list(fc.list_collections().collection_ids) == names  # creation order, default page 1000
    seen, token, pages = [], None, 0
    while True:
        r = fc.list_collections(max_results=3, next_token=token)
        assert len(r.face_model_versions) == len(r.collection_ids) <= 3
        seen += r.collection_ids
        pages += 1
        token = r.next_token
        if not token:
            break
        assert len(token) <= 255
    assert seen == names and pages == 3
    assert "NextToken" not in r.to_rekognition()
    first = fc.list_collections(max_results=2)
    # a deleted collection does not break a token; a new one shows up
    fc.delete_collection(collection_id="c2")
    fc.create_collection(collection_id="new")
    rest = fc.list_collections(next_token=first.next_token)
    assert list(rest.collection_ids) == ["c3", "c4", "c5", "c6", "new"]
    assert fc.list_collections(max_results=0).collection_ids == tuple(names[:2] + names[3:] + ["new"])


@pytest.mark.sqlite_only
def test_bad_tokens_and_page_sizes(tmp_path):
    fc = FaceCollections(tmp_path)
    for n in ("a", "b", "c"):
        fc.create_collection(collection_id=n)
    token = fc.list_collections(max_results=1).next_token
    body, sig = token.split(".")
    for bad in ("forged-token", token + "x", body + ".AAAAAAAAAAAAAAAA", "." + sig, "a.b.c"):
        with pytest.raises(InvalidPaginationTokenError) as info:
            fc.list_collections(next_token=bad)
        assert info.value.aws_code == "InvalidPaginationTokenException"
    with pytest.raises(InvalidParameterError):
        fc.list_collections(next_token="x" * 256)
    # a token of another data dir (another signing key) is refused
    other = FaceCollections(tmp_path / "other")
    other.create_collection(collection_id="z")
    with pytest.raises(InvalidPaginationTokenError):
        other.list_collections(next_token=token)
    # a ListCollections token is not a ListFaces token
    with pytest.raises(InvalidPaginationTokenError):
        fc.list_faces(collection_id="a", next_token=token)
    for bad in (-1, 4097, 2.5, "10", True):
        with pytest.raises(InvalidParameterError):
            fc.list_collections(max_results=bad)


def test_delete_collection_removes_everything(fc):
    from tests.conftest import portrait_2014

    fc.index_faces(collection_id="c", image=portrait_2014("B000944").read_bytes())
    fc.create_user(collection_id="c", user_id="u")
    fc.checkpoint_index("c")
    snap = list((fc.data_dir / "index").glob("*.npz"))
    assert len(snap) == 1
    assert fc.delete_collection(collection_id="c").to_rekognition() == {"StatusCode": 200}
    assert not snap[0].exists()
    with pytest.raises(ResourceNotFoundError):
        fc.describe_collection(collection_id="c")
    with pytest.raises(ResourceNotFoundError):
        fc.delete_collection(collection_id="c")
    # re-created under the same name: empty, and a new identity
    fc.create_collection(collection_id="c")
    d = fc.describe_collection(collection_id="c")
    assert d.face_count == 0 and d.user_count == 0
    assert fc.list_faces(collection_id="c").faces == ()
    assert fc.verify_index("c")


@pytest.mark.sqlite_only
def test_database_url_names_the_sqlite_file_or_is_refused(tmp_path):
    db = tmp_path / "elsewhere" / "faces.sqlite3"
    fc = FaceCollections(tmp_path / "data", database_url=f"sqlite:///{db}")
    fc.create_collection(collection_id="x")
    assert db.exists() and not (tmp_path / "data" / "collections.sqlite3").exists()
    other = FaceCollections(tmp_path / "other", database_url=f"sqlite:///{db}")
    assert other.list_collections().collection_ids == ("x",)
    with pytest.raises(InvalidParameterError):
        FaceCollections(tmp_path / "data", database_url="mysql://db.example/faces")
