"""The review web page's HTTP handling: sign-in, sessions, CSRF, decisions, images.

Browsers cannot sign SigV4 requests, so a reviewer signs in once with their
access key id and secret (role admin, operator or reviewer; the key must belong
to a named person). Sign-in itself is protected against cross-site forgery: the
form carries a token bound to a short-lived cookie set with the form
(SameSite=Strict), and a foreign Origin is refused. A session lives server-side
(``accountability.db``): the cookie ``<session id>.<HMAC>`` (HttpOnly,
SameSite=Strict, 8 hours) is worth nothing once the reviewer signs out. Every
form carries a CSRF token derived from the session. The key is looked up again
on every request, so revoking it ends its sessions. Messages after a decision
are kept with the session, never taken from the URL. Images are served only for
a pending lead the signed-in person may decide on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

from faceaudit._errors import FaceAuditError
from faceaudit.accountability._accountability import Accountability
from faceaudit.accountability._files import write_private
from faceaudit.accountability._review import Lead, Reviewer, same_person
from faceaudit.accountability._review_page import REVIEW_CSP, render_login, render_review_page
from faceaudit.accountability._roles import REVIEWER_ROLES

COOKIE = "faceaudit_review"
LOGIN_COOKIE = "faceaudit_login"
SESSION_SECONDS = 8 * 3600
LOGIN_FORM_SECONDS = 900
MAX_FORM_BYTES = 16 * 1024
"""Largest form of a signed-in reviewer (a decision with its note)."""
MAX_LOGIN_FORM_BYTES = 4 * 1024
"""Largest sign-in form (key id, secret and token take a few hundred bytes)."""


def _cookie(request, name: str, value: str, path: str, max_age: int) -> tuple[str, str]:
    """A Set-Cookie header: HttpOnly, SameSite=Strict, and Secure when the request came over
    https (TLS, or a trusted proxy said so): the browser then never sends it in the clear."""
    secure = "; Secure" if getattr(request, "scheme", "http") == "https" else ""
    return ("Set-Cookie", f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")


def _response(status: int, body: bytes, content_type: str, request_id: str, extra=()):
    from faceaudit.service import REQUEST_ID_HEADER, HttpResponse

    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        (REQUEST_ID_HEADER, request_id),
        ("Cache-Control", "no-store"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", REVIEW_CSP),
    ]
    headers.extend(extra)
    return HttpResponse(status, body, headers)


def _html(status: int, text: str, request_id: str, extra=()):
    return _response(status, text.encode(), "text/html; charset=utf-8", request_id, extra)


def _redirect(location: str, request_id: str, extra=()):
    return _response(303, b"", "text/plain", request_id, [("Location", location), *extra])


class ReviewWeb:
    """Serves ``/review`` for one data dir."""

    def __init__(self, data_dir: Path, acc: Accountability, keys: Any) -> None:
        self.data_dir = Path(data_dir)
        self.acc = acc
        if keys is None:
            from faceaudit.service import KeyStore

            keys = KeyStore(self.data_dir, database_url=acc.database_url)
        self.keys = keys
        self._secret: bytes | None = None

    # -- sessions --------------------------------------------------------------------------

    def _session_secret(self) -> bytes:
        if self._secret is None and self.acc is not None and (shared := self.acc.session_signing_key()) is not None:
            self._secret = shared  # every host signs and checks cookies with the deployment's key
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

    def _session_id(self, request) -> str | None:
        cookie = _cookies(request.header("cookie") or "").get(COOKIE, "")
        session_id, _, mac = cookie.partition(".")
        if not session_id or not hmac.compare_digest(self._sign("session:" + session_id), mac):
            return None
        return session_id

    def _reviewer(self, request) -> tuple[str, Reviewer] | None:
        """The live session id and the signed-in reviewer, or None."""
        session_id = self._session_id(request)
        if not session_id:
            return None
        key_id = self.acc.session_key(session_id)
        if key_id is None:
            return None
        key = self.keys.lookup(key_id)
        if key is None or not key.active or key.role not in REVIEWER_ROLES:
            return None
        return session_id, Reviewer(key.access_key_id, key.person)

    def _csrf(self, session_id: str) -> str:
        return self._sign("csrf:" + session_id)

    # -- routing ---------------------------------------------------------------------------

    def handle(self, request, request_id: str):
        path, method = request.raw_path, request.method
        if path == "/review/login":
            if method == "POST":
                return self._login(request, request_id)
            return self._login_form(request, request_id)
        signed_in = self._reviewer(request)
        if path == "/review/logout" and method == "POST":
            if signed_in is not None:
                form = self._read_form(request)
                if form is not None and hmac.compare_digest(form.get("csrf", ""), self._csrf(signed_in[0])):
                    self.acc.end_session(signed_in[0])
            return _redirect("/review/login", request_id, [_cookie(request, COOKIE, "", "/review", 0)])
        if signed_in is None:
            if method == "GET" and path == "/review":
                return _redirect("/review/login", request_id)
            return _html(401, render_login("Please sign in."), request_id)
        session_id, reviewer = signed_in
        if path == "/review" and method in ("GET", "HEAD"):
            return self._page(request, request_id, session_id, reviewer)
        if path.startswith("/review/leads/") and path.endswith("/decision") and method == "POST":
            return self._decide(request, request_id, session_id, reviewer,
                                path[len("/review/leads/"):-len("/decision")])
        if path.startswith("/review/images/lead/") and method == "GET":
            lead_id, _, which = path[len("/review/images/lead/"):].partition("/")
            return self._image(self._lead_image(reviewer, lead_id, which), request_id)
        return _html(404, "<p>not found</p>", request_id)

    def _login_form(self, request, request_id: str):
        nonce = secrets.token_urlsafe(18)
        return _html(200, render_login(csrf=self._sign("login:" + nonce)), request_id, [
            _cookie(request, LOGIN_COOKIE, nonce, "/review/login", LOGIN_FORM_SECONDS)])

    def _read_form(self, request, limit: int = MAX_FORM_BYTES) -> dict[str, str] | None:
        if (request.content_length or 0) > limit:
            return None
        return _form(request.body())

    def _login(self, request, request_id: str):
        form = self._read_form(request, MAX_LOGIN_FORM_BYTES)
        if form is None:
            return _html(413, render_login("The form is too large."), request_id)
        nonce = _cookies(request.header("cookie") or "").get(LOGIN_COOKIE, "")
        origin = request.header("origin")
        if (not nonce or not hmac.compare_digest(form.get("csrf", ""), self._sign("login:" + nonce))
                or not _same_origin(origin, request.header("host"))):
            return _html(403, render_login("Sign-in refused: the form did not come from this page. "
                                           "Reload the sign-in page and try again."), request_id)
        key = self.keys.lookup(form.get("access_key_id", "").strip())
        secret = form.get("secret", "")
        ok = (key is not None and key.active and key.role in REVIEWER_ROLES
              and hmac.compare_digest(key.secret.encode(), secret.encode()))
        if not ok:
            return _html(401, render_login("Sign-in refused: unknown or revoked key, wrong secret, or a role "
                                           "that may not review (admin, operator or reviewer only)."), request_id)
        session_id = self.acc.open_session(key.access_key_id, SESSION_SECONDS)
        cookie = f"{session_id}.{self._sign('session:' + session_id)}"
        return _redirect("/review", request_id, [
            _cookie(request, COOKIE, cookie, "/review", SESSION_SECONDS),
            _cookie(request, LOGIN_COOKIE, "", "/review/login", 0),
        ])

    def _page(self, request, request_id: str, session_id: str, reviewer: Reviewer):
        query = urllib.parse.parse_qs(request.query)
        status = (query.get("status") or ["pending"])[0]
        if status not in ("pending", "confirmed", "rejected"):
            status = "pending"
        collection = (query.get("collection") or [""])[0][:255] or None
        case = (query.get("case") or [""])[0][:256] or None
        leads = self.acc.leads(status, 500, collection_id=collection, case_reference=case)
        decidable = {lead.lead_id: self._may_decide(reviewer, lead) for lead in leads}

        def probe_url(lead: Lead) -> str | None:
            if decidable[lead.lead_id] and self.acc.has_probe(lead.probe_sha256):
                return f"/review/images/lead/{lead.lead_id}/probe"
            return None

        def candidate_url(lead: Lead) -> str | None:
            if decidable[lead.lead_id] and lead.candidate_face_id and self.acc.face_image(lead.candidate_face_id):
                return f"/review/images/lead/{lead.lead_id}/candidate"
            return None

        page = render_review_page(
            leads, reviewer, self._csrf(session_id), probe_url=probe_url, candidate_url=candidate_url,
            missing=self.acc.missing_evidence, may_decide=lambda lead: decidable[lead.lead_id],
            status=status, notice=self.acc.take_notice(session_id), collection=collection or "", case=case or "",
        )
        return _html(200, page, request_id)

    @staticmethod
    def _may_decide(reviewer: Reviewer, lead) -> bool:
        """Whether this person may decide on the lead now (pending, not their search, not decided)."""
        return (lead.status == "pending" and bool(reviewer.person)
                and lead.requested_by != reviewer.key_id
                and not same_person(lead.requested_by_person, reviewer.person)
                and not any(same_person(d.reviewer, reviewer.person) for d in lead.decisions))

    def _lead_image(self, reviewer: Reviewer, lead_id: str, which: str) -> bytes | None:
        """A lead's probe or candidate image, only while the person is deciding on it."""
        try:
            lead = self.acc.reviews.get(lead_id)
        except FaceAuditError:
            return None
        if not self._may_decide(reviewer, lead):
            return None
        if which == "probe":
            return self.acc.probe_bytes(lead.probe_sha256)
        if which == "candidate":
            return self.acc.face_image(lead.candidate_face_id)
        return None

    def _decide(self, request, request_id: str, session_id: str, reviewer: Reviewer, lead_id: str):
        form = self._read_form(request)
        if form is None:
            return _html(413, "<p>form too large</p>", request_id)
        if not hmac.compare_digest(form.get("csrf", ""), self._csrf(session_id)):
            return _html(403, "<p>Refused: the form is stale or forged (CSRF check). Reload the page.</p>", request_id)
        try:
            lead = self.acc.decide(lead_id, reviewer, form.get("decision", ""), form.get("note", ""))
            notice = f"Recorded: {form.get('decision')} on lead {lead.lead_id}; it is now {lead.status}."
        except FaceAuditError as exc:
            notice = f"Not recorded: {exc.message}"
        self.acc.set_notice(session_id, notice)
        return _redirect("/review", request_id)

    @staticmethod
    def _image(data: bytes | None, request_id: str):
        if not data:
            return _response(404, b"", "text/plain", request_id)
        kind = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
        return _response(200, data, kind, request_id)


def _same_origin(origin: str | None, host: str | None) -> bool:
    """No Origin (not a browser form, or an old browser) passes; a present one must name this host."""
    if not origin:
        return True
    if not host:
        return False
    netloc = urllib.parse.urlsplit(origin).netloc
    return netloc.lower() == host.strip().lower()


def _cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


def _form(body: bytes) -> dict[str, str]:
    parsed = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}
