"""Every HTML page escapes what users supply: report.html, comparison.html, the review and
sign-in pages and the usage report, with markup and quote characters in every field a user
or a results.json can carry (collection names, case references, reviewer notes, purposes,
manifest labels, column names and subject ids, external image ids, --note texts, engine labels,
audit folder names).

Each page is parsed: no injected element or event attribute may appear, and each payload
must be on the page as text (so a field that is silently dropped does not pass for escaped).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from faceaudit.cli import main
from tests.audit.conftest import MATED, sex, write_manifest
from tests.conftest import MEMBERS, blank_image, meds, portrait_2014, portrait_2018

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = "\"'><img src=x onerror=alert(1)>"
QUOTES = "O'Brien \"the\" & <b>co</b>"


class _Page(HTMLParser):
    """The elements, attributes and text of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        self.text += [v or "" for _, v in attrs]  # attribute values are text too (alt, value, aria-label)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)


def assert_escaped(html: str, payloads) -> None:
    page = _Page()
    page.feed(html)
    page.close()
    tags = [t for t, _ in page.tags]
    assert "script" not in tags, "a <script> element was injected"
    assert not any(t == "img" and dict(a).get("src") == "x" for t, a in page.tags), "an <img src=x> was injected"
    events = [(t, k) for t, attrs in page.tags for k, _ in attrs if k.startswith("on")]
    assert events == [], f"event attributes injected: {events}"
    text = "".join(page.text)
    for p in payloads:
        assert p in text, f"{p!r} is not shown on the page as text"


def _payload_manifests(d: Path):
    """The small audit's photos with a payload in every label value, a column name and every subject id."""
    col = "group " + BREAKOUT
    probes = [{"image": str(portrait_2018(b)), "subject": f"{SCRIPT}{b}", "sex": sex(b) + BREAKOUT,
               "dataset": SCRIPT, col: QUOTES} for b in MEMBERS]
    (d / "blank.png").write_bytes(blank_image(220, 220))  # a failure to acquire: its subject is listed
    probes.append({"image": str(d / "blank.png"), "subject": SCRIPT + "nobody", "sex": "", "dataset": SCRIPT,
                   col: QUOTES})
    gallery = [{"image": str(portrait_2014(b)), "subject": f"{SCRIPT}{b}", "sex": sex(b) + BREAKOUT,
                "dataset": QUOTES, col: SCRIPT} for b in MATED]
    gallery += [{"image": str(meds(m)), "subject": BREAKOUT + m[:4], "sex": "F" + BREAKOUT, "dataset": "meds",
                 col: QUOTES} for m in ("S001-01-t10_01", "S001-02-t10_01", "S006-01-t10_01")]
    cols = ["image", "subject", "dataset", "sex", col]
    return write_manifest(d / "probes.csv", probes, cols), write_manifest(d / "gallery.csv", gallery, cols)


@pytest.fixture(scope="module")
def audited(small_run, tmp_path_factory):
    """A real audit of payload-labelled manifests, shares, a match count and a --note."""
    _, out, _ = small_run
    d = tmp_path_factory.mktemp("injection")
    probes, gallery = _payload_manifests(d)
    dest = d / BREAKOUT.replace("/", "")
    argv = ["audit", "--probes", str(probes), "--gallery", str(gallery), "--thresholds", "50,80",
            "--bootstrap", "10", "--quiet", "--cache", str(out / "embeddings.sqlite"),
            "--share", f"sex=F{BREAKOUT}", "--share-label", SCRIPT, "--match-count", "2",
            "--min-group-size", "1", "--note", QUOTES + SCRIPT, "--out", str(dest)]
    assert main(argv) == 0
    return dest


def test_report_escapes_every_manifest_field_and_note(audited):
    html = (audited / "report.html").read_text(encoding="utf-8")
    assert_escaped(html, [SCRIPT, BREAKOUT, QUOTES, SCRIPT + "nobody", QUOTES + SCRIPT])


def test_report_rebuilt_from_a_tampered_results_json_escapes_engine_labels(audited, tmp_path):
    """results.json is a file people share: its engine labels and warnings are text, never markup."""
    from faceaudit.audit import build_report

    res = json.loads((audited / "results.json").read_text(encoding="utf-8"))
    res["engine"].update(kind=SCRIPT, model=BREAKOUT, face_model_version=QUOTES, endpoint=SCRIPT,
                         runtime=BREAKOUT, similarity_scale_version=SCRIPT, similarity=BREAKOUT,
                         search={SCRIPT: BREAKOUT})
    res["warnings"] = [SCRIPT, {"kind": "x", "message": BREAKOUT, "details": [QUOTES]}]
    res["created"], res["faceaudit_version"], res["command"] = SCRIPT, BREAKOUT, f"faceaudit audit {QUOTES}"
    res["failures"] = [{"side": SCRIPT, "image": f"/x/{BREAKOUT}.jpg", "subject": QUOTES, "reason": SCRIPT}]
    (tmp_path / "results.json").write_text(json.dumps(res), encoding="utf-8")
    # a false candidate above every threshold: its card shows both subjects and their labels
    row = {"probe_image": "p.jpg", "candidate_image": "c.jpg", "similarity": "99.5", "mated": "false",
           "probe_subject": SCRIPT + "probe", "candidate_subject": BREAKOUT + "cand",
           "probe_sex": QUOTES, "candidate_sex": SCRIPT + "label"}
    write_manifest(tmp_path / "candidates.csv", [row], list(row))
    (tmp_path / "p.jpg").write_bytes(portrait_2018(MEMBERS[0]).read_bytes())  # thumbnails: alt texts
    (tmp_path / "c.jpg").write_bytes(portrait_2014(MATED[0]).read_bytes())
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert_escaped(html, [SCRIPT, BREAKOUT, QUOTES, f"faceaudit audit {QUOTES}", SCRIPT + "probe",
                          BREAKOUT + "cand", "sex " + SCRIPT + "label", f"probe {SCRIPT}probe"])


