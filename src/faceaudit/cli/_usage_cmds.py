"""``faceaudit report usage --from D --to D [--format html|json]``: the accountability usage report."""

from __future__ import annotations

import argparse
import datetime as dt
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report-usage",
        help="`faceaudit report usage`: searches, refusals, leads, policy changes, audits and retention "
             "of a period, each figure traced to the signed search log")
    p.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first day (UTC)")
    p.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="last day, included (UTC)")
    p.add_argument("--format", choices=["html", "json"], default="html")
    p.add_argument("--out", default="-", metavar="FILE", help="output file (default stdout)")
    p.add_argument("--data-dir", default=None, help="data dir (default $FACEAUDIT_DATA_DIR or ~/.local/share/faceaudit)")
    p.set_defaults(handler=cmd_usage)


def cmd_usage(args) -> int:
    import json

    from faceaudit._paths import resolve_data_dir
    from faceaudit.accountability import Accountability
    from faceaudit.accountability import parse_day, render_html, usage_report

    start, end = parse_day(args.start), parse_day(args.end) + dt.timedelta(days=1)
    report = usage_report(Accountability(resolve_data_dir(args.data_dir)), start, end)
    text = (json.dumps(report.to_json(), indent=1) + "\n") if args.format == "json" else render_html(report)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {args.out} (log {'verified' if report.log_ok else 'FAILED verification'}; "
              f"signed head record {report.anchor.get('seq', '-')})", file=sys.stderr)
    return 0 if report.log_ok else 8
