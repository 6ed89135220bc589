"""Security of the review web page: sessions, CSRF, paths."""

from __future__ import annotations

import threading

from faceaudit.accountability._review_web import ReviewWeb


def test_session_secret_is_whole_and_shared_under_concurrent_first_requests(tmp_path):
    """Threads of one worker creating the session key at once must all get the same 32 random
    bytes: an empty or torn key would make every session cookie forgeable (HMAC with b"")."""
    problems = []
    for trial in range(20):
        d = tmp_path / f"t{trial}"
        n = 12
        barrier = threading.Barrier(n)
        out = [None] * n

        def go(i, d, barrier, out):
            web = ReviewWeb(d, None, keys=object())  # type: ignore[arg-type]  # the session key needs neither
            barrier.wait()
            try:
                out[i] = web._session_secret()
            except Exception as exc:  # any failure is the finding
                out[i] = exc

        threads = [threading.Thread(target=go, args=(i, d, barrier, out)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = (d / "review-session.key").read_bytes()
        assert len(final) == 32
        problems += [repr(o) for o in out if not isinstance(o, bytes) or o != final]
        assert sorted(p.name for p in d.iterdir()) == ["review-session.key"]  # no temp files left
    assert problems == []


# -- the review page over HTTP (finding 5: crops of a whole collection; finding 7: login CSRF,
#    sessions that outlive sign-out, free text from the URL) ---------------------------------------

import http.client  # noqa: E402
import re  # noqa: E402
import urllib.parse  # noqa: E402

import pytest  # noqa: E402

from tests.conftest import portrait_2014, portrait_2018  # noqa: E402
from tests.service.conftest import client, create_key  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    d = tmp_path_factory.mktemp("review-sec")
    sam, rita = create_key(d, "operator", "Sam"), create_key(d, "reviewer", "Rita")
    app = ServiceApp(ServiceConfig(d, rate_limit=10_000), extension=AccountabilityExtension(d))
    srv, thread, url = start_in_thread(app)
    rek = client(url, sam)
    rek.create_collection(CollectionId="c")
    faces = [rek.index_faces(CollectionId="c", Image={"Bytes": portrait_2014(b).read_bytes()},
                             ExternalImageId=b)["FaceRecords"][0]["Face"]["FaceId"] for b in ("B000944", "C000141")]
    rek.search_faces_by_image(CollectionId="c", Image={"Bytes": portrait_2018("B000944").read_bytes()},
                              FaceMatchThreshold=90, MaxFaces=1)
    yield urllib.parse.urlsplit(url).netloc, sam, rita, faces
    stop_thread_server(srv, thread)


def _request(netloc, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(netloc, timeout=30)
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    cookies = {}
    for value in resp.headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        cookies[name] = rest.split(";")[0]
    return resp.status, data.decode("utf-8", "replace"), cookies, resp.headers


def _group(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text`` (the test fails if it is not there)."""
    found = re.search(pattern, text)
    assert found is not None, pattern
    return found.group(1)


def _sign_in(netloc, key, origin=None):
    _, page, cookies, _ = _request(netloc, "GET", "/review/login")
    token = _group(r'name="csrf" value="([^"]+)"', page)
    body = urllib.parse.urlencode({"access_key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"],
                                   "csrf": token}).encode()
    headers = {"Cookie": f"faceaudit_login={cookies['faceaudit_login']}"}
    if origin:
        headers["Origin"] = origin
    status, _, set_cookies, _ = _request(netloc, "POST", "/review/login", body, headers)
    return status, set_cookies.get("faceaudit_review")


def test_login_without_the_forms_token_or_from_another_origin_is_refused(served):
    netloc, _, rita, _ = served
    body = urllib.parse.urlencode({"access_key_id": rita["AccessKeyId"], "secret": rita["SecretAccessKey"]})
    status, _page, cookies, _ = _request(netloc, "POST", "/review/login", body.encode(),
                                         {"Origin": "https://attacker.example"})
    assert status == 403 and "faceaudit_review" not in cookies
    status, cookie = _sign_in(netloc, rita, origin="https://attacker.example")
    assert status == 403 and not cookie
    status, cookie = _sign_in(netloc, rita, origin=f"http://{netloc}")
    assert status == 303 and cookie


def test_session_ends_at_sign_out(served):
    netloc, _, rita, _ = served
    _, cookie = _sign_in(netloc, rita)
    status, page, _, _ = _request(netloc, "GET", "/review", headers={"Cookie": f"faceaudit_review={cookie}"})
    assert status == 200
    token = _group(r'name="csrf" value="([^"]+)"', page)
    _request(netloc, "POST", "/review/logout", f"csrf={token}".encode(), {"Cookie": f"faceaudit_review={cookie}"})
    status, _, _, headers = _request(netloc, "GET", "/review", headers={"Cookie": f"faceaudit_review={cookie}"})
    assert status == 303 and headers["Location"] == "/review/login"


def test_no_free_text_from_the_url(served):
    netloc, _, rita, _ = served
    _, cookie = _sign_in(netloc, rita)
    forged = "OFFICIAL: lead confirmed by the court, arrest authorised"
    status, page, _, _ = _request(netloc, "GET", "/review?" + urllib.parse.urlencode({"flash": forged}),
                                  headers={"Cookie": f"faceaudit_review={cookie}"})
    assert status == 200 and "OFFICIAL" not in page
    assert '<meta name="viewport"' in page


def test_face_crops_only_for_a_lead_being_decided(served):
    netloc, sam, rita, faces = served
    _, rita_cookie = _sign_in(netloc, rita)
    _, page, _, _ = _request(netloc, "GET", "/review", headers={"Cookie": f"faceaudit_review={rita_cookie}"})
    lead_id = _group(r'id="lead-([0-9a-f-]{36})"', page)
    for face_id in faces:  # no route to any stored face by FaceId
        status, *_ = _request(netloc, "GET", f"/review/images/face/{face_id}",
                              headers={"Cookie": f"faceaudit_review={rita_cookie}"})
        assert status == 404
    ok, *_ = _request(netloc, "GET", f"/review/images/lead/{lead_id}/candidate",
                      headers={"Cookie": f"faceaudit_review={rita_cookie}"})
    assert ok == 200
    _, sam_cookie = _sign_in(netloc, sam)  # the searcher is not deciding on it
    status, *_ = _request(netloc, "GET", f"/review/images/lead/{lead_id}/candidate",
                          headers={"Cookie": f"faceaudit_review={sam_cookie}"})
    assert status == 404
