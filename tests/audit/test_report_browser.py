"""report.html in headless Chromium: the DOM holds the charts and tables, and the screenshot shows them.

Skipped when no Chromium is installed, except on CI (CI=true), where a missing browser fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

HEIGHT = 12000
"""Tall enough to hold the first screen's tables and the charts below them."""

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser():
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser():
    path = find_browser()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no Chromium found (apt-get install -y chromium)")
        pytest.skip("no Chromium installed")
    return path


def chromium(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True, text=True, timeout=120,
    )


def test_report_renders_in_chromium(browser, small_run, tmp_path):
    from PIL import Image

    _, out, _ = small_run
    url = (out / "report.html").resolve().as_uri()
    dom = chromium(browser, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # issue 23: groups below the size rule (every group of this small run) are not drawn, and the page says so
    assert len(re.findall(r"<svg\b", html)) >= 2 and "Not drawn:" in html
    assert len(re.findall(r"<polyline\b", html)) >= 4
    assert len(re.findall(r"<table\b", html)) >= 6
    assert "investigative lead, not an identification" in html

    shot = tmp_path / "report.png"
    r = chromium(browser, tmp_path, f"--screenshot={shot}", f"--window-size=1280,{HEIGHT}", url)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert px.shape[:2] == (HEIGHT, 1280)
    assert px.std() > 20, "the page looks blank"
    gray = px.mean(axis=2)
    # text and tables: most 200-pixel bands of the first 3000 rows hold dark ink
    bands = [gray[y:y + 200, :] for y in range(0, 3000, 200)]
    assert sum((b < 100).mean() > 0.002 for b in bands) >= 10
    # the charts: the palette's blue (#0072B2) and vermilion (#D55E00) lines are drawn (right of the
    # coloured borders of the note boxes, which sit at the page's left edge)
    inner = px[:, 120:]

    def near(rgb):
        return (np.abs(inner - np.array(rgb)).sum(axis=2) < 40).sum()
    assert near((0, 114, 178)) > 300
    assert near((213, 94, 0)) > 300


def test_report_reads_on_a_phone(browser, small_run):
    """At 390 px: the page never scrolls sideways (tables scroll in their box) and chart text is >= 10 px."""
    from playwright.sync_api import sync_playwright

    _, out, _ = small_run
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        try:
            page = b.new_page(viewport={"width": 390, "height": 844})
            page.goto((out / "report.html").resolve().as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            wide = page.evaluate("Array.from(document.querySelectorAll('.tw')).filter("
                                 "e => e.scrollWidth > e.clientWidth).length")
            assert wide >= 1  # some table is wider than the phone and scrolls inside its box
            sizes = page.evaluate("""Array.from(document.querySelectorAll('svg text.tick, svg text.legend'))
                .map(t => t.getBoundingClientRect().height)""")
            assert sizes and min(sizes) >= 10, min(sizes)
        finally:
            b.close()


PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "public-audit" / "sface" / "results.json"


@pytest.fixture(scope="module")
def published_report(tmp_path_factory):
    """report.html rebuilt from the published reproduction's results.json (an audit with --match-count 28)."""
    import json

    from faceaudit.audit import render_report

    res = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    out = tmp_path_factory.mktemp("published") / "report.html"
    out.write_text(render_report(res, (), PUBLISHED.parent), encoding="utf-8")
    return res, out


@pytest.mark.parametrize("width,height", [(1400, 900), (390, 844)])
def test_first_screen_reads_right(browser, published_report, width, height):
    """The first screen holds the headline count with its gallery-size caveat and the 28-match sentence;
    no table is wider than its box at 1400 px (on a phone wide tables scroll in their box with the first
    column held); chart captions are whole HTML text, never cut by the drawing."""
    from playwright.sync_api import sync_playwright

    res, path = published_report
    a = next(s for s in res["summaries"] if s["threshold"] == 80.0)["overall"]["ACLU_COUNT"]
    point = res["match_counts"][0]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        try:
            page = b.new_page(viewport={"width": width, "height": height})
            page.goto(path.resolve().as_uri())

            def on_screen(selector: str) -> str:
                box = page.locator(selector).first.bounding_box()
                assert box is not None, selector
                assert box["y"] >= 0 and box["y"] + box["height"] <= height, (selector, box)
                return page.locator(selector).first.inner_text()

            count = on_screen(".head .count .big")
            assert f"{a['errors']} of {a['trials']} searches" in count
            assert "gallery's size" in on_screen(".head .gcav")
            mp = on_screen(".head .mp")
            assert (f"the threshold at which {point['reached']['errors']} of the {point['reached']['trials']} "
                    "people searched are falsely matched in this gallery") in mp
            assert "ACLU's per-comparison rate" in mp and "operating point" not in mp
            if width >= 1400:
                assert "25,000 photos" in on_screen(".head .proj")  # the projection beside the count
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            wide = page.evaluate("""Array.from(document.querySelectorAll('table')).filter(t => {
                const box = t.parentElement; return t.getBoundingClientRect().width > box.clientWidth + 1 &&
                  !(box.classList.contains('tw') && getComputedStyle(box).overflowX === 'auto' &&
                    getComputedStyle(t.rows[0].cells[0]).position === 'sticky'); }).length""")
            assert wide == 0
            if width >= 1400:
                overflowing = page.evaluate("Array.from(document.querySelectorAll('.tw'))"
                                            ".filter(e => e.scrollWidth > e.clientWidth + 1).length")
                assert overflowing == 0
            captions = page.evaluate("""Array.from(document.querySelectorAll('figure.fig figcaption'))
                .map(c => [c.textContent, c.scrollWidth <= c.clientWidth + 1, c.getBoundingClientRect().height])""")
            assert captions and all(fits and h > 0 for _, fits, h in captions)
            assert page.evaluate("Array.from(document.querySelectorAll('svg text')).filter(t => "
                                 "t.textContent.includes('cannot be drawn')).length") == 0
            cut = page.evaluate("""Array.from(document.querySelectorAll('svg')).flatMap(s => {
                const b = s.getBoundingClientRect();
                return Array.from(s.querySelectorAll('text')).filter(t => { const r = t.getBoundingClientRect();
                  return r.left < b.left - 0.5 || r.top < b.top - 0.5 || r.right > b.right + 0.5 ||
                    r.bottom > b.bottom + 0.5; }).map(t => t.textContent); })""")
            assert cut == [], cut  # every title, tick, label and legend inside its drawing
            # groups below the size rule are not drawn, and the caption says which
            assert any("Not drawn:" in text for text, _, _ in captions)
        finally:
            b.close()
