"""Structured logs of the service: one JSON object per line on stderr.

Request records hold the time, request id, operation, access key id, HTTP
status, error code and durations; never a body, a header value other than those,
a signature or a secret.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

ACCESS_LOGGER = "faceaudit.service.access"
access_log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """``{"time": ..., "level": ..., "logger": ..., "message": ..., <fields>}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


def configure_logging(level: str = "INFO", stream: Any | None = None) -> None:
    """Send every log record of the process to stderr as JSON lines at ``level``."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def log_request(
    *,
    request_id: str,
    method: str,
    path: str,
    operation: str | None,
    access_key_id: str | None,
    status: int,
    error_code: str | None,
    duration_ms: float,
    engine_ms: float | None,
    remote: str,
) -> None:
    level = logging.ERROR if status >= 500 and error_code != "ThrottlingException" else logging.INFO
    if path == "/ready":  # a balancer asks every second: answers at DEBUG, "not ready" at WARNING
        level = logging.DEBUG if status == 200 else logging.WARNING
    if not access_log.isEnabledFor(level):
        return
    fields = {
        "request_id": request_id,
        "method": method,
        "path": path[:200],
        "operation": operation,
        "access_key_id": access_key_id,
        "status": status,
        "error_code": error_code,
        "duration_ms": round(duration_ms, 2),
        "engine_ms": None if engine_ms is None else round(engine_ms, 2),
        "remote": remote,
        "worker": os.getpid(),
    }
    access_log.log(level, "request", extra={"fields": fields})
