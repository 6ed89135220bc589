"""``faceaudit detect``, ``compare`` and ``models``."""

from __future__ import annotations

import argparse
import sys

from faceaudit._defaults import DEFAULT_SIMILARITY_THRESHOLD
from faceaudit.cli._output import print_json, print_table, short_g


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect faces in images (DetectFaces)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", default=None, help="face model (see `faceaudit models`)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the DetectFaces response, one JSON document per image (one line each)",
    )
    p.set_defaults(handler=cmd_detect)

    p = sub.add_parser("compare", help="compare the largest SOURCE face with every TARGET face (CompareFaces)")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--threshold", type=float, default=DEFAULT_SIMILARITY_THRESHOLD,
                   help=f"SimilarityThreshold, 0-100 (default {DEFAULT_SIMILARITY_THRESHOLD:g})")
    p.add_argument("--model", default=None)
    p.add_argument("--json", action="store_true", help="print the CompareFaces response")
    p.add_argument("--data-dir", default=None, help="data directory holding the search log")
    p.add_argument("--case-reference", default="", help="case this comparison belongs to (logged)")
    p.add_argument("--purpose", default="", help="why the comparison is made (logged)")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("models", help="list face models and their measured calibration")
    p.add_argument("--json", action="store_true")
    p.add_argument("--brief", action="store_true", help="one line per model, without the calibration tables")
    p.set_defaults(handler=cmd_models)


def _engine(args: argparse.Namespace):
    from faceaudit.cli import _context

    return _context.engine(args, args.model)


def cmd_detect(args: argparse.Namespace) -> int:
    engine = _engine(args)
    for path in args.images:
        result = engine.detect(path)
        if args.json:
            print_json(result.to_rekognition())
            continue
        print(f"{path}: {len(result.faces)} face(s) [{result.image_width}x{result.image_height}]")
        for i, face in enumerate(result.faces):
            b = face.bounding_box
            print(
                f"  #{i}: box left={b.left:.3f} top={b.top:.3f} width={b.width:.3f} "
                f"height={b.height:.3f}  confidence={face.confidence:.1f}  "
                f"brightness={face.quality.brightness:.1f} sharpness={face.quality.sharpness:.1f}  "
                f"pose roll={face.pose.roll:.0f} yaw={face.pose.yaw:.0f} pitch={face.pose.pitch:.0f}"
            )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import getpass

    from faceaudit.accountability import CallerContext, guard_request
    from faceaudit.cli import _context
    from faceaudit.engine import check_similarity_threshold, load_image

    engine = _engine(args)
    threshold = check_similarity_threshold(args.threshold)
    source = load_image(args.source)
    ctx = CallerContext(f"local:{getpass.getuser()}", role="operator", source="cli",
                        case_reference=args.case_reference, purpose=args.purpose)
    result = guard_request(
        _context.accountability(args), ctx, "CompareFaces",
        {"SimilarityThreshold": threshold}, lambda: engine.compare(source, args.target, threshold),
        response_of=lambda r: r.to_rekognition(), model_version=lambda r: engine.model_version,
        probe_sha256=source.sha256,
    )
    if args.json:
        print_json(result.to_rekognition())
        return 0
    from faceaudit.engine import one_in, promised_fmr

    print(f"model {engine.spec.name} ({engine.model_version}); threshold {result.threshold:g} "
          f"(Similarity scale {engine.spec.scale.version})")
    print(f"Similarity is 0-100, higher is more alike; at or above {result.threshold:g} two different "
          f"people match with probability {short_g(promised_fmr(result.threshold))} "
          f"({one_in(result.threshold)}), on every model.")
    rows = [("match", f"{m.similarity:.2f}", _box(m.face)) for m in result.matches]
    rows += [("no match", f"{m.similarity:.2f}", _box(m.face)) for m in result.unmatched]
    print_table(["result", "similarity", "target face box"], rows)
    print(
        "A match is an investigative lead, not an identification: a person must verify it.",
        file=sys.stderr,
    )
    return 0


def _box(face) -> str:
    b = face.bounding_box
    return f"left={b.left:.3f} top={b.top:.3f} w={b.width:.3f} h={b.height:.3f}"


def _calibration_summary(spec) -> dict:
    """The calibration without its raw score lists (those stay in the shipped file)."""
    raw = dict(spec.calibration())
    raw["impostor_tail"] = {"fmr_down_to": raw["impostor_tail"]["fmr_down_to"],
                            "scores": len(raw["impostor_tail"]["cosines"])}
    raw["genuine"] = {"scores": len(raw["genuine"]["cosines"])}
    return raw


