"""The Users API."""

import uuid

import pytest

from faceaudit import (
    ConflictError,
    IdempotentParameterMismatchError,
    InvalidParameterError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
)
from faceaudit.engine import get_model
from tests.conftest import blank_image, meds, portrait_2014, portrait_2018, side_by_side

pytestmark = pytest.mark.usefixtures("on_both_databases")  # SQLite and PostgreSQL

SFACE = get_model("sface").version


@pytest.fixture
def people(fc):
    """Collection "c" with 2014 and 2018 portraits of three members: {"C000141-2014": FaceId, ...}."""
    ids = {}
    for m in ("C000141", "C000127", "B000944"):
        for year, path in (("2014", portrait_2014(m)), ("2018", portrait_2018(m))):
            r = fc.index_faces(collection_id="c", image=path.read_bytes(), external_image_id=f"{m}-{year}",
                               quality_filter="NONE")
            ids[f"{m}-{year}"] = r.face_records[0].face.face_id
    return fc, ids


def test_create_list_delete_users(fc):
    assert fc.create_user(collection_id="c", user_id="alice").to_rekognition() == {}
    fc.create_user(collection_id="c", user_id="bob:2")
    with pytest.raises(ConflictError) as info:
        fc.create_user(collection_id="c", user_id="alice")
    assert info.value.aws_code == "ConflictException"
    assert fc.describe_collection(collection_id="c").user_count == 2
    r = fc.list_users(collection_id="c")
    assert r.to_rekognition() == {"Users": [{"UserId": "alice", "UserStatus": "CREATED"},
                                            {"UserId": "bob:2", "UserStatus": "CREATED"}]}
    page = fc.list_users(collection_id="c", max_results=1)
    assert [u.user_id for u in page.users] == ["alice"] and page.next_token
    rest = fc.list_users(collection_id="c", max_results=1, next_token=page.next_token)
    assert [u.user_id for u in rest.users] == ["bob:2"] and rest.next_token is None
    assert fc.delete_user(collection_id="c", user_id="alice").to_rekognition() == {}
    with pytest.raises(ResourceNotFoundError):
        fc.delete_user(collection_id="c", user_id="alice")
    assert fc.describe_collection(collection_id="c").user_count == 1
    with pytest.raises(ResourceNotFoundError):
        fc.create_user(collection_id="nope", user_id="x")
    with pytest.raises(ResourceNotFoundError):
        fc.list_users(collection_id="nope")
    for bad in ("", "a b", "x" * 129, None):
        with pytest.raises(InvalidParameterError):
            fc.create_user(collection_id="c", user_id=bad)
    for bad in (0, 501):
        with pytest.raises(InvalidParameterError):
            fc.list_users(collection_id="c", max_results=bad)


def test_client_request_token_makes_writes_idempotent(fc):
    fc.create_user(collection_id="c", user_id="bob", client_request_token="tok-1")
    fc.create_user(collection_id="c", user_id="bob", client_request_token="tok-1")  # a retry: same answer
    with pytest.raises(ConflictError):
        fc.create_user(collection_id="c", user_id="bob", client_request_token="tok-2")
    with pytest.raises(IdempotentParameterMismatchError) as info:
        fc.create_user(collection_id="c", user_id="carol", client_request_token="tok-1")
    assert info.value.aws_code == "IdempotentParameterMismatchException"
    with pytest.raises(InvalidParameterError):
        fc.create_user(collection_id="c", user_id="bob", client_request_token="bad token!")
    fc.delete_user(collection_id="c", user_id="bob", client_request_token="del-1")
    fc.delete_user(collection_id="c", user_id="bob", client_request_token="del-1")
    assert fc.list_users(collection_id="c").users == ()


