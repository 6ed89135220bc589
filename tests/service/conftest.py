"""Fixtures of the service tests: a data dir with keys made by the CLI, an in-process server,
boto3 clients. Everything heavy is session-scoped; the server runs in a thread of the test
process (the multi-worker tests start `faceaudit serve` as a subprocess)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import scripts_module

REGION = "us-east-1"


_DEPLOY = scripts_module("_deploy_support")
faceaudit_cmd = _DEPLOY.faceaudit_cmd
create_key = _DEPLOY.create_key
"""`faceaudit keys create --json` in a subprocess: {"AccessKeyId": ..., "SecretAccessKey": ...}."""


def cli(*argv: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the faceaudit CLI in a subprocess."""
    return subprocess.run(
        faceaudit_cmd() + list(argv), capture_output=True, text=True, timeout=60, check=check,
        env={**os.environ, **(env or {})},
    )


def client(url: str, key: dict, **config):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(**{"retries": {"max_attempts": 1, "mode": "standard"}, **config}),
    )


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service-data")


@pytest.fixture(scope="session")
def key(service_dir) -> dict:
    return create_key(service_dir)


@pytest.fixture(scope="session")
def server(service_dir) -> Iterator[str]:
    """A server in a thread of this process, strict: every response is checked against its shape."""
    from faceaudit.service import ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    app = ServiceApp(ServiceConfig(service_dir, rate_limit=10_000, strict_responses=True))
    srv, thread, url = start_in_thread(app)
    yield url
    stop_thread_server(srv, thread)


@pytest.fixture(scope="session")
def rek(server, key):
    """boto3 rekognition client for the session server (no retries: errors show as they are)."""
    return client(server, key)


def have_backend() -> bool:
    try:
        import faceaudit.collections as c
    except ImportError:
        return False
    return hasattr(c, "FaceCollections")


needs_backend = pytest.mark.skipif(not have_backend(), reason="faceaudit.collections not there yet")


ServeProcess = _DEPLOY.ServeProcess
"""`faceaudit serve` in a subprocess; stderr (JSON logs) collected in a file: scripts/_deploy_support.py."""
