"""The review web page's HTTP handling: sign-in, session cookie, CSRF, decisions, images.

Browsers cannot sign SigV4 requests, so a reviewer signs in once with their
access key id and secret (role admin or operator). The server answers with a
session cookie ``<key id>.<expiry>.<HMAC>`` (HttpOnly, SameSite=Strict, 8 hours)
keyed by a random secret kept in the data dir (mode 0600, shared by workers).
Every form carries a CSRF token derived from the session. The key is looked up
again on every request, so revoking it ends its sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from faceaudit._errors import FaceAuditError
from faceaudit.accountability._accountability import Accountability
from faceaudit.accountability._files import write_private
from faceaudit.accountability._review_page import render_login, render_review_page
from faceaudit.accountability._roles import REVIEWER_ROLES

COOKIE = "faceaudit_review"
SESSION_SECONDS = 8 * 3600
MAX_FORM_BYTES = 16 * 1024


def _response(status: int, body: bytes, content_type: str, request_id: str, extra=()):
    from faceaudit.service import REQUEST_ID_HEADER, HttpResponse

    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        (REQUEST_ID_HEADER, request_id),
        ("Cache-Control", "no-store"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                    "form-action 'self'"),
    ]
    headers.extend(extra)
    return HttpResponse(status, body, headers)


def _html(status: int, text: str, request_id: str, extra=()):
    return _response(status, text.encode(), "text/html; charset=utf-8", request_id, extra)


def _redirect(location: str, request_id: str, extra=()):
    return _response(303, b"", "text/plain", request_id, [("Location", location), *extra])


class ReviewWeb:
    """Serves ``/review`` for one data dir."""

    def __init__(self, data_dir: Path, acc: Accountability, keys: Any,
                 face_image: Optional[Callable[[str], Optional[bytes]]]) -> None:
        self.data_dir = Path(data_dir)
        self.acc = acc
        if keys is None:
            from faceaudit.service import KeyStore

            keys = KeyStore(self.data_dir)
        self.keys = keys
        self.face_image = face_image
        self._secret: Optional[bytes] = None

    # -- sessions --------------------------------------------------------------------------

    def _session_secret(self) -> bytes:
        if self._secret is None:
            path = self.data_dir / "review-session.key"
            if not path.exists():
                write_private(path, secrets.token_bytes(32), replace=False)  # first writer wins
            secret = path.read_bytes()
            if len(secret) < 32:
                raise FaceAuditError(f"{path} is damaged (shorter than 32 bytes); delete it to start over")
            self._secret = secret
        return self._secret

    def _sign(self, text: str) -> str:
        return hmac.new(self._session_secret(), text.encode(), hashlib.sha256).hexdigest()

    def _new_session(self, key_id: str) -> str:
        expires = int(time.time()) + SESSION_SECONDS
        body = f"{key_id}.{expires}"
        return f"{body}.{self._sign(body)}"

    def _reviewer(self, request) -> Optional[str]:
        """The signed-in reviewer's key id, or None."""
        cookie = _cookies(request.header("cookie") or "").get(COOKIE, "")
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        key_id, expires, mac = parts
        if not hmac.compare_digest(self._sign(f"{key_id}.{expires}"), mac) or int(expires) < time.time():
            return None
        key = self.keys.lookup(key_id)
        if key is None or not key.active or key.role not in REVIEWER_ROLES:
            return None
        return key_id

    def _csrf(self, request) -> str:
        cookie = _cookies(request.header("cookie") or "").get(COOKIE, "")
        return self._sign("csrf:" + cookie)

    # -- routing ---------------------------------------------------------------------------

    def handle(self, request, request_id: str):
        path, method = request.raw_path, request.method
        if path == "/review/login":
            if method == "POST":
                return self._login(request, request_id)
            return _html(200, render_login(), request_id)
        if path == "/review/logout":
            return _redirect("/review/login", request_id,
                             [("Set-Cookie", f"{COOKIE}=; Path=/review; Max-Age=0; HttpOnly; SameSite=Strict")])
        reviewer = self._reviewer(request)
        if reviewer is None:
            if method == "GET" and path == "/review":
                return _redirect("/review/login", request_id)
            return _html(401, render_login("Please sign in."), request_id)
        if path == "/review" and method in ("GET", "HEAD"):
            return self._page(request, request_id, reviewer)
        if path.startswith("/review/leads/") and path.endswith("/decision") and method == "POST":
            return self._decide(request, request_id, reviewer, path[len("/review/leads/"):-len("/decision")])
        if path.startswith("/review/images/probe/") and method == "GET":
            found = self.acc.probe_path(path.rsplit("/", 1)[1])
            return self._image(found.read_bytes() if found else None, request_id)
        if path.startswith("/review/images/face/") and method == "GET":
            data = self.face_image(path.rsplit("/", 1)[1]) if self.face_image else None
            return self._image(data, request_id)
        return _html(404, "<p>not found</p>", request_id)

    def _login(self, request, request_id: str):
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return _html(413, render_login("The form is too large."), request_id)
        form = _form(request.body())
        key = self.keys.lookup(form.get("access_key_id", "").strip())
        secret = form.get("secret", "")
        ok = (key is not None and key.active and key.role in REVIEWER_ROLES
              and hmac.compare_digest(key.secret.encode(), secret.encode()))
        if not ok:
            return _html(401, render_login("Sign-in refused: unknown or revoked key, wrong secret, or a role "
                                           "that may not review (admin or operator only)."), request_id)
        cookie = self._new_session(key.access_key_id)
        return _redirect("/review", request_id, [(
            "Set-Cookie",
            f"{COOKIE}={cookie}; Path=/review; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict",
        )])

    def _page(self, request, request_id: str, reviewer: str):
        query = urllib.parse.parse_qs(request.query)
        status = (query.get("status") or ["pending"])[0]
        if status not in ("pending", "confirmed", "rejected"):
            status = "pending"
        flash = (query.get("flash") or [""])[0][:300]
        leads = self.acc.leads(status, 200)
        page = render_review_page(
            leads, reviewer, self._csrf(request),
            probe_url=lambda l: f"/review/images/probe/{l.probe_sha256}" if self.acc.probe_path(l.probe_sha256) else None,
            candidate_url=lambda l: f"/review/images/face/{l.candidate_face_id}" if l.candidate_face_id and self.face_image else None,
            status=status, flash=flash,
        )
        return _html(200, page, request_id)

    def _decide(self, request, request_id: str, reviewer: str, lead_id: str):
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return _html(413, "<p>form too large</p>", request_id)
        form = _form(request.body())
        if not hmac.compare_digest(form.get("csrf", ""), self._csrf(request)):
            return _html(403, "<p>Refused: the form is stale or forged (CSRF check). Reload the page.</p>", request_id)
        try:
            lead = self.acc.decide(lead_id, reviewer, form.get("decision", ""), form.get("note", ""))
            flash = f"Recorded: {form.get('decision')} on lead {lead.lead_id}; it is now {lead.status}."
        except FaceAuditError as exc:
            flash = f"Not recorded: {exc.message}"
        return _redirect("/review?" + urllib.parse.urlencode({"flash": flash}), request_id)

    @staticmethod
    def _image(data: Optional[bytes], request_id: str):
        if not data:
            return _response(404, b"", "text/plain", request_id)
        kind = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
        return _response(200, data, kind, request_id)


def _cookies(header: str) -> Dict[str, str]:
    out = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


def _form(body: bytes) -> Dict[str, str]:
    parsed = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}