def test_associate_faces(people):
    fc, ids = people
    fc.create_user(collection_id="c", user_id="alice")
    fc.create_user(collection_id="c", user_id="bob")
    missing = str(uuid.uuid4())
    # a user without faces takes any faces
    r = fc.associate_faces(collection_id="c", user_id="alice",
                           face_ids=[ids["C000141-2018"], ids["C000141-2014"], missing])
    assert r.to_rekognition() == {
        "AssociatedFaces": [{"FaceId": ids["C000141-2018"]}, {"FaceId": ids["C000141-2014"]}],
        "UnsuccessfulFaceAssociations": [{"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}],
        "UserStatus": "ACTIVE",
    }
    # already this user's: ignored; another user's: refused
    r = fc.associate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000141-2018"]])
    assert r.associated_faces == () and r.unsuccessful_face_associations == ()
    r = fc.associate_faces(collection_id="c", user_id="bob", face_ids=[ids["C000141-2014"]])
    assert r.to_rekognition()["UnsuccessfulFaceAssociations"] == [
        {"FaceId": ids["C000141-2014"], "UserId": "alice", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
    ]
    assert r.user_status == "CREATED"
    # once a user has faces, a new one must match them (UserMatchThreshold, default 75)
    r = fc.associate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000127-2018"]])
    (u,) = r.unsuccessful_face_associations
    assert u.reasons == ("LOW_MATCH_CONFIDENCE",) and u.confidence < 75
    assert set(u.to_rekognition()) == {"FaceId", "Confidence", "Reasons"}
    r = fc.associate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000127-2018"]],
                           user_match_threshold=0)
    assert r.associated_faces == (ids["C000127-2018"],)
    listed = fc.list_faces(collection_id="c", user_id="alice")
    assert {f.face_id for f in listed.faces} == {ids["C000141-2018"], ids["C000141-2014"], ids["C000127-2018"]}
    assert {f.user_id for f in listed.faces} == {"alice"}
    assert listed.to_rekognition()["Faces"][0]["UserId"] == "alice"
    with pytest.raises(ResourceNotFoundError):
        fc.associate_faces(collection_id="c", user_id="nobody", face_ids=[missing])
    for bad in (dict(face_ids=[missing] * 101), dict(face_ids=[]), dict(user_match_threshold=101)):
        with pytest.raises(InvalidParameterError):
            fc.associate_faces(**{"collection_id": "c", "user_id": "alice", "face_ids": [missing], **bad})


def test_each_face_is_judged_by_its_own_similarity_in_any_order(people):
    """The faces of one AssociateFaces call are checked each against its own similarity, whatever
    the order of FaceIds (here: the later-indexed, non-matching face first)."""
    fc, ids = people
    fc.create_user(collection_id="c", user_id="carol")
    fc.associate_faces(collection_id="c", user_id="carol", face_ids=[ids["C000141-2014"]])
    r = fc.associate_faces(collection_id="c", user_id="carol",
                           face_ids=[ids["C000127-2014"], ids["C000141-2018"]])
    assert r.associated_faces == (ids["C000141-2018"],)
    (u,) = r.unsuccessful_face_associations
    assert u.face_id == ids["C000127-2014"] and u.reasons == ("LOW_MATCH_CONFIDENCE",) and u.confidence < 75


def test_a_user_holds_at_most_100_faces(fc, sface_engine):
    import numpy as np

    from tests.collections.conftest import synthetic_image

    rng = np.random.default_rng(1)
    r = fc._store_prepared("c", synthetic_image(101, sface_engine.model_version, rng))
    ids = [x.face.face_id for x in r.face_records]
    fc.create_user(collection_id="c", user_id="big")
    fc.associate_faces(collection_id="c", user_id="big", face_ids=ids[:100])
    with pytest.raises(ServiceQuotaExceededError):
        fc.associate_faces(collection_id="c", user_id="big", face_ids=ids[100:], user_match_threshold=0)


def test_disassociate_and_delete_user(people):
    fc, ids = people
    for u in ("alice", "bob"):
        fc.create_user(collection_id="c", user_id=u)
    fc.associate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000141-2018"], ids["C000141-2014"]])
    fc.associate_faces(collection_id="c", user_id="bob", face_ids=[ids["C000127-2018"]])
    missing = str(uuid.uuid4())
    r = fc.disassociate_faces(collection_id="c", user_id="alice",
                              face_ids=[ids["C000141-2018"], ids["C000127-2018"], ids["B000944-2018"], missing])
    assert r.to_rekognition() == {
        "DisassociatedFaces": [{"FaceId": ids["C000141-2018"]}],
        "UnsuccessfulFaceDisassociations": [
            {"FaceId": ids["C000127-2018"], "UserId": "bob", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]},
            {"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]},
        ],
        "UserStatus": "ACTIVE",
    }
    r = fc.disassociate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000141-2014"]],
                              client_request_token="d1")
    assert r.user_status == "CREATED"
    again = fc.disassociate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000141-2014"]],
                                  client_request_token="d1")
    assert again == r  # the first response, replayed
    with pytest.raises(ResourceNotFoundError):
        fc.disassociate_faces(collection_id="c", user_id="nobody", face_ids=[missing])
    # deleting a user keeps its faces, disassociated
    fc.delete_user(collection_id="c", user_id="bob")
    (face,) = fc.list_faces(collection_id="c", face_ids=[ids["C000127-2018"]]).faces
    assert face.user_id is None
    assert fc.delete_faces(collection_id="c", face_ids=[ids["C000127-2018"]]).deleted_faces == (ids["C000127-2018"],)


