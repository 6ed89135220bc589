"""The throwaway Milvus server's pytest side: fixtures, and the rule for a machine without one.

The server itself is scripts/_milvus_server.py (scripts/bench_milvus.py uses it too), loaded by
path. Without ``.venv-milvus`` or pymilvus the tests that need a server are skipped, except under
CI (``CI=true``), where they fail (``make install`` installs both). The same rule as
tests/_postgres.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import scripts_module

_SERVER = scripts_module("_milvus_server")
VENV = _SERVER.VENV
MilvusServer = _SERVER.MilvusServer
server_python = _SERVER.server_python
start_server = _SERVER.start_server
throwaway_server = _SERVER.throwaway_server


def unavailable(why: str) -> None:
    """Skip (locally) or fail (CI=true) a test that needs a Milvus server."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Milvus server tests cannot run under CI: {why}", pytrace=False)
    pytest.skip(f"Milvus server not available: {why}")


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[MilvusServer]:
    """One throwaway Milvus server for the whole session (skipped locally / failed under CI when missing)."""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        unavailable("pymilvus is not installed (the 'milvus' extra)")
    python = server_python()
    if python is None:
        unavailable(f"no Milvus server virtualenv at {VENV} (make install makes it: make milvus-server)")
    with throwaway_server() as server:
        yield server


@pytest.fixture(scope="session")
def milvus_uri(milvus_server: MilvusServer) -> str:
    """The session server's URI (http://127.0.0.1:PORT)."""
    return milvus_server.uri
