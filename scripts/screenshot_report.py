"""Screenshots of a report's first screen (Debian's chromium via Playwright; never a downloaded browser).

Usage: .venv/bin/python scripts/screenshot_report.py REPORT.html OUT_PREFIX [--widths 1400,390]
Writes OUT_PREFIX-<width>.png, each one screen high (900 px at 1400 wide, 844 px at 390 wide).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HEIGHTS = {1400: 900, 390: 844}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("out_prefix")
    ap.add_argument("--widths", default="1400,390")
    ap.add_argument("--browser", default="/usr/bin/chromium")
    ap.add_argument("--full", action="store_true", help="the whole page, not only the first screen")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    url = Path(args.report).resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.browser, args=["--no-sandbox"])
        for w in (int(x) for x in args.widths.split(",")):
            page = browser.new_page(viewport={"width": w, "height": HEIGHTS.get(w, 900)})
            page.goto(url)
            out = f"{args.out_prefix}-{w}.png"
            page.screenshot(path=out, full_page=args.full)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            print(f"{out}: page wider than the screen by {overflow} px")
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
