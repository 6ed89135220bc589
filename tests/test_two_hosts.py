"""Two `faceaudit serve` hosts, one truth (issue 21, "Done when"): boto3 indexes on host A and
finds on host B; a policy set on B refuses on A; a lead made on A is decided on B; 500 searches
spread over both hosts give one search log that verifies, 500 search records, no fork; a video
job started on A survives kill -9 of A and SUCCEEDS on B.

The hosts come from a :class:`tests._deploy.Deployment` fixture parameter: today both on one data
dir (SQLite across processes, the JSONL log); a PostgreSQL variant gives each host its own data
dir and ``--database URL`` (serve_args and cli_args), with no change to the test bodies.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests._deploy import (
    DEPLOYMENTS,
    Deployment,
    create_keys,
    hosts,
    log_records,
    log_verify,
    native,
    rekognition,
)
from tests.conftest import make_video, portrait_2014, portrait_2018

ROLES = {"admin": ("admin", "Ada"), "operator": ("operator", "Oscar"), "reviewer": ("reviewer", "Rita"),
         "reviewer2": ("reviewer", "Remy")}
PEOPLE = ("B000944", "C000141", "C000127")
SEARCHES = 500


@dataclass
class TwoHosts:
    deployment: Deployment
    keys: dict[str, dict]
    a: object  # tests.service.conftest.ServeProcess
    b: object
    face_ids: dict[str, str]


@pytest.fixture(scope="module", params=sorted(DEPLOYMENTS))
def two(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("two-hosts")
    deployment = DEPLOYMENTS[request.param](root, request)
    buckets = root / "buckets"
    (buckets / "footage").mkdir(parents=True)
    make_video(buckets / "footage" / "door.mp4")
    (buckets / "photos").mkdir()
    shutil.copy(portrait_2014("B000944"), buckets / "photos" / "b.jpg")
    keys = create_keys(deployment, ROLES)
    args = ("--rate-limit", "0", "--buckets", str(buckets), "--video-fps", "4", "--workers", "1")
    with hosts(deployment, *args) as (a, b):
        yield TwoHosts(deployment, keys, a, b, {})


def _with_case(rek, case: str):
    def add(request, **_):
        request.headers["x-faceaudit-case-reference"] = case
        request.headers["x-faceaudit-purpose"] = "investigation"

    rek.meta.events.register("before-sign.rekognition.*", add)
    return rek


def test_indexed_on_a_found_on_b(two):
    on_a = rekognition(two.a.url, two.keys["operator"])
    on_a.create_collection(CollectionId="lineup")
    for person in PEOPLE:
        r = on_a.index_faces(CollectionId="lineup", Image={"Bytes": portrait_2014(person).read_bytes()},
                             ExternalImageId=person)
        two.face_ids[person] = r["FaceRecords"][0]["Face"]["FaceId"]
    on_b = rekognition(two.b.url, two.keys["operator"])
    assert on_b.describe_collection(CollectionId="lineup")["FaceCount"] == len(PEOPLE)
    r = on_b.search_faces_by_image(CollectionId="lineup", Image={"Bytes": portrait_2018("C000141").read_bytes()})
    assert r["FaceMatches"][0]["Face"]["ExternalImageId"] == "C000141"


def test_a_policy_set_on_b_refuses_on_a(two):
    status, doc = native(two.b.url, two.keys["admin"], "PutCollectionPolicy",
                         {"CollectionId": "lineup", "MinFaceMatchThreshold": 99})
    assert status == 200, doc
    on_a = rekognition(two.a.url, two.keys["operator"])
    probe = {"Bytes": portrait_2018("C000141").read_bytes()}
    with pytest.raises(on_a.exceptions.AccessDeniedException, match="at least 99"):
        on_a.search_faces_by_image(CollectionId="lineup", Image=probe)
    status, doc = native(two.b.url, two.keys["admin"], "PutCollectionPolicy", {"CollectionId": "lineup"})
    assert status == 200, doc  # back to no policy: A follows again
    assert on_a.search_faces_by_image(CollectionId="lineup", Image=probe)["FaceMatches"]


def test_a_lead_made_on_a_is_decided_on_b(two):
    on_a = _with_case(rekognition(two.a.url, two.keys["operator"]), "case-two-hosts")
    on_a.search_faces_by_image(CollectionId="lineup", Image={"Bytes": portrait_2018("C000127").read_bytes()},
                               FaceMatchThreshold=90)
    status, doc = native(two.b.url, two.keys["reviewer"], "ListLeads",
                         {"Status": "pending", "CaseReference": "case-two-hosts"})
    assert status == 200, doc
    (lead,) = doc["Leads"]
    for reviewer in ("reviewer", "reviewer2"):
        status, doc = native(two.b.url, two.keys[reviewer], "DecideLead",
                             {"LeadId": lead["LeadId"], "Decision": "confirm"})
        assert status == 200, doc
    assert doc["Lead"]["Status"] == "confirmed"
    status, doc = native(two.a.url, two.keys["reviewer"], "GetLead", {"LeadId": lead["LeadId"]})
    assert status == 200 and doc["Lead"]["Status"] == "confirmed"
    assert [d["Reviewer"] for d in doc["Lead"]["Decisions"]] == ["Rita", "Remy"]


def test_searches_spread_over_both_hosts_make_one_log_without_a_fork(two):
    before = sum(1 for r in log_records(two.deployment) if r["kind"] == "search")
    clients = [rekognition(h.url, two.keys["operator"]) for h in (two.a, two.b)]
    face_ids = list(two.face_ids.values())

    def search(i: int) -> tuple[int, str]:
        r = clients[i % 2].search_faces(CollectionId="lineup", FaceId=face_ids[i % len(face_ids)],
                                        FaceMatchThreshold=99)
        return i % 2, r["ResponseMetadata"]["RequestId"]

    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(search, range(SEARCHES)))
    records = log_records(two.deployment)
    searches = [r for r in records if r["kind"] == "search"]
    assert len(searches) - before == SEARCHES
    logged = {r["data"]["request_id"] for r in searches}
    for host in (0, 1):
        ids = {rid for h, rid in served if h == host}
        assert len(ids) == SEARCHES // 2 and ids <= logged, f"host {'AB'[host]}: a search is not in the log"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # no sequence number twice
    assert all(r["prev"] == p["hash"] for p, r in itertools.pairwise(records))  # one chain
    result = log_verify(two.deployment)
    assert result["Ok"] and result["Records"] == len(records) and result["AcknowledgedMissing"] == 0


def _add_warrant(request, **_):
    request.headers["x-faceaudit-warrant"] = "WA-2026-0117"


def test_a_video_job_started_on_a_survives_kill_9_of_a_and_succeeds_on_b(two):
    """Last: host A is killed. Its job (claimed by A's worker, in progress) is found by B, whose
    worker pool starts with B's first video request, and run there to SUCCEEDED."""
    on_a = rekognition(two.a.url, two.keys["operator"])
    on_a.meta.events.register_first("before-sign.rekognition.StartFaceSearch", _add_warrant)
    on_a.index_faces(CollectionId="lineup", Image={"S3Object": {"Bucket": "photos", "Name": "b.jpg"}},
                     ExternalImageId="B000944-door")
    job = on_a.start_face_search(Video={"S3Object": {"Bucket": "footage", "Name": "door.mp4"}},
                                 CollectionId="lineup")["JobId"]
    deadline = time.monotonic() + 120
    while "% done" not in (on_a.get_face_search(JobId=job).get("StatusMessage") or ""):  # A's worker has it
        assert time.monotonic() < deadline, "no worker of host A took the job"
        time.sleep(0.02)
    assert on_a.get_face_search(JobId=job)["JobStatus"] == "IN_PROGRESS", "the clip is too short"
    assert two.a.stop(signal.SIGKILL) == -signal.SIGKILL
    on_b = rekognition(two.b.url, two.keys["operator"])
    deadline = time.monotonic() + 300
    while (r := on_b.get_face_search(JobId=job))["JobStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, r.get("StatusMessage")
        time.sleep(0.3)
    assert r["JobStatus"] == "SUCCEEDED", r.get("StatusMessage")
    found = {p["FaceMatches"][0]["Face"]["ExternalImageId"] for p in r["Persons"] if p.get("FaceMatches")}
    assert found & {"B000944", "B000944-door"}
    assert log_verify(two.deployment)["Ok"]


@pytest.fixture
def outage_server():
    """A throwaway PostgreSQL server of this test's own (it is stopped and started again in the test)."""
    from tests._postgres import find_bin_dir, throwaway_server, unavailable

    pytest.importorskip("psycopg")
    if find_bin_dir() is None:
        unavailable("no initdb/pg_ctl/postgres on PATH or in /usr/lib/postgresql/*/bin")
    with throwaway_server() as server:
        yield server


def _unavailable(call) -> dict:
    """The error of a boto3 call that must fail while the database is down: its response."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response


def test_postgresql_down_gives_503s_and_both_hosts_recover_without_a_restart(outage_server, tmp_path):
    """Both hosts running, the PostgreSQL server stops (``pg_ctl stop -m immediate``): every API
    call gets 503 ServiceUnavailableException with Retry-After, /ready says not ready, no
    traceback in the hosts' logs; the server starts again: both hosts answer again without a
    restart, every write acknowledged before the outage is there, and the log verifies."""
    from tests._deploy import get, wait_for

    url = outage_server.new_database()
    deployment = Deployment("postgresql-outage", (tmp_path / "host-a", tmp_path / "host-b"),
                            ("--database", url), ("--database", url))
    keys = create_keys(deployment, {"operator": ("operator", "Oscar"), "admin": ("admin", "Ada")})
    with hosts(deployment, "--rate-limit", "0") as (a, b):
        clients = [rekognition(h.url, keys["operator"]) for h in (a, b)]
        clients[0].create_collection(CollectionId="outage")
        for person in PEOPLE:
            clients[0].index_faces(CollectionId="outage", Image={"Bytes": portrait_2014(person).read_bytes()},
                                   ExternalImageId=person)
        probe = {"Bytes": portrait_2018("C000141").read_bytes()}
        acknowledged = {rek.search_faces_by_image(CollectionId="outage", Image=probe)["ResponseMetadata"]["RequestId"]
                        for rek in clients for _ in range(3)}

        outage_server.crash()
        for host, rek in zip((a, b), clients, strict=True):
            for call in (lambda: rek.search_faces_by_image(CollectionId="outage", Image=probe),  # noqa: B023
                         lambda: rek.index_faces(CollectionId="outage", Image=probe),  # noqa: B023
                         lambda: rek.describe_collection(CollectionId="outage")):  # noqa: B023
                response = _unavailable(call)
                assert response["Error"]["Code"] == "ServiceUnavailableException", response
                assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
                assert int(response["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
                assert "postgresql" not in response["Error"]["Message"]  # no server named to any caller
            status, doc = native(host.url, keys["admin"], "ListCollectionPolicies", {})
            assert status == 503 and doc["__type"].endswith("ServiceUnavailableException"), doc
            wait_for(lambda: get(host.url + "/ready")[0] == 503, 30, "/ready still says ready")  # noqa: B023
            status, doc, headers = get(host.url + "/ready")
            assert doc["Status"] == "unavailable" and int(headers["retry-after"]) >= 1

        outage_server.start()
        for host in (a, b):
            wait_for(lambda: get(host.url + "/ready")[0] == 200, 60, "a host never became ready again")  # noqa: B023
        for rek in clients:
            assert rek.describe_collection(CollectionId="outage")["FaceCount"] == len(PEOPLE)

        def search(i: int) -> str:  # every server thread of both hosts, each its connections from before
            r = clients[i % 2].search_faces_by_image(CollectionId="outage", Image=probe)
            assert r["FaceMatches"][0]["Face"]["ExternalImageId"] == "C000141"
            return r["ResponseMetadata"]["RequestId"]

        with ThreadPoolExecutor(8) as pool:
            acknowledged.update(pool.map(search, range(40)))
        clients[1].index_faces(CollectionId="outage", Image={"Bytes": portrait_2014("B000944").read_bytes()},
                               ExternalImageId="after")
        assert clients[0].describe_collection(CollectionId="outage")["FaceCount"] == len(PEOPLE) + 1
        assert a.proc.poll() is None and b.proc.poll() is None
    logged = {r["data"]["request_id"] for r in log_records(deployment) if r["kind"] == "search"}
    assert acknowledged <= logged
    assert log_verify(deployment)["Ok"]
    for host in (a, b):
        assert "Traceback" not in host.logs(), host.logs()[-3000:]
