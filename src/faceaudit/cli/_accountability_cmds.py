"""``faceaudit log``, ``faceaudit policy`` and ``faceaudit review``."""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from faceaudit.cli._output import print_json, print_table


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="data directory (default $FACEAUDIT_DATA_DIR or ~/.local/share/faceaudit)")


def register(sub: argparse._SubParsersAction) -> None:
    log_p = sub.add_parser("log", help="the tamper-evident search log")
    log_sub = log_p.add_subparsers(dest="log_command", metavar="ACTION")
    log_sub.required = True
    p = log_sub.add_parser("verify", help="check every record's hash and link; non-zero exit on tampering")
    _data_dir_arg(p)
    p.add_argument("--expect-head", default=None, help="a head hash published earlier (see `log head`)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_log_verify)
    p = log_sub.add_parser("export", help="write the records for public reporting")
    _data_dir_arg(p)
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--out", default="-", help="output file (default stdout)")
    p.set_defaults(handler=cmd_log_export)
    p = log_sub.add_parser("head", help="print the last record's seq and hash, to publish or keep elsewhere")
    _data_dir_arg(p)
    p.set_defaults(handler=cmd_log_head)

    pol = sub.add_parser("policy", help="threshold policy of a collection (admin)")
    pol_sub = pol.add_subparsers(dest="policy_command", metavar="ACTION")
    pol_sub.required = True
    p = pol_sub.add_parser("get", help="show a collection's policy")
    p.add_argument("collection_id", metavar="COLLECTION")
    _data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_policy_get)
    p = pol_sub.add_parser("set", help="set a collection's policy (local admin)")
    p.add_argument("collection_id", metavar="COLLECTION")
    _data_dir_arg(p)
    p.add_argument("--min-threshold", type=float, default=None,
                   help="lowest allowed FaceMatchThreshold, 0-100 (e.g. 90 = false-match rate 1e-6 on every model)")
    p.add_argument("--max-false-match-rate", type=float, default=None, metavar="RATE",
                   help="riskiest false-match rate a search may run at, e.g. 1e-6 (= threshold 90); "
                        "the stricter of this and --min-threshold applies")
    p.add_argument("--max-faces", type=int, default=None, help="most candidates per search")
    p.add_argument("--require-case-reference", action="store_true")
    p.add_argument("--purpose", default="", help='what the collection is for, e.g. "law-enforcement"')
    p.add_argument("--law-enforcement", action="store_true",
                   help="shorthand: min threshold 99, case reference required, purpose law-enforcement")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_policy_set)

    rev = sub.add_parser("review", help="human review of leads (two reviewers confirm)")
    rev_sub = rev.add_subparsers(dest="review_command", metavar="ACTION")
    rev_sub.required = True
    p = rev_sub.add_parser("list", help="list leads")
    _data_dir_arg(p)
    p.add_argument("--status", choices=["pending", "confirmed", "rejected"], default="pending")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_review_list)
    p = rev_sub.add_parser("show", help="show one lead")
    p.add_argument("lead_id", metavar="LEAD")
    _data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_review_show)
    for action in ("confirm", "reject"):
        p = rev_sub.add_parser(action, help=f"{action} a lead as a reviewer")
        p.add_argument("lead_id", metavar="LEAD")
        _data_dir_arg(p)
        p.add_argument("--access-key-id", required=True,
                       help="your own access key (role operator or admin): decisions are recorded under it; "
                            "the secret is read from $FACEAUDIT_SECRET_ACCESS_KEY or asked for")
        p.add_argument("--note", default="")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_review_decide, decision=action)


def _acc(args):
    from faceaudit._paths import resolve_data_dir
    from faceaudit.accountability import Accountability

    return Accountability(resolve_data_dir(args.data_dir))


def cmd_log_verify(args) -> int:
    from faceaudit.accountability import LogIntegrityError

    result = _acc(args).log.verify(expect_head=args.expect_head)
    if args.json:
        print_json({"Ok": result.ok, "Records": result.records, "HeadHash": result.head_hash,
                    "FirstBadRecord": result.first_bad, "Problem": result.problem,
                    "TornTail": result.torn_tail})
    elif result.ok:
        extra = " (a torn, unacknowledged final write is ignored)" if result.torn_tail else ""
        print(f"OK: {result.records} records, chain intact, head {result.head_hash}{extra}")
    if not result.ok:
        where = f"record {result.first_bad}" if result.first_bad else "log"
        raise LogIntegrityError(f"search log verification FAILED at {where}: {result.problem}")
    return 0


def cmd_log_export(args) -> int:
    from faceaudit.accountability import export_records

    text = export_records(list(_acc(args).log.records()), args.format)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_log_head(args) -> int:
    head = _acc(args).log.head() or {"seq": 0, "hash": None}
    print_json(head)
    return 0


def _local_admin():
    from faceaudit.accountability import CallerContext

    return CallerContext(access_key_id=f"local:{getpass.getuser()}", role="admin", source="cli")


def _policy_meaning(args, policy):
    """What the policy's threshold means for its collection (model, size), or None without a threshold."""
    from faceaudit._errors import ResourceNotFoundError
    from faceaudit._paths import resolve_data_dir
    from faceaudit.accountability import policy_meaning
    from faceaudit.collections import FaceCollections
    from faceaudit.engine import DEFAULT_MODEL

    threshold = policy.effective_min_threshold
    if threshold is None:
        return None, ""
    try:
        desc = FaceCollections(resolve_data_dir(args.data_dir)).describe_collection(
            collection_id=policy.collection_id)
        model, size, where = desc.face_model_version, desc.face_count, ""
    except ResourceNotFoundError:
        model, size, where = DEFAULT_MODEL, 0, f" (collection not created yet: model {DEFAULT_MODEL} assumed)"
    return policy_meaning(threshold, model, size), where


