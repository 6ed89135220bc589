"""Durable, private file writes shared by the log head, kept probes, session key and audit status."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from faceaudit._paths import private_dir


def write_private(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` (mode 0600) all at once: a unique temp file, fsync, then publish.

    The temp name is unique per call (threads of one worker share a pid), so concurrent
    writers never truncate each other's file. ``replace=True`` publishes with
    ``os.replace`` (last writer wins); ``replace=False`` with ``os.link`` (first writer
    wins; later ones leave the file as it is). Returns True when this call published.
    """
    private_dir(path.parent, check=False)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    finally:
        if tmp.exists():
            tmp.unlink()
