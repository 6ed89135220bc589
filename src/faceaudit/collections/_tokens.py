"""Opaque, signed pagination tokens (NextToken).

A token is ``base64url(json([kind, scope, after])) . base64url(hmac)``: ``kind``
names the listing (collections, faces, users), ``scope`` ties it to one
collection (its internal row id, so a token outlives neither a deleted nor a
re-created collection) and to the request's filters, ``after`` is the internal
row id of the last item returned (keyset pagination: stable while items are
added or deleted). The HMAC key is a random secret kept in the data dir's
database, so a token is valid only for the data dir that issued it. Anything
else is refused with ``InvalidPaginationTokenException``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from faceaudit._errors import InvalidPaginationTokenError, InvalidParameterError

MAX_TOKEN_LENGTH = 255


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def scope_of(*parts: Any) -> str:
    """A short digest of the listing's scope (collection row id and filters)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def encode(secret: bytes, kind: str, scope: str, after: int) -> str:
    payload = json.dumps([kind, scope, int(after)], separators=(",", ":")).encode()
    sig = hmac.new(secret, payload, hashlib.sha256).digest()[:12]
    return f"{_b64(payload)}.{_b64(sig)}"


def decode(secret: bytes | None, token: Any, kind: str, scope: str) -> int:
    """The ``after`` row id of a token issued for this ``kind`` and ``scope``."""
    if not isinstance(token, str):
        raise InvalidParameterError("NextToken must be a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidParameterError(f"NextToken is longer than {MAX_TOKEN_LENGTH} characters")
    bad = InvalidPaginationTokenError("invalid pagination token (NextToken)")
    if secret is None or token.count(".") != 1:
        raise bad
    body, sig = token.split(".")
    try:
        payload, given = _unb64(body), _unb64(sig)
    except (binascii.Error, ValueError):
        raise bad from None
    if not hmac.compare_digest(hmac.new(secret, payload, hashlib.sha256).digest()[:12], given):
        raise bad
    try:
        t_kind, t_scope, after = json.loads(payload)
    except (ValueError, TypeError):
        raise bad from None
    if t_kind != kind or t_scope != scope or not isinstance(after, int):
        raise bad
    return after
