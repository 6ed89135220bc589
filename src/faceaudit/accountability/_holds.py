"""Legal holds hold, and every deletion is evidence.

Every operation that deletes or drops stored data (:data:`DELETING_OPERATIONS`) runs
through :func:`guard_deletion`, from the HTTP service and from the CLI alike:

- on a collection under legal hold (``faceaudit retention set C --legal-hold``) it is
  refused with :class:`faceaudit.LegalHoldError` (AccessDeniedException, exit code 10)
  and the refusal is a ``refused`` record of the search log;
- otherwise it runs, and what it deleted is a ``deletion`` record of the search log
  (operation, who, collection, the face ids / user id / tag keys, how many), written
  before the response is handed back.

Tag changes count when they drop data: UntagResource of a key the collection has, and
TagResource overwriting a key's value. Adding new keys under a hold is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from faceaudit._errors import FaceAuditError, LegalHoldError
from faceaudit.accountability._accountability import Accountability, CallerContext

DELETING_OPERATIONS = frozenset({
    "DeleteFaces", "DeleteCollection", "DeleteUser", "DisassociateFaces", "TagResource", "UntagResource",
})
"""Rekognition operations that delete faces, users, collections or tags."""


def on_legal_hold(acc: Accountability, collection_id: str | None) -> bool:
    """Whether ``collection_id`` is on legal hold (its retention rule says so)."""
    if not collection_id:
        return False
    row = acc._store.read().execute(
        "SELECT legal_hold FROM retention WHERE collection_id = ?", (collection_id,)).fetchone()
    return bool(row and row["legal_hold"])


def refuse_under_hold(acc: Accountability, ctx: CallerContext, operation: str, collection_id: str,
                      detail: dict[str, Any] | None = None) -> None:
    """Log the refusal of a deleting ``operation`` on a held collection, then raise LegalHoldError."""
    reason = (f"collection {collection_id!r} is on legal hold: nothing of it may be deleted until an admin "
              f"lifts the hold (faceaudit retention set {collection_id} --no-legal-hold)")
    acc.log.append("refused", {**acc._who(ctx), "operation": operation, "collection_id": collection_id,
                               "legal_hold": True, "reason": reason, **(detail or {})})
    raise LegalHoldError(reason)


def _collection_of(acc: Accountability, params: Mapping[str, Any]) -> str | None:
    cid = params.get("CollectionId")
    if isinstance(cid, str):
        return cid
    arn = params.get("ResourceArn")
    if isinstance(arn, str):
        try:
            return acc.collections().collection_of_arn(arn)
        except FaceAuditError:
            return None
    return None


def _tags(acc: Accountability, collection_id: str) -> dict[str, str]:
    try:
        coll = acc.collections()
        arn = coll.describe_collection(collection_id=collection_id).collection_arn
        return dict(coll.list_tags_for_resource(resource_arn=arn).tags)
    except FaceAuditError:
        return {}


def _dropped_tags(acc: Accountability, operation: str, collection_id: str,
                  params: Mapping[str, Any]) -> list[str]:
    """The tag keys a Tag/UntagResource would remove or overwrite (empty: it drops nothing)."""
    old = _tags(acc, collection_id)
    if operation == "UntagResource":
        keys = params.get("TagKeys") or []
        return sorted(k for k in keys if isinstance(k, str) and k in old)
    new = params.get("Tags") or {}
    return sorted(k for k, v in new.items() if isinstance(k, str) and k in old and old[k] != v) \
        if isinstance(new, dict) else []


def _counts(acc: Accountability, collection_id: str) -> dict[str, Any]:
    try:
        d = acc.collections().describe_collection(collection_id=collection_id)
    except FaceAuditError:
        return {}
    return {"count": d.face_count, "face_count": d.face_count, "user_count": d.user_count}


def _deleted(operation: str, params: Mapping[str, Any], doc: Mapping[str, Any],
             before: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    """What the operation deleted, from its request and response documents."""
    if operation == "DeleteFaces":
        ids = [f for f in doc.get("DeletedFaces") or [] if isinstance(f, str)]
        return {"face_ids": ids, "count": len(ids)}
    if operation == "DisassociateFaces":
        ids = [str(f["FaceId"]) for f in doc.get("DisassociatedFaces") or [] if isinstance(f, dict) and f.get("FaceId")]
        return {"user_id": params.get("UserId"), "face_ids": ids, "count": len(ids)}
    if operation == "DeleteUser":
        return {"user_id": params.get("UserId"), "count": 1}
    if operation == "DeleteCollection":
        return {"count": 0, **before}
    return {"tag_keys": dropped, "count": len(dropped)}


def guard_deletion(
    acc: Accountability,
    ctx: CallerContext,
    operation: str,
    params: Mapping[str, Any],
    call: Callable[[], Any],
    response_of: Callable[[Any], Mapping[str, Any]],
) -> Any:
    """Run one request; a deleting one is refused under a legal hold, else run and logged.

    ``params`` are the request's members (Rekognition names); ``response_of`` turns the
    call's result into the response document. Operations that delete nothing just run.
    """
    if operation not in DELETING_OPERATIONS:
        return call()
    collection_id = _collection_of(acc, params)
    dropped: list[str] = []
    if operation in ("TagResource", "UntagResource") and collection_id:
        dropped = _dropped_tags(acc, operation, collection_id, params)
    if on_legal_hold(acc, collection_id) and (operation not in ("TagResource", "UntagResource") or dropped):
        refuse_under_hold(acc, ctx, operation, str(collection_id), {"tag_keys": dropped} if dropped else None)
    before = _counts(acc, collection_id) if operation == "DeleteCollection" and collection_id else {}
    result = call()
    detail = _deleted(operation, params, response_of(result), before, dropped)
    if detail.get("count") or operation in ("DeleteCollection", "DeleteUser"):
        acc.log.append("deletion", {**acc._who(ctx), "operation": operation, "collection_id": collection_id,
                                    **detail})
    return result
