#!/usr/bin/env python
"""Build a model's calibration: its estimated false-match rate (FMR) at every score, and the scale.

Usage: .venv/bin/python scripts/calibrate.py --model sface [--data ../shared/data]
       [--cache out/public-audit/embeddings.sqlite]
       (`make calibrate` runs it for both models)

Data (the public manifests in shared/data; largest face per image):
- Impostor pairs: every pair of different people among former_members.csv and
  meds.csv (2,437 + 114 photos). These images are disjoint from the public
  reproduction's probes (congress_2018.csv) and their mates (congress_2014.csv),
  so the audit of those probes is an independent check of the scale. Subjects
  decide who is a stranger (37 former members and 18 MEDS subjects have two or
  more photos: those pairs are genuine, not impostors).
- Genuine pairs: each member's 2018 portrait against their 2014 portrait (399),
  for the FNMR column.
- Hold-out: congress_2018 against former_members + meds (the public
  reproduction's non-mated comparisons), never used to build the scale; its FMR
  at each Similarity is recorded beside the promise.

Method (every knot carries a one-sided 95% upper bound of the FMR, not the
estimate, so the calibration data hold each promise with room):
- Empirical FMR(c) = impostor pairs with cosine >= c / impostor pairs. Knots
  every 0.05 decade of FMR from 1 down to where ``--min-false-matches`` (10)
  impostor pairs are still counted: at each, the cosine of the k-th highest
  impostor score and the exact (Clopper-Pearson) 95% upper bound of the count
  at the knot below it, so that linear interpolation between knots never
  promises less than the bound of the count at any cosine in between; above u
  (below) the larger of that and the fitted tail's upper band.
- Beyond that, a fitted tail: the ``--tail`` (1,000) highest impostor scores
  are modelled as an exponential above the next score u (maximum likelihood:
  scale = mean excess). Its upper band takes the 97.5% Clopper-Pearson bound of
  k/N and the 97.5% chi-square bound of the scale (jointly >= 95%). log10 FMR
  then falls linearly in cosine with the band's slope, continuing from the last
  measured knot (at or above the band there), up to Similarity 99. The fit's
  Kolmogorov-Smirnov statistic and p-value and the generalised Pareto shape
  (method of moments) are recorded: a negative shape means the true tail is
  lighter than exponential, so the extrapolated FMR is an overestimate and the
  scale errs toward strictness.
- Similarity = 80 + 10 * (-log10 FMR_bound - 5) at every knot; linear in cosine
  between knots; from Similarity 30 (FMR 1) linear down to 0 at cosine -1.
- Above the cosine c99 of Similarity 99 the scale keeps rising toward 100
  without reaching it: 99 + (1 - exp(-(c - c99) / w)), w = (1 - c99) / ln 10
  (cosine 1 scores 99.9), never steeper than the tail line at c99 (so it
  promises at most the FMR the line would): stronger matches rank higher.

By probe quality (``--probe-condition``, default the public reproduction's four presets
doorbell-day-1.5m, doorbell-day-3m, doorbell-night-3m, cctv-4m; clean always):
- Each 2018 portrait is degraded as that camera would take it (engine/_conditions.py,
  seeded) and embedded through the same cache, under the condition's version (the
  public reproduction's run fills it: either run reuses the other's).
- Its quality band (engine/_quality.py: by eye distance only, nothing about the person)
  is the eye distance of the original's largest face (the model's own detector) carried
  through the condition's scaling (DegradedProbe.eye_distance), not re-measured on the
  degraded image, where the detector's landmarks jitter by about 10%.
- Per band, pooled over the conditions whose probes fall in it: FNMR (degraded probe
  against the member's clean 2014 portrait) and measured FMR (degraded probe against
  every clean former-member and MEDS photo: the hold-out's strangers) at Similarity
  80 / 90 / 99, counts with 95% Wilson intervals and the FMR's one-sided 95% upper
  bound; the same per condition; probes without a face under the condition are
  failures to enrol (counted, not in the rates). Bands without data are listed: the
  highest of them below the measured ones is the band below which nothing was measured.
  These figures never move the scale: the knots (and the scale version) come from the
  clean impostor pairs alone.

Writes src/faceaudit/engine/calibration/<model>.json and pins its SHA-256 in
src/faceaudit/engine/_registry.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
from scipy.stats import chi2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit import __version__  # noqa: E402
from faceaudit._stats import wilson_interval  # noqa: E402
from faceaudit.audit import LocalEngine, read_manifest  # noqa: E402
from faceaudit.engine import (  # noqa: E402
    NOISY_LEVELS,
    PROBE_BANDS,
    QUALITY_BANDS,
    ProbeCondition,
    Step,
    conditions_with_clean,
    degrade,
    detect_upscaled,
    get_model,
    load_image,
    probe_band,
    promised_fmr,
    quality_band,
    read_bytes,
)
from faceaudit.engine._calibration import (  # noqa: E402
    BAND_THRESHOLDS,
    BOUND_CONFIDENCE,
    SimilarityScale,
    fmr_upper_bound,
    scale_version,
    similarity_of_log10_fmr,
)

MANIFESTS = ("congress_2018.csv", "congress_2014.csv", "former_members.csv", "meds.csv")
IMPOSTOR_SETS = ("former_members", "meds")
TABLE = (30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 99.0, 99.5)
GALLERIES = (1_000, 25_000, 1_000_000)
STEP_DECADES = 0.05
TOP_SIMILARITY = 99.0  # the last knot; above it the scale rises toward 100 without reaching it
TOP_AT_COSINE_ONE = 99.9  # Similarity of cosine 1 (identical embeddings) on the top
TAIL_FMR = 2e-3  # ship every impostor score at or above the FMR-2e-3 cosine (Similarity ~57)
CONDITIONS = ("doorbell-day-1.5m", "doorbell-day-3m", "doorbell-night-3m", "cctv-4m")  # as the public run


def read_manifests(data: Path):
    """Every image of the calibration's manifests (the audit's manifest reader: same paths)."""
    return [r for name in MANIFESTS for r in read_manifest(data / "manifests" / name).records]


def embed_all(engine: LocalEngine, records, cache: Path, condition=None) -> np.ndarray:
    """Largest-face embedding of every image (zeros where no face), through the audit's embedding
    cache (SHA-256 of the image and FaceModelVersion, and the probe condition's version): the public
    reproduction's cache (out/public-audit/embeddings.sqlite) holds the same embeddings, so either
    run reuses the other's."""
    before = (engine.embedded, engine.from_cache)
    name = "clean" if condition is None else condition.name
    vectors, ok, _, _ = engine.embed(records, progress=True, label=f"embedding ({engine.spec.name}, {name})",
                                     condition=condition)
    print(f"  {name}: {engine.embedded - before[0]} images embedded, {engine.from_cache - before[1]} "
          f"from {cache}", file=sys.stderr)
    vectors[~ok] = 0.0
    return vectors.astype(np.float32)


def original_eye_distances(model: str, detector, records, cache: Path) -> list:
    """Pixels between the eyes of each image's largest face, by the model's own detector (None: no
    face), as the ``iod`` step measures them; kept in a JSON file beside the embedding cache."""
    spec = get_model(model)
    path = cache.with_name(f"{cache.stem}-eyes.json")
    known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    out, shas, changed = [], [], False
    for r in records:
        data = read_bytes(r.path)
        key = f"{spec.version}\0{hashlib.sha256(data).hexdigest()}"
        shas.append(key.split("\0")[1])
        if key not in known:
            faces = detector.detect(load_image(data), 1)
            known[key] = faces[0].quality.eye_distance_px if faces else None
            changed = True
        out.append(known[key])
    if changed:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    return out


def probe_noise(model: str, detector, condition, records, cache: Path) -> list:
    """Noise (Quality.noise, gray levels) of the face each probe is searched with under
    ``condition``: the largest face found as the audit finds it (engine/_conditions.py
    detect_upscaled on the degraded photo; the original's largest face for clean), the same face
    the embedding comes from; None where no face is found. Kept in a JSON file beside the
    embedding cache, by model, condition version and photo."""
    spec = get_model(model)
    path = cache.with_name(f"{cache.stem}-noise.json")
    known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    out, changed = [], False
    for r in records:
        data = read_bytes(r.path)
        key = f"{spec.version}\0{condition.version}\0{hashlib.sha256(data).hexdigest()}"
        if key not in known:
            img = load_image(data)
            if condition.is_clean:
                faces = detector.detect(img, 1)
            else:
                try:
                    faces, _ = detect_upscaled(detector, degrade(detector, img, condition).image, 1)
                except Exception:  # the embedding records why; here: no face
                    faces = []
            known[key] = faces[0].quality.noise if faces else None
            changed = True
        out.append(known[key])
    if changed:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    return out


def degraded_eye_distance(condition, record, eyes):
    """The original's eye distance carried through the condition's scaling (the iod step as
    engine/_conditions.py applies it), as DegradedProbe.eye_distance; None without a face."""
    if eyes is None:
        return None
    px = condition.target_eye_distance
    if px is None:
        return float(eyes)
    img = load_image(read_bytes(record.path))
    scaled = ProbeCondition("scale", (Step("iod", px),)).apply(img.pixels, img.sha256, eyes)
    scale = (scaled.shape[1] / img.width + scaled.shape[0] / img.height) / 2.0
    return float(eyes) * scale


def band_figures(conditions, probes_by_condition, eyes_by_condition, mates, imp_vecs, scale,
                 noise_by_condition=None):
    """The ``quality_bands`` section: per band (and per condition within it) FNMR and measured FMR
    at :data:`BAND_THRESHOLDS`. ``probes_by_condition[i]``: (vectors, ok) of the 2018 probes under
    ``conditions[i]``; ``eyes_by_condition[i]``: their eye distances (None: no face on the
    original); ``mates[j]``: the clean 2014 vector of probe j (None: no mate or no face);
    ``noise_by_condition[i]``: the noise of the face each probe is searched with (None: no face),
    for the bands on both axes (``probe_bands``: engine/_quality.py PROBE_BANDS)."""
    cos_t = {s: scale.to_cosine(s) for s in BAND_THRESHOLDS}
    n_imp = len(imp_vecs)

    def stat(e, t):
        lo, hi = wilson_interval(int(e), int(t))
        return {"errors": int(e), "trials": int(t), "rate": e / t if t else 0.0, "ci95": [lo, hi]}

    def summarise(cells):
        """cells: list of (condition name, probe index, eye px, ok, vector)."""
        enrolled = [c for c in cells if c[3]]
        gen = np.array([float(v @ mates[j]) for _, j, _, _, v in enrolled if mates[j] is not None])
        imp = (np.array([v for *_, v in enrolled]) @ imp_vecs.T).reshape(-1) if enrolled else np.zeros(0)
        rows = []
        for s in BAND_THRESHOLDS:
            fm = int(np.count_nonzero(imp >= cos_t[s]))
            rows.append({
                "similarity": s, "cosine": round(cos_t[s], 6),
                "fnmr": stat(int(np.count_nonzero(gen < cos_t[s])), len(gen)),
                "fmr": stat(fm, len(imp)),
                "fmr_bound95": fmr_upper_bound(fm, len(imp)) if len(imp) else 1.0,
            })
        eyes = [c[2] for c in cells]
        return {
            "probes": len(cells), "failed_to_enrol": len(cells) - len(enrolled),
            "genuine_pairs": int(len(gen)), "impostor_pairs": int(len(imp)),
            "eye_distance_px": ({"min": round(min(eyes), 2), "median": round(float(np.median(eyes)), 2),
                                 "max": round(max(eyes), 2)} if eyes else None),
            "thresholds": rows,
        }

    cells_by_band = {b.name: [] for b in QUALITY_BANDS}
    no_face = {}
    for cond, (vecs, ok), eyes in zip(conditions, probes_by_condition, eyes_by_condition, strict=True):
        no_face[cond.name] = sum(1 for e in eyes if e is None)
        for j, e in enumerate(eyes):
            if e is not None:
                cells_by_band[quality_band(e).name].append((cond.name, j, e, bool(ok[j]), vecs[j]))
    bands, empty = [], []
    for b in QUALITY_BANDS:
        cells = cells_by_band[b.name]
        if not cells:
            empty.append(b.name)
            continue
        by_condition = []
        for cond in conditions:
            mine = [c for c in cells if c[0] == cond.name]
            if mine:
                by_condition.append({"condition": cond.name, "spec": cond.spec, "version": cond.version,
                                     **summarise(mine)})
        bands.append({"band": b.name, "low_px": b.low, "high_px": b.high, **summarise(cells),
                      "by_condition": by_condition})
    lowest = bands[-1]["band"] if bands else None
    probe_bands = None
    if noise_by_condition is not None:
        cells_by_pb = {b.name: [] for b in PROBE_BANDS}
        unbanded = {}
        for cond, (vecs, ok), eyes, noise in zip(conditions, probes_by_condition, eyes_by_condition,
                                                 noise_by_condition, strict=True):
            for j, (e, q) in enumerate(zip(eyes, noise, strict=True)):
                if e is None:
                    continue
                if q is None or not ok[j]:  # no face found under the condition: its noise is unknown
                    size = quality_band(e).name
                    unbanded.setdefault(size, {}).setdefault(cond.name, 0)
                    unbanded[size][cond.name] += 1
                    continue
                cells_by_pb[probe_band(e, q).name].append((cond.name, j, e, True, vecs[j]))
        pbs, pb_empty = [], []
        for b in PROBE_BANDS:
            cells = cells_by_pb[b.name]
            if not cells:
                pb_empty.append(b.name)
                continue
            by_condition = []
            for cond in conditions:
                mine = [c for c in cells if c[0] == cond.name]
                if mine:
                    by_condition.append({"condition": cond.name, "spec": cond.spec, "version": cond.version,
                                         **summarise(mine)})
            pbs.append({"band": b.name, "size_band": b.size.name, "noisy": b.noisy, "low_px": b.size.low,
                        "high_px": b.size.high, **summarise(cells), "by_condition": by_condition})
        probe_bands = {
            "definition": "per probe band on both axes (engine/_quality.py PROBE_BANDS): the eye-distance "
                          "band as above and the face's sensor noise (Quality.noise, Immerkaer's estimate "
                          f"in 8-bit gray levels; noisy at or above {NOISY_LEVELS:g}), measured on the face "
                          "each degraded probe is searched with (as a live search measures it). Only "
                          "probes in which a face was found have a noise: the failures to enrol are "
                          "listed by size band and condition (failed_to_enrol_by_size), outside these "
                          "bands; the rates are those of searches that ran, as the review page needs.",
            "noisy_levels": NOISY_LEVELS,
            "noise_by_condition": {
                cond.name: (lambda q: {"faces": len(q), "p5": round(float(np.percentile(q, 5)), 2),
                                       "median": round(float(np.median(q)), 2),
                                       "p95": round(float(np.percentile(q, 95)), 2),
                                       "noisy": int(np.count_nonzero(np.array(q) >= NOISY_LEVELS))}
                           if q else None)([x for x in noise if x is not None])
                for cond, noise in zip(conditions, noise_by_condition, strict=True)},
            "failed_to_enrol_by_size": unbanded,
            "bands": pbs,
            "not_measured": pb_empty,
        }
    return {
        "definition": "per quality band of the probe (engine/_quality.py QUALITY_BANDS, by eye distance: "
                      "nothing about the person), pooled over the probe conditions whose probes fall in "
                      "it: FNMR = genuine pairs (degraded 2018 portrait vs the member's clean 2014 "
                      "portrait) below the threshold / genuine pairs; FMR = impostor pairs (degraded 2018 "
                      "portrait vs every clean former-member and MEDS photo) at or above it / impostor "
                      "pairs, counted, never extrapolated; probes without a face under the condition "
                      "are failures to enrol, outside the rates. 95% Wilson intervals; fmr_bound95: "
                      "one-sided 95% Clopper-Pearson upper bound. The scale does not depend on these.",
        "eye_distance": "the original's largest face (this model's detector) carried through the "
                        "condition's scaling, as DegradedProbe.eye_distance; not re-measured on the "
                        "degraded image (the detector's landmarks jitter by about 10% there)",
        "thresholds": list(BAND_THRESHOLDS),
        "impostor_images": int(n_imp),
        "conditions": [{"name": c.name, "spec": c.spec, "version": c.version, "source": c.source,
                        "probes": len(e), "no_face_on_original": no_face[c.name],
                        "failed_to_enrol": int(len(e) - np.count_nonzero(ok))}
                       for c, (_, ok), e in zip(conditions, probes_by_condition, eyes_by_condition, strict=True)],
        "bands": bands,
        "measured_down_to": lowest,
        "not_measured": empty,
        "nothing_measured_below": ({"band": lowest, "eye_distance_px": bands[-1]["eye_distance_px"]["min"]}
                                   if bands else None),
        **({"probe_bands": probe_bands} if probe_bands is not None else {}),
    }


def pair_scores(vecs: np.ndarray, subjects: np.ndarray):
    """Cosines of all unordered pairs: (impostor scores, genuine scores)."""
    imp, gen = [], []
    n = len(vecs)
    for start in range(0, n, 512):
        stop = min(start + 512, n)
        block = vecs[start:stop] @ vecs.T
        rows_idx = np.arange(start, stop)
        upper = np.arange(n)[None, :] > rows_idx[:, None]
        same = subjects[rows_idx][:, None] == subjects[None, :]
        imp.append(block[upper & ~same])
        gen.append(block[upper & same])
    return np.concatenate(imp).astype(np.float64), np.concatenate(gen).astype(np.float64)


def ks_exponential(excess: np.ndarray, scale: float):
    """Kolmogorov-Smirnov statistic and asymptotic p-value of ``excess`` against Exp(scale)."""
    x = np.sort(excess)
    n = len(x)
    cdf = 1.0 - np.exp(-x / scale)
    d = float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    p = 2.0 * sum((-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam) for j in range(1, 101))
    return d, float(min(1.0, max(0.0, p)))


def build_knots(imp_desc: np.ndarray, min_false_matches: int, tail: int):
    """Knots (cosine, log10 FMR bound, count) of the measured range, the tail fit and its band.

    ``imp_desc``: impostor scores sorted descending. Knot i carries the one-sided
    95% Clopper-Pearson bound of the count at knot i - 1 (a lower cosine, a
    larger count): between two knots the count is at most that, so the
    interpolated promise is never below the bound at any cosine.
    """
    n = len(imp_desc)
    raw = []
    top = math.log10(min_false_matches / n)
    level = 0.0
    while level >= top - 1e-12:
        k = max(min_false_matches, min(n, int(round(10.0 ** level * n))))
        cos = float(imp_desc[k - 1])
        raw.append((cos, int(np.count_nonzero(imp_desc >= cos))))  # ties: the count at this cosine
        level -= STEP_DECADES
    if raw[-1][1] > min_false_matches:
        cos = float(imp_desc[min_false_matches - 1])
        raw.append((cos, int(np.count_nonzero(imp_desc >= cos))))
    counted = []  # strictly increasing cosine, strictly decreasing count
    for cos, count in raw:
        if counted and (cos <= counted[-1][0] or count >= counted[-1][1]):
            continue
        counted.append((cos, count))
    # the exponential tail above u, fitted to the `tail` highest scores, and its upper band
    u = float(imp_desc[tail])
    excess = imp_desc[:tail] - u
    scale = float(np.mean(excess))
    d, p = ks_exponential(excess, scale)
    mean, var = float(np.mean(excess)), float(np.var(excess, ddof=1))
    gpd_shape = 0.5 * (1.0 - mean * mean / var)
    half = (1.0 - BOUND_CONFIDENCE) / 2.0  # Bonferroni: two 97.5% bounds hold together >= 95%
    k_over_n_up = fmr_upper_bound(tail, n, 1.0 - half)
    scale_up = 2.0 * tail * scale / float(chi2.ppf(half, 2 * tail))
    slope_up = -1.0 / (scale_up * math.log(10.0))  # d log10 FMR_bound / d cosine
    fit = {
        "model": "exponential excess over u: FMR(c) = (k/N) * exp(-(c - u) / scale), c >= u",
        "k": tail, "u": u, "scale": scale,  # unrounded: the band below is recomputed from them
        "log10_fmr_per_cosine": round(-1.0 / (scale * math.log(10.0)), 4),
        "upper_band": {
            "k_over_n": k_over_n_up, "scale": scale_up,
            "log10_fmr_per_cosine": round(slope_up, 4), "confidence": BOUND_CONFIDENCE,
            "method": "97.5% Clopper-Pearson upper bound of k/N and 97.5% chi-square upper bound of "
                      "the scale (2k * scale / chi2(0.025, 2k)): jointly >= 95%",
        },
        "ks_statistic": round(d, 4), "ks_p_value": round(p, 4),
        "gpd_shape_moments": round(gpd_shape, 4),
        "reading": ("negative GPD shape: the observed tail is lighter than exponential, so the "
                    "extrapolated FMR overestimates the true rate (the scale errs toward strictness)"
                    if gpd_shape < 0 else
                    "GPD shape >= 0: the tail is at least as heavy as exponential; extrapolated "
                    "FMRs may underestimate"),
    }

    def band(c: float) -> float:
        return math.log10(k_over_n_up) + slope_up * (c - u)

    # each knot: the larger of the two 95% bounds where both exist (above u, the tail's band may
    # lie above the counted bound where the tail is lighter than exponential); the max of two
    # lines is convex in cosine, so the chords between knots stay above it
    knots = []
    for i, (cos, count) in enumerate(counted):
        below = counted[max(0, i - 1)][1]
        lg = math.log10(fmr_upper_bound(below, n))
        knots.append((cos, max(lg, band(cos)) if cos >= u else lg, count))
    return knots, slope_up, fit, band


def tail_estimate(fit: dict, n: int, c: float) -> float:
    """The fitted tail's FMR estimate at cosine ``c`` (c >= u)."""
    return fit["k"] / n * math.exp(-(c - fit["u"]) / fit["scale"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="sface")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "public-audit" / "embeddings.sqlite",
                    help="embedding cache (the audit's SQLite format; default: the public reproduction's)")
    ap.add_argument("--min-false-matches", type=int, default=10)
    ap.add_argument("--tail", type=int, default=1000)
    ap.add_argument("--probe-condition", action="append", default=None, metavar="PRESET|SPEC",
                    help="probe conditions for the per-quality-band figures (repeatable; default: "
                         + ", ".join(CONDITIONS) + "; clean always)")
    ap.add_argument("--workers", type=int, default=None, help="embedding processes (default: the CPUs)")
    args = ap.parse_args()
    spec = get_model(args.model)
    rows = read_manifests(args.data)
    conditions = conditions_with_clean(args.probe_condition if args.probe_condition is not None else CONDITIONS)
    engine = LocalEngine(spec.name, cache=args.cache, workers=args.workers)
    try:
        vecs = embed_all(engine, rows, args.cache)
        probe_rows = [r for r in rows if r.label("dataset") == "congress2018"]
        degraded = [embed_all(engine, probe_rows, args.cache, c) for c in conditions[1:]]
    finally:
        engine.executor.close()
    ok = vecs.any(axis=1)
    subjects = np.array([r.subject for r in rows])
    datasets = np.array([r.label("dataset") for r in rows])
    in_imp = np.isin(datasets, IMPOSTOR_SETS) & ok
    imp, within_genuine = pair_scores(vecs[in_imp], subjects[in_imp])
    imp_desc = np.sort(imp)[::-1]
    n_imp = len(imp_desc)

    p18 = (datasets == "congress2018") & ok
    p14 = (datasets == "congress2014") & ok
    idx14 = {s: i for s, i in zip(subjects[p14], np.flatnonzero(p14), strict=True)}
    genuine = np.array([float(vecs[i] @ vecs[idx14[s]])
                        for s, i in zip(subjects[p18], np.flatnonzero(p18), strict=True) if s in idx14])
    holdout = (vecs[p18] @ vecs[in_imp].T).reshape(-1).astype(np.float64)
    idx18 = np.flatnonzero(datasets == "congress2018")
    clean_probes = vecs[idx18]
    mates = [vecs[idx14[s]] if s in idx14 else None for s in subjects[idx18]]

    knots, slope_up, fit, band = build_knots(imp_desc, args.min_false_matches, args.tail)
    cos_k = [c for c, _, _ in knots]
    sim_k = [float(x) for x in similarity_of_log10_fmr(np.array([lg for _, lg, _ in knots]))]
    measured_up_to = sim_k[-1]
    if measured_up_to >= TOP_SIMILARITY:
        print(f"the measured range reaches Similarity {measured_up_to:.2f}: no extrapolation needed",
              file=sys.stderr)
        return 1
    # extrapolated: the band's slope from the last measured knot up to Similarity 99
    c_top = cos_k[-1] + (TOP_SIMILARITY - sim_k[-1]) / (-10.0 * slope_up)
    cos_k.append(c_top)
    sim_k.append(TOP_SIMILARITY)
    cos_k.insert(0, -1.0)
    sim_k.insert(0, 0.0)
    # rounded as stored; Similarity rounded down (a lower Similarity promises a higher FMR)
    # rounded toward strictness: cosine up, Similarity down (each promises a higher FMR)
    cos_r = [math.ceil(float(c) * 1e6 - 1e-6) / 1e6 for c in cos_k]
    sim_r = [math.floor(float(x) * 1e4 + 1e-6) / 1e4 for x in sim_k]
    keep = [0]
    for i in range(1, len(cos_r)):
        if cos_r[i] > cos_r[keep[-1]] and sim_r[i] > sim_r[keep[-1]]:
            keep.append(i)
    cos_r = [cos_r[i] for i in keep]
    sim_r = [sim_r[i] for i in keep]
    # the top: from (c_top, 99) toward 100; cosine 1 at TOP_AT_COSINE_ONE, never steeper than the line
    c_top = cos_r[-1]
    w_line = -1.0 / (10.0 * slope_up)  # cosine per Similarity point on the extrapolated line
    gap_at_one = (100.0 - TOP_AT_COSINE_ONE) / (100.0 - TOP_SIMILARITY)
    w = round(max(w_line, (1.0 - c_top) / -math.log(gap_at_one)), 6)
    if w < w_line:
        w = round(w_line + 1e-6, 6)
    scale = SimilarityScale(tuple(cos_r), tuple(sim_r), version="", measured_up_to=measured_up_to,
                            top_width=w)
    version = scale_version(spec.name, cos_r, sim_r, w)

    def stat(e, t):
        lo, hi = wilson_interval(int(e), int(t))
        return {"errors": int(e), "trials": int(t), "rate": e / t if t else 0.0, "ci95": [lo, hi]}

    def bound_at(c: float, extrapolated: bool) -> float:
        if extrapolated:
            return 10.0 ** band(c)
        counted = fmr_upper_bound(int(np.count_nonzero(imp_desc >= c)), n_imp)
        return max(counted, 10.0 ** band(c)) if c >= fit["u"] else counted

    own = scale.to_similarity(spec.recommended_cosine)
    table = []
    for s in sorted(set(TABLE) | {round(own, 2)}):
        c = scale.to_cosine(s)
        fm = int(np.count_nonzero(imp_desc >= c))
        extrapolated = bool(s > measured_up_to + 1e-9)
        table.append({
            "similarity": s,
            "model_own_threshold": bool(abs(s - round(own, 2)) < 1e-9),
            "cosine": round(c, 6),
            "promised_fmr": promised_fmr(s),
            "extrapolated": extrapolated,
            "fmr_estimate": tail_estimate(fit, n_imp, c) if extrapolated else fm / n_imp,
            "fmr_bound95": bound_at(c, extrapolated),
            "fmr": stat(fm, n_imp),
            "holdout_fmr": stat(int(np.count_nonzero(holdout >= c)), len(holdout)),
            "fnmr": stat(int(np.count_nonzero(genuine < c)), len(genuine)),
            "expected_false_candidates": {str(g): g * promised_fmr(s) for g in GALLERIES},
        })
    eyes0 = original_eye_distances(spec.name, engine.face_engine.model.detector, probe_rows, args.cache)
    eyes = [eyes0] + [[degraded_eye_distance(c, r, e) for r, e in zip(probe_rows, eyes0, strict=True)]
                      for c in conditions[1:]]
    probes_by_condition = [(clean_probes, clean_probes.any(axis=1))] + [(v, v.any(axis=1)) for v in degraded]
    detector = engine.face_engine.model.detector
    noise = [probe_noise(spec.name, detector, c, probe_rows, args.cache) for c in conditions]
    bands = band_figures(conditions, probes_by_condition, eyes, mates, vecs[in_imp], scale, noise)
    tail_cut = float(imp_desc[min(n_imp, int(math.ceil(TAIL_FMR * n_imp))) - 1])
    curve = []
    for s in [x / 2 for x in range(100, 201)]:
        c = scale.to_cosine(s)
        curve.append({"similarity": s, "false_matches": int(np.count_nonzero(imp_desc >= c)),
                      "false_non_matches": int(np.count_nonzero(genuine < c))})
    counts = {math.ceil(float(c) * 1e6 - 1e-6) / 1e6: int(k) for c, _, k in knots}
    out = {
        "model": spec.name,
        "face_model_version": spec.version,
        "measured_on": dt.date.today().isoformat(),
        "software_version": __version__,
        "scale": {
            "version": version,
            "definition": "Similarity = 80 + 10 * (-log10 FMR_bound - 5) "
                          "(80 = FMR 1e-5, 90 = 1e-6, 99 = 1.26e-7), FMR_bound being the one-sided 95% "
                          "upper bound of the FMR (exact Clopper-Pearson on the counts, the fitted "
                          "tail's upper band above the measured range); linear in cosine between "
                          "knots; from Similarity 30 (FMR 1) linear to 0 at cosine -1; above the last "
                          "knot (99) 99 + (1 - exp(-(c - c99) / width)), below 100 everywhere",
            "bound_confidence": BOUND_CONFIDENCE,
            "measured_up_to_similarity": round(measured_up_to, 4),
            "knots": [{"cosine": c, "similarity": s, "extrapolated": bool(s > measured_up_to + 1e-9),
                       **({"false_matches": counts[c]} if c in counts else {})}
                      for c, s in zip(cos_r, sim_r, strict=True)],
            "top": {"from_similarity": sim_r[-1], "cosine": cos_r[-1], "width": w,
                    "formula": "Similarity = 99 + (1 - exp(-(cosine - cosine_99) / width)) above cosine_99",
                    "width_rule": f"cosine 1 scores {TOP_AT_COSINE_ONE}; never steeper than the extrapolated "
                                  f"line at cosine_99 (width >= {w_line:.6f}), so the promise holds above 99"},
            "tail_fit": fit,
            "model_own_threshold": {"cosine": spec.recommended_cosine, "similarity": round(own, 2),
                                    "source": spec.recommended_source},
        },
        "data": {
            "description": "impostor pairs: all pairs of different people among former_members.csv "
                           "and meds.csv; genuine pairs: congress_2018 vs congress_2014 portraits of "
                           "the same member; hold-out: congress_2018 vs former_members + meds",
            "images": len(rows),
            "failed_to_enrol": int((~ok).sum()),
            "impostor_images": int(in_imp.sum()),
            "impostor_pairs": int(n_imp),
            "same_subject_pairs_excluded": int(len(within_genuine)),
            "genuine_pairs": int(len(genuine)),
            "holdout_pairs": int(len(holdout)),
            "min_false_matches": args.min_false_matches,
        },
        "thresholds": table,
        "curve": {"step": 0.5, "genuine_pairs": int(len(genuine)), "impostor_pairs": int(n_imp),
                  "points": curve},
        "impostor_tail": {"fmr_down_to": TAIL_FMR,
                          "cosines": [round(float(x), 6) for x in imp_desc[imp_desc >= tail_cut]]},
        "genuine": {"cosines": sorted(round(float(x), 6) for x in genuine)},
        "quality_bands": bands,
        "notes": [
            "FMR depends on the photos and on the people: these are official portraits of mostly "
            "older white men (former members of Congress) and NIST MEDS mugshots. `faceaudit audit` "
            "measures the FMR on your own data, overall and per group.",
            f"Above Similarity {measured_up_to:.1f} fewer than {args.min_false_matches} false matches "
            "support the estimate: the FMR there is extrapolated from the fitted tail (its 95% upper "
            "band).",
            "Every promise is a one-sided 95% upper bound of the FMR on these pairs, not the estimate: "
            "at each threshold the measured FMR is below the promise (columns fmr_estimate, "
            "fmr_bound95).",
            "Genuine pairs are 2014 vs 2018 official portraits: FNMR is optimistic for "
            "unconstrained photos.",
            "quality_bands: the 2018 portraits degraded synthetically as doorbell and CCTV cameras "
            "would take them (size, blur, low light, noise, H.264): the direction and rough size of "
            "the effect, not error rates on real footage. Below the lowest measured band nothing was "
            "measured.",
        ],
        "command": f".venv/bin/python scripts/calibrate.py --model {spec.name}" + (
            "" if args.probe_condition is None
            else "".join(f" --probe-condition '{c.spec or c.name}'" for c in conditions[1:])),
    }
    text = json.dumps(out, indent=1) + "\n"
    dest = ROOT / "src" / "faceaudit" / "engine" / "calibration" / f"{spec.name}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    reg = ROOT / "src" / "faceaudit" / "engine" / "_registry.py"
    src = reg.read_text(encoding="utf-8")
    src, n = re.subn(rf'("{re.escape(spec.name)}": ")[0-9a-f]{{64}}(")', rf"\g<1>{sha}\g<2>", src, count=1)
    if n != 1:
        print(f"could not pin {spec.name} in {reg}; pin SHA-256 {sha} by hand", file=sys.stderr)
        return 1
    reg.write_text(src, encoding="utf-8")
    print(f"wrote {dest} (scale {version}, SHA-256 {sha}); pinned in {reg.name}", file=sys.stderr)
    for r in table:
        print(f"  Similarity {r['similarity']:6.2f}{' (own)' if r['model_own_threshold'] else '      '}"
              f" promised FMR {r['promised_fmr']:.2e}  bound {r['fmr_bound95']:.2e}"
              f"  estimate {r['fmr_estimate']:.2e}  measured {r['fmr']['errors']}/{r['fmr']['trials']}"
              f"  hold-out {r['holdout_fmr']['errors']}/{r['holdout_fmr']['trials']}"
              f"  FNMR {r['fnmr']['errors']}/{r['fnmr']['trials']}"
              f"{'  (extrapolated)' if r['extrapolated'] else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
