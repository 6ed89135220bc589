"""deploy/haproxy.cfg, run as it is: two `faceaudit serve` hosts behind HAProxy on loopback, TLS
at the proxy (a test CA made here), health checks on /ready, X-Forwarded-For from the proxy only,
the body limit at the proxy, and a host killed with SIGKILL taken out while requests go on."""

from __future__ import annotations

import signal
import socket
import ssl
from dataclasses import dataclass

import pytest

from tests._deploy import (
    DEPLOYMENTS,
    Deployment,
    HAProxy,
    address,
    create_keys,
    get,
    haproxy_binary,
    hosts,
    log_records,
    native,
    rekognition,
    shared_data_dir,
    wait_for,
)
from tests.conftest import portrait_2014, portrait_2018

pytestmark = pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed (.ci/run installs it)")

ROLES = {"admin": ("admin", "Ada"), "operator": ("operator", "Oscar")}
CLIENT = "127.0.0.5"
"""The address the test's client connects from (loopback: any 127/8 address is local)."""


@dataclass
class Stack:
    deployment: Deployment
    keys: dict[str, dict]
    hosts: list
    proxy: HAProxy


@pytest.fixture(scope="module", params=sorted(DEPLOYMENTS))
def stack(request, tmp_path_factory):
    """Two hosts (``request.param`` says how they share their state) behind deploy/haproxy.cfg."""
    deployment = DEPLOYMENTS[request.param](tmp_path_factory.mktemp("deploy"), request)
    keys = create_keys(deployment, ROLES)
    with hosts(deployment, "--rate-limit", "0") as started:
        proxy = HAProxy(deployment.data_dirs[0].parent / "proxy", [address(h.url) for h in started]).start()
        try:
            wait_for(lambda: set(proxy.server_states().values()) == {"UP"}, 60,
                     "HAProxy never saw both hosts ready")
            yield Stack(deployment, keys, started, proxy)
        finally:
            proxy.stop()


def test_ready_through_the_proxy_over_tls(stack):
    status, doc, headers = get(stack.proxy.url + "/ready", verify=stack.proxy.ca)
    assert status == 200 and doc["Status"] == "ready"
    assert set(doc["Checks"]) == {"keys", "collections", "accountability"}
    assert set(doc["Checks"].values()) == {"ok"} and headers["cache-control"] == "no-store"
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):  # the proxy's cert is the test CA's
        get(stack.proxy.url + "/health")


def test_index_on_a_host_search_through_the_proxy_logs_the_client(stack):
    direct = rekognition(stack.hosts[0].url, stack.keys["operator"])
    direct.create_collection(CollectionId="door")
    for person in ("B000944", "C000141"):
        direct.index_faces(CollectionId="door", Image={"Bytes": portrait_2014(person).read_bytes()},
                           ExternalImageId=person)
    rek = rekognition(stack.proxy.url, stack.keys["operator"], verify=stack.proxy.ca, source=CLIENT)

    def spoof(request, **_):  # a client cannot pose as another address: the proxy drops its header
        request.headers["X-Forwarded-For"] = "203.0.113.9"

    rek.meta.events.register("before-send.rekognition.*", spoof)  # after signing, as a proxy would add it
    found = set()
    for _ in range(4):  # round robin: both hosts answer
        r = rek.search_faces_by_image(CollectionId="door", Image={"Bytes": portrait_2018("B000944").read_bytes()})
        found.add(r["FaceMatches"][0]["Face"]["ExternalImageId"])
    assert found == {"B000944"}
    searches = [r["data"] for r in log_records(stack.deployment) if r["kind"] == "search"][-4:]
    assert [s["client"] for s in searches] == [CLIENT] * 4
    assert {s["access_key_id"] for s in searches} == {stack.keys["operator"]["AccessKeyId"]}