def cmd_models(args: argparse.Namespace) -> int:
    from faceaudit.engine import DEFAULT_MODEL, list_models

    specs = list_models()
    if args.json:
        print_json(
            {
                "SimilarityScale": SCALE_MEANING,
                "Models": [
                    {
                        "Name": s.name,
                        "FaceModelVersion": s.version,
                        "ApiFaceModelVersion": s.numeric_version,
                        "SimilarityScaleVersion": s.scale.version,
                        "Default": s.name == DEFAULT_MODEL,
                        "Installed": s.is_installed(),
                        "Runtime": s.runtime(),
                        "RecommendedSimilarity": s.recommended_similarity,
                        "Calibration": _calibration_summary(s),
                    }
                    for s in specs
                ]
            }
        )
        return 0
    if args.brief:
        for s in specs:
            flag = " (default)" if s.name == DEFAULT_MODEL else ""
            state = "installed" if s.is_installed() else f"not installed: pip install 'faceaudit[{s.extra}]'"
            print(f"{s.name}{flag}: {s.description} [{state}]; its own threshold: Similarity "
                  f"{s.recommended_similarity:.2f}")
        print("Similarity 80 = a false-match rate of 1 in 100,000 on every model; "
              "`faceaudit models` for the calibration tables.")
        return 0
    print(SCALE_MEANING + "\n")
    for s in specs:
        flag = " (default)" if s.name == DEFAULT_MODEL else ""
        state = "installed" if s.is_installed() else f"not installed: pip install 'faceaudit[{s.extra}]'"
        print(f"{s.name}{flag}: {s.description}")
        print(f"  FaceModelVersion: {s.version} (over the API: {s.numeric_version})   [{state}]")
        choice = "   (FACEAUDIT_RUNTIME=opencv|onnxruntime|openvino: same faces and embeddings)"
        print(f"  runs on: {s.runtime()}" + (choice if s.name == "sface" else ""))
        print(f"  Similarity scale: {s.scale.version} (measured up to {s.scale.measured_up_to:.1f}, "
              "extrapolated beyond)")
        print(
            f"  model's own threshold: Similarity {s.recommended_similarity:.2f} "
            f"({s.recommended_source})"
        )
        _print_calibration(s.calibration())
        _print_bands(s.calibrated())
        print()
    return 0


SCALE_MEANING = (
    "Similarity (0-100, higher is more alike) means the same false-match risk on every model: "
    "Similarity = 80 + 10 * (-log10 FMR - 5), FMR being the share of pairs of different people "
    "scoring at or above it (80 = 1 in 100,000; 90 = 1 in 1,000,000; 99 = 1 in 7.9 million). "
    "Each model's calibration places each threshold where the one-sided 95% upper bound of its FMR, "
    "from stranger pairs of public portraits and mugshots, meets the promise; above 99 the scale "
    "keeps rising toward 100 so stronger matches rank higher. FMR on your photos and people can "
    "differ: `faceaudit audit` measures it."
)


def _pct(rate: float) -> str:
    return f"{100 * rate:.3g}%"


def _print_bands(cal) -> None:
    """FNMR and measured FMR at 80 / 90 / 99 per quality band of the probe, and where measuring stopped."""
    from faceaudit.engine import QUALITY_BANDS

    lowest = cal.measured_down_to
    if lowest is None:
        print("    by probe quality: not measured for this calibration (rebuild it: `make calibrate`)")
        return
    conditions = cal.raw["quality_bands"]["conditions"]
    print("    by probe quality (the 2018 portraits degraded as cameras take them: "
          + ", ".join(c["name"] for c in conditions)
          + "; band by eye distance; the scale above is the same at every quality):")
    rows = []
    for band in QUALITY_BANDS:
        b = cal.by_band(band)
        eyes = f">= {band.low:g}" if band.high is None else f"{band.low:g}-{band.high:g}"
        if b is None:
            rows.append((band.name, eyes, "not measured", "", "", ""))
            continue
        fnmr = " / ".join(f"{r.fnmr.errors}/{r.fnmr.trials} = {_pct(r.fnmr.rate)}" for r in b.rates)
        fmr = " / ".join(f"{r.fmr.errors}/{r.fmr.trials:,}" + (f" = {r.fmr.rate:.2g}" if r.fmr.errors else "")
                          for r in b.rates)
        mix = ", ".join(f"{p.condition} {p.probes}: {_pct(p.fnmr(80).rate) if p.genuine_pairs else '-'}"
                        for p in b.by_condition)
        rows.append((band.name, eyes, f"{b.probes} ({b.failed_to_enrol})", fnmr, fmr, mix))
    print_table(["band", "eyes (px)", "probes (no face)", "FNMR at 80 / 90 / 99", "FMR (false matches) at 80 / 90 / 99",
                 "probes by condition: FNMR at 80"], rows, indent="    ")
    names = [b.name for b in QUALITY_BANDS]
    below = names[names.index(lowest.name) + 1:]
    floor = (cal.raw["quality_bands"].get("nothing_measured_below") or {}).get("eye_distance_px")
    print(f"    nothing was measured below band {lowest.name} ({lowest.low:g} px between the eyes"
          + (f"; the smallest probe measured: {floor:g} px" if floor is not None else "") + ")"
          + (f": {', '.join(below)} without figures" if below else "")
          + "; FNMR among probes with a face found; false matches: degraded probe against clean "
            "photos of strangers, counted (95% intervals in the calibration file). Synthetic "
            "degradation: the direction and rough size of the effect, not rates on real footage.")
    _print_probe_bands(cal)


