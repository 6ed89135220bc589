"""Fixtures of the service tests: a data dir with keys made by the CLI, an in-process server,
boto3 clients. Everything heavy is session-scoped; the server runs in a thread of the test
process (the multi-worker tests start `faceaudit serve` as a subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REGION = "us-east-1"


def faceaudit_cmd() -> list[str]:
    script = Path(sys.executable).with_name("faceaudit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "faceaudit.cli._main"]


def cli(*argv: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the faceaudit CLI in a subprocess."""
    return subprocess.run(
        faceaudit_cmd() + list(argv), capture_output=True, text=True, timeout=60, check=check,
        env={**os.environ, **(env or {})},
    )


def create_key(data_dir: Path, role: str = "operator", person: str = "") -> dict:
    """`faceaudit keys create --json` in a subprocess: {"AccessKeyId": ..., "SecretAccessKey": ...}."""
    extra = ["--person", person] if person else []
    out = cli("keys", "create", "--json", "--role", role, "--data-dir", str(data_dir), *extra).stdout
    return json.loads(out)


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


class ServeProcess:
    """`faceaudit serve` in a subprocess; stderr (JSON logs) collected in a file."""

    def __init__(self, data_dir: Path, *args: str, log_path: Path | None = None) -> None:
        self.log_path = log_path or data_dir / f"serve-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (open for the process's lifetime; closed in stop())
        self.proc = subprocess.Popen(
            [*faceaudit_cmd(), "serve", "--data-dir", str(data_dir), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"serving (http://\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"serve did not start: {line!r} {self.log_path.read_text()[-2000:]}")
        self.url = m.group(1)

    def stop(self, sig: int = 15, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            self._log.close()
        return code

    def logs(self) -> str:
        return self.log_path.read_text()
