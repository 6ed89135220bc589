"""``faceaudit log``, ``faceaudit policy`` and ``faceaudit review``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time

from faceaudit.cli._output import DATA_DIR_HELP, print_json, print_table, short_g


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)


def register(sub: argparse._SubParsersAction) -> None:
    log_p = sub.add_parser("log", help="the tamper-evident search log")
    log_sub = log_p.add_subparsers(dest="log_command", metavar="ACTION")
    log_sub.required = True
    p = log_sub.add_parser("verify", help="check every record's hash and link; non-zero exit on tampering")
    _data_dir_arg(p)
    p.add_argument("--expect-head", default=None, help="a head hash published earlier (see `log head`)")
    p.add_argument("--anchors", default=None, metavar="DIR",
                   help="also check the log against every signed anchor (*.json) in DIR (see `log anchor`)")
    p.add_argument("--public-key", default=None, metavar="HEX",
                   help="the deployment's Ed25519 public key the anchors must be signed with "
                        "(default: the key of the first anchor; all must share it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_log_verify)
    p = log_sub.add_parser("anchor", help="sign the log's head with the deployment key, for an oversight body")
    _data_dir_arg(p)
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the signed anchor (JSON)")
    p.set_defaults(handler=cmd_log_anchor)
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
    _policy_options(p)
    p = pol_sub.add_parser("set-default", help="set the deployment-wide default policy: it applies to every "
                                               "collection without a policy of its own (local admin)")
    _policy_options(p)
    p.set_defaults(collection_id=None)
    p = pol_sub.add_parser("list", help="every collection's policy, and which rely on the default")
    _data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_policy_list)

    rev = sub.add_parser("review", help="human review of leads (two reviewers confirm)")
    rev_sub = rev.add_subparsers(dest="review_command", metavar="ACTION")
    rev_sub.required = True
    p = rev_sub.add_parser("list", help="list leads")
    _data_dir_arg(p)
    p.add_argument("--status", choices=["pending", "confirmed", "rejected"], default="pending")
    p.add_argument("--collection", default=None, help="only leads of this collection")
    p.add_argument("--case", default=None, help="only leads of this case reference")
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
                       help="your own access key (role reviewer, operator or admin, made with --person): "
                            "decisions are recorded under its person; "
                            "the secret is read from $FACEAUDIT_SECRET_ACCESS_KEY or asked for")
        p.add_argument("--note", default="")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_review_decide, decision=action)


def _policy_options(p: argparse.ArgumentParser) -> None:
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
    from faceaudit.accountability._probe_quality import BAND_NAMES, LowQualityAction

    p.add_argument("--min-eye-distance", type=float, default=None, metavar="PX",
                   help="smallest probe face a search may use: pixels between its eyes (e.g. 20)")
    p.add_argument("--min-probe-quality", default=None, choices=BAND_NAMES, metavar="BAND",
                   help="lowest probe quality band a search may use, by size best first (X: eyes at least as "
                        f"far apart as band X, any noise; X-clear: and not noisy): {', '.join(BAND_NAMES)}")
    p.add_argument("--on-low-quality", default=LowQualityAction.REFUSE, type=LowQualityAction,
                   choices=list(LowQualityAction), metavar="refuse|flag",
                   help="a probe below the minimum is refused (default) or searched and its leads flagged")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_policy_set)


def _acc(args):
    from faceaudit.cli import _context

    return _context.accountability(args)


def cmd_log_verify(args) -> int:
    from pathlib import Path

    from faceaudit._errors import InvalidParameterError
    from faceaudit.accountability import AcknowledgedRecordsMissingError, LogIntegrityError

    if args.anchors:  # refused before anything is verified or printed as OK
        if not Path(args.anchors).is_dir():
            raise InvalidParameterError(f"--anchors {args.anchors}: no such directory")
        if not any(Path(args.anchors).glob("*.json")):
            raise LogIntegrityError(f"no anchors (*.json) in {args.anchors}")
    result = _acc(args).log.verify(expect_head=args.expect_head)
    if args.json:
        print_json({"Ok": result.ok, "Records": result.records, "HeadHash": result.head_hash,
                    "FirstBadRecord": result.first_bad, "Problem": result.problem,
                    "TornTail": result.torn_tail, "AcknowledgedMissing": result.acknowledged_missing,
                    "Repairs": [{"Seq": r.seq, "AfterSeq": r.after_seq, "QuarantinedBytes": r.quarantined_bytes,
                                 "QuarantinedSha256": r.quarantined_sha256, "QuarantineFile": r.quarantine_file,
                                 "AcknowledgedMissing": r.acknowledged_missing, "QuarantineOk": r.quarantine_ok}
                                for r in result.repairs]})
    elif result.ok:
        extra = " (a torn, unacknowledged final write is ignored)" if result.torn_tail else ""
        print(f"OK: {result.records} records, chain intact, head {result.head_hash}{extra}")
    if not args.json:
        for r in result.repairs:
            warn = (f"; WARNING: {r.acknowledged_missing} record(s) the head file had acknowledged are missing "
                    "(a crash never does this: investigate)" if r.acknowledged_missing else "")
            print(f"repair at record {r.seq}: after record {r.after_seq}, {r.quarantined_bytes} byte(s) kept in "
                  f"{r.quarantine_file or '-'} (sha256 {r.quarantined_sha256 or '-'}){warn}")
    if not result.ok:
        where = f"record {result.first_bad}" if result.first_bad else "log"
        if result.acknowledged_missing:  # its own exit code (11): evidence is gone
            raise AcknowledgedRecordsMissingError(f"search log verification FAILED at {where}: {result.problem}")
        raise LogIntegrityError(f"search log verification FAILED at {where}: {result.problem}")
    if args.anchors:
        _check_anchors(args)
    return 0


def _check_anchors(args) -> None:
    from faceaudit.accountability import LogIntegrityError, check_anchors

    report = check_anchors(_acc(args).log, args.anchors, args.public_key)
    for c in report.checks:
        print(f"anchor {c.file} (record {c.seq}): {c.problem or 'OK'}")
    if report.not_handed_over:
        print(f"anchors issued but not in {args.anchors}: records {', '.join(map(str, report.not_handed_over))}")
    if not report.checks:
        raise LogIntegrityError(f"no anchors (*.json) in {args.anchors}")
    if not report.ok:
        raise LogIntegrityError("search log verification FAILED against its signed anchors")
    print(f"OK: the log agrees with {len(report.checks)} signed anchor(s) (key {report.public_key})")


def cmd_log_anchor(args) -> int:
    from faceaudit.accountability import DeploymentKey, issue_anchor

    acc = _acc(args)
    anchor = issue_anchor(acc.log, DeploymentKey(acc.data_dir))
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(anchor, indent=1, sort_keys=True) + "\n")
    print(f"anchored record {anchor['seq']} (hash {anchor['hash']}) in {args.out}, signed by Ed25519 key "
          f"{anchor['public_key']}; hand it to your oversight body")
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
    from faceaudit.accountability import DEFAULT_POLICY_ID, policy_meaning
    from faceaudit.cli import _context
    from faceaudit.engine import DEFAULT_MODEL

    threshold = policy.effective_min_threshold
    if threshold is None:
        return None, ""
    if policy.collection_id == DEFAULT_POLICY_ID:
        return policy_meaning(threshold, DEFAULT_MODEL, 0), f" (deployment default: model {DEFAULT_MODEL} assumed)"
    try:
        desc = _context.collections(args).describe_collection(
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
    print(f"{_policy_name(policy)}: minimum threshold {mt}, max candidates {mf}, "
          f"case reference {'required' if policy.require_case_reference else 'optional'}"
          + (f", purpose {policy.purpose}" if policy.purpose else ""))
    if policy.has_probe_minimum:
        mins = [f"eyes at least {policy.min_eye_distance_px:g} px apart" if policy.min_eye_distance_px else "",
                f"quality band {policy.min_probe_quality} or better" if policy.min_probe_quality else ""]
        print(f"  probe minimum: {' and '.join(m for m in mins if m)}; below it a search is "
              f"{'refused' if policy.on_low_quality.value == 'refuse' else 'run and its leads flagged'}")
    if meaning is None:
        print("  no minimum threshold: searches may run at any Similarity (default 80 = false-match "
              "rate 1e-5 per comparison)")
        return
    print(f"  what it means{where}:")
    for line in meaning.lines():
        print(f"  - {line}")
    for w in meaning.warnings:
        print(f"faceaudit: warning: {w}", file=sys.stderr)


def _policy_name(policy) -> str:
    from faceaudit.accountability import DEFAULT_POLICY_ID

    if policy.collection_id == DEFAULT_POLICY_ID:
        return "deployment default policy"
    how = {"default": " (relies on the deployment default)", "none": " (no policy: nothing enforced)"}
    return f"collection {policy.collection_id}{how.get(policy.source, '')}"


def cmd_policy_list(args) -> int:
    acc = _acc(args)
    default, policies = acc.default_policy(), acc.policy_listing()
    if args.json:
        print_json({"DefaultPolicy": default.to_json(), "Policies": [p.to_json() for p in policies]})
        return 0

    from faceaudit.engine import promised_fmr

    def cell(value, fmt="{:g}"):
        return "-" if value is None else fmt.format(value)

    def threshold(value):  # say what a Similarity threshold means
        return "-" if value is None else f"{value:g} (false-match rate <= {short_g(promised_fmr(value))})"

    rows = [["(default)", default.source if default.source == "none" else "deployment default",
             threshold(default.effective_min_threshold), cell(default.max_faces, "{}"),
             "required" if default.require_case_reference else "optional", default.purpose or "-"]]
    source = {"collection": "own policy", "default": "relies on default", "none": "NO POLICY"}
    rows += [[p.collection_id, source[p.source],
              threshold(p.effective_min_threshold), cell(p.max_faces, "{}"),
              "required" if p.require_case_reference else "optional", p.purpose or "-"] for p in policies]
    print_table(["collection", "policy", "min threshold", "max candidates", "case reference", "purpose"], rows)
    return 0


def cmd_policy_get(args) -> int:
    _print_policy(args, _acc(args).policy(args.collection_id))
    return 0


def cmd_policy_set(args) -> int:
    from faceaudit.accountability import DEFAULT_POLICY_ID, ThresholdPolicy

    policy = ThresholdPolicy(
        collection_id=args.collection_id or DEFAULT_POLICY_ID,
        min_face_match_threshold=99.0 if args.law_enforcement and args.min_threshold is None else args.min_threshold,
        max_faces=args.max_faces,
        require_case_reference=args.require_case_reference or args.law_enforcement,
        purpose=args.purpose or ("law-enforcement" if args.law_enforcement else ""),
        max_false_match_rate=args.max_false_match_rate,
        min_eye_distance_px=args.min_eye_distance,
        min_probe_quality=args.min_probe_quality,
        on_low_quality=args.on_low_quality,
    )
    acc = _acc(args)
    set_ = acc.set_policy if args.collection_id else acc.set_default_policy
    _print_policy(args, set_(policy, _local_admin()))
    return 0


def _lead_rows(leads):
    return [
        (lead.search_seq, lead.rank, lead.lead_id, lead.status, f"{lead.similarity:.2f}", f"{lead.threshold:g}",
         lead.collection_id or "-",
         lead.candidate_external_image_id or lead.candidate_face_id or lead.candidate_user_id or "-",
         sum(d.decision == "confirm" for d in lead.decisions), lead.case_reference or "-")
        for lead in leads
    ]


def cmd_review_list(args) -> int:
    leads = _acc(args).leads(args.status, collection_id=args.collection, case_reference=args.case)
    if args.json:
        print_json({"Leads": [lead.to_json() for lead in leads]})
        return 0
    print_table(["search", "rank", "lead", "status", "similarity", "threshold", "collection", "candidate",
                 "confirms", "case"], _lead_rows(leads))
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
    if lead.probe_quality is not None:  # what it means for the model: measured data only
        from faceaudit.accountability._probe_quality import quality_sentence

        print(f"{'ProbeQuality':18} {lead.probe_quality.text()}")
        print(f"{'':18} {quality_sentence(lead.probe_quality, lead.model_version, lead.threshold)}")
    if lead.quality_flag:
        print(f"{'QualityFlag':18} below the collection's minimum probe quality: {lead.quality_flag}")
    for d in lead.decisions:
        print(f"decision: {d.reviewer} {d.decision} at "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(d.time))} UTC {d.note}")
    print(LEAD_NOTICE)
    return 0


def _reviewer_key(args):
    """The reviewer (key and person), after checking the key's secret and role (as the web page does)."""
    import hmac

    from faceaudit._errors import AccessDeniedError
    from faceaudit.accountability import REVIEWER_ROLES, Reviewer
    from faceaudit.cli import _context

    secret = args.settings.secret_access_key if getattr(args, "settings", None) else None
    if secret is None:
        if not sys.stdin.isatty():
            raise AccessDeniedError("set FACEAUDIT_SECRET_ACCESS_KEY or run interactively to give the secret")
        secret = getpass.getpass(f"secret access key for {args.access_key_id}: ")
    key = _context.keys(args).lookup(args.access_key_id)
    if (key is None or not key.active or key.role not in REVIEWER_ROLES
            or not hmac.compare_digest(key.secret.encode(), secret.encode())):
        raise AccessDeniedError("unknown or revoked key, wrong secret, or a role that may not review "
                                "(reviewer, operator or admin only)")
    return Reviewer(key.access_key_id, key.person)


def cmd_review_decide(args) -> int:
    reviewer = _reviewer_key(args)
    lead = _acc(args).decide(args.lead_id, reviewer, args.decision, args.note)
    if args.json:
        print_json(lead.to_json())
    else:
        n = sum(d.decision == "confirm" for d in lead.decisions)
        print(f"lead {lead.lead_id}: {args.decision} recorded for {reviewer.person}; status {lead.status} "
              f"({n} of 2 confirmations)")
    return 0