def _print_probe_bands(cal) -> None:
    """The same per band on both axes: eye distance and the face's sensor noise (clear / noisy)."""
    from faceaudit.engine import NOISY_LEVELS, PROBE_BANDS

    if not cal.probe_bands:
        return
    print(f"    by probe band, eye distance and noise (noisy: the face's sensor noise at least {NOISY_LEVELS:g} "
          "gray levels, as at night; measured on the face searched):")
    rows = []
    for band in PROBE_BANDS[:-1]:
        b = cal.by_band(band)
        if b is None:
            rows.append((band.name, "not measured", "", "", ""))
            continue
        fnmr = " / ".join(f"{r.fnmr.errors}/{r.fnmr.trials} = {_pct(r.fnmr.rate)}" for r in b.rates) \
            if b.genuine_pairs else "no mated pairs"
        fmr = " / ".join(f"{r.fmr.errors}/{r.fmr.trials:,}" + (f" = {r.fmr.rate:.2g}" if r.fmr.errors else "")
                          for r in b.rates)
        mix = ", ".join(f"{p.condition} {p.probes}" for p in b.by_condition)
        rows.append((band.name, str(b.probes), fnmr, fmr, mix))
    print_table(["band", "probes (face found)", "FNMR at 80 / 90 / 99", "FMR (false matches) at 80 / 90 / 99",
                 "probes by condition"], rows, indent="    ")


def _print_calibration(cal: dict) -> None:
    d = cal["data"]
    fit = cal["scale"]["tail_fit"]
    print(f"  calibration measured {cal['measured_on']} with faceaudit {cal['software_version']}:")
    print(f"    {d['description']}")
    print(f"    {d['images']} images ({d['failed_to_enrol']} without a detected face); "
          f"{d['impostor_pairs']:,} impostor pairs, {d['genuine_pairs']} genuine pairs, "
          f"{d['holdout_pairs']:,} hold-out impostor pairs")
    print(f"    tail fit: {fit['model']}; k={fit['k']}, KS D={fit['ks_statistic']} "
          f"(p={fit['ks_p_value']}), GPD shape {fit['gpd_shape_moments']}: {fit['reading']}")
    rows = []
    for r in cal["thresholds"]:
        exp = r["expected_false_candidates"]
        rows.append((
            f"{r['similarity']:.2f}" + (" *" if r.get("model_own_threshold") else ""),
            short_g(r['promised_fmr']),
            short_g(r['fmr_bound95']) if "fmr_bound95" in r else "",
            ("~" if r["extrapolated"] else "") + (short_g(r['fmr_estimate']) if "fmr_estimate" in r else ""),
            f"{r['fmr']['errors']}/{r['fmr']['trials']:,}",
            f"{r['holdout_fmr']['errors']}/{r['holdout_fmr']['trials']:,}",
            f"{r['fnmr']['errors']}/{r['fnmr']['trials']} = {_pct(r['fnmr']['rate'])}",
            " / ".join(f"{exp[g]:.2g}" for g in ("1000", "25000", "1000000")),
        ))
    print_table(
        ["similarity", "promised FMR", "95% bound", "estimate", "false matches", "hold-out", "FNMR",
         "expected strangers per search (1k / 25k / 1M faces)"],
        rows, indent="    ",
    )
    print("    * the model's own published threshold. The scale is built from the one-sided 95% upper "
          "bound of the FMR (exact on the counts; ~ above the measured range: the fitted tail's estimate "
          "and upper band, too few false matches to count), so the promise is at least the bound.")
    for note in cal.get("notes", []):
        print(f"    note: {note}")
    print(f"    reproduce: {cal['command']}")