def test_both_hosts_serve_through_the_proxy(stack):
    admin = stack.keys["admin"]
    for _ in range(6):
        status, _ = native(stack.proxy.url, admin, "ListCollectionPolicies", {}, verify=stack.proxy.ca)
        assert status == 200
    stats = stack.proxy.command("show stat").splitlines()
    header = stats[0].lstrip("# ").split(",")
    totals = {row[header.index("svname")]: int(row[header.index("stot")] or 0)
              for row in (line.split(",") for line in stats[1:] if line)
              if row[0] == "faceaudit_hosts" and row[1] in ("host_a", "host_b")}
    assert totals["host_a"] > 0 and totals["host_b"] > 0, totals


def test_body_over_the_proxy_limit_is_refused_before_any_host_reads_it(stack):
    port = int(stack.proxy.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(stack.proxy.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\n"
                    b"X-Amz-Target: RekognitionService.SearchFacesByImage\r\nContent-Length: 20000000\r\n\r\n")
        answer = tls.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_headers_that_never_end_are_cut_at_the_proxy(stack):
    """`timeout http-request 10s`: a client that starts a request and never finishes its headers
    (slowloris) gets 408 from the proxy; no host holds a connection for it."""
    port = int(stack.proxy.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(stack.proxy.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\n")  # and nothing more
        answer = tls.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408"), answer[:200]


def test_a_host_killed_is_taken_out_and_requests_keep_succeeding(stack):
    """Last in this module: host B gets SIGKILL; every request through the proxy still succeeds
    (a refused connection is retried on host A), and HAProxy marks B down by its /ready checks."""
    admin = stack.keys["admin"]
    victim = stack.hosts[1]
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    statuses = []

    def down_after_requests() -> bool:
        status, _ = native(stack.proxy.url, admin, "ListCollectionPolicies", {}, verify=stack.proxy.ca)
        statuses.append(status)
        return stack.proxy.server_states()["host_b"].startswith("DOWN")

    wait_for(down_after_requests, 60, "HAProxy never marked the killed host down")
    for _ in range(5):
        status, _ = native(stack.proxy.url, admin, "ListCollectionPolicies", {}, verify=stack.proxy.ca)
        statuses.append(status)
    assert set(statuses) == {200}, statuses
    assert stack.proxy.server_states()["host_a"] == "UP"
    status, doc, _ = get(stack.proxy.url + "/ready", verify=stack.proxy.ca)
    assert status == 200 and doc["Status"] == "ready"


def test_a_host_alive_but_not_ready_gets_no_requests(tmp_path):
    """Readiness, not liveness: host B runs but its vector store (a Milvus server) does not answer;
    /ready says 503, HAProxy keeps B out, and every request goes to A."""
    pytest.importorskip("pymilvus")
    from tests._deploy import free_port
    from tests.service.conftest import ServeProcess

    deployment = shared_data_dir(tmp_path)
    keys = create_keys(deployment, ROLES)
    data = deployment.data_dirs[0]
    a = ServeProcess(data, "--trusted-proxy", "127.0.0.1/32", log_path=tmp_path / "a.log")
    b = ServeProcess(data, "--trusted-proxy", "127.0.0.1/32", "--vector-store", "milvus",
                     "--milvus-uri", f"http://127.0.0.1:{free_port()}", log_path=tmp_path / "b.log")
    proxy = HAProxy(tmp_path / "proxy", [address(a.url), address(b.url)]).start()
    try:
        wait_for(lambda: proxy.server_states() == {"host_a": "UP", "host_b": "DOWN"}, 60,
                 "HAProxy did not keep the unready host out")
        status, doc, _ = get(b.url + "/ready")
        assert status == 503 and doc["Reason"].startswith("collections") and b.proc.poll() is None
        for _ in range(4):
            status, _ = native(proxy.url, keys["admin"], "ListCollectionPolicies", {}, verify=proxy.ca)
            assert status == 200
        assert proxy.server_states()["host_b"] == "DOWN"
    finally:
        proxy.stop()
        a.stop()
        b.stop()
