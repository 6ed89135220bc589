"""``faceaudit audit`` and ``faceaudit report``: the ACLU's test, repeatable, per group, with intervals."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _csv_list(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _thresholds(text: str) -> tuple:
    from faceaudit._errors import InvalidParameterError

    try:
        return tuple(float(x) for x in _csv_list(text))
    except ValueError:
        raise InvalidParameterError(f"--thresholds must be numbers from 0 to 100, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="search probe photos against a gallery and measure false matches per group (the ACLU's test)",
        description=(
            "Search every probe image against the gallery and report FPIR, FNIR, the ACLU count, FMR and "
            "FNMR at each threshold, overall and per group, with 95%% intervals. Manifests are CSV files "
            "with image (path relative to the CSV), subject, then group-label columns. Writes results.json, "
            "candidates.csv and report.html into --out."
        ),
    )
    p.add_argument("--probes", nargs="+", required=True, metavar="CSV", help="probe manifest(s)")
    p.add_argument("--gallery", nargs="+", required=True, metavar="CSV", help="gallery manifest(s)")
    p.add_argument("--engine", choices=["local", "rekognition"], default="local",
                   help="local: in-process model, exact scores (default); rekognition: any "
                        "Rekognition-compatible endpoint through boto3")
    p.add_argument("--model", default=None, help="local engine: face model (see `faceaudit models`); rekognition engine: a name for the "
                        "report (the endpoint picks the model; its FaceModelVersion is recorded)")
    p.add_argument("--endpoint-url", default=None,
                   help="rekognition engine: endpoint (e.g. http://127.0.0.1:8080 for `faceaudit serve`; "
                        "default: Amazon's)")
    p.add_argument("--region", default=None, help="rekognition engine: AWS region (default $AWS_REGION or us-east-1)")
    p.add_argument("--thresholds", type=_thresholds, default=None, metavar="T,...",
                   help="Similarity thresholds, 0-100 (default 80,90,95,99)")
    p.add_argument("--group-by", type=_csv_list, default=None, metavar="COL,...",
                   help="probe label columns to split by (default: every label column with 2+ values)")
    p.add_argument("--gallery-group-by", type=_csv_list, default=None, metavar="COL,...",
                   help="gallery label columns to split false candidates by (default: every label column "
                        "with 2+ values)")
    p.add_argument("--bands", action="append", default=[], metavar="COL=E1,E2,...",
                   help="band edges for a numeric column, e.g. age=40,50,60,70 (default: 10-year bands)")
    p.add_argument("--no-intersections", action="store_true", help="do not cross pairs of group columns")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="weight of false matches in FDR, IR and GARBE, 0-1 (default 0.5)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="subject resamples for the bootstrap intervals (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local engine: processes that embed images, one OpenCV thread each (default: the CPUs; "
                        "1: in this process)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local engine: where images are embedded and scores computed: local (worker processes "
                        "on this machine, the default) or ray (a Ray cluster; pip install 'faceaudit[ray]')")
    p.add_argument("--ray-address", default=None, metavar="auto|URI",
                   help="--executor ray: the cluster (auto: the one this machine belongs to; ray://HOST:10001: a "
                        "remote one; default: a local Ray with --workers CPUs)")
    p.add_argument("--cache", default=None, metavar="PATH",
                   help="embedding cache, SQLite (default OUT/embeddings.sqlite); reruns resume from it")
    p.add_argument("--note", action="append", default=[], metavar="TEXT",
                   help="a caveat about the data to print in the report (repeatable)")
    _report_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("report", help="rebuild DIR/report.html from DIR/results.json (and candidates.csv)")
    p.add_argument("dir", metavar="DIR")
    _report_options(p)
    p.set_defaults(handler=cmd_report)


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-thumbnails", action="store_true",
                   help="embed no face thumbnails in report.html (for reports you publish)")
    p.add_argument("--thumbnail-exclude", action="append", default=[], metavar="COL=VALUE",
                   help="embed no thumbnail of images with this label, e.g. dataset=meds (repeatable)")
    p.add_argument("--max-thumbnails", type=int, default=100, metavar="N",
                   help="at most N false-candidate pairs as thumbnails (default 100)")


def _policy(args: argparse.Namespace):
    from faceaudit.audit import ThumbnailPolicy

    return ThumbnailPolicy(enabled=not args.no_thumbnails,
                           exclude=ThumbnailPolicy.parse_exclude(args.thumbnail_exclude),
                           max_pairs=max(0, args.max_thumbnails))


def cmd_audit(args: argparse.Namespace) -> int:
    from faceaudit._errors import InvalidParameterError
    from faceaudit.audit import (
        DEFAULT_THRESHOLDS,
        AuditConfig,
        LocalEngine,
        RekognitionEngine,
        make_client,
        parse_bands,
        run_audit,
    )

    out = Path(args.out)
    policy = _policy(args)
    config = AuditConfig(
        thresholds=args.thresholds or DEFAULT_THRESHOLDS, group_by=args.group_by,
        gallery_group_by=args.gallery_group_by, bands=parse_bands(args.bands),
        intersections=not args.no_intersections, alpha=args.alpha, bootstrap=args.bootstrap, seed=args.seed,
    )
    if args.engine == "local":
        if args.endpoint_url:
            raise InvalidParameterError("--endpoint-url needs --engine rekognition")
        from faceaudit.engine import DEFAULT_MODEL

        executor = _executor(args)
        engine = LocalEngine(args.model or DEFAULT_MODEL, cache=args.cache or out / "embeddings.sqlite",
                             executor=executor)
    else:
        if args.executor != "local" or args.ray_address or args.workers is not None:
            raise InvalidParameterError("--workers, --executor and --ray-address are for --engine local")
        client = make_client(args.endpoint_url, args.region)
        engine = RekognitionEngine(client, model_name=args.model)
    command = _command_line(args)
    run = run_audit(args.probes, args.gallery, engine, config, progress=not args.quiet, command=command,
                    notes=args.note)
    paths = run.write(out, thumbnails=policy)
    r = run.result
    print(f"engine {r.engine.kind}, model {r.engine.model} ({r.engine.face_model_version})")
    print(f"{r.counts.probes} searches ({r.counts.searches_mated} mated, {r.counts.searches_non_mated} non-mated) "
          f"against {r.counts.gallery_images} gallery photos; {r.counts.probes_failed + r.counts.gallery_failed} "
          f"without a usable face")
    for x in r.summaries:
        o = x.overall
        print(f"  threshold {x.threshold:g}: {o['ACLU_COUNT'].errors}/{o['ACLU_COUNT'].trials} searches with a "
              f"false candidate; FPIR {_pct(o['FPIR'].rate)}, FNIR {_pct(o['FNIR'].rate)}, "
              f"FMR {_pct(o['FMR'].rate)}, FNMR {_pct(o['FNMR'].rate)}"
              + (f"  [{', '.join(x.reasons)}]" if x.reasons else ""))
    print("A candidate is an investigative lead, not an identification.", file=sys.stderr)
    print(f"results: {paths['results']}")
    print(f"candidates: {paths['candidates']}")
    print(f"report: {paths['report']}")
    return 0


def _executor(args: argparse.Namespace):
    from faceaudit._errors import InvalidParameterError
    from faceaudit.audit import LocalExecutor, RayExecutor

    if args.executor == "ray":
        return RayExecutor(address=args.ray_address, workers=args.workers)
    if args.ray_address:
        raise InvalidParameterError("--ray-address needs --executor ray")
    return LocalExecutor(args.workers)


def _command_line(args: argparse.Namespace) -> str:
    """The audit's command line, rebuilt from the parsed options (recorded in results.json)."""
    parts = ["faceaudit", "audit", "--probes", *args.probes, "--gallery", *args.gallery, "--engine", args.engine]
    for flag, value in (("--model", args.model), ("--endpoint-url", args.endpoint_url), ("--region", args.region),
                        ("--cache", args.cache)):
        if value:
            parts += [flag, value]
    if args.thresholds:
        parts += ["--thresholds", ",".join(f"{t:g}" for t in args.thresholds)]
    for flag, value in (("--group-by", args.group_by), ("--gallery-group-by", args.gallery_group_by)):
        if value is not None:
            parts += [flag, ",".join(value)]
    for b in args.bands:
        parts += ["--bands", b]
    if args.no_intersections:
        parts.append("--no-intersections")
    parts += ["--alpha", f"{args.alpha:g}", "--bootstrap", str(args.bootstrap), "--seed", str(args.seed)]
    for n in args.note:
        parts += ["--note", n]
    if args.no_thumbnails:
        parts.append("--no-thumbnails")
    for x in args.thumbnail_exclude:
        parts += ["--thumbnail-exclude", x]
    parts += ["--out", args.out]
    return " ".join(shlex.quote(p) for p in parts)


def _pct(rate) -> str:
    return "-" if rate is None else f"{100 * rate:.3g}%"


def cmd_report(args: argparse.Namespace) -> int:
    from faceaudit.audit import build_report

    path = build_report(args.dir, thumbnails=_policy(args))
    print(f"report: {path}")
    return 0
