"""AWS Signature Version 4 verification (service ``rekognition``, any region).

The verification is split in two so that bad requests are refused before their
body is read: :meth:`SigV4Verifier.precheck` parses the ``Authorization`` header,
checks the credential scope, the signing time (at most 15 minutes from the
server's clock, as AWS) and the access key; :meth:`SigV4Verifier.verify` then
rebuilds the canonical request exactly as SigV4 specifies (canonical URI with dot
segments removed and each segment encoded again, sorted canonical query, the
signed headers trimmed, the SHA-256 of the body) and compares signatures in
constant time.

Refusals carry AWS's error names (HTTP 400, as AWS's JSON 1.1 services answer):
MissingAuthenticationTokenException (unsigned), IncompleteSignatureException
(malformed header), InvalidSignatureException (wrong signature, "Signature
expired", scope), UnrecognizedClientException (unknown or revoked key). No
message ever contains a secret or a signature.
"""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from botocore.utils import normalize_url_path

from faceaudit._errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from faceaudit.service._keys import AccessKey, KeyStore

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MUST_SIGN = frozenset({"x-amz-target", "x-amz-content-sha256", "x-amz-security-token"})
"""Headers that, when present, must be among the signed headers (besides host and the date)."""
MUST_SIGN_PREFIX = "x-faceaudit-"
"""faceaudit's context headers (case reference, purpose: logged as the key holder's word) too."""
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

Headers = Sequence[tuple[str, str]]
"""Request headers as (name, value) pairs in arrival order (names in any case)."""


@dataclass(frozen=True)
class Principal:
    """Who sent a request: the access key and its role (``anonymous`` without authentication)."""

    access_key_id: str
    role: str


ANONYMOUS = Principal("anonymous", "admin")


@dataclass(frozen=True)
class ParsedAuthorization:
    """An ``Authorization`` header that passed the checks that need no body."""

    key: AccessKey
    amz_date: str  # YYYYMMDDTHHMMSSZ
    scope: str  # date/region/service/aws4_request
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    date_header: str  # the header that carried the time: x-amz-date or date


def header_values(headers: Headers, name: str) -> list[str]:
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def header(headers: Headers, name: str) -> str | None:
    values = header_values(headers, name)
    return values[0] if values else None


def _fmt(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def _authorization_header(headers: Headers, query: str) -> str:
    """The one ``Authorization`` header, stripped; presigned (query-string) requests are refused."""
    if "X-Amz-Signature=" in query or "X-Amz-Credential=" in query:
        raise IncompleteSignatureError(
            "query-string (presigned) authentication is not supported; "
            "sign the Authorization header"
        )
    values = header_values(headers, "authorization")
    if not values:
        raise MissingAuthenticationTokenError("Request is missing Authentication Token")
    if len(values) > 1:
        raise IncompleteSignatureError("more than one Authorization header")
    return values[0].strip()


def _parse_authorization(auth: str) -> dict[str, str]:
    """The ``name=value`` parameters after the algorithm; Credential, SignedHeaders and Signature non-empty."""
    algorithm, _, rest = auth.partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureError(
            f"Authorization header must use {ALGORITHM} (AWS Signature Version 4)"
        )
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, value = item.strip().partition("=")
        if eq:
            parts[name.strip()] = value.strip()
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if not parts.get(p)]
    if missing:
        raise IncompleteSignatureError(
            f"Authorization header requires '{missing[0]}' parameter. "
            "Authorization=" + algorithm + " ..."
        )
    return parts


def _signed_headers_and_signature(parts: dict[str, str]) -> tuple[tuple[str, ...], str]:
    """SignedHeaders (lower case, sorted, unique) and Signature (64 lower-case hex digits)."""
    signed = tuple(parts["SignedHeaders"].split(";"))
    if any(h != h.lower() or not h for h in signed) or list(signed) != sorted(set(signed)):
        raise IncompleteSignatureError("SignedHeaders must be lower case, sorted and unique")
    signature = parts["Signature"]
    if not _HEX64.match(signature):
        raise IncompleteSignatureError("Signature must be 64 lower-case hex digits")
    return signed, signature


