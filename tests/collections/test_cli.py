"""`faceaudit collection|faces|index|search|users`: JSON is the Rekognition response, text is a table."""

import json

import pytest

from faceaudit.cli import main
from faceaudit.collections import CANDIDATE_NOTICE
from tests.conftest import DATA, meds, portrait_2014, portrait_2018


@pytest.fixture
def run(tmp_path, capsys):
    data = str(tmp_path / "data")

    def _run(*argv, code=0):
        rc = main([*argv, "--data-dir", data])
        out, err = capsys.readouterr()
        assert rc == code, (argv, out, err)
        return out, err

    return _run


def js(out):
    lines = out.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_collection_commands(run):
    r = js(run("collection", "create", "g", "--tag", "team=a", "--json")[0])
    assert set(r) == {"StatusCode", "CollectionArn", "FaceModelVersion"}
    out, _ = run("collection", "create", "h")
    assert "created h" in out
    assert js(run("collection", "list", "--json")[0])["CollectionIds"] == ["g", "h"]
    r = js(run("collection", "list", "--json", "--max-results", "1")[0])
    assert r["CollectionIds"] == ["g"] and r["NextToken"]
    r2 = js(run("collection", "list", "--json", "--next-token", r["NextToken"])[0])
    assert r2["CollectionIds"] == ["h"]
    d = js(run("collection", "describe", "g", "--json")[0])
    assert set(d) == {"FaceCount", "FaceModelVersion", "CollectionARN", "CreationTimestamp", "UserCount"}
    out, _ = run("collection", "describe", "g")
    assert "FaceCount" in out and "sface" in out
    assert js(run("collection", "delete", "h", "--json")[0]) == {"StatusCode": 200}
    _, err = run("collection", "describe", "h", code=4)
    assert err.startswith("faceaudit: ResourceNotFoundException:")
    _, err = run("collection", "create", "g", code=5)
    assert "ResourceAlreadyExistsException" in err
    _, err = run("collection", "create", "bad name", code=2)
    assert "InvalidParameterException" in err
    run("collection", "list", "--next-token", "forged", code=2)


def test_index_search_faces_users(run):
    run("collection", "create", "g")
    r = js(run("index", "g", str(portrait_2014("C000141")), "--external-image-id", "C000141", "--json")[0])
    assert set(r) == {"FaceRecords", "FaceModelVersion", "UnindexedFaces"} and len(r["FaceRecords"]) == 1
    face_id = r["FaceRecords"][0]["Face"]["FaceId"]
    out, _ = run("index", "g", str(portrait_2014("C000141")), "--external-image-id", "C000141")
    assert "1 face(s) indexed" in out  # one image is IndexFaces: indexed again, as Rekognition does
    out, err = run("index", "g", str(DATA / "congress2014"), "--workers", "1")
    assert "8 images: 8 indexed (8 faces), 0 already indexed" in out  # ExternalImageId C000141.jpg: new
    assert "img/s" not in err  # the progress bar is drawn only when stderr is a terminal
    rep = js(run("index", "g", str(DATA / "congress2014"), "--workers", "1", "--json", "--no-progress")[0])
    assert rep["AlreadyIndexed"] == 8 and rep["IndexedImages"] == 0
    # search: JSON is SearchFacesByImage's response; text is a table with the notice
    probe = str(portrait_2018("C000141"))
    r = js(run("search", "g", probe, "--json")[0])
    assert set(r) == {"SearchedFaceBoundingBox", "SearchedFaceConfidence", "FaceMatches", "FaceModelVersion"}
    assert r["FaceMatches"][0]["Face"]["ExternalImageId"] in ("C000141", "C000141.jpg")
    out, _ = run("search", "g", probe, "--threshold", "0", "--max-faces", "3")
    assert "3 candidate(s)" in out and CANDIDATE_NOTICE in out and "similarity" in out
    out, _ = run("search", "g", str(meds("S001-01-t10_01")), "--threshold", "90")
    assert "threshold 90 (a stranger matches 1 in 1,000,000 comparisons); 0 candidate(s)" in out
    r = js(run("search", "g", "--face-id", face_id, "--threshold", "0", "--json")[0])
    assert r["SearchedFaceId"] == face_id and face_id not in [m["Face"]["FaceId"] for m in r["FaceMatches"]]
    run("search", "g", code=2)  # neither IMAGE nor --face-id
    # faces
    r = js(run("faces", "list", "g", "--json", "--max-results", "2")[0])
    assert len(r["Faces"]) == 2 and r["NextToken"] and r["FaceModelVersion"]
    out, _ = run("faces", "list", "g", "--labels")
    assert "file=C000174.jpg" in out
    # users
    assert js(run("users", "create", "g", "alice", "--json")[0]) == {}
    r = js(run("users", "associate", "g", "alice", face_id, "--json")[0])
    assert r["AssociatedFaces"] == [{"FaceId": face_id}] and r["UserStatus"] == "ACTIVE"
    assert js(run("users", "list", "g", "--json")[0]) == {"Users": [{"UserId": "alice", "UserStatus": "ACTIVE"}]}
    out, _ = run("users", "search", "g", "--image", probe)
    assert "alice" in out and CANDIDATE_NOTICE in out
    r = js(run("users", "search", "g", "--face-id", face_id, "--threshold", "0", "--json")[0])
    assert r["SearchedFace"] == {"FaceId": face_id}
    out, _ = run("faces", "delete", "g", face_id)
    assert "ASSOCIATED_TO_AN_EXISTING_USER" in out
    r = js(run("users", "disassociate", "g", "alice", face_id, "--json")[0])
    assert r["DisassociatedFaces"] == [{"FaceId": face_id}]
    assert js(run("faces", "delete", "g", face_id, "--json")[0])["DeletedFaces"] == [face_id]
    assert js(run("users", "delete", "g", "alice", "--json")[0]) == {}
    run("users", "delete", "g", "alice", code=4)


