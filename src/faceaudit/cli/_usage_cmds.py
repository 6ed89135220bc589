"""``faceaudit report usage --from D --to D [--format html|json]``: the accountability usage report."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from faceaudit.cli._output import DATA_DIR_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report-usage", prog="faceaudit report usage",
        help="searches, refusals, leads, policy changes, audits and retention "
             "of a period, each figure traced to the signed search log")
    p.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first day (UTC)")
    p.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="last day, included (UTC)")
    p.add_argument("--format", choices=["text", "html", "json"], default=None,
                   help="text (a summary; the default on the terminal), html (the default with --out) or json")
    p.add_argument("--out", default="-", metavar="FILE", help="output file (default stdout)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.set_defaults(handler=cmd_usage)
    sub._choices_actions[-1].metavar = "report usage"  # `faceaudit --help` lists it as typed


def cmd_usage(args) -> int:
    import json

    from faceaudit.accountability import parse_day, render_html, usage_report
    from faceaudit.cli import _context

    start, end = parse_day(args.start), parse_day(args.end) + dt.timedelta(days=1)
    report = usage_report(_context.accountability(args), start, end)
    fmt = args.format or ("text" if args.out == "-" else "html")
    if fmt == "json":
        text = json.dumps(report.to_json(), indent=1) + "\n"
    elif fmt == "html":
        text = render_html(report)
    else:
        text = summary_text(report)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {args.out} (log {'verified' if report.log_ok else 'FAILED verification'}; "
              f"signed head record {report.anchor.get('seq', '-')})", file=sys.stderr)
    return 0 if report.log_ok else 8


def summary_text(report) -> str:
    """The usage report as a few plain lines for a terminal (figures only; the HTML page and the
    JSON trace each figure to its log records)."""
    last_day = (report.end - dt.timedelta(days=1)).date()
    lines = [f"Use of face recognition, {report.start.date()} to {last_day} (UTC)"]

    def figure(f, indent="  ") -> None:
        lines.append(f"{indent}{f.label}: {f.count}")

    figure(report.searches)
    for f in report.searches_by:
        figure(f, "    ")
    figure(report.audit_searches)
    figure(report.failures)
    if report.refusals:
        lines.append(f"  refused searches: {sum(f.count for f in report.refusals)}")
    for f in report.refusals:
        figure(f, "    ")
    figure(report.video_searches)
    figure(report.video_people)
    for f in report.leads:
        figure(f, "  ")
    t = report.decision_times
    if t.n:
        lines.append(f"  time to decision: median {t.median_hours:.1f} h, longest {t.max_hours:.1f} h "
                     f"({t.n} leads)")
    lines.append(f"  policy changes: {len(report.policy_changes)}")
    for f in report.audits:
        figure(f, "  ")
    for f in report.retention:
        figure(f, "  ")
    state = "verified" if report.log_ok else f"FAILED verification: {report.log_problem}"
    lines.append(f"Search log {state}: {report.log_records} records, signed head record "
                 f"{report.anchor.get('seq', '-')}")
    lines.append("Each figure with its log records: --format json, or --out FILE (HTML)")
    return "\n".join(lines) + "\n"
