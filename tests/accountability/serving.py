"""A faceaudit server with the accountability extension, in a thread, for the issue-22 tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.service.conftest import create_key

ROLES = {"admin": ("admin", "Ada"), "operator": ("operator", "Oscar"), "operator2": ("operator", "Olga"),
         "auditor": ("auditor", "Aud"), "reviewer": ("reviewer", "Rita")}


@contextlib.contextmanager
def serving(data_dir: Path, **config) -> Iterator[tuple[str, dict[str, dict]]]:
    """(url, keys by name) of a server over ``data_dir`` (keys made by the CLI, one per ROLES entry)."""
    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import (
        ServiceApp,
        ServiceConfig,
        start_in_thread,
        stop_thread_server,
    )

    keys = {name: create_key(data_dir, role, person) for name, (role, person) in ROLES.items()}
    app = ServiceApp(ServiceConfig(data_dir, rate_limit=10_000, strict_responses=True, **config),
                     extension=AccountabilityExtension(data_dir))
    srv, thread, base = start_in_thread(app)
    try:
        yield base, keys
    finally:
        stop_thread_server(srv, thread)
