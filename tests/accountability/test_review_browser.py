"""The review page in headless Chromium (Debian's), driven by Playwright: sign in, confirm, sign out,
a second reviewer confirms, the lead is confirmed. Screenshots go to $FACEAUDIT_SCREENSHOT_DIR if set."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from faceaudit.accountability import SearchLog
from tests.accountability.test_http import with_case
from tests.conftest import portrait_2014, portrait_2018
from tests.service.conftest import client, create_key

pytestmark = pytest.mark.browser

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.skip("chromium not installed")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    d = tmp_path_factory.mktemp("review-web")
    sam = create_key(d, "operator", "Sam Searcher")
    alice, bob = create_key(d, "reviewer", "Alice Reviewer"), create_key(d, "admin", "Bob Admin")
    auditor = create_key(d, "auditor", "Ann Auditor")
    app = ServiceApp(ServiceConfig(d, rate_limit=10_000), extension=AccountabilityExtension(d))
    srv, thread, url = start_in_thread(app)
    rek = with_case(client(url, sam), "case-2026-042")
    rek.create_collection(CollectionId="bookings")
    for b in ("B000944", "C000141"):
        rek.index_faces(CollectionId="bookings", Image={"Bytes": portrait_2014(b).read_bytes()}, ExternalImageId=b)
    rek.search_faces_by_image(CollectionId="bookings", Image={"Bytes": portrait_2018("B000944").read_bytes()},
                              FaceMatchThreshold=90, MaxFaces=1)
    # a CompareFaces lead: no stored candidate face, so it can only be rejected
    with_case(client(url, sam), "case-2026-043").compare_faces(
        SourceImage={"Bytes": portrait_2018("C000141").read_bytes()},
        TargetImage={"Bytes": portrait_2014("C000141").read_bytes()}, SimilarityThreshold=90)
    yield url, d, sam, alice, bob, auditor
    stop_thread_server(srv, thread)


def _sign_in(page, url, key):
    page.goto(url + "/review")
    assert page.url.endswith("/review/login")
    page.fill("#access_key_id", key["AccessKeyId"])
    page.fill("#secret", key["SecretAccessKey"])
    page.click("#signin")
    page.wait_for_url(url + "/review")


def test_two_people_confirm_in_browser(setup, tmp_path):
    from playwright.sync_api import sync_playwright

    url, data_dir, sam, alice, bob, auditor = setup
    shots = Path(os.environ.get("FACEAUDIT_SCREENSHOT_DIR") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})

        # an auditor key may not review
        page.goto(url + "/review/login")
        page.fill("#access_key_id", auditor["AccessKeyId"])
        page.fill("#secret", auditor["SecretAccessKey"])
        page.click("#signin")
        assert "Sign-in refused" in page.content()

        # the searcher sees the lead but may not decide on it, nor fetch its images
        _sign_in(page, url, sam)
        assert page.locator("section.lead form.decide").count() == 0
        assert "you ran the search" in page.inner_text("section.search")
        page.click("#signout")
        page.wait_for_url(url + "/review/login")

        _sign_in(page, url, alice)
        assert page.locator("section.search").count() == 2  # grouped by search
        lead = page.locator("section.lead[data-confirmable=yes]").first
        assert "not an identification" in page.inner_text("#lead-notice")
        assert "false-match rate" in lead.inner_text() and "90" in lead.inner_text()
        images = lead.locator("img")
        assert images.count() == 2  # probe | candidate side by side
        for i in range(2):  # both loaded: the kept probe and the candidate's face crop
            assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
        compared = page.locator("section.lead[data-confirmable=no]")
        assert compared.count() == 1 and compared.locator("button.confirm").count() == 0
        assert "Cannot be confirmed" in compared.inner_text()
        page.screenshot(path=str(shots / "review-page.png"), full_page=True)
        lead.locator("input[name=note]").fill("same scar as booking photo")
        lead.locator("button.confirm").click()
        page.wait_for_url(url + "/review")
        assert "it is now pending" in page.inner_text("#flash")
        assert "a different person must decide" in page.inner_text("section.lead[data-confirmable=yes]")
        page.click("#signout")
        page.wait_for_url(url + "/review/login")

        _sign_in(page, url, bob)
        page.locator("section.lead[data-confirmable=yes] button.confirm").first.click()
        page.wait_for_url(url + "/review")
        assert "it is now confirmed" in page.inner_text("#flash")
        page.goto(url + "/review?status=confirmed")
        assert page.locator("section.lead[data-status=confirmed]").count() == 1
        page.screenshot(path=str(shots / "review-confirmed.png"), full_page=True)

        # a phone: the page fits the screen (viewport meta, one column)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
        _sign_in(phone, url, alice)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        phone.screenshot(path=str(shots / "review-phone.png"), full_page=True)
        browser.close()

    log = SearchLog(data_dir / "search-log.jsonl")
    reviews = [r.data for r in log.records() if r.kind == "review"]
    assert [(r["reviewer"], r["access_key_id"], r["status_after"]) for r in reviews] == [
        ("Alice Reviewer", alice["AccessKeyId"], "pending"), ("Bob Admin", bob["AccessKeyId"], "confirmed")]
    assert reviews[0]["note"] == "same scar as booking photo"
    assert log.verify().ok


def test_review_page_refuses_forged_form(setup):
    import urllib.error
    import urllib.request

    url, *_ = setup
    req = urllib.request.Request(url + "/review/leads/x/decision", data=b"decision=confirm&csrf=bad", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 401  # no session at all


@pytest.fixture(scope="module")
def gone(tmp_path_factory):
    """A lead whose collection was deleted after the search, a live lead, and a key without a person."""
    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    d = tmp_path_factory.mktemp("review-gone")
    sam = create_key(d, "operator", "Sam Searcher")
    alice, nobody = create_key(d, "reviewer", "Alice Reviewer"), create_key(d, "reviewer")
    app = ServiceApp(ServiceConfig(d, rate_limit=10_000), extension=AccountabilityExtension(d))
    srv, thread, url = start_in_thread(app)
    rek = with_case(client(url, sam), "case-2026-050")
    for name in ("old-bookings", "bookings"):
        rek.create_collection(CollectionId=name)
        rek.index_faces(CollectionId=name, Image={"Bytes": portrait_2014("B000944").read_bytes()},
                        ExternalImageId="B000944")
        rek.search_faces_by_image(CollectionId=name, Image={"Bytes": portrait_2018("B000944").read_bytes()},
                                  FaceMatchThreshold=90, MaxFaces=1)
    rek.delete_collection(CollectionId="old-bookings")
    yield url, alice, nobody
    stop_thread_server(srv, thread)


def test_deleted_candidate_is_a_placeholder_and_a_key_without_a_person_is_told_so(gone, tmp_path):
    from playwright.sync_api import sync_playwright

    url, alice, nobody = gone
    shots = Path(os.environ.get("FACEAUDIT_SCREENSHOT_DIR") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _sign_in(page, url, nobody)
        text = page.inner_text("main")
        assert "this key has no person" in text and "you ran the search" not in text
        page.click("#signout")
        page.wait_for_url(url + "/review/login")

        _sign_in(page, url, alice)
        old = page.locator("section.search", has_text="old-bookings")
        assert old.count() == 1
        assert old.locator("img").count() == 1  # the kept probe; no <img> for the deleted candidate
        placeholder = old.locator(".noimg")
        assert placeholder.count() == 1 and "no longer stored" in placeholder.inner_text()
        assert "Cannot be confirmed" in old.inner_text()
        # every image on the page loads: no broken image anywhere
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("img").count() == 3
        page.screenshot(path=str(shots / "review-page.png"), full_page=True)
        browser.close()
