"""The service's extension point: what a higher layer may add without business logic here.

An extension (the accountability layer supplies one; ``faceaudit serve`` wires
it) can:

- authorise each operation for the caller's role (AccessDeniedException);
- wrap each Rekognition operation call (policy checks and the search log);
- serve its own JSON operations under another ``X-Amz-Target`` prefix, signed
  and rate-limited like the Rekognition ones;
- serve its own paths (a web page), authenticated its own way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from faceaudit.collections import NormalisedRequest
from faceaudit.service._protocol import HttpRequest, HttpResponse

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Caller:
    """Who sent a request and its context headers (lower-cased names)."""

    access_key_id: str
    role: str
    request_id: str
    headers: dict[str, str] = field(default_factory=dict)
    remote: str = ""  # the client's address (from a trusted proxy's X-Forwarded-For behind one)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


Call = Callable[[], tuple[dict[str, Any], float]]


class ServiceExtension(Protocol):
    target_prefix: str
    operations: frozenset[str]

    def authorize(self, caller: Caller, operation: str, native: bool) -> None:
        """Raise AccessDeniedError when the caller's role may not run the operation."""

    def wrap(self, caller: Caller, operation: str, params: NormalisedRequest, call: Call,
             model_version: Callable[[], str]) -> tuple[dict[str, Any], float]:
        """Run ``call`` for a Rekognition operation (and log it if it identifies people);
        ``params``: the normalised request, the one the backend is called with."""

    def body_limit(self, operation: str) -> int:
        """Largest body of one of the extension's own operations."""

    def call(self, caller: Caller, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Serve one of the extension's own operations; returns the response document."""

    def handle_path(self, request: HttpRequest, request_id: str) -> HttpResponse | None:
        """Serve a path other than ``/``, ``/health`` and ``/ready``, or None for 404."""

    def check_health(self) -> None:
        """Readiness: raise when a store the extension needs does not answer (``GET /ready``)."""
