"""A scripted month of accountable face-recognition use, then its usage report (and a screenshot).

    .venv/bin/python scripts/usage_report_demo.py OUT_DIR [--screenshot docs/usage-report.png]

Everything runs on the committed public-domain portraits (tests/data) with the default model:
policies set by an admin, searches by an operator (some refused by policy), leads decided by two
reviewers over the following hours or days, an accuracy audit's own traffic, a retention run. The
clock is simulated (November 2026) so that the month takes a minute; the log, leads and report are
the real ones. The usage report for the month is written to OUT_DIR/usage-report.{html,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = ("B000944", "C000127", "C000141", "C000174", "C001070", "F000062", "K000367", "M001170")
START = 1793523600.0  # 2026-11-01 09:00 UTC


class Clock:
    """time.time() for the whole process, advanced by the script."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, hours: float) -> None:
        self.now += hours * 3600.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None)
    args = ap.parse_args()
    clock = Clock(START)
    time.time = clock  # the simulated month: every record, lead and decision uses it

    from faceaudit import FaceAuditError
    from faceaudit.accountability import (
        Accountability,
        CallerContext,
        Retention,
        Reviewer,
        ThresholdPolicy,
        guard_request,
    )
    from faceaudit.accountability._usage import parse_day, render_html, usage_report
    from faceaudit.collections import FaceCollections
    from faceaudit.service import KeyStore

    data = args.out / "data"
    keys = KeyStore(data)
    sam = keys.create("operator", person="Sam Ortiz (detective)")
    alice = keys.create("reviewer", person="Alice Ng (examiner)")
    bob = keys.create("reviewer", person="Bob Reyes (examiner)")
    admin = CallerContext("local:admin", role="admin", person="Dana Ruiz (admin)")
    fc = FaceCollections(data)
    acc = Accountability(data)
    rng = random.Random(2026)

    fc.create_collection(collection_id="bookings")
    fc.create_collection(collection_id="missing-persons")
    for b in MEMBERS:
        fc.index_faces(collection_id="bookings", image=(ROOT / "tests/data/congress2014" / f"{b}.jpg").read_bytes(),
                       external_image_id=b)
    for b in MEMBERS[:3]:
        fc.index_faces(collection_id="missing-persons",
                       image=(ROOT / "tests/data/congress2014" / f"{b}.jpg").read_bytes(), external_image_id=b)
    acc.set_default_policy(ThresholdPolicy("*", min_face_match_threshold=90.0, require_case_reference=True), admin)
    acc.set_policy(ThresholdPolicy("bookings", min_face_match_threshold=95.0, max_faces=5,
                                   require_case_reference=True, purpose="law-enforcement"), admin)
    Retention(acc).set(admin, "missing-persons", 7)

    purposes = {"bookings": ["robbery investigation", "fraud investigation", "assault investigation"],
                "missing-persons": ["missing person"]}
    pending_reviews = []
    for day in range(30):
        clock.now = START + day * 86400 + rng.uniform(0, 3) * 3600
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            coll = "bookings" if rng.random() < 0.8 else "missing-persons"
            member = rng.choice(MEMBERS)
            probe = (ROOT / "tests/data/congress2018" / f"{member}.jpg").read_bytes()
            threshold = rng.choice((80.0, 96.0, 96.0, 97.0, 97.0)) if coll == "bookings" else 90.0
            case = "" if rng.random() < 0.1 else f"2026-{rng.randint(100, 140)}"
            ctx = CallerContext(sam.access_key_id, role="operator", person=sam.person, case_reference=case,
                                purpose=rng.choice(purposes[coll]), source="http")
            member_of = {"CollectionId": coll, "Image": {"Bytes": probe}, "FaceMatchThreshold": threshold,
                         "MaxFaces": 5}
            with contextlib.suppress(FaceAuditError):  # refused by policy: logged as refused
                guard_request(acc, ctx, "SearchFacesByImage", member_of,
                              lambda coll=coll, probe=probe, threshold=threshold: fc.search_faces_by_image(
                                  collection_id=coll, image=probe, face_match_threshold=threshold, max_faces=5),
                              response_of=lambda r: r.to_rekognition(),
                              gallery_size=lambda c: fc.describe_collection(collection_id=c).face_count)
            clock.advance(rng.uniform(0.5, 3))
        # reviewers work through the pending leads after a few hours
        for lead in acc.leads("pending", 1000):
            if lead.lead_id in pending_reviews:
                continue
            pending_reviews.append(lead.lead_id)
            clock.advance(rng.uniform(1, 20))
            try:
                if lead.candidate_external_image_id and rng.random() < 0.8:
                    acc.decide(lead.lead_id, Reviewer(alice.access_key_id, alice.person), "confirm",
                               "scar and ear shape match the booking photo")
                    clock.advance(rng.uniform(1, 30))
                    if rng.random() < 0.85:
                        acc.decide(lead.lead_id, Reviewer(bob.access_key_id, bob.person), "confirm",
                                   "independent comparison agrees")
                else:
                    acc.decide(lead.lead_id, Reviewer(bob.access_key_id, bob.person), "reject",
                               "different person: eye spacing differs")
            except FaceAuditError:
                pass
        if day == 11:  # an accuracy audit's own traffic on its temporary collection
            audit = CallerContext(sam.access_key_id, role="operator", person=sam.person, audit=True, source="http",
                                  case_reference="audit-2026-11", purpose="accuracy audit")
            acc.mark_audit_collection(audit, "faceaudit-audit-nov", True)
            fc.create_collection(collection_id="faceaudit-audit-nov")
            for b in MEMBERS:
                fc.index_faces(collection_id="faceaudit-audit-nov",
                               image=(ROOT / "tests/data/congress2014" / f"{b}.jpg").read_bytes())
            for b in MEMBERS:
                probe = (ROOT / "tests/data/congress2018" / f"{b}.jpg").read_bytes()
                guard_request(acc, audit, "SearchFacesByImage",
                              {"CollectionId": "faceaudit-audit-nov", "Image": {"Bytes": probe},
                               "FaceMatchThreshold": 90.0},
                              lambda probe=probe: fc.search_faces_by_image(collection_id="faceaudit-audit-nov",
                                                                           image=probe, face_match_threshold=90.0),
                              response_of=lambda r: r.to_rekognition())
            fc.delete_collection(collection_id="faceaudit-audit-nov")
        if day == 14:
            acc.set_policy(ThresholdPolicy("bookings", min_face_match_threshold=96.0, max_faces=5,
                                           require_case_reference=True, purpose="law-enforcement"), admin)
        if day == 20:
            Retention(acc).apply(admin)

    clock.now = START + 31 * 86400
    report = usage_report(acc, parse_day("2026-11-01"), parse_day("2026-12-01"))
    import json

    args.out.mkdir(parents=True, exist_ok=True)
    page = render_html(report)
    (args.out / "usage-report.html").write_text(page, encoding="utf-8")
    (args.out / "usage-report.json").write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    print(f"{report.searches.count} searches, {sum(f.count for f in report.refusals)} refused, leads: "
          + ", ".join(f"{f.label} {f.count}" for f in report.leads)
          + f"; log verified: {report.log_ok}; report in {args.out}/usage-report.html")
    if args.screenshot:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            tab.goto((args.out / "usage-report.html").resolve().as_uri())
            tab.screenshot(path=str(args.screenshot), full_page=True)
            browser.close()
        print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
