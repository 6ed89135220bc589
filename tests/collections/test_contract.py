"""The collections <-> service contract (docs/design.md): one method per operation, keyword
arguments named after the request members in snake_case, optional ones defaulting to None."""

import inspect

import botocore.session
import pytest
from botocore import xform_name

from faceaudit.collections import FaceCollections

OPERATIONS = [
    "CreateCollection", "DescribeCollection", "ListCollections", "DeleteCollection", "IndexFaces",
    "ListFaces", "DeleteFaces", "SearchFacesByImage", "SearchFaces", "CreateUser", "DeleteUser", "ListUsers",
    "AssociateFaces", "DisassociateFaces", "SearchUsers", "SearchUsersByImage",
]


@pytest.fixture(scope="module")
def model():
    return botocore.session.get_session().get_service_model("rekognition")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_method_matches_the_request_shape(model, operation):
    op = model.operation_model(operation)
    method = getattr(FaceCollections, xform_name(operation))
    params = inspect.signature(method).parameters
    members = op.input_shape.members
    required = set(op.input_shape.required_members)
    for name in members:
        p = params[xform_name(name)]
        assert p.kind == inspect.Parameter.KEYWORD_ONLY
        if name in required:
            assert p.default is inspect.Parameter.empty, name
        else:
            assert p.default is None, name
    extra = {n for n in params if n != "self"} - {xform_name(m) for m in members}
    assert extra <= {"model"}  # CreateCollection's pin: faceaudit's only extension


def conforms(shape, value, path="$"):
    """Problems of a response value against a botocore output shape (types and member names)."""
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        problems = [f"{path}.{k}: not a member" for k in value if k not in shape.members]
        for k, v in value.items():
            if k in shape.members:
                problems += conforms(shape.members[k], v, f"{path}.{k}")
        return problems
    if t == "list":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [p for i, v in enumerate(value) for p in conforms(shape.member, v, f"{path}[{i}]")]
    ok = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "timestamp": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "map": lambda v: isinstance(v, dict),
    }[t](value)
    return [] if ok else [f"{path}: {value!r} is not a {t}"]


def test_every_response_conforms_to_its_output_shape(model, fc):
    from tests.conftest import portrait_2014, portrait_2018, side_by_side

    img = side_by_side(portrait_2018("C000141"), portrait_2014("B000944"))
    docs = {
        "CreateCollection": fc.create_collection(collection_id="other", tags={"a": "b"}),
        "ListCollections": fc.list_collections(max_results=1),
        "IndexFaces": fc.index_faces(collection_id="c", image=img, max_faces=1, external_image_id="x"),
    }
    one = fc.index_faces(collection_id="c", image=portrait_2014("C000141").read_bytes()).face_records[0].face.face_id
    fc.create_user(collection_id="c", user_id="u")
    docs.update({
        "DescribeCollection": fc.describe_collection(collection_id="c"),
        "AssociateFaces": fc.associate_faces(collection_id="c", user_id="u", face_ids=[one, one.replace("a", "b")]),
        "ListFaces": fc.list_faces(collection_id="c", max_results=1),
        "SearchFacesByImage": fc.search_faces_by_image(collection_id="c", image=img, face_match_threshold=0),
        "SearchFaces": fc.search_faces(collection_id="c", face_id=one, face_match_threshold=0),
        "ListUsers": fc.list_users(collection_id="c"),
        "SearchUsers": fc.search_users(collection_id="c", face_id=one, user_match_threshold=0),
        "SearchUsersByImage": fc.search_users_by_image(collection_id="c", image=img, user_match_threshold=0),
        "DeleteFaces": fc.delete_faces(collection_id="c", face_ids=[one]),
        "DisassociateFaces": fc.disassociate_faces(collection_id="c", user_id="u", face_ids=[one]),
        "CreateUser": fc.create_user(collection_id="c", user_id="v"),
        "DeleteUser": fc.delete_user(collection_id="c", user_id="v"),
        "DeleteCollection": fc.delete_collection(collection_id="other"),
    })
    assert set(docs) == set(OPERATIONS)
    for operation, result in docs.items():
        doc = result.to_rekognition()
        assert conforms(model.operation_model(operation).output_shape, doc) == [], operation
    assert docs["SearchUsersByImage"].to_rekognition()["UnsearchedFaces"][0]["Reasons"] == ["FACE_NOT_LARGEST"]
