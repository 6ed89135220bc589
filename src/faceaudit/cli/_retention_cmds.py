"""``faceaudit retention set|list|apply``: faces and kept probes deleted after N days, logged."""

from __future__ import annotations

import argparse
import getpass

from faceaudit.cli._output import DATA_DIR_HELP, print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retention", help="delete faces and kept probes after N days (legal hold stops it)")
    rsub = p.add_subparsers(dest="retention_command", metavar="ACTION")
    rsub.required = True
    s = rsub.add_parser("set", help="a collection's retention (local admin; logged)")
    s.add_argument("collection_id", metavar="COLLECTION")
    s.add_argument("--days", type=int, default=None,
                   help="delete faces indexed (and probes searched) more than N days ago")
    hold = s.add_mutually_exclusive_group()
    hold.add_argument("--legal-hold", dest="legal_hold", action="store_true", default=None,
                      help="keep everything of the collection until the hold is lifted")
    hold.add_argument("--no-legal-hold", dest="legal_hold", action="store_false", help="lift the legal hold")
    s.set_defaults(handler=cmd_set)
    ls = rsub.add_parser("list", help="every collection's retention rule")
    ls.set_defaults(handler=cmd_list)
    a = rsub.add_parser("apply", help="delete what the rules have expired now (faceaudit serve does it daily)")
    a.set_defaults(handler=cmd_apply)
    for q in (s, ls, a):
        q.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
        q.add_argument("--json", action="store_true")


def _retention(args):
    from faceaudit.cli import _context

    return _context.retention(args)


def _admin():
    from faceaudit.accountability import CallerContext

    return CallerContext(access_key_id=f"local:{getpass.getuser()}", role="admin", source="cli")


def cmd_set(args) -> int:
    rule = _retention(args).set(_admin(), args.collection_id, args.days, args.legal_hold)
    if args.json:
        print_json(rule.to_json())
    else:
        days = f"{rule.days} days" if rule.days else "kept (no period)"
        print(f"collection {rule.collection_id}: retention {days}" + (", ON LEGAL HOLD" if rule.legal_hold else ""))
    return 0


def cmd_list(args) -> int:
    rules = _retention(args).rules()
    if args.json:
        print_json({"Rules": [r.to_json() for r in rules]})
        return 0
    print_table(["collection", "days", "legal hold"],
                [[r.collection_id, r.days or "-", "yes" if r.legal_hold else "no"] for r in rules])
    return 0


def cmd_apply(args) -> int:
    report = _retention(args).apply(_admin())
    n_faces = sum(map(len, report.faces.values()))
    if args.json:
        print_json({"DeletedFaces": {c: list(f) for c, f in report.faces.items()},
                    "DeletedProbes": list(report.probes), "LegalHold": list(report.held),
                    "LogRecords": list(report.log_seqs)})
        return 0
    for cid, faces in sorted(report.faces.items()):
        print(f"{cid}: deleted {len(faces)} face(s)")
    print(f"deleted {n_faces} face(s) and {len(report.probes)} kept probe(s); each deletion is in the search "
          f"log (records {', '.join(map(str, report.log_seqs)) or 'none'})"
          + (f"; on legal hold: {', '.join(report.held)}" if report.held else ""))
    return 0