def _check_signed_headers(headers: Headers, signed: tuple[str, ...], date_header: str) -> None:
    """The date header, host and every header in MUST_SIGN or under MUST_SIGN_PREFIX are signed."""
    if date_header not in signed:
        raise InvalidSignatureError(f"the '{date_header}' header must be signed")
    if "host" not in signed:
        raise InvalidSignatureError("the 'host' header must be signed")
    for name, _ in headers:  # what says which operation, and the declared payload hash
        lname = name.lower()
        if (lname in MUST_SIGN or lname.startswith(MUST_SIGN_PREFIX)) and lname not in signed:
            raise InvalidSignatureError(f"the '{lname}' header must be signed")


class SigV4Verifier:
    """Verifies SigV4-signed requests against a :class:`KeyStore`."""

    def __init__(
        self,
        keys: KeyStore,
        service: str = "rekognition",
        max_skew: float = MAX_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.service = service
        self.max_skew = max_skew
        self.clock = clock
        self._signing_keys: dict[tuple[str, str, str], bytes] = {}
        self._cache_lock = threading.Lock()

    # -- before the body ---------------------------------------------------------------------

    def precheck(self, headers: Headers, query: str = "") -> ParsedAuthorization:
        """Checks that need no body: header syntax, scope, time, access key.

        In this order, each step refusing with its own AWS error: one Authorization
        header, its syntax, the credential scope, SignedHeaders and Signature syntax,
        the request time, the headers that must be signed, the signing time's skew,
        then the access key.
        """
        parts = _parse_authorization(_authorization_header(headers, query))
        credential = self._check_scope(parts["Credential"])
        access_key_id, scope_date, region, _, _ = credential
        signed, signature = _signed_headers_and_signature(parts)

        amz_date, date_header, signed_at = self._request_time(headers)
        _check_signed_headers(headers, signed, date_header)
        self._check_time(scope_date, amz_date, signed_at)
        key = self._check_key(headers, access_key_id)
        return ParsedAuthorization(
            key=key,
            amz_date=amz_date,
            scope="/".join(credential[1:]),
            region=region,
            signed_headers=signed,
            signature=signature,
            date_header=date_header,
        )

    def _check_scope(self, value: str) -> list[str]:
        """The Credential parameter split into its five parts, with terminator and service checked."""
        credential = value.split("/")
        if len(credential) != 5 or not all(credential):
            raise IncompleteSignatureError(
                "Credential must have the form <AccessKeyId>/<YYYYMMDD>/<region>/<service>/aws4_request"
            )
        terminator, service = credential[4], credential[3]
        if terminator != "aws4_request":
            raise InvalidSignatureError(
                f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            )
        if service != self.service:
            raise InvalidSignatureError(
                f"Credential should be scoped to correct service: '{self.service}'."
            )
        return credential

    def _check_time(self, scope_date: str, amz_date: str, signed_at: float) -> None:
        """The scope's date is the signing date, and the signing time is within ``max_skew`` of now."""
        if scope_date != amz_date[:8]:
            raise InvalidSignatureError(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
            )
        now = self.clock()
        if signed_at < now - self.max_skew:
            raise InvalidSignatureError(
                f"Signature expired: {amz_date} is now earlier than {_fmt(now - self.max_skew)} "
                f"({_fmt(now)} - {self.max_skew / 60:g} min.)"
            )
        if signed_at > now + self.max_skew:
            raise InvalidSignatureError(
                f"Signature not yet current: {amz_date} is still later than "
                f"{_fmt(now + self.max_skew)} ({_fmt(now)} + {self.max_skew / 60:g} min.)"
            )

    def _check_key(self, headers: Headers, access_key_id: str) -> AccessKey:
        """The active key ``access_key_id``; no session token (faceaudit issues no temporary credentials)."""
        if header(headers, "x-amz-security-token") is not None:
            # faceaudit issues no temporary credentials
            raise UnrecognizedClientError("The security token included in the request is invalid.")
        key = self.keys.lookup(access_key_id)
        if key is None or not key.active:
            raise UnrecognizedClientError("The security token included in the request is invalid.")
        return key

    @staticmethod
    def _request_time(headers: Headers) -> tuple[str, str, float]:
        value = header(headers, "x-amz-date")
        if value is not None:
            value = value.strip()
            if not _AMZ_DATE.match(value):
                raise IncompleteSignatureError(
                    f"X-Amz-Date must have the form YYYYMMDDTHHMMSSZ, got '{value[:32]}'"
                )
            try:
                t = float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
            except ValueError:
                raise IncompleteSignatureError(f"X-Amz-Date is not a valid time: '{value}'") from None
            return value, "x-amz-date", t
        value = header(headers, "date")
        if value is not None:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                date_t = float(email.utils.mktime_tz(parsed))
                return _fmt(date_t), "date", date_t
        raise IncompleteSignatureError(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )

    # -- with the body -----------------------------------------------------------------------

    def verify(
        self,
        auth: ParsedAuthorization,
        method: str,
        raw_path: str,
        query: str,
        headers: Headers,
        body: bytes,
        payload_sha256: str | None = None,
    ) -> Principal:
        """Rebuild the canonical request and compare signatures (constant time).

        ``payload_sha256``: the body's SHA-256 (hex) when the server computed it while the body
        streamed in; computed here otherwise."""
        computed = payload_sha256 or hashlib.sha256(body).hexdigest()
        declared = header(headers, "x-amz-content-sha256")
        if declared is not None:
            declared = declared.strip()
            if declared == UNSIGNED_PAYLOAD:
                raise InvalidSignatureError("this service requires a signed payload")
            if not hmac.compare_digest(declared.lower(), computed):
                raise InvalidSignatureError(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                )
        canonical = canonical_request(
            method, raw_path, query, headers, auth.signed_headers, declared or computed
        )
        string_to_sign = "\n".join(
            [ALGORITHM, auth.amz_date, auth.scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
        )
        key = self._signing_key(auth.key.secret, auth.amz_date[:8], auth.region)
        expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode("ascii"), auth.signature.encode("ascii")):
            raise InvalidSignatureError(
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details."
            )
        return Principal(auth.key.access_key_id, auth.key.role)

    def _signing_key(self, secret: str, date: str, region: str) -> bytes:
        cache_key = (hashlib.sha256(secret.encode()).hexdigest(), date, region)
        with self._cache_lock:
            key = self._signing_keys.get(cache_key)
        if key is None:
            key = signing_key(secret, date, region, self.service)
            with self._cache_lock:
                if len(self._signing_keys) > 1024:
                    self._signing_keys.clear()
                self._signing_keys[cache_key] = key
        return key


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key: HMAC chain over date, region, service, ``aws4_request``."""
    k = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode("utf-8"), hashlib.sha256).digest()
    return k


def canonical_uri(raw_path: str) -> str:
    """The path with dot segments and empty segments removed, each segment URI-encoded again."""
    return quote(normalize_url_path(raw_path), safe="/~")


def canonical_query(query: str) -> str:
    """Query parameters decoded, re-encoded with RFC 3986 unreserved characters, sorted."""
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append(
            (quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~"))
        )
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    query: str,
    headers: Headers,
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    lines = [method.upper(), canonical_uri(raw_path), canonical_query(query)]
    for name in signed_headers:
        values = header_values(headers, name)
        if not values:
            raise InvalidSignatureError(f"the signed header '{name}' is not in the request")
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    lines.append("")
    lines.append(";".join(signed_headers))
    lines.append(payload_hash)
    return "\n".join(lines)
