#!/usr/bin/env python
"""Measure a model's calibration table (FMR / FNMR at Similarity thresholds) on the public data.

Usage: python scripts/calibrate.py --model sface [--data ../shared/data] [--cache .cache]

Every image of the four public manifests (Congress 2018 and 2014 portraits,
former members, NIST MEDS) is embedded once (largest face). Every pair of
images is then compared: pairs of the same subject are genuine, pairs of
different subjects are impostors. FMR(t) = impostor pairs >= t / impostor
pairs; FNMR(t) = genuine pairs < t / genuine pairs. Images without a detected
face are failures to enrol: left out of the pairs and counted. Writes
src/faceaudit/engine/calibration/<model>.json.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit import FaceAuditError, __version__  # noqa: E402
from faceaudit._stats import wilson_interval  # noqa: E402
from faceaudit.engine import FaceEngine  # noqa: E402

MANIFESTS = ("congress_2018.csv", "congress_2014.csv", "former_members.csv", "meds.csv")
THRESHOLDS = (80.0, 90.0, 95.0, 99.0)
CURVE = tuple(x / 2 for x in range(100, 201))  # Similarity 50, 50.5, ..., 100


def read_manifests(data: Path):
    rows = []
    for name in MANIFESTS:
        path = data / "manifests" / name
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                rows.append(((path.parent / r["image"]).resolve(), r["subject"], r["dataset"]))
    return rows


def embed_all(engine: FaceEngine, rows, cache: Path):
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / f"calibration-{engine.spec.name}.npz"
    done = {}
    if store.exists():
        z = np.load(store, allow_pickle=False)
        done = {str(k): v for k, v in zip(z["paths"], z["vectors"])}
    vectors, failed = [], 0
    t0 = time.time()
    for i, (path, _, _) in enumerate(rows):
        key = str(path)
        if key not in done:
            try:
                _, face = engine.largest(path)
                done[key] = face.vector
            except FaceAuditError:
                done[key] = np.zeros(engine.spec.dimension, np.float32)
        vec = done[key]
        failed += int(not vec.any())
        vectors.append(vec)
        if i % 250 == 0:
            print(f"  {i}/{len(rows)} images, {time.time() - t0:.0f}s", file=sys.stderr)
    np.savez(store, paths=np.array(list(done)), vectors=np.stack(list(done.values())))
    return np.stack(vectors), failed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="sface")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache")
    args = ap.parse_args()
    engine = FaceEngine(args.model)
    rows = read_manifests(args.data)
    vecs, failed = embed_all(engine, rows, args.cache)
    ok = vecs.any(axis=1)
    subjects = np.array([s for _, s, _ in rows])[ok]
    vecs = vecs[ok]
    _, sid = np.unique(subjects, return_inverse=True)
    sims_t = list(THRESHOLDS) + [engine.spec.recommended_similarity] + list(CURVE)
    cos_thresholds = np.array([engine.spec.scale.to_cosine(t) for t in THRESHOLDS]
                              + [engine.spec.recommended_cosine]
                              + [engine.spec.scale.to_cosine(t) for t in CURVE])
    fm = np.zeros(len(cos_thresholds), np.int64)
    fnm = np.zeros(len(cos_thresholds), np.int64)
    n_gen = n_imp = 0
    n = len(vecs)
    for start in range(0, n, 512):  # upper triangle, blockwise
        block = vecs[start:start + 512] @ vecs.T
        rows_idx = np.arange(start, min(start + 512, n))
        mask = np.arange(n)[None, :] > rows_idx[:, None]
        same = sid[rows_idx][:, None] == sid[None, :]
        gen = block[mask & same]
        imp = block[mask & ~same]
        n_gen += gen.size
        n_imp += imp.size
        fnm += (gen[None, :] < cos_thresholds[:, None]).sum(axis=1)
        fm += (imp[None, :] >= cos_thresholds[:, None]).sum(axis=1)

    def stat(e, t):
        lo, hi = wilson_interval(int(e), int(t))
        return {"errors": int(e), "trials": int(t), "rate": e / t if t else 0.0, "ci95": [lo, hi]}

    n_table = len(THRESHOLDS) + 1
    curve = [{"similarity": s, "false_matches": int(fm[n_table + i]), "false_non_matches": int(fnm[n_table + i])}
             for i, s in enumerate(CURVE)]
    table = []
    for i, s in enumerate(sims_t[:n_table]):
        recommended = i == n_table - 1
        if recommended and any(abs(s - r["similarity"]) < 1e-9 for r in table):
            for r in table:
                if abs(s - r["similarity"]) < 1e-9:
                    r["recommended"] = True
            continue
        table.append({"similarity": s, "recommended": recommended,
                      "fmr": stat(fm[i], n_imp), "fnmr": stat(fnm[i], n_gen)})
    notes = [
        "Genuine pairs are few (Congress 2014 vs 2018 portraits and MEDS repeat encounters) and "
        "mostly studio portraits: FNMR here is optimistic for unconstrained photos.",
        "Impostor pairs are dominated by former members of Congress (mostly older white men): "
        "FMR is not broken down by group here; `faceaudit audit` does that.",
        "Where false matches number fewer than 30, the rate is uncertain (Doddington's rule of 30).",
    ]
    out = {
        "model": engine.spec.name,
        "face_model_version": engine.spec.version,
        "measured_on": dt.date.today().isoformat(),
        "software_version": __version__,
        "scale": engine.spec.scale.formula,
        "data": {
            "description": "all pairs among the public manifests congress_2018, congress_2014, "
                           "former_members and meds in shared/data (largest face per image)",
            "manifests": list(MANIFESTS),
            "images": len(rows),
            "failed_to_enrol": int(failed),
            "subjects": int(sid.max() + 1),
            "genuine_pairs": int(n_gen),
            "impostor_pairs": int(n_imp),
        },
        "thresholds": table,
        "curve": {"step": 0.5, "genuine_pairs": int(n_gen), "impostor_pairs": int(n_imp), "points": curve},
        "notes": notes,
        "command": f"python scripts/calibrate.py --model {engine.spec.name}",
    }
    dest = ROOT / "src" / "faceaudit" / "engine" / "calibration" / f"{engine.spec.name}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
