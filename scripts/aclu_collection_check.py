#!/usr/bin/env python
"""The ACLU's test through a faceaudit collection (SearchFacesByImage, exact search).

Gallery: former_members.csv + meds.csv + congress_2014.csv indexed into one
collection with IndexFaces' defaults (QualityFilter AUTO, MaxFaces 100);
ExternalImageId is the manifest's subject. Probes: congress_2018.csv, the 535
members of the 115th Congress, each searched with SearchFacesByImage.

Reports:
- rank 1: members with a 2014 photo in the gallery (mated searches) whose top
  candidate, at any similarity, is their own 2014 photo;
- mate found: mated searches where the 2014 photo is a candidate at >= t;
- the ACLU count: searches (all 535 probes) with at least one candidate of ANOTHER
  subject at >= t, and how many of those have an arrest photo (MEDS) among them,
  at t = 80 (Rekognition's default, what the ACLU used), 90, 95, 99.
The gallery is about 2,950 faces against the ACLU's 25,000 mugshots: false-match
counts grow with gallery size, so these are not the ACLU's numbers; `faceaudit
audit` reports rates, intervals and the projection.
Every candidate is an investigative lead, not an identification.

Indexing is resumable: re-run with the same --data-dir to continue or to search
again without re-indexing.

    python scripts/aclu_collection_check.py --data-dir /tmp/aclu --workers 2

Measured 2026-11-24 (sface, FaceModelVersion yunet-2023mar-int8bq+sface-2021dec-int8bq):
gallery 2,829 faces (former members 2,322 from 2,437 images: 35 duplicate rows, 82
without an indexable face; MEDS 108 of 114; congress 2014 399 of 399). 535 probes,
all with a face. Rank 1: 397 of 399 mated searches (99.5%).

    t    mate found >= t      another subject >= t (ACLU count)   ... an arrest photo among them
    80   397/399 (99.5%)      443/535 (82.8%)                     25/535
    90   331/399 (83.0%)        0/535                              0/535
    95   175/399 (43.9%)        0/535                              0/535
    99     0/399                0/535                              0/535

At 80 by probe sex: F 80/112, M 363/423. The sface calibration gives FMR 1.2e-3 at
80, so 1 - (1 - FMR)^2829 = 96.5% of searches are expected to return a stranger:
on this model 80 is a 1:1 operating point, far too low for 1:N search.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

DEFAULT_MANIFESTS = Path(os.environ.get("FACEAUDIT_SHARED_DATA", "/work/shared/data")) / "manifests"
GALLERY = ("former_members.csv", "meds.csv", "congress_2014.csv")
PROBES = "congress_2018.csv"
THRESHOLDS = (80.0, 90.0, 95.0, 99.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="data dir (default: a new temporary one)")
    ap.add_argument("--collection", default="aclu")
    ap.add_argument("--manifests", type=Path, default=DEFAULT_MANIFESTS)
    ap.add_argument("--workers", type=int, default=None, help="indexing processes (default: CPUs)")
    ap.add_argument("--model", default=None, help="face model (default sface)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if not args.manifests.is_dir():
        print(f"no manifests at {args.manifests} (set --manifests)", file=sys.stderr)
        return 2
    from faceaudit import NoFaceError, ResourceNotFoundError
    from faceaudit.collections import FaceCollections, index_batch, read_manifest

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="faceaudit-aclu-")
    fc = FaceCollections(data_dir)
    try:
        fc.describe_collection(collection_id=args.collection)
    except ResourceNotFoundError:
        fc.create_collection(collection_id=args.collection, model=args.model)
    print(f"# data dir {data_dir}, collection {args.collection}")

    # -- gallery ----------------------------------------------------------------------------------
    for name in GALLERY:
        items = read_manifest(args.manifests / name)
        r = index_batch(args.collection, items, collections=fc, workers=args.workers,
                        progress=not args.no_progress, checkpoint=name == GALLERY[-1])
        print(f"{name}: {r.total} images, {r.indexed_images} indexed now ({r.faces_indexed} faces), "
              f"{r.already_indexed} already, {r.without_faces} without an indexable face, {r.failed} failed, "
              f"{r.seconds:.0f} s ({r.total / max(r.seconds, 1e-9):.1f} images/s)"
              + (f"; not indexed: {dict(r.unindexed_reasons)}" if r.unindexed_reasons else ""))
    d = fc.describe_collection(collection_id=args.collection)
    print(f"gallery: {d.face_count} faces, FaceModelVersion {d.face_model_version}")

    # -- probes -----------------------------------------------------------------------------------
    gallery_subjects = Counter()
    arrest = set()
    token = None
    while True:
        page = fc.list_faces(collection_id=args.collection, next_token=token, max_results=4096)
        for f in page.faces:
            gallery_subjects[f.labels.get("subject")] += 1
            if f.labels.get("role") == "arrest_photo" or f.labels.get("dataset") == "meds":
                arrest.add(f.face_id)
        token = page.next_token
        if not token:
            break
    probes = read_manifest(args.manifests / PROBES)
    mated = rank1 = no_face = 0
    found = Counter()
    false_any = Counter()
    false_arrest = Counter()
    false_by_sex = Counter()
    probes_by_sex = Counter()
    start = time.perf_counter()
    for item in probes:
        subject = item.labels.get("subject")
        sex = item.labels.get("sex", "")
        probes_by_sex[sex] += 1
        image = item.source.read_bytes()
        try:
            top = fc.search_faces_by_image(collection_id=args.collection, image=image, max_faces=1,
                                           face_match_threshold=0)
            hits = fc.search_faces_by_image(collection_id=args.collection, image=image, max_faces=4096,
                                            face_match_threshold=min(THRESHOLDS))
        except NoFaceError:
            no_face += 1
            continue
        is_mated = gallery_subjects[subject] > 0
        if is_mated:
            mated += 1
            if top.face_matches and top.face_matches[0].face.labels.get("subject") == subject:
                rank1 += 1
        for t in THRESHOLDS:
            above = [m for m in hits.face_matches if m.similarity >= t]
            if is_mated and any(m.face.labels.get("subject") == subject for m in above):
                found[t] += 1
            others = [m for m in above if m.face.labels.get("subject") != subject]
            if others:
                false_any[t] += 1
                if t == THRESHOLDS[0]:
                    false_by_sex[sex] += 1
                if any(m.face.face_id in arrest for m in others):
                    false_arrest[t] += 1
    seconds = time.perf_counter() - start
    searched = len(probes) - no_face
    print(f"\nprobes: {len(probes)} members (congress_2018.csv), {no_face} without a face, "
          f"{searched} searched in {seconds:.0f} s ({2 * searched / seconds:.1f} searches/s)")
    print(f"rank 1: {rank1} of {mated} mated searches find their own 2014 photo first "
          f"({100 * rank1 / max(mated, 1):.1f}%)")
    print()
    print("threshold  mate found (of mated)   searches with another subject >= t (ACLU count)"
          "   ... with an arrest photo")
    for t in THRESHOLDS:
        print(f"{t:9.0f}  {found[t]:4d} / {mated} ({100 * found[t] / max(mated, 1):5.1f}%)    "
              f"{false_any[t]:4d} / {searched} ({100 * false_any[t] / max(searched, 1):5.2f}%)"
              f"{'':27s}{false_arrest[t]:4d} / {searched}")
    print("\nat 80 by probe sex: " + ", ".join(
        f"{s or 'unknown'} {false_by_sex[s]}/{probes_by_sex[s]}" for s in sorted(probes_by_sex)))
    print("The ACLU (2018): 28 of 535 members falsely matched at 80 against 25,000 arrest photos. Gallery here: "
          f"{d.face_count} faces. Every candidate is an investigative lead, not an identification.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
