"""The accountability layer through `faceaudit serve`'s app with real boto3 clients."""

from __future__ import annotations

import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from faceaudit.accountability import SearchLog
from tests.conftest import portrait_2014, portrait_2018
from tests.service.conftest import REGION, client, create_key


@pytest.fixture(scope="module")
def acc_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("acc-service")


@pytest.fixture(scope="module")
def keys(acc_dir):
    people = {"admin": "Ada", "operator": "Oscar", "auditor": "Aud", "reviewer": "Rita"}
    return {role: create_key(acc_dir, role, people[role]) for role in people} | {
        "operator2": create_key(acc_dir, "operator", "Olga"),
        "olga-second-key": create_key(acc_dir, "reviewer", "Olga"),
    }


@pytest.fixture(scope="module")
def url(acc_dir, keys):
    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    app = ServiceApp(ServiceConfig(acc_dir, rate_limit=10_000, strict_responses=True),
                     extension=AccountabilityExtension(acc_dir))
    srv, thread, base = start_in_thread(app)
    yield base
    stop_thread_server(srv, thread)


def native(url, key, operation, params):
    """A SigV4-signed call to one of faceaudit's own operations."""
    import urllib.request

    body = json.dumps(params).encode()
    req = AWSRequest("POST", url + "/", data=body, headers={
        "X-Amz-Target": f"FaceAuditService.{operation}",
        "Content-Type": "application/x-amz-json-1.1",
    })
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "rekognition", REGION).add_auth(req)
    prepared = urllib.request.Request(url + "/", data=body, headers=dict(req.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(prepared, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def with_case(rek, case: str, purpose: str = "investigation"):
    def add(request, **_):
        request.headers["x-faceaudit-case-reference"] = case
        request.headers["x-faceaudit-purpose"] = purpose

    rek.meta.events.register("before-sign.rekognition.*", add)
    return rek


@pytest.fixture(scope="module")
def gallery(url, keys):
    rek = client(url, keys["operator"])
    rek.create_collection(CollectionId="lineup")
    for b in ("B000944", "C000141", "C000127"):
        rek.index_faces(CollectionId="lineup", Image={"Bytes": portrait_2014(b).read_bytes()},
                        ExternalImageId=b)
    return "lineup"


def test_search_is_logged_with_case_and_candidates(url, keys, gallery, acc_dir):
    rek = with_case(client(url, keys["operator"]), "case-2026-001")
    probe = portrait_2018("B000944").read_bytes()
    resp = rek.search_faces_by_image(CollectionId=gallery, Image={"Bytes": probe})
    assert resp["FaceMatches"][0]["Face"]["ExternalImageId"] == "B000944"
    rec = [r for r in SearchLog(acc_dir / "search-log.jsonl").records() if r.kind == "search"][-1]
    d = rec.data
    assert d["operation"] == "SearchFacesByImage" and d["collection_id"] == gallery
    assert d["access_key_id"] == keys["operator"]["AccessKeyId"] and d["case_reference"] == "case-2026-001"
    assert d["threshold"] == 80.0 and d["max_faces"] == 80 and d["model_version"]
    import hashlib

    assert d["probe_sha256"] == hashlib.sha256(probe).hexdigest()
    assert d["candidates"][0]["face_id"] == resp["FaceMatches"][0]["Face"]["FaceId"]


def test_policy_set_by_admin_only_and_enforced_and_logged(url, keys, gallery, acc_dir):
    status, doc = native(url, keys["operator"], "PutCollectionPolicy",
                         {"CollectionId": gallery, "MinFaceMatchThreshold": 99})
    assert status == 400 and doc["__type"] == "AccessDeniedException"
    status, doc = native(url, keys["admin"], "PutCollectionPolicy",
                         {"CollectionId": gallery, "MinFaceMatchThreshold": 99, "RequireCaseReference": True,
                          "Purpose": "law-enforcement"})
    assert status == 200 and doc["Policy"]["MinFaceMatchThreshold"] == 99
    rek = with_case(client(url, keys["operator"]), "case-7")
    probe = portrait_2018("C000141").read_bytes()
    with pytest.raises(rek.exceptions.AccessDeniedException, match="at least 99"):
        rek.search_faces_by_image(CollectionId=gallery, Image={"Bytes": probe})
    plain = client(url, keys["operator"])
    with pytest.raises(plain.exceptions.AccessDeniedException, match="case reference"):
        plain.search_faces_by_image(CollectionId=gallery, Image={"Bytes": probe}, FaceMatchThreshold=99)
    rek.search_faces_by_image(CollectionId=gallery, Image={"Bytes": probe}, FaceMatchThreshold=99.5)
    refused = [r for r in SearchLog(acc_dir / "search-log.jsonl").records() if r.kind == "refused"]
    assert refused[-2].data["threshold"] == 80.0 and "at least 99" in refused[-2].data["reason"]
    native(url, keys["admin"], "PutCollectionPolicy", {"CollectionId": gallery})  # back to no policy
    assert SearchLog(acc_dir / "search-log.jsonl").verify().ok


def test_auditor_cannot_list_or_search_collections(url, keys, gallery):
    rek = client(url, keys["auditor"])
    with pytest.raises(rek.exceptions.AccessDeniedException):
        rek.list_collections()
    with pytest.raises(rek.exceptions.AccessDeniedException):
        rek.list_faces(CollectionId=gallery)
    with pytest.raises(rek.exceptions.AccessDeniedException):
        rek.search_faces_by_image(CollectionId=gallery, Image={"Bytes": portrait_2018("C000141").read_bytes()})
    with pytest.raises(rek.exceptions.AccessDeniedException):
        rek.compare_faces(SourceImage={"Bytes": portrait_2018("C000141").read_bytes()},
                          TargetImage={"Bytes": portrait_2014("C000141").read_bytes()})
    assert "FaceDetails" in rek.detect_faces(Image={"Bytes": portrait_2018("C000141").read_bytes()})
    status, doc = native(url, keys["auditor"], "ListLeads", {})
    assert status == 400 and doc["__type"] == "AccessDeniedException"


def test_lead_needs_two_distinct_people_not_the_searcher_over_http(url, keys, gallery):
    """Finding 4: the searcher confirmed their own lead; one person with two keys counted twice."""
    rek = with_case(client(url, keys["operator"]), "case-9")
    rek.search_faces_by_image(CollectionId=gallery, Image={"Bytes": portrait_2018("C000127").read_bytes()},
                              FaceMatchThreshold=90)
    _, doc = native(url, keys["reviewer"], "ListLeads", {"Status": "pending", "CaseReference": "case-9"})
    (lead,) = doc["Leads"]
    assert "not an identification" in lead["Notice"] and lead["RequestedByPerson"] == "Oscar"
    assert lead["Rank"] == 1 and lead["GallerySize"] == 3
    status, doc = native(url, keys["operator"], "DecideLead", {"LeadId": lead["LeadId"], "Decision": "confirm"})
    assert status == 400 and doc["__type"] == "AccessDeniedException" and "ran the search" in doc["message"]
    _, doc = native(url, keys["operator2"], "DecideLead", {"LeadId": lead["LeadId"], "Decision": "confirm"})
    assert doc["Lead"]["Status"] == "pending"
    status, doc = native(url, keys["olga-second-key"], "DecideLead", {"LeadId": lead["LeadId"], "Decision": "confirm"})
    assert status == 400 and doc["__type"] == "ConflictException" and "different person" in doc["message"]
    _, doc = native(url, keys["reviewer"], "DecideLead", {"LeadId": lead["LeadId"], "Decision": "confirm"})
    assert doc["Lead"]["Status"] == "confirmed"
    assert [d["Reviewer"] for d in doc["Lead"]["Decisions"]] == ["Olga", "Rita"]


def test_reviewer_role_decides_but_never_searches(url, keys, gallery):
    rek = client(url, keys["reviewer"])
    with pytest.raises(rek.exceptions.AccessDeniedException, match="never search"):
        rek.search_faces_by_image(CollectionId=gallery, Image={"Bytes": portrait_2018("C000141").read_bytes()})
    with pytest.raises(rek.exceptions.AccessDeniedException):
        rek.list_faces(CollectionId=gallery)
    status, _ = native(url, keys["reviewer"], "ListLeads", {})
    assert status == 200


def test_audit_traffic_makes_no_leads_but_is_logged(url, keys, gallery, acc_dir):
    """Finding 9: an audit's temporary collection filled the review queue. Issue 22 M3: the
    audit header is honoured only from auditor keys (it was an operator's key here before)."""
    def audit(request, **_):
        request.headers["x-faceaudit-audit"] = "1"

    rek = client(url, keys["auditor"])
    rek.meta.events.register("before-sign.rekognition.*", audit)
    rek.create_collection(CollectionId="faceaudit-audit-test")
    rek.index_faces(CollectionId="faceaudit-audit-test", Image={"Bytes": portrait_2014("C000141").read_bytes()})
    rek.search_faces_by_image(CollectionId="faceaudit-audit-test",
                              Image={"Bytes": portrait_2018("C000141").read_bytes()})
    rec = [r for r in SearchLog(acc_dir / "search-log.jsonl").records() if r.kind == "search"][-1]
    assert rec.data["audit"] is True and rec.data["candidates"]
    _, doc = native(url, keys["admin"], "ListLeads", {"CollectionId": "faceaudit-audit-test"})
    assert doc["Leads"] == []
    # the header does not open a working collection to the auditor, nor make its searches audit traffic
    with pytest.raises(rek.exceptions.AccessDeniedException, match="created for an audit"):
        rek.search_faces_by_image(CollectionId="lineup", Image={"Bytes": portrait_2018("C000141").read_bytes()})
    rek.delete_collection(CollectionId="faceaudit-audit-test")


def test_compare_faces_logged(url, keys, acc_dir):
    rek = client(url, keys["operator"])
    rek.compare_faces(SourceImage={"Bytes": portrait_2018("C000141").read_bytes()},
                      TargetImage={"Bytes": portrait_2014("C000141").read_bytes()}, SimilarityThreshold=85)
    rec = [r for r in SearchLog(acc_dir / "search-log.jsonl").records() if r.kind == "search"][-1]
    assert rec.data["operation"] == "CompareFaces" and rec.data["threshold"] == 85.0
    assert rec.data["collection_id"] is None and len(rec.data["candidates"]) == 1


def test_native_bad_input(url, keys):
    status, doc = native(url, keys["admin"], "PutCollectionPolicy", {"CollectionId": "x", "MinFaceMatchThreshold": 120})
    assert status == 400 and doc["__type"] == "InvalidParameterException"
    status, doc = native(url, keys["admin"], "NoSuchThing", {})
    assert status == 400 and doc["__type"] == "UnknownOperationException"
    status, doc = native(url, keys["admin"], "GetLead", {"LeadId": "nope"})
    assert status == 400 and doc["__type"] == "ResourceNotFoundException"


def test_associate_faces_is_an_identification_policy_checked_and_logged(url, keys, acc_dir):
    """Finding 1: AssociateFaces(UserMatchThreshold=100) ranked a gallery without a trace."""
    admin, oper = client(url, keys["admin"]), client(url, keys["operator"])
    oper.create_collection(CollectionId="assoc")
    gallery = [oper.index_faces(CollectionId="assoc", Image={"Bytes": portrait_2014(b).read_bytes()},
                                ExternalImageId=b)["FaceRecords"][0]["Face"]["FaceId"]
               for b in ("B000944", "C000141", "C000127")]
    probe = oper.index_faces(CollectionId="assoc", Image={"Bytes": portrait_2018("C000141").read_bytes()},
                             ExternalImageId="probe")["FaceRecords"][0]["Face"]["FaceId"]
    status, _ = native(url, keys["admin"], "PutCollectionPolicy", {
        "CollectionId": "assoc", "MinFaceMatchThreshold": 99, "RequireCaseReference": True})
    assert status == 200
    oper.create_user(CollectionId="assoc", UserId="throwaway")
    with pytest.raises(oper.exceptions.AccessDeniedException, match="case reference"):
        oper.associate_faces(CollectionId="assoc", UserId="throwaway", FaceIds=[probe], UserMatchThreshold=100)
    log = SearchLog(acc_dir / "search-log.jsonl")
    refused = [r for r in log.records() if r.kind == "refused"][-1]
    assert refused.data["operation"] == "AssociateFaces" and refused.data["collection_id"] == "assoc"

    cased = with_case(client(url, keys["operator"]), "case-assoc")
    cased.associate_faces(CollectionId="assoc", UserId="throwaway", FaceIds=[probe], UserMatchThreshold=100)
    resp = cased.associate_faces(CollectionId="assoc", UserId="throwaway", FaceIds=gallery,
                                 UserMatchThreshold=100)
    # issue 22 M4 (a deliberate change): confidences below the policy's minimum (99) are withheld
    # from the response; the log keeps every one, marked withheld
    unsuccessful = {u["FaceId"]: u for u in resp["UnsuccessfulFaceAssociations"]}
    assert len(unsuccessful) >= 2 and set(unsuccessful) | {f["FaceId"] for f in resp["AssociatedFaces"]} == set(gallery)
    assert all(u.get("Confidence", 100) >= 99 for u in unsuccessful.values())
    rec = [r for r in log.records() if r.kind == "search"][-1]
    assert rec.data["operation"] == "AssociateFaces" and rec.data["case_reference"] == "case-assoc"
    assert rec.data["probe_user_id"] == "throwaway" and rec.data["max_faces"] == 3
    assert {c["face_id"] for c in rec.data["candidates"]} == set(unsuccessful)
    # "withheld" is written only when true; the mate may score 99 or more on today's scale (kept)
    assert all(c["below_threshold"] and c.get("withheld", False) == (c["similarity"] < 99)
               for c in rec.data["candidates"])
    assert log.verify().ok
    admin.delete_collection(CollectionId="assoc")


def test_one_rule_decides_what_is_an_identification():
    from faceaudit.accountability import identification, identification_operations
    from faceaudit.service._model import OPERATIONS, service_model

    # StartFaceSearch / GetFaceSearch (stored video) are identifications by the same rule; the
    # extension logs a video search per person found when its job runs (accountability/_video.py)
    assert set(identification_operations(OPERATIONS)) == {
        "SearchFaces", "SearchFacesByImage", "SearchUsers", "SearchUsersByImage", "CompareFaces",
        "AssociateFaces", "StartFaceSearch", "GetFaceSearch"}
    # operations not served yet are classified by the same rule (celebrities)
    everything = set(identification_operations(service_model().operation_names))
    assert {"StartFaceSearch", "GetFaceSearch", "RecognizeCelebrities"} <= everything
    assert identification("DetectFaces") is None and identification("IndexFaces") is None
    associate, search = identification("AssociateFaces"), identification("SearchFaces")
    assert associate is not None and search is not None
    assert associate.max_candidates({"FaceIds": ["a", "b"]}) == 2
    assert search.threshold({}) == 80.0


def test_search_by_face_id_keeps_what_was_searched(url, keys, acc_dir):
    """Finding 8: SearchFaces by FaceId kept no probe image; after DeleteFaces nothing showed it."""
    from faceaudit.accountability import Accountability

    rek = with_case(client(url, keys["operator"]), "case-fid")
    rek.create_collection(CollectionId="byface")
    ids = [rek.index_faces(CollectionId="byface", Image={"Bytes": img}, ExternalImageId=name)
           ["FaceRecords"][0]["Face"]["FaceId"]
           for name, img in (("old", portrait_2014("C000141").read_bytes()),
                             ("new", portrait_2018("C000141").read_bytes()))]
    rek.search_faces(CollectionId="byface", FaceId=ids[1], FaceMatchThreshold=50)
    rec = [r for r in SearchLog(acc_dir / "search-log.jsonl").records() if r.kind == "search"][-1]
    assert rec.data["probe_face_id"] == ids[1] and rec.data["probe_sha256"]
    rek.delete_faces(CollectionId="byface", FaceIds=[ids[1]])
    kept = Accountability(acc_dir).probe_path(rec.data["probe_sha256"])
    assert kept is not None and kept.read_bytes()[:2] == b"\xff\xd8"  # the searched face's crop
    rek.delete_collection(CollectionId="byface")


def test_default_policy_cannot_be_dodged_by_copying_into_a_new_collection(url, keys, acc_dir):
    """Finding 5: faces copied into a new collection without a policy were searched at threshold 0."""
    status, doc = native(url, keys["operator"], "PutDefaultPolicy", {"MinFaceMatchThreshold": 99})
    assert status == 400 and doc["__type"] == "AccessDeniedException"
    status, doc = native(url, keys["admin"], "PutDefaultPolicy",
                         {"MinFaceMatchThreshold": 99, "RequireCaseReference": True})
    assert status == 200 and doc["Policy"]["Source"] == "default"
    try:
        rek = with_case(client(url, keys["operator"]), "case-copy")
        rek.create_collection(CollectionId="copied")
        rek.index_faces(CollectionId="copied", Image={"Bytes": portrait_2014("C000141").read_bytes()})
        with pytest.raises(rek.exceptions.AccessDeniedException, match="at least 99"):
            rek.search_faces_by_image(CollectionId="copied", Image={"Bytes": portrait_2018("C000141").read_bytes()},
                                      FaceMatchThreshold=0)
        _, doc = native(url, keys["reviewer"], "ListCollectionPolicies", {})
        sources = {p["CollectionId"]: p["Source"] for p in doc["Policies"]}
        assert sources["copied"] == "default" and doc["DefaultPolicy"]["MinFaceMatchThreshold"] == 99
    finally:
        native(url, keys["admin"], "PutDefaultPolicy", {})
        client(url, keys["admin"]).delete_collection(CollectionId="copied")


def test_an_operator_cannot_make_its_searches_audit_traffic(url, keys, gallery, acc_dir):
    """Issue 22 M3: an operator created a collection with the audit header; its real searches were
    then logged as audit traffic and made no leads. The header is refused from any non-auditor key."""
    def audit(request, **_):
        request.headers["x-faceaudit-audit"] = "1"

    for name in ("operator", "admin"):
        rek = client(url, keys[name])
        rek.meta.events.register("before-sign.rekognition.*", audit)
        with pytest.raises(rek.exceptions.AccessDeniedException, match="only from auditor keys"):
            rek.create_collection(CollectionId=f"sneaky-{name}")
        with pytest.raises(rek.exceptions.AccessDeniedException, match="only from auditor keys"):
            rek.search_faces_by_image(CollectionId="lineup", Image={"Bytes": portrait_2018("C000141").read_bytes()})
    refused = [r.data for r in SearchLog(acc_dir / "search-log.jsonl").records() if r.kind == "refused"]
    assert [(r["operation"], r["role"]) for r in refused[-4:]] == [
        ("CreateCollection", "operator"), ("SearchFacesByImage", "operator"),
        ("CreateCollection", "admin"), ("SearchFacesByImage", "admin")]
    assert "sneaky-operator" not in client(url, keys["admin"]).list_collections()["CollectionIds"]


def test_no_similarity_below_the_policy_minimum_is_handed_back(url, keys, acc_dir):
    """Issue 22 M4: AssociateFaces under a policy (minimum 99) with UserMatchThreshold 100 returned a
    confidence for every face: an identification oracle below the policy's minimum."""
    oper, admin = with_case(client(url, keys["operator"]), "case-m4"), client(url, keys["admin"])
    oper.create_collection(CollectionId="oracle")
    gallery = [oper.index_faces(CollectionId="oracle", Image={"Bytes": portrait_2014(b).read_bytes()},
                                ExternalImageId=b)["FaceRecords"][0]["Face"]["FaceId"]
               for b in ("B000944", "C000141", "C000127")]
    probe = oper.index_faces(CollectionId="oracle", Image={"Bytes": portrait_2018("C000141").read_bytes()},
                             ExternalImageId="probe")["FaceRecords"][0]["Face"]["FaceId"]
    oper.create_user(CollectionId="oracle", UserId="u")
    oper.associate_faces(CollectionId="oracle", UserId="u", FaceIds=[probe], UserMatchThreshold=100)
    before = oper.associate_faces(CollectionId="oracle", UserId="u", FaceIds=gallery[:1], UserMatchThreshold=100)
    assert "Confidence" in before["UnsuccessfulFaceAssociations"][0]  # no policy: as Rekognition
    native(url, keys["admin"], "PutCollectionPolicy", {"CollectionId": "oracle", "MinFaceMatchThreshold": 99})
    resp = oper.associate_faces(CollectionId="oracle", UserId="u", FaceIds=gallery, UserMatchThreshold=100)
    refused = resp["UnsuccessfulFaceAssociations"]
    assert len(refused) >= 2 and {u["FaceId"] for u in refused} | {f["FaceId"] for f in resp["AssociatedFaces"]} \
        == set(gallery)
    # below the policy's minimum nothing is handed back; at or above it (the mate, on the scale whose
    # top end ranks) the confidence is shown as Rekognition would
    assert all(u.get("Confidence", 100) >= 99 and u["Reasons"] == ["LOW_MATCH_CONFIDENCE"] for u in refused)
    assert sum("Confidence" not in u for u in refused) >= 2
    users = oper.search_users(CollectionId="oracle", FaceId=gallery[1], UserMatchThreshold=99)
    assert all(m["Similarity"] >= 99 for m in users["UserMatches"])
    rec = [r for r in SearchLog(acc_dir / "search-log.jsonl").records() if r.kind == "search"
           and r.data["operation"] == "AssociateFaces"][-1]
    assert len(rec.data["candidates"]) == len(refused)
    assert all(c.get("withheld", False) == (c["similarity"] < 99) for c in rec.data["candidates"])
    admin.delete_collection(CollectionId="oracle")