def test_comparison_escapes_folder_names_and_engine_labels(audited, small_run, tmp_path):
    _, _out, _ = small_run
    res = json.loads((audited / "results.json").read_text(encoding="utf-8"))
    res["engine"].update(kind=SCRIPT, model=BREAKOUT, face_model_version=QUOTES, similarity_scale_version=SCRIPT)
    other = tmp_path / f"b{BREAKOUT}".replace("/", "")
    other.mkdir()
    (other / "results.json").write_text(json.dumps(res), encoding="utf-8")
    assert main(["report", str(audited), str(other), "--out", str(tmp_path / "cmp")]) == 0
    html = (tmp_path / "cmp" / "comparison.html").read_text(encoding="utf-8")
    assert_escaped(html, [SCRIPT, BREAKOUT, QUOTES, other.name])


# ---------------------------------------------------------------- accountability pages

def _activity(tmp_path):
    from faceaudit.accountability import (
        Accountability,
        CallerContext,
        Candidate,
        Reviewer,
        SearchRecord,
    )

    acc = Accountability(tmp_path, face_image=lambda face_id: b"\xff\xd8crop")
    oper = CallerContext("AKSAM", person=BREAKOUT + "op", case_reference=SCRIPT, purpose=QUOTES + SCRIPT)
    for i in range(3):
        acc.record(oper, SearchRecord("SearchFacesByImage", SCRIPT + "coll", "v1", 96.0, 5, f"{i:02d}" * 32,
                                      [Candidate(97.0, face_id=f"f{i}", external_image_id=BREAKOUT)]),
                   probe=b"probe%d" % i)
    leads = acc.leads("pending")
    acc.decide(leads[0].lead_id, Reviewer("AKA", SCRIPT), "confirm", QUOTES + BREAKOUT)
    acc.decide(leads[0].lead_id, Reviewer("AKC", QUOTES), "confirm", SCRIPT)
    acc.decide(leads[1].lead_id, Reviewer("AKB", BREAKOUT), "reject", SCRIPT)
    return acc


def test_review_and_sign_in_pages_escape_every_field(tmp_path):
    from faceaudit.accountability import Reviewer
    from faceaudit.accountability._review_page import render_login, render_review_page

    acc = _activity(tmp_path)
    for status in ("pending", "confirmed", "rejected"):
        html = render_review_page(
            acc.leads(status), Reviewer(BREAKOUT, SCRIPT), csrf_token=BREAKOUT,
            probe_url=lambda lead: f"/img?{BREAKOUT}", candidate_url=lambda lead: None,
            missing=lambda lead: SCRIPT, may_decide=lambda lead: True, status=status,
            notice=QUOTES + SCRIPT, collection=BREAKOUT, case=SCRIPT)
        shown = [SCRIPT, BREAKOUT, QUOTES + SCRIPT, SCRIPT + "coll"]
        if status == "rejected":
            shown.append(f"{BREAKOUT}: reject")
        assert_escaped(html, shown)
    assert_escaped(render_login(message=SCRIPT + BREAKOUT, csrf=BREAKOUT), [SCRIPT + BREAKOUT, BREAKOUT])


def test_usage_report_escapes_collections_purposes_and_reasons(tmp_path):
    from faceaudit.accountability import CallerContext, ThresholdPolicy
    from faceaudit.accountability._usage import parse_day, render_html, usage_report

    acc = _activity(tmp_path)
    admin = CallerContext("local:admin", role="admin")
    acc.set_policy(ThresholdPolicy(SCRIPT + "coll", min_face_match_threshold=95.0, purpose=BREAKOUT), admin)
    with contextlib.suppress(Exception):
        acc.authorize(CallerContext("AKSAM", person="Sam"), "SearchFacesByImage", SCRIPT + "coll", 80.0, 5)
    day = dt.datetime.fromtimestamp(next(acc.log.records()).time, dt.UTC).strftime("%Y-%m-%d")
    start = parse_day(day)
    html = render_html(usage_report(acc, start, start + dt.timedelta(days=2)))
    assert_escaped(html, [SCRIPT + "coll", QUOTES + SCRIPT, BREAKOUT])


@pytest.mark.parametrize("page", ["report", "usage"])
def test_pages_carry_a_content_security_policy(page, audited, tmp_path):
    """No script may run even if something were injected: the policy allows none."""
    if page == "report":
        html = (audited / "report.html").read_text(encoding="utf-8")
    else:
        from faceaudit.accountability._usage import render_html, usage_report

        acc = _activity(tmp_path)
        now = dt.datetime.now(dt.UTC)
        html = render_html(usage_report(acc, now - dt.timedelta(days=1), now + dt.timedelta(days=1)))
    parsed = _Page()
    parsed.feed(html)
    csp = [dict(a)["content"] for t, a in parsed.tags
           if t == "meta" and dict(a).get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1 and "default-src 'none'" in csp[0] and "script-src" not in csp[0]
