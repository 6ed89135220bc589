"""comparison.html: a summary paragraph, one chart, and the composition test's counts beside its shares."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from faceaudit.audit._compare import render_comparison

PUBLIC = Path(__file__).resolve().parents[2] / "docs" / "public-audit"


def test_comparison_reads_in_a_paragraph_and_a_chart():
    results = [json.loads((PUBLIC / m / "results.json").read_text(encoding="utf-8")) for m in ("sface", "dlib")]
    page = render_comparison(results, ["sface", "dlib"])
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    text = re.sub(r"\s+", " ", text)
    for name, r in zip(("sface", "dlib"), results, strict=True):
        a = next(s for s in r["summaries"] if s["threshold"] == 80.0)["overall"]["ACLU_COUNT"]
        assert f"{name} {a['errors']} of {a['trials']} searches with a false candidate" in text
    assert "Set each engine to the same measured false-match rate" in text
    assert page.count("<svg") == 1 and "False leads and misses, by engine" in page
    # the composition test's counts in and outside the set, beside the shares (dlib at its own threshold)
    st = next(st for st in results[1]["share_tests"] if st["threshold"] == results[1]["model_threshold"])
    i, o = st["rate_in_set"], st["rate_outside"]
    assert f"in the set: {i['errors']} of {i['trials']} searches falsely matched" in text
    assert f"outside it: {o['errors']} of {o['trials']}" in text
    assert page.index("searches with a false candidate") < page.index("<svg") < page.index("At equal Similarity")
