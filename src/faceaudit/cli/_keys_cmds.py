"""``faceaudit keys create|list|revoke``: the access keys of the HTTP service."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO

from faceaudit._errors import InvalidParameterError
from faceaudit.cli._output import DATA_DIR_HELP, print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="access keys of `faceaudit serve` (SigV4)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.required = True

    c = ksub.add_parser("create", help="create a key; its secret is shown once")
    c.add_argument("--role", default="operator", choices=["admin", "operator", "auditor", "reviewer"],
                   help="what the key may do (default operator; reviewer: decide on leads, never search)")
    c.add_argument("--person", default="",
                   help="the named person who holds the key: reviewing leads needs it, and two confirmations "
                        "must come from two different people")
    c.add_argument("--description", default="", help="a note: who or what uses the key")
    c.add_argument("--json", action="store_true",
                   help='print {"AccessKeyId": ..., "SecretAccessKey": ...} (one line)')
    c.add_argument("--out", default=None, metavar="FILE",
                   help="write the key as JSON to FILE, created with mode 0600 (never overwrites); "
                        "nothing secret is printed")
    c.set_defaults(handler=cmd_create)
    _data_dir(c)

    ls = ksub.add_parser("list", help="list keys (never their secrets)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    _data_dir(ls)

    r = ksub.add_parser("revoke", help="revoke a key: requests signed with it are refused from now on")
    r.add_argument("access_key_id", metavar="ACCESS_KEY_ID")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_revoke)
    _data_dir(r)


def _data_dir(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` after the action too (``faceaudit keys create --data-dir D``)."""
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _store(args: argparse.Namespace):
    from faceaudit.cli import _context

    return _context.keys(args)


def _open_private(path: str) -> IO[str]:
    """A new file only its owner may read (0600 whatever the umask); an existing one is refused."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidParameterError(
            f"--out {path} exists: choose a new file (a key file is never overwritten)") from None
    except OSError as exc:
        raise InvalidParameterError(f"--out {path}: cannot create it: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def cmd_create(args: argparse.Namespace) -> int:
    fh = _open_private(args.out) if args.out else None  # refused before a key is made
    key = _store(args).create(role=args.role, description=args.description, person=args.person)
    if fh is not None:
        with fh:
            json.dump({"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret}, fh)
            fh.write("\n")
        print(f"wrote {args.out} (mode 0600): AccessKeyId {key.access_key_id}, role {key.role}",
              file=sys.stderr)
        return 0
    if args.json:
        print_json({"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret})
        return 0
    print(f"AccessKeyId:     {key.access_key_id}")
    print(f"SecretAccessKey: {key.secret}")
    print(f"Role:            {key.role}")
    print(f"Person:          {key.person or '-'}")
    print("The secret is shown only now: store it (e.g. in ~/.aws/credentials).", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    keys = [k.public() for k in _store(args).list()]
    if args.json:
        print_json({"AccessKeys": keys})
        return 0
    print_table(
        ["ACCESS KEY ID", "ROLE", "PERSON", "STATUS", "CREATED", "DESCRIPTION"],
        [[k["AccessKeyId"], k["Role"], k["Person"] or "-", k["Status"], k["Created"], k["Description"]]
         for k in keys],
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    key = _store(args).revoke(args.access_key_id)
    if args.json:
        print_json(key.public())
    else:
        print(f"{key.access_key_id}: {key.status}")
    return 0
