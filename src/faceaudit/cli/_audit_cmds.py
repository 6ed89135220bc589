"""``faceaudit audit`` and ``faceaudit report``: the ACLU's test, repeatable, per group, with intervals."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from faceaudit.cli._output import rate_text


def _csv_list(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _thresholds(text: str) -> tuple:
    from faceaudit._errors import InvalidParameterError

    try:
        return tuple(float(x) for x in _csv_list(text))
    except ValueError:
        raise InvalidParameterError(f"--thresholds must be numbers from 0 to 100, got {text!r}") from None


def _match_counts(text: str) -> tuple:
    from faceaudit._errors import InvalidParameterError

    try:
        values = tuple(int(x) for x in _csv_list(text))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise InvalidParameterError(f"--match-count must be whole numbers >= 1, got {text!r}")
    return values


class _ShareAction(argparse.Action):
    """--share COLUMN=LABEL,...: one composition test; --share-label names the --share before it."""

    def __call__(self, parser, namespace, value, option_string=None):
        shares = list(getattr(namespace, "shares", None) or [])
        if option_string == "--share-label":
            if not shares:
                parser.error("--share-label must follow the --share it names")
            shares[-1] = (shares[-1][0], value)
        else:
            shares.append((value, None))
        namespace.shares = shares


def register(sub: argparse._SubParsersAction) -> None:
    _register_audit(sub)
    _register_report(sub)


def _register_audit(sub: argparse._SubParsersAction) -> None:
    """``faceaudit audit``: its options in the order ``--help`` lists them."""
    p = sub.add_parser(
        "audit",
        help="search probe photos against a gallery and measure false matches per group (the ACLU's test)",
        description=(
            "Search every probe image against the gallery and report FPIR, FNIR, the ACLU count, FMR and "
            "FNMR at each threshold, overall and per group, with 95% intervals. Manifests are CSV files "
            "with image (path relative to the CSV), subject, then group-label columns. Writes results.json, "
            "candidates.csv and report.html into --out."
        ),
    )
    _audit_input_options(p)
    _audit_measure_options(p)
    _audit_execution_options(p)
    _audit_extra_options(p)
    _report_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(handler=cmd_audit)


def _register_report(sub: argparse._SubParsersAction) -> None:
    """``faceaudit report``."""
    p = sub.add_parser(
        "report", help="rebuild DIR/report.html from DIR/results.json, or compare several audits side by side",
        description="With one DIR: rebuild DIR/report.html from DIR/results.json (and candidates.csv). With "
                    "several DIRs and --out: one page comparing the audits (e.g. sface, dlib and a Rekognition "
                    "endpoint on the same manifests) at equal Similarity and at equal measured false-match rate.")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="several DIRs: write the comparison page to DIR/comparison.html")
    _report_options(p)
    p.set_defaults(handler=cmd_report)


def _audit_input_options(p: argparse.ArgumentParser) -> None:
    """Manifests and the engine that searches them."""
    p.add_argument("--probes", nargs="+", required=True, metavar="CSV", help="probe manifest(s)")
    p.add_argument("--gallery", nargs="+", required=True, metavar="CSV", help="gallery manifest(s)")
    p.add_argument("--engine", choices=["local", "rekognition"], default="local",
                   help="local: in-process model, exact scores (default); rekognition: any "
                        "Rekognition-compatible endpoint through boto3 (needs AWS credentials: "
                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)")
    p.add_argument("--model", default=None,
                   help="local engine: face model (see `faceaudit models`); rekognition engine: a name for "
                        "the report (the endpoint picks the model; its FaceModelVersion is recorded)")
    p.add_argument("--endpoint-url", default=None,
                   help="rekognition engine: endpoint (e.g. http://127.0.0.1:8080 for `faceaudit serve`; "
                        "default: Amazon's)")
    p.add_argument("--region", default=None, help="rekognition engine: AWS region (default $AWS_REGION or us-east-1)")


def _audit_measure_options(p: argparse.ArgumentParser) -> None:
    """Thresholds, grouping and the statistics."""
    p.add_argument("--thresholds", type=_thresholds, default=None, metavar="T,...",
                   help="Similarity thresholds, 0-100 (default 80,90,95,99)")
    p.add_argument("--group-by", type=_csv_list, default=None, metavar="COL,...",
                   help="probe label columns to split by (default: every label column with 2+ values)")
    p.add_argument("--gallery-group-by", type=_csv_list, default=None, metavar="COL,...",
                   help="gallery label columns to split false candidates by (default: every label column "
                        "with 2+ values)")
    p.add_argument("--bands", action="append", default=[], metavar="COL=E1,E2,...",
                   help="band edges for a numeric column, e.g. age=40,50,60,70 (default: 10-year bands)")
    p.add_argument("--relabel", action="append", default=[], metavar="COLUMN:OLD=NEW",
                   help="rename a label before grouping, on both sides, e.g. race:B=black so that NIST MEDS's "
                        "labels join the Congress lists' (repeatable)")
    p.add_argument("--no-intersections", action="store_true", help="do not cross pairs of group columns")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="weight of false matches in FDR, IR and GARBE, 0-1 (default 0.5)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="subject resamples for the bootstrap intervals (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _audit_execution_options(p: argparse.ArgumentParser) -> None:
    """Where and how images are embedded, and the embedding cache."""
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


def _audit_extra_options(p: argparse.ArgumentParser) -> None:
    """Composition tests, match counts, candidates floor, notes and probe conditions."""
    p.add_argument("--share", dest="shares", action=_ShareAction, default=[], metavar="COLUMN=LABEL,...",
                   help="composition test: the share of these labels of a probe column among searches with a false "
                        "candidate against their share among all searches, e.g. "
                        "'race=black,hispanic,asian_pacific,native_american,black;asian_pacific' (labels are "
                        "separated by commas and matched whole, so a label may hold ';'; quote it in a shell; "
                        "repeatable)")
    p.add_argument("--share-label", dest="shares", action=_ShareAction, metavar="TEXT",
                   help="a name for the --share just before it, e.g. 'people of color'")
    p.add_argument("--match-count", type=_match_counts, default=(), metavar="N[,N...]",
                   help="also audit the threshold at which N searches have a false candidate (the ACLU's 28)")
    p.add_argument("--candidates-floor", type=float, default=None, metavar="T",
                   help="candidates.csv: also every candidate down to this Similarity (default: down to the "
                        "lowest threshold any figure uses)")
    p.add_argument("--min-group-size", type=int, default=10, metavar="N",
                   help="groups with fewer people searched are shown but marked too small and left out of ratios "
                        "(default 10)")
    p.add_argument("--note", action="append", default=[], metavar="TEXT",
                   help="a caveat about the data to print in the report (repeatable)")
    p.add_argument("--probe-condition", dest="probe_conditions", action="append", default=[],
                   metavar="SPEC|PRESET",
                   help="local engine: also search the probes degraded as a camera takes them, against the same "
                        "gallery (repeatable; 'clean' is always included). A preset (clean, doorbell-day-1.5m, "
                        "doorbell-day-3m, doorbell-night-3m, cctv-4m, cctv-8m) or steps, e.g. "
                        "'iod=20,blur=1,gamma=2,noise=6,jpeg=50' (iod=PX eyes PX apart, blur=SIGMA, motion=LENGTH, "
                        "gamma=G, noise=SIGMA, gray, jpeg=Q, h264=KBPS for a 1080p stream). Synthetic: the "
                        "direction and rough size of the effect, not rates on real footage")


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
        AuditEngine,
        LocalEngine,
        RekognitionEngine,
        ShareSpec,
        make_client,
        parse_bands,
        parse_relabel,
        run_audit,
    )

    out = Path(args.out)
    policy = _policy(args)
    engine: AuditEngine
    from faceaudit.engine import conditions_with_clean

    conditions = conditions_with_clean(args.probe_conditions) if args.probe_conditions else ()
    if conditions and args.engine != "local":
        raise InvalidParameterError("--probe-condition needs --engine local (it degrades the probes itself)")
    config = AuditConfig(
        thresholds=args.thresholds or DEFAULT_THRESHOLDS, group_by=args.group_by,
        gallery_group_by=args.gallery_group_by, bands=parse_bands(args.bands),
        intersections=not args.no_intersections, alpha=args.alpha, bootstrap=args.bootstrap, seed=args.seed,
        shares=tuple(ShareSpec.parse(spec, label) for spec, label in args.shares),
        match_counts=tuple(args.match_count), min_group_searches=args.min_group_size,
        relabel=parse_relabel(args.relabel),
        candidates_floor=args.candidates_floor,
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
                    notes=args.note, conditions=conditions)
    paths = run.write(out, thumbnails=policy)
    r = run.result
    scale = f", Similarity scale {r.engine.similarity_scale_version}" if r.engine.similarity_scale_version else ""
    print(f"engine {r.engine.kind}, model {r.engine.model} ({r.engine.face_model_version}{scale})")
    print(f"{r.counts.probes} searches ({r.counts.searches_mated} mated, {r.counts.searches_non_mated} non-mated) "
          f"against {r.counts.gallery_images} gallery photos; {r.counts.probes_failed + r.counts.gallery_failed} "
          f"without a usable face")
    for x in r.summaries:
        o = x.overall
        print(f"  threshold {x.threshold:g}: {o['ACLU_COUNT'].errors}/{o['ACLU_COUNT'].trials} searches with a "
              f"false candidate; FPIR {_pct(o['FPIR'].rate)}, FNIR {_pct(o['FNIR'].rate)}, "
              f"FMR {rate_text(o['FMR'].rate)}, FNMR {_pct(o['FNMR'].rate)}"
              + (f"  [{', '.join(_coherent(x.reasons, o['ACLU_COUNT'].errors))}]" if x.reasons else ""))
    for st in r.share_tests:
        m, e = st.matched, st.everyone
        shown = (*r.thresholds, *(p.threshold for p in r.match_counts if p.threshold is not None))
        if m.trials and any(abs(st.threshold - x) < 1e-9 for x in shown):
            print(f"  {st.label} at {st.threshold:g}: {m.errors}/{m.trials} = {_pct(m.rate)} of the searches "
                  "with a false "
                  f"candidate, {_pct(e.rate)} of all {e.trials} (Fisher's exact p = {st.p_value:.2g})")
    if r.conditions:
        _print_conditions(r)
    print("A candidate is an investigative lead, not an identification.", file=sys.stderr)
    print(f"results: {paths['results']}")
    print(f"candidates: {paths['candidates']}")
    print(f"report: {paths['report']}")
    return 0


def _print_conditions(r) -> None:
    """One line per probe condition: failures to enrol, FNIR at each audited threshold, the ACLU
    count at the model's threshold, the lead list, the temptation threshold, and the cost."""
    ths = [float(t) for t in r.thresholds]
    head = (["condition", "FTE"] + [f"FNIR@{t:g}" for t in ths] + [f"false@{t:g}" for t in ths[:1]]
            + ["rank1", "top20", "T(FNIR<=5%)", "false@T", "embed s"])
    rows = []
    for c in r.conditions:
        lead, tt = c.lead_list, c.temptation
        rows.append([c.name, f"{c.failures_to_enrol}/{c.probes}"]
                    + [_pct(c.rate("FNIR", t).rate) for t in ths]
                    + [f"{c.rate('ACLU_COUNT', t).errors}/{c.rate('ACLU_COUNT', t).trials}" for t in ths[:1]]
                    + [_pct(lead.at_rank[1]), _pct(lead.at_rank[20]),
                       "none" if tt.threshold is None else f"{tt.threshold:.2f}",
                       "-" if tt.searches_with_false_candidate is None
                       else f"{tt.searches_with_false_candidate}/{tt.searches}", f"{c.embed_seconds:.1f}"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    print("probe conditions (synthetic degradations of the probes; gallery unchanged):")
    for row in [head, *rows]:
        print("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


def _executor(args: argparse.Namespace):
    from faceaudit._errors import InvalidParameterError
    from faceaudit.audit import LocalExecutor, RayExecutor

    if args.executor == "ray":
        return RayExecutor(address=args.ray_address, workers=args.workers)
    if args.ray_address:
        raise InvalidParameterError("--ray-address needs --executor ray")
    return LocalExecutor(args.workers)


SAFE_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
"""Words a POSIX shell reads as they are (no quoting needed)."""


def shell_words(words) -> str:
    """A command line a person can read and paste: bare words where safe, else double quotes."""
    out = []
    for w in words:
        if w and SAFE_WORD.match(w):
            out.append(w)
        else:
            out.append('"' + re.sub(r'(["\\$`])', r"\\\1", w) + '"')
    return " ".join(out)


def _command_line(args: argparse.Namespace) -> str:
    """The audit's command line as typed (its arguments, after the program name faceaudit)."""
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return shell_words(["faceaudit", *argv])


def _coherent(reasons, found: int) -> list[str]:
    """A match-count reason ("10 searches with a false candidate") that this threshold did not reach
    says what was asked and what was found, so the line does not contradict its own count."""
    out = []
    for reason in reasons:
        asked = re.fullmatch(r"(\d+) searches with a false candidate", reason)
        if asked and int(asked.group(1)) != found:
            reason = (f"lowest threshold with at most {asked.group(1)} searches with a false candidate "
                      f"(--match-count {asked.group(1)}; {found} here)")
        out.append(reason)
    return out


def _pct(rate) -> str:
    return "-" if rate is None else f"{100 * rate:.3g}%"


def cmd_report(args: argparse.Namespace) -> int:
    from faceaudit._errors import InvalidParameterError
    from faceaudit.audit import build_comparison, build_report

    if len(args.dirs) == 1 and args.out is None:
        path = build_report(args.dirs[0], thumbnails=_policy(args))
        print(f"report: {path}")
        return 0
    if args.out is None:
        raise InvalidParameterError("several DIRs need --out DIR for the comparison page")
    path = build_comparison(args.dirs, args.out)
    print(f"comparison: {path}")
    return 0