def test_index_create_flag_and_manifest(run, tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("image,subject,sex\n" + "".join(
        f"{p},congress:{p.stem},F\n" for p in sorted((DATA / "congress2018").glob("*.jpg"))[:3]))
    out, _ = run("index", "new", str(m), "--create", "--workers", "1", "--no-progress")
    assert "3 images: 3 indexed" in out
    r = js(run("faces", "list", "new", "--json")[0])
    assert sorted(f["ExternalImageId"] for f in r["Faces"])[0].startswith("congress:")
    run("index", "missing", str(m), code=4)


def test_cli_searches_are_policed_and_logged(run, tmp_path):
    from faceaudit.accountability import Accountability, CallerContext, ThresholdPolicy

    run("collection", "create", "g")
    run("index", "g", str(portrait_2014("C000141")), "--external-image-id", "C000141")
    probe = str(portrait_2018("C000141"))
    run("search", "g", probe, "--case-reference", "case-7", "--purpose", "test")
    run("users", "create", "g", "u")
    run("users", "search", "g", "--user-id", "u")
    acc = Accountability(tmp_path / "data")
    searches = [r for r in acc.log.records() if r.kind == "search"]
    assert [r.data["operation"] for r in searches] == ["SearchFacesByImage", "SearchUsers"]
    first = searches[0].data
    assert first["collection_id"] == "g" and first["threshold"] == 80.0 and first["max_faces"] == 80
    assert first["case_reference"] == "case-7"
    assert [c["external_image_id"] for c in first["candidates"]] == ["C000141"]
    # a collection's threshold policy binds the CLI too
    acc.set_policy(ThresholdPolicy("g", min_face_match_threshold=99), CallerContext("admin", role="admin"))
    _, err = run("search", "g", probe, code=6)
    assert "AccessDeniedException" in err
    run("search", "g", probe, "--threshold", "99")


def test_collection_create_index_option(run, tmp_path):
    from faceaudit.collections import INDEX_TAG, FaceCollections

    run("collection", "create", "big", "--index", "hnsw")
    run("collection", "create", "small", "--index", "flat", "--tag", "team=a")
    _, err = run("collection", "create", "bad", "--tag", f"{INDEX_TAG}=ivf", code=2)
    assert "InvalidParameterException" in err and INDEX_TAG in err
    fc = FaceCollections(tmp_path / "data")
    conn = fc._store.connection()
    assert fc._store.collection_tags(conn, fc._collection_row("big").rowid) == {INDEX_TAG: "hnsw"}
    assert fc._store.collection_tags(conn, fc._collection_row("small").rowid) == {"team": "a", INDEX_TAG: "flat"}