def test_search_users(people):
    fc, ids = people
    for u, m in (("alice", "C000141"), ("carol", "C000127"), ("bert", "B000944")):
        fc.create_user(collection_id="c", user_id=u)
        fc.associate_faces(collection_id="c", user_id=u, face_ids=[ids[f"{m}-2014"]])
    fc.create_user(collection_id="c", user_id="empty")
    r = fc.search_users(collection_id="c", face_id=ids["C000141-2018"])
    rk = r.to_rekognition()
    assert set(rk) == {"UserMatches", "FaceModelVersion", "SearchedFace"}
    assert rk["SearchedFace"] == {"FaceId": ids["C000141-2018"]}
    assert [m["User"] for m in rk["UserMatches"]] == [{"UserId": "alice", "UserStatus": "ACTIVE"}]
    assert rk["UserMatches"][0]["Similarity"] >= 80
    # threshold 0: every user with faces, best first; MaxUsers caps
    r = fc.search_users(collection_id="c", face_id=ids["C000141-2018"], user_match_threshold=0)
    assert next(m.user_id for m in r.user_matches) == "alice" and len(r.user_matches) == 3
    sims = [m.similarity for m in r.user_matches]
    assert sims == sorted(sims, reverse=True)
    assert len(fc.search_users(collection_id="c", face_id=ids["C000141-2018"], user_match_threshold=0,
                               max_users=2).user_matches) == 2
    # by user: the user itself is not a match; its own face is not counted for others
    fc.associate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000141-2018"]])
    r = fc.search_users(collection_id="c", user_id="alice", user_match_threshold=0)
    assert "alice" not in [m.user_id for m in r.user_matches] and len(r.user_matches) == 2
    assert r.to_rekognition()["SearchedUser"] == {"UserId": "alice"}
    assert fc.search_users(collection_id="c", user_id="empty").user_matches == ()
    with pytest.raises(InvalidParameterError):
        fc.search_users(collection_id="c")
    with pytest.raises(InvalidParameterError):
        fc.search_users(collection_id="c", user_id="alice", face_id=ids["C000141-2018"])
    with pytest.raises(ResourceNotFoundError):
        fc.search_users(collection_id="c", user_id="nobody")
    with pytest.raises(ResourceNotFoundError):
        fc.search_users(collection_id="c", face_id=str(uuid.uuid4()))
    with pytest.raises(InvalidParameterError):
        fc.search_users(collection_id="c", user_id="alice", max_users=501)


def test_search_users_by_image(people):
    fc, ids = people
    fc.create_user(collection_id="c", user_id="alice")
    fc.associate_faces(collection_id="c", user_id="alice", face_ids=[ids["C000141-2014"]])
    r = fc.search_users_by_image(collection_id="c", image=portrait_2018("C000141").read_bytes())
    rk = r.to_rekognition()
    assert set(rk) == {"UserMatches", "FaceModelVersion", "SearchedFace", "UnsearchedFaces"}
    assert rk["UserMatches"][0]["User"]["UserId"] == "alice" and rk["UnsearchedFaces"] == []
    assert set(rk["SearchedFace"]["FaceDetail"]) >= {"BoundingBox", "Confidence"}
    # no face: an empty list, not an error
    empty = fc.search_users_by_image(collection_id="c", image=blank_image())
    assert empty.to_rekognition() == {"UserMatches": [], "FaceModelVersion": get_model("sface").numeric_version,
                                      "UnsearchedFaces": []}
    # several faces: the largest is searched, the others are reported
    img = side_by_side(portrait_2018("F000062"), portrait_2014("C000141"))
    r = fc.search_users_by_image(collection_id="c", image=img)
    assert r.user_matches[0].user_id == "alice"
    assert [u.reasons for u in r.unsearched_faces] == [("FACE_NOT_LARGEST",)]
    assert set(r.to_rekognition()["UnsearchedFaces"][0]) == {"FaceDetails", "Reasons"}
    # the only face fails the quality bar: reported, nothing searched
    r = fc.search_users_by_image(collection_id="c", image=meds("S006-02-t10_01").read_bytes(),
                                 quality_filter="HIGH")
    assert r.user_matches == () and r.searched_face_detail is None
    assert r.unsearched_faces[0].reasons == ("LOW_SHARPNESS",)
    with pytest.raises(ResourceNotFoundError):
        fc.search_users_by_image(collection_id="nope", image=blank_image())
