"""Anchoring the search log outside the machine: signed heads for an oversight body.

The deployment has one Ed25519 key (``<data dir>/deployment-signing.key``, raw
32 bytes, mode 0600, made on first use). ``faceaudit log anchor --out FILE``
signs the log's current head (seq and hash) and writes an anchor to hand over;
the log records each anchor it issues. Someone who can rewrite the whole log
(and recompute every unkeyed hash) cannot make it agree with anchors already
handed over: ``faceaudit log verify --anchors DIR`` checks each anchor's
signature and that its hash is still the hash of its record in the chain.

A deployment of several hosts on one database (issue 21) still keeps this key on disk, on
the one host that issues anchors (an admin's, with ``faceaudit log anchor``): it is
deliberately not in the database. Whoever can write the database could otherwise also sign
whatever head they made; kept apart, a database compromise cannot produce a new anchor.
Every anchor must carry the same public key (``verify --anchors``), so anchors are issued
from that host only; back the key file up with the host (a lost key: anchors already
handed over still verify; new ones start a new key the oversight body must pin again).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceaudit._errors import InvalidParameterError, SigningKeyError
from faceaudit.accountability._files import write_private
from faceaudit.accountability._log import AnySearchLog, _canonical

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_FILE = "deployment-signing.key"
ANCHOR_KIND = "faceaudit-search-log-anchor"


class DeploymentKey:
    """The deployment's Ed25519 signing key, kept in the data dir (0600)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / KEY_FILE
        self._private: Ed25519PrivateKey | None = None

    def _key(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self._private is None:
            if not self.path.exists():
                write_private(self.path, os.urandom(32), replace=False)  # first writer wins
            if self.path.stat().st_mode & 0o077:
                raise SigningKeyError(f"{self.path} is readable by group or others: chmod 600 {self.path}")
            raw = self.path.read_bytes()
            if len(raw) != 32:
                raise SigningKeyError(f"{self.path} is damaged (not 32 bytes)")
            self._private = Ed25519PrivateKey.from_private_bytes(raw)
        return self._private

    def public_key(self) -> str:
        """The public key, 64 hex digits (what an oversight body pins)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def sign(self, message: bytes) -> str:
        return self._key().sign(message).hex()


def _body(anchor: dict[str, Any]) -> bytes:
    return _canonical({k: anchor[k] for k in ("kind", "seq", "hash", "time", "public_key")})


def signature_ok(anchor: dict[str, Any]) -> bool:
    """True when the anchor's signature is valid for its own public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(anchor["public_key"]))
        key.verify(bytes.fromhex(anchor["signature"]), _body(anchor))
        return True
    except (InvalidSignature, KeyError, TypeError, ValueError):
        return False


def issue_anchor(log: AnySearchLog, key: DeploymentKey) -> dict[str, Any]:
    """Sign the log's current head; the anchor is recorded in the log and returned."""
    verified = log.verify()
    if not verified.ok:
        from faceaudit.accountability._log import LogIntegrityError

        raise LogIntegrityError(f"the search log does not verify ({verified.problem}); no anchor issued")
    head = log.head() or {"seq": 0, "hash": verified.head_hash}
    anchor: dict[str, Any] = {"kind": ANCHOR_KIND, "seq": head["seq"], "hash": head["hash"],
                              "time": round(time.time(), 3), "public_key": key.public_key()}
    anchor["signature"] = key.sign(_body(anchor))
    log.append("anchor", {k: anchor[k] for k in ("seq", "hash", "time", "public_key", "signature")})
    return anchor


@dataclass(frozen=True)
class AnchorCheck:
    """One anchor file checked against the log. ``problem`` is empty when it holds."""

    file: str
    seq: int | None
    problem: str = ""


@dataclass(frozen=True)
class AnchorReport:
    """Outcome of :func:`check_anchors`: ``ok`` when every anchor file holds.

    ``not_handed_over``: anchors the log says were issued whose file is not among those checked.
    """

    ok: bool
    public_key: str
    checks: tuple[AnchorCheck, ...]
    not_handed_over: tuple[int, ...]


def check_anchors(log: AnySearchLog, anchor_dir: str | os.PathLike[str],
                  public_key: str | None = None) -> AnchorReport:
    """Check every ``*.json`` anchor in ``anchor_dir`` against the log.

    Each must be signed by ``public_key`` (default: the first anchor's key; all must share it)
    and name a record whose hash in the chain is still the anchored hash.
    """
    directory = Path(anchor_dir)
    if not directory.is_dir():
        raise InvalidParameterError(f"{directory} is not a directory of anchors")
    hashes = {r.seq: r.hash for r in log.records()}
    issued = {r.data.get("signature"): r.data.get("seq") for r in log.records() if r.kind == "anchor"}
    checks: list[AnchorCheck] = []
    seen = set()
    for path in sorted(directory.glob("*.json")):
        try:
            anchor = json.loads(path.read_text(encoding="utf-8"))
            seq = anchor["seq"]
        except (OSError, ValueError, KeyError, TypeError):
            checks.append(AnchorCheck(path.name, None, "not an anchor (unreadable JSON)"))
            continue
        public_key = public_key or anchor.get("public_key")
        seen.add(anchor.get("signature"))
        if anchor.get("kind") != ANCHOR_KIND:
            problem = "not an anchor"
        elif anchor.get("public_key") != public_key:
            problem = "signed by another key than the deployment's"
        elif not signature_ok(anchor):
            problem = "signature invalid (the anchor was altered)"
        elif seq and hashes.get(seq) != anchor.get("hash"):
            problem = (f"record {seq} is missing from the log" if seq not in hashes else
                       f"record {seq} no longer has the anchored hash (the log was rewritten)")
        else:
            problem = ""
        checks.append(AnchorCheck(path.name, seq, problem))
    missing = tuple(sorted(s for sig, s in issued.items() if sig not in seen and isinstance(s, int)))
    return AnchorReport(all(not c.problem for c in checks) and bool(checks), public_key or "",
                        tuple(checks), missing)