def _print_policy(args, policy) -> None:
    meaning, where = _policy_meaning(args, policy)
    if args.json:
        out = policy.to_json()
        if meaning is not None:
            out["Meaning"] = {
                "Model": meaning.model, "Threshold": meaning.threshold,
                "PromisedFalseMatchRate": meaning.promised_fmr,
                "FalseMatchRateExtrapolated": meaning.fmr_extrapolated,
                "FalseNonMatchRate": meaning.fnmr, "FalseNonMatches": meaning.fnmr_errors,
                "GenuinePairs": meaning.fnmr_trials, "FalseNonMatchRateCI95": list(meaning.fnmr_ci95),
                "GallerySize": meaning.gallery_size,
                "ExpectedFalseCandidatesPerSearch": meaning.expected_false_candidates,
                "Warnings": list(meaning.warnings),
            }
        print_json(out)
        return
    eff = policy.effective_min_threshold
    mt = "none" if eff is None else f"{eff:g}"
    if policy.max_false_match_rate is not None:
        mt += f" (from max false-match rate {policy.max_false_match_rate:.3g})"
    mf = "none" if policy.max_faces is None else str(policy.max_faces)
    print(f"collection {policy.collection_id}: minimum threshold {mt}, max candidates {mf}, "
          f"case reference {'required' if policy.require_case_reference else 'optional'}"
          + (f", purpose {policy.purpose}" if policy.purpose else ""))
    if meaning is None:
        print("  no minimum threshold: searches may run at any Similarity (default 80 = false-match "
              "rate 1e-5 per comparison)")
        return
    print(f"  what it means{where}:")
    for line in meaning.lines():
        print(f"  - {line}")
    for w in meaning.warnings:
        print(f"faceaudit: warning: {w}", file=sys.stderr)


def cmd_policy_get(args) -> int:
    _print_policy(args, _acc(args).policy(args.collection_id))
    return 0


def cmd_policy_set(args) -> int:
    from faceaudit.accountability import ThresholdPolicy

    policy = ThresholdPolicy(
        collection_id=args.collection_id,
        min_face_match_threshold=99.0 if args.law_enforcement and args.min_threshold is None else args.min_threshold,
        max_faces=args.max_faces,
        require_case_reference=args.require_case_reference or args.law_enforcement,
        purpose=args.purpose or ("law-enforcement" if args.law_enforcement else ""),
        max_false_match_rate=args.max_false_match_rate,
    )
    _print_policy(args, _acc(args).set_policy(policy, _local_admin()))
    return 0


def _lead_rows(leads):
    return [
        (l.lead_id, l.status, f"{l.similarity:.2f}", f"{l.threshold:g}", l.collection_id or "-",
         l.candidate_external_image_id or l.candidate_face_id or l.candidate_user_id or "-",
         sum(d.decision == "confirm" for d in l.decisions), l.case_reference or "-")
        for l in leads
    ]


def cmd_review_list(args) -> int:
    leads = _acc(args).leads(args.status)
    if args.json:
        print_json({"Leads": [l.to_json() for l in leads]})
        return 0
    print_table(["lead", "status", "similarity", "threshold", "collection", "candidate", "confirms", "case"],
                _lead_rows(leads))
    print("A candidate is an investigative lead, not an identification.", file=sys.stderr)
    return 0


def cmd_review_show(args) -> int:
    from faceaudit.accountability import LEAD_NOTICE

    acc = _acc(args)
    lead = acc.reviews.get(args.lead_id)
    if args.json:
        print_json(lead.to_json())
        return 0
    doc = lead.to_json()
    for key in ("LeadId", "Status", "Operation", "CollectionId", "FaceId", "ExternalImageId", "UserId",
                "Similarity", "Threshold", "FaceModelVersion", "CaseReference", "RequestedBy", "ProbeSha256"):
        print(f"{key:18} {doc[key]}")
    probe = acc.probe_path(lead.probe_sha256)
    print(f"{'ProbeImage':18} {probe or 'not kept'}")
    for d in lead.decisions:
        print(f"decision: {d.reviewer} {d.decision} at "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(d.time))} UTC {d.note}")
    print(LEAD_NOTICE)
    return 0


def _reviewer_key(args) -> str:
    """The reviewer's access key id, after checking its secret and role (as the web page does)."""
    import hmac
    import os

    from faceaudit._errors import AccessDeniedError
    from faceaudit._paths import resolve_data_dir
    from faceaudit.accountability._roles import REVIEWER_ROLES
    from faceaudit.service import KeyStore

    secret = os.environ.get("FACEAUDIT_SECRET_ACCESS_KEY")
    if secret is None:
        if not sys.stdin.isatty():
            raise AccessDeniedError("set FACEAUDIT_SECRET_ACCESS_KEY or run interactively to give the secret")
        secret = getpass.getpass(f"secret access key for {args.access_key_id}: ")
    key = KeyStore(resolve_data_dir(args.data_dir)).lookup(args.access_key_id)
    if (key is None or not key.active or key.role not in REVIEWER_ROLES
            or not hmac.compare_digest(key.secret.encode(), secret.encode())):
        raise AccessDeniedError("unknown or revoked key, wrong secret, or a role that may not review "
                                "(operator or admin only)")
    return key.access_key_id


def cmd_review_decide(args) -> int:
    reviewer = _reviewer_key(args)
    lead = _acc(args).decide(args.lead_id, reviewer, args.decision, args.note)
    if args.json:
        print_json(lead.to_json())
    else:
        n = sum(d.decision == "confirm" for d in lead.decisions)
        print(f"lead {lead.lead_id}: {args.decision} recorded for {reviewer}; status {lead.status} "
              f"({n} of 2 confirmations)")
    return 0
