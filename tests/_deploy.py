"""Several `faceaudit serve` hosts and the HAProxy of deploy/haproxy.cfg, on loopback, for the
deployment tests (tests/service/test_deploy.py, tests/test_two_hosts.py).

A :class:`Deployment` says how the hosts share their truth: today one data dir for every host
(SQLite works across processes); a PostgreSQL variant gives each host its own data dir and the
same ``--database URL`` in ``serve_args``/``cli_args``. The tests take it as a fixture parameter.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import scripts_module
from tests.service.conftest import REGION, ServeProcess, cli

_DEPLOY = scripts_module("_deploy_support")
"""scripts/_deploy_support.py: HAProxy, free ports, waiting and clients, shared with the scripts."""
ROOT = _DEPLOY.ROOT
HAPROXY_CFG = _DEPLOY.HAPROXY_CFG
HAProxy = _DEPLOY.HAProxy
free_port = _DEPLOY.free_port
haproxy_binary = _DEPLOY.haproxy_binary
make_tls = _DEPLOY.make_tls
rekognition = _DEPLOY.rekognition
wait_for = _DEPLOY.wait_for
PROXY = "127.0.0.1/32"
"""The proxy's address as the hosts' --trusted-proxy (HAProxy connects to them from 127.0.0.1)."""


@dataclass(frozen=True)
class Deployment:
    """How the hosts of one test share their state: ``data_dirs`` (one per host; the same path
    twice for a shared data dir), extra arguments of every ``faceaudit serve`` (``serve_args``,
    e.g. ``--database URL``) and of every other command (``cli_args``)."""

    name: str
    data_dirs: tuple[Path, ...]
    serve_args: tuple[str, ...] = ()
    cli_args: tuple[str, ...] = ()

    @property
    def shared_dir(self) -> bool:
        return len(set(self.data_dirs)) == 1


def shared_data_dir(tmp_path: Path, request: pytest.FixtureRequest | None = None, hosts: int = 2) -> Deployment:
    """Every host on one data dir (SQLite files, the JSONL search log)."""
    data = tmp_path / "data"
    return Deployment("shared-data-dir", (data,) * hosts)


def postgresql(tmp_path: Path, request: pytest.FixtureRequest, hosts: int = 2) -> Deployment:
    """Every host on its own data dir (nothing shared on disk) and one fresh database of the
    session's throwaway PostgreSQL server (``postgres_server``; skipped without one)."""
    url = request.getfixturevalue("postgres_server").new_database()
    dirs = tuple(tmp_path / f"host-{'abcdefgh'[i]}" for i in range(hosts))
    return Deployment("postgresql", dirs, ("--database", url), ("--database", url))


DEPLOYMENTS: dict[str, Callable[[Path, pytest.FixtureRequest], Deployment]] = {
    "shared-data-dir": shared_data_dir, "postgresql": postgresql}
"""The ways the deployment tests run their hosts (their fixture's parameters), name -> a factory
given an empty folder and the fixture's request (for the PostgreSQL server fixture). The
PostgreSQL entry gives each host its own data dir under the folder and ``--database URL`` in both
``serve_args`` and ``cli_args``."""


def create_keys(deployment: Deployment, roles: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """One access key per entry (name -> (role, person)), made by `faceaudit keys create` on the
    first host's data dir; with a data dir per host and no database the keys file is copied to the
    others (with ``--database`` the keys live in the database: nothing is copied)."""
    first = deployment.data_dirs[0]
    keys = {}
    for name, (role, person) in roles.items():
        out = cli("keys", "create", "--json", "--role", role, "--person", person,
                  "--data-dir", str(first), *deployment.cli_args).stdout
        keys[name] = json.loads(out)
    src = first / "access-keys.json"
    if "--database" in deployment.cli_args:
        return keys
    for other in deployment.data_dirs[1:]:
        if other != first and src.exists():
            other.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(src, other / src.name)
    return keys


@contextlib.contextmanager
def hosts(deployment: Deployment, *args: str) -> Iterator[list[ServeProcess]]:
    """One `faceaudit serve` per data dir of ``deployment`` (loopback, a free port each), with
    ``--trusted-proxy 127.0.0.1/32`` and ``args``; stopped (SIGTERM) at the end if still running."""
    started: list[ServeProcess] = []
    try:
        for i, data_dir in enumerate(deployment.data_dirs):
            log_path = data_dir.parent / f"host-{'abcdefgh'[i]}-{time.monotonic_ns()}.log"
            started.append(ServeProcess(data_dir, "--trusted-proxy", PROXY, *deployment.serve_args, *args,
                                        log_path=log_path))
        yield started
    finally:
        for host in started:
            with contextlib.suppress(Exception):
                host.stop()


def address(url: str) -> str:
    """``http://127.0.0.1:8080`` -> ``127.0.0.1:8080``."""
    return url.split("://", 1)[1].rstrip("/")


def native(url: str, key: dict, operation: str, params: dict, verify: Path | None = None) -> tuple[int, dict]:
    """A SigV4-signed call of one of faceaudit's own operations (``FaceAuditService.<operation>``)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(params).encode()
    req = AWSRequest("POST", url + "/", data=body, headers={
        "X-Amz-Target": f"FaceAuditService.{operation}", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "rekognition", REGION).add_auth(req)
    prepared = urllib.request.Request(url + "/", data=body, headers=dict(req.headers.items()), method="POST")
    context = ssl.create_default_context(cafile=str(verify)) if verify is not None else None
    try:
        with urllib.request.urlopen(prepared, timeout=60, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(url: str, verify: Path | None = None, timeout: float = 10) -> tuple[int, dict, dict[str, str]]:
    """GET ``url``: (status, JSON body, headers by lower-case name)."""
    context = ssl.create_default_context(cafile=str(verify)) if verify is not None else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, _json(resp.read()), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read()), {k.lower(): v for k, v in exc.headers.items()}


def _json(body: bytes) -> dict:
    try:
        return json.loads(body)
    except ValueError:  # HAProxy's own error pages are HTML
        return {"_text": body.decode("latin-1")}


def log_records(deployment: Deployment) -> list[dict]:
    """Every record of the deployment's search log (`faceaudit log export --format json`)."""
    out = cli("log", "export", "--format", "json", "--data-dir", str(deployment.data_dirs[0]),
              *deployment.cli_args).stdout
    return json.loads(out)


def log_verify(deployment: Deployment) -> dict:
    """`faceaudit log verify --json` of the deployment's search log (exit status 0 required)."""
    done = cli("log", "verify", "--json", "--data-dir", str(deployment.data_dirs[0]), *deployment.cli_args,
               check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)
