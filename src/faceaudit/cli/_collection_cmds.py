"""``faceaudit collection|faces|index|search|users``: face collections from the command line.

Each command calls :class:`faceaudit.collections.FaceCollections` directly. With
``--json`` a command prints exactly its operation's Rekognition response (one
line); without, a readable table. Every candidate printed comes with the notice
that it is an investigative lead, not an identification. Searches (``search``,
``users search``) go through :func:`faceaudit.accountability.guarded`, as over
HTTP: the collection's threshold policy applies and each search is logged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from faceaudit.cli._output import print_json, print_table

_DATA_DIR_HELP = "data dir (default $FACEAUDIT_DATA_DIR, else ~/.local/share/faceaudit)"


def _common(p: argparse.ArgumentParser, json_help: str = "print the Rekognition response (one line)") -> None:
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help=json_help)


def _accountability(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case-reference", default="", help="case this search belongs to (logged)")
    p.add_argument("--purpose", default="", help="why the search is made (logged)")


def _group(sub, name: str, help_text: str):
    p = sub.add_parser(name, help=help_text)
    s = p.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    s.required = True
    return s


def register(sub: argparse._SubParsersAction) -> None:
    _register_collection(sub)
    _register_faces(sub)
    _register_index(sub)
    _register_search(sub)
    _register_users(sub)


def _register_collection(sub: argparse._SubParsersAction) -> None:
    """``faceaudit collection create|describe|list|delete``."""
    g = _group(sub, "collection", "create, describe, list or delete face collections")
    p = g.add_parser("create", help="create a collection (CreateCollection)")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("--model", default=None, help="face model the collection is pinned to (default sface)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)")
    p.add_argument("--index", default=None, choices=["flat", "fastscan", "hnsw"],
                   help="search index: flat (exact, default), fastscan (every face scanned through 4-bit "
                        "codes, the best re-scored exactly: 5-8x faster at 1M-5M faces, measured recall "
                        "1.0 at Similarity 80) or hnsw (a graph; lower recall); similarities are exact "
                        "with each; kept as the tag faceaudit:index (docs/scaling.md)")
    _common(p)
    p.set_defaults(handler=cmd_collection_create)
    p = g.add_parser("describe", help="face and user counts, model version (DescribeCollection)")
    p.add_argument("collection_id", metavar="COLLECTION")
    _common(p)
    p.set_defaults(handler=cmd_collection_describe)
    p = g.add_parser("list", help="list collections (ListCollections)")
    p.add_argument("--max-results", type=int, default=None, help="page size (default 1000)")
    p.add_argument("--next-token", default=None, help="NextToken of the previous page")
    _common(p)
    p.set_defaults(handler=cmd_collection_list)
    p = g.add_parser("delete", help="delete a collection and all its faces (DeleteCollection)")
    p.add_argument("collection_id", metavar="COLLECTION")
    _common(p)
    p.set_defaults(handler=cmd_collection_delete)


def _register_faces(sub: argparse._SubParsersAction) -> None:
    """``faceaudit faces list|delete``."""
    g = _group(sub, "faces", "list or delete the faces of a collection")
    p = g.add_parser("list", help="list faces (ListFaces)")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("--user-id", default=None, help="only the faces of this user")
    p.add_argument("--face-id", action="append", default=None, dest="face_ids", metavar="FACE_ID",
                   help="only these faces (repeatable)")
    p.add_argument("--max-results", type=int, default=None, help="page size (default 1000)")
    p.add_argument("--next-token", default=None)
    p.add_argument("--labels", action="store_true", help="human output: show each face's manifest labels")
    _common(p)
    p.set_defaults(handler=cmd_faces_list)
    p = g.add_parser("delete", help="delete faces (DeleteFaces)")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    _common(p)
    p.set_defaults(handler=cmd_faces_delete)


def _register_index(sub: argparse._SubParsersAction) -> None:
    """``faceaudit index``."""
    p = sub.add_parser(
        "index",
        help="index an image, a directory of images or a manifest CSV into a collection (IndexFaces)",
        description=(
            "SOURCE is one image (IndexFaces), a directory (every JPEG/PNG under it; ExternalImageId from "
            "the relative path) or a manifest CSV (columns image, subject, then labels; ExternalImageId "
            "from the subject, characters outside [a-zA-Z0-9_.-:] replaced by '_'; labels kept as face "
            "metadata). Batches run in parallel processes and are resumable: run the same command again "
            "after an interruption and only what is missing is indexed."
        ),
    )
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("source", metavar="SOURCE", help="IMAGE, DIR or MANIFEST.csv")
    p.add_argument("--external-image-id", default=None, help="single image only: its ExternalImageId")
    p.add_argument("--max-faces", type=int, default=None, help="faces to index per image (default 100)")
    p.add_argument("--quality-filter", default=None, choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                   help="default AUTO")
    p.add_argument("--workers", type=int, default=None, help="batch: processes (default: number of CPUs)")
    p.add_argument("--no-progress", action="store_true", help="batch: no progress bar on stderr")
    p.add_argument("--create", action="store_true", help="create the collection if it does not exist")
    p.add_argument("--model", default=None, help="with --create: the face model (default sface)")
    _common(p, "print the IndexFaces response (single image) or the batch report (one line)")
    p.set_defaults(handler=cmd_index)


def _register_search(sub: argparse._SubParsersAction) -> None:
    """``faceaudit search``."""
    p = sub.add_parser(
        "search",
        help="search a collection for the largest face of IMAGE (SearchFacesByImage) or a stored face",
    )
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("image", metavar="IMAGE", nargs="?", default=None)
    p.add_argument("--face-id", default=None, help="search for a stored face instead (SearchFaces)")
    p.add_argument("--threshold", type=float, default=None, help="FaceMatchThreshold, 0-100 (default 80)")
    p.add_argument("--max-faces", type=int, default=None, help="at most this many matches (default 80)")
    p.add_argument("--quality-filter", default=None, choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                   help="image search: default NONE")
    p.add_argument("--labels", action="store_true", help="human output: show each match's manifest labels")
    _accountability(p)
    _common(p)
    p.set_defaults(handler=cmd_search)


def _register_users(sub: argparse._SubParsersAction) -> None:
    """``faceaudit users create|delete|list|associate|disassociate|search``."""
    g = _group(sub, "users", "users: groups of faces of one person")
    for action, help_text, handler in (
        ("create", "create a user (CreateUser)", cmd_users_create),
        ("delete", "delete a user; its faces stay (DeleteUser)", cmd_users_delete),
    ):
        p = g.add_parser(action, help=help_text)
        p.add_argument("collection_id", metavar="COLLECTION")
        p.add_argument("user_id", metavar="USER_ID")
        _common(p)
        p.set_defaults(handler=handler)
    p = g.add_parser("list", help="list users (ListUsers)")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("--max-results", type=int, default=None, help="page size (default 100)")
    p.add_argument("--next-token", default=None)
    _common(p)
    p.set_defaults(handler=cmd_users_list)
    p = g.add_parser("associate", help="associate faces with a user (AssociateFaces)")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("user_id", metavar="USER_ID")
    p.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    p.add_argument("--threshold", type=float, default=None, help="UserMatchThreshold, 0-100 (default 75)")
    _accountability(p)  # it discloses similarities: an identification, checked and logged
    _common(p)
    p.set_defaults(handler=cmd_users_associate)
    p = g.add_parser("disassociate", help="remove faces from a user (DisassociateFaces)")
    p.add_argument("collection_id", metavar="COLLECTION")
    p.add_argument("user_id", metavar="USER_ID")
    p.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    _common(p)
    p.set_defaults(handler=cmd_users_disassociate)
    p = g.add_parser("search", help="users similar to a user, a face or an image (SearchUsers[ByImage])")
    p.add_argument("collection_id", metavar="COLLECTION")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--user-id", default=None)
    which.add_argument("--face-id", default=None)
    which.add_argument("--image", default=None, metavar="IMAGE")
    p.add_argument("--threshold", type=float, default=None, help="UserMatchThreshold, 0-100 (default 80)")
    p.add_argument("--max-users", type=int, default=None, help="at most this many users (default 80)")
    p.add_argument("--quality-filter", default=None, choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                   help="image search: default NONE")
    _accountability(p)
    _common(p)
    p.set_defaults(handler=cmd_users_search)


# -- helpers -------------------------------------------------------------------------------------
def _fc(args):
    from faceaudit.cli import _context

    return _context.collections(args)


def _image(path: str) -> bytes:
    from faceaudit.engine import read_bytes

    return read_bytes(path)


def _notice() -> None:
    from faceaudit.collections import CANDIDATE_NOTICE

    print(CANDIDATE_NOTICE)


def _box(b) -> str:
    return f"{b.left:.3f},{b.top:.3f} {b.width:.3f}x{b.height:.3f}"


def _labels(labels) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items())


def _next(token) -> None:
    if token:
        print(f"more: --next-token {token}")


def _guarded(args, fc, operation: str, params, call, rebuild=None):
    """Run a request through the accountability layer, as over HTTP: an identification (decided by
    :func:`faceaudit.accountability.identification`) is policy-checked, logged and makes leads."""
    import getpass

    from faceaudit.accountability import CallerContext, guard_request
    from faceaudit.cli import _context
    from faceaudit.collections import normalise_request

    ctx = CallerContext(f"local:{getpass.getuser()}", role="operator", source="cli",
                        case_reference=args.case_reference, purpose=args.purpose)
    version = fc.describe_collection(collection_id=params["CollectionId"]).face_model_version
    # Rekognition's defaults applied as the backend applies them: the policy and the log read these
    request = normalise_request(operation, {k: v for k, v in params.items() if v is not None})
    return guard_request(_context.accountability(args, fc=fc), ctx, operation, request, call,
                         response_of=lambda result: result.to_rekognition(),
                         model_version=lambda result: version, rebuild=rebuild, index_of=fc.index_kind)


def _without_withheld(result, doc):
    """An AssociateFaces result showing only the confidences the policy lets through (``doc``)."""
    from dataclasses import replace

    shown = {u["FaceId"] for u in doc.get("UnsuccessfulFaceAssociations", []) if "Confidence" in u}
    return replace(result, unsuccessful_face_associations=tuple(
        u if u.face_id in shown else replace(u, confidence=None) for u in result.unsuccessful_face_associations))


def _deleting(args, fc, operation: str, params, call):
    """Run a deleting request through the accountability layer, as over HTTP: refused under a
    legal hold (logged), else run and logged as a deletion."""
    import getpass

    from faceaudit.accountability import CallerContext, guard_deletion
    from faceaudit.cli import _context

    acc = _context.accountability(args, fc=fc)
    ctx = CallerContext(f"local:{getpass.getuser()}", role="operator", source="cli")
    return guard_deletion(acc, ctx, operation, {k: v for k, v in params.items() if v is not None}, call,
                          response_of=lambda result: result.to_rekognition())


# -- collection ----------------------------------------------------------------------------------
def cmd_collection_create(args) -> int:
    from faceaudit._errors import InvalidParameterError

    tags = {}
    for t in args.tag:
        if "=" not in t:
            raise InvalidParameterError(f"--tag must be KEY=VALUE, got {t!r}")
        k, v = t.split("=", 1)
        tags[k] = v
    if args.index is not None:
        from faceaudit.collections import INDEX_TAG

        tags[INDEX_TAG] = args.index
    r = _fc(args).create_collection(collection_id=args.collection_id, tags=tags or None, model=args.model)
    if args.json:
        print_json(r.to_rekognition())
    else:
        print(f"created {args.collection_id}: {r.collection_arn}  FaceModelVersion {r.face_model_version}")
    return 0


def cmd_collection_describe(args) -> int:
    import datetime as dt

    fc = _fc(args)
    r = fc.describe_collection(collection_id=args.collection_id)
    if args.json:
        print_json(r.to_rekognition())
        return 0
    created = dt.datetime.fromtimestamp(r.creation_timestamp, dt.UTC).isoformat(timespec="seconds")
    kind = fc.index_kind(args.collection_id)
    exact = "exact" if kind in ("flat", "milvus") else "approximate candidates, exact similarities"
    print_table(["field", "value"], [
        ("CollectionARN", r.collection_arn), ("model", r.model),
        ("FaceModelVersion", r.face_model_version), ("FaceCount", r.face_count),
        ("UserCount", r.user_count), ("CreationTimestamp", created), ("index", f"{kind} ({exact})"),
    ])
    return 0


def cmd_collection_list(args) -> int:
    r = _fc(args).list_collections(next_token=args.next_token, max_results=args.max_results)
    if args.json:
        print_json(r.to_rekognition())
        return 0
    print_table(["collection", "FaceModelVersion"], zip(r.collection_ids, r.face_model_versions, strict=True))
    _next(r.next_token)
    return 0


def cmd_collection_delete(args) -> int:
    fc = _fc(args)
    r = _deleting(args, fc, "DeleteCollection", {"CollectionId": args.collection_id},
                  lambda: fc.delete_collection(collection_id=args.collection_id))
    if args.json:
        print_json(r.to_rekognition())
    else:
        print(f"deleted {args.collection_id}")
    return 0


# -- faces ---------------------------------------------------------------------------------------
def cmd_faces_list(args) -> int:
    r = _fc(args).list_faces(
        collection_id=args.collection_id, next_token=args.next_token, max_results=args.max_results,
        user_id=args.user_id, face_ids=args.face_ids,
    )
    if args.json:
        print_json(r.to_rekognition())
        return 0
    headers = ["FaceId", "ExternalImageId", "UserId", "confidence", "box"] + (["labels"] if args.labels else [])
    rows = [
        [f.face_id, f.external_image_id or "", f.user_id or "", f.confidence, _box(f.bounding_box)]
        + ([_labels(f.labels)] if args.labels else [])
        for f in r.faces
    ]
    print_table(headers, rows)
    _next(r.next_token)
    return 0


def cmd_faces_delete(args) -> int:
    fc = _fc(args)
    r = _deleting(args, fc, "DeleteFaces", {"CollectionId": args.collection_id, "FaceIds": args.face_ids},
                  lambda: fc.delete_faces(collection_id=args.collection_id, face_ids=args.face_ids))
    if args.json:
        print_json(r.to_rekognition())
        return 0
    rows = [(f, "deleted", "") for f in r.deleted_faces]
    rows += [(u.face_id, "not deleted", ", ".join(u.reasons) + (f" ({u.user_id})" if u.user_id else ""))
             for u in r.unsuccessful_face_deletions]
    print_table(["FaceId", "result", "reasons"], rows)
    return 0


# -- index ---------------------------------------------------------------------------------------
def cmd_index(args) -> int:
    from faceaudit._errors import InvalidParameterError, ResourceNotFoundError

    fc = _fc(args)
    if args.create:
        try:
            fc.describe_collection(collection_id=args.collection_id)
        except ResourceNotFoundError:
            fc.create_collection(collection_id=args.collection_id, model=args.model)
    src = Path(args.source)
    if src.is_dir() or src.suffix.lower() == ".csv":
        if args.external_image_id is not None:
            raise InvalidParameterError("--external-image-id is for a single image, not a batch")
        return _index_batch(fc, args, src)
    r = fc.index_faces(
        collection_id=args.collection_id, image=_image(args.source), external_image_id=args.external_image_id,
        max_faces=args.max_faces, quality_filter=args.quality_filter,
    )
    if args.json:
        print_json(r.to_rekognition())
        return 0
    print(f"{args.source}: {len(r.face_records)} face(s) indexed, {len(r.unindexed_faces)} not indexed")
    rows = [(x.face.face_id, "indexed", x.face.confidence, _box(x.face.bounding_box), "") for x in r.face_records]
    rows += [("", "not indexed", u.face_detail.get("Confidence", 0.0), _box_of(u.face_detail), ", ".join(u.reasons))
             for u in r.unindexed_faces]
    if rows:
        print_table(["FaceId", "result", "confidence", "box", "reasons"], rows)
    return 0


def _box_of(detail) -> str:
    b = detail.get("BoundingBox", {})
    return f"{b.get('Left', 0):.3f},{b.get('Top', 0):.3f} {b.get('Width', 0):.3f}x{b.get('Height', 0):.3f}"


def _index_batch(fc, args, src: Path) -> int:
    from faceaudit.collections import index_batch, read_manifest, scan_directory

    items = scan_directory(src) if src.is_dir() else read_manifest(src)
    report = index_batch(
        args.collection_id, items, collections=fc, workers=args.workers, max_faces=args.max_faces,
        quality_filter=args.quality_filter, progress=not args.no_progress,
    )
    if args.json:
        print_json(report.to_dict())
    else:
        print(
            f"{report.total} images: {report.indexed_images} indexed ({report.faces_indexed} faces), "
            f"{report.already_indexed} already indexed, {report.without_faces} without an indexable face, "
            f"{report.failed} failed; {report.seconds:.1f} s with {report.workers} process(es)"
        )
        if report.unindexed_faces:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.unindexed_reasons.items()))
            print(f"faces not indexed: {report.unindexed_faces} ({reasons})")
    if report.failures:
        print(f"{report.failed} image(s) could not be indexed:", file=sys.stderr)
        for reason, n in report.failure_reasons().items():
            print(f"  {n} x {reason}", file=sys.stderr)
        for f in report.failures[:20]:
            print(f"  {f.name}: {f.code}: {f.message}", file=sys.stderr)
        if report.failed > 20:
            print(f"  ... and {report.failed - 20} more", file=sys.stderr)
    return 0


# -- search --------------------------------------------------------------------------------------
def cmd_search(args) -> int:
    from faceaudit._errors import InvalidParameterError

    fc = _fc(args)
    if (args.image is None) == (args.face_id is None):
        raise InvalidParameterError("give either IMAGE or --face-id")
    from faceaudit.collections import normalise_request

    # Rekognition's defaults applied and checked once, as for a request over HTTP
    request = normalise_request("SearchFacesByImage", {"FaceMatchThreshold": args.threshold,
                                                       "MaxFaces": args.max_faces})
    threshold, max_faces = request["FaceMatchThreshold"], request["MaxFaces"]
    if args.face_id is not None:
        r = _guarded(args, fc, "SearchFaces", dict(
                         CollectionId=args.collection_id, FaceId=args.face_id, MaxFaces=max_faces,
                         FaceMatchThreshold=threshold),
                     call=lambda: fc.search_faces(collection_id=args.collection_id, face_id=args.face_id,
                                                  max_faces=max_faces, face_match_threshold=threshold))
        head = f"searched face {r.searched_face_id}"
    else:
        image = _image(args.image)
        r = _guarded(args, fc, "SearchFacesByImage", dict(
                         CollectionId=args.collection_id, Image={"Bytes": image}, MaxFaces=max_faces,
                         FaceMatchThreshold=threshold),
                     call=lambda: fc.search_faces_by_image(
                         collection_id=args.collection_id, image=image, max_faces=max_faces,
                         face_match_threshold=threshold, quality_filter=args.quality_filter))
        head = (f"searched the largest face of {args.image} (box {_box(r.searched_face_bounding_box)}, "
                f"confidence {r.searched_face_confidence:.1f})")
    if args.json:
        print_json(r.to_rekognition())
        return 0
    print(f"{head}; threshold {r.threshold:g} ({_risk(r.threshold)}); {len(r.face_matches)} candidate(s)")
    if r.face_matches:
        headers = ["rank", "similarity", "FaceId", "ExternalImageId", "UserId"] + (["labels"] if args.labels else [])
        rows: list[list[Any]] = [
            [i, m.similarity, m.face.face_id, m.face.external_image_id or "", m.face.user_id or ""]
            + ([_labels(m.face.labels)] if args.labels else [])
            for i, m in enumerate(r.face_matches, start=1)
        ]
        print_table(headers, rows)
        _notice()
    return 0


# -- users ---------------------------------------------------------------------------------------
def cmd_users_create(args) -> int:
    r = _fc(args).create_user(collection_id=args.collection_id, user_id=args.user_id)
    print_json(r.to_rekognition()) if args.json else print(f"created user {args.user_id}")
    return 0


def cmd_users_delete(args) -> int:
    fc = _fc(args)
    r = _deleting(args, fc, "DeleteUser", {"CollectionId": args.collection_id, "UserId": args.user_id},
                  lambda: fc.delete_user(collection_id=args.collection_id, user_id=args.user_id))
    print_json(r.to_rekognition()) if args.json else print(f"deleted user {args.user_id}")
    return 0


def cmd_users_list(args) -> int:
    r = _fc(args).list_users(collection_id=args.collection_id, max_results=args.max_results,
                             next_token=args.next_token)
    if args.json:
        print_json(r.to_rekognition())
        return 0
    print_table(["UserId", "UserStatus"], [(u.user_id, u.user_status) for u in r.users])
    _next(r.next_token)
    return 0


def cmd_users_associate(args) -> int:
    fc = _fc(args)
    r = _guarded(args, fc, "AssociateFaces", dict(
        CollectionId=args.collection_id, UserId=args.user_id, FaceIds=list(args.face_ids),
        UserMatchThreshold=args.threshold),
        call=lambda: fc.associate_faces(collection_id=args.collection_id, user_id=args.user_id,
                                        face_ids=args.face_ids, user_match_threshold=args.threshold),
        rebuild=_without_withheld)
    if args.json:
        print_json(r.to_rekognition())
        return 0
    rows = [(f, "associated", "") for f in r.associated_faces]
    for u in r.unsuccessful_face_associations:
        detail = ", ".join(u.reasons)
        if u.user_id:
            detail += f" (user {u.user_id})"
        if u.confidence is not None:
            detail += f" (similarity {u.confidence:.2f})"
        rows.append((u.face_id, "not associated", detail))
    print_table(["FaceId", "result", "reasons"], rows)
    print(f"user {args.user_id}: {r.user_status}")
    return 0


def cmd_users_disassociate(args) -> int:
    fc = _fc(args)
    r = _deleting(args, fc, "DisassociateFaces",
                  {"CollectionId": args.collection_id, "UserId": args.user_id, "FaceIds": args.face_ids},
                  lambda: fc.disassociate_faces(collection_id=args.collection_id, user_id=args.user_id,
                                                face_ids=args.face_ids))
    if args.json:
        print_json(r.to_rekognition())
        return 0
    rows = [(f, "disassociated", "") for f in r.disassociated_faces]
    rows += [(u.face_id, "not disassociated", ", ".join(u.reasons) + (f" (user {u.user_id})" if u.user_id else ""))
             for u in r.unsuccessful_face_disassociations]
    print_table(["FaceId", "result", "reasons"], rows)
    print(f"user {args.user_id}: {r.user_status}")
    return 0


def cmd_users_search(args) -> int:
    from faceaudit.collections import normalise_request

    fc = _fc(args)
    # Rekognition's defaults applied and checked once, as for a request over HTTP
    request = normalise_request("SearchUsers", {"UserMatchThreshold": args.threshold, "MaxUsers": args.max_users})
    threshold, max_users = request["UserMatchThreshold"], request["MaxUsers"]
    if args.image is not None:
        image = _image(args.image)
        r = _guarded(args, fc, "SearchUsersByImage", dict(
                         CollectionId=args.collection_id, Image={"Bytes": image}, MaxUsers=max_users,
                         UserMatchThreshold=threshold),
                     call=lambda: fc.search_users_by_image(
                         collection_id=args.collection_id, image=image, user_match_threshold=threshold,
                         max_users=max_users, quality_filter=args.quality_filter))
        head = (f"largest face of {args.image}" if r.searched_face_detail is not None
                else f"no usable face in {args.image}")
    else:
        r = _guarded(args, fc, "SearchUsers", dict(
                         CollectionId=args.collection_id, FaceId=args.face_id, UserId=args.user_id,
                         MaxUsers=max_users, UserMatchThreshold=threshold),
                     call=lambda: fc.search_users(
                         collection_id=args.collection_id, user_id=args.user_id, face_id=args.face_id,
                         user_match_threshold=threshold, max_users=max_users))
        head = f"user {args.user_id}" if args.user_id else f"face {args.face_id}"
    if args.json:
        print_json(r.to_rekognition())
        return 0
    print(f"searched {head}; threshold {r.threshold:g} ({_risk(r.threshold)}); "
          f"{len(r.user_matches)} candidate user(s)")
    if r.user_matches:
        print_table(["rank", "similarity", "UserId"],
                    [(i, m.similarity, m.user_id) for i, m in enumerate(r.user_matches, start=1)])
        _notice()
    return 0


def _risk(threshold: float) -> str:
    """What a Similarity threshold means, in words: the false-match rate it promises."""
    from faceaudit.engine import one_in

    return f"a stranger matches {one_in(threshold)} comparisons"
