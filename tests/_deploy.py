"""Several `faceaudit serve` hosts and the HAProxy of deploy/haproxy.cfg, on loopback, for the
deployment tests (tests/service/test_deploy.py, tests/test_two_hosts.py).

A :class:`Deployment` says how the hosts share their truth: today one data dir for every host
(SQLite works across processes); a PostgreSQL variant gives each host its own data dir and the
same ``--database URL`` in ``serve_args``/``cli_args``. The tests take it as a fixture parameter.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.service.conftest import REGION, ServeProcess, cli

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
PROXY = "127.0.0.1/32"
"""The proxy's address as the hosts' --trusted-proxy (HAProxy connects to them from 127.0.0.1)."""


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)


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


def shared_data_dir(tmp_path: Path, hosts: int = 2) -> Deployment:
    """Every host on one data dir (SQLite files, the JSONL search log)."""
    data = tmp_path / "data"
    return Deployment("shared-data-dir", (data,) * hosts)


DEPLOYMENTS: dict[str, Callable[[Path], Deployment]] = {"shared-data-dir": shared_data_dir}
"""The ways the deployment tests run their hosts (their fixture's parameters), name -> a factory
given an empty folder. A PostgreSQL entry gives each host its own data dir under the folder and
``--database URL`` in both ``serve_args`` and ``cli_args``."""


def create_keys(deployment: Deployment, roles: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """One access key per entry (name -> (role, person)), made by `faceaudit keys create` on the
    first host's data dir; with a data dir per host the keys file is copied to the others."""
    first = deployment.data_dirs[0]
    keys = {}
    for name, (role, person) in roles.items():
        out = cli("keys", "create", "--json", "--role", role, "--person", person,
                  "--data-dir", str(first), *deployment.cli_args).stdout
        keys[name] = json.loads(out)
    src = first / "access-keys.json"
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


def make_tls(folder: Path) -> tuple[Path, Path]:
    """A test CA and a certificate for localhost/127.0.0.1 signed by it: (CA certificate,
    HAProxy's PEM holding the certificate and its key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faceaudit test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pem = folder / "proxy.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pem.chmod(0o600)
    return ca_path, pem


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HAProxy:
    """HAProxy running deploy/haproxy.cfg in the foreground, its values from the environment."""

    folder: Path
    backends: Sequence[str]  # host:port of each faceaudit host, in the config's order
    proc: subprocess.Popen | None = None
    url: str = ""
    ca: Path = field(default_factory=Path)
    stats: Path = field(default_factory=Path)

    def start(self) -> HAProxy:
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed (apt-get install haproxy)")
        self.ca, pem = make_tls(self.folder)
        port = free_port()
        self.stats = self.folder / "stats.sock"
        env = {**os.environ, "FACEAUDIT_PROXY_BIND": f"127.0.0.1:{port}", "FACEAUDIT_PROXY_PEM": str(pem),
               "FACEAUDIT_PROXY_STATS": str(self.stats), "FACEAUDIT_HOST_A": self.backends[0],
               "FACEAUDIT_HOST_B": self.backends[1]}
        check = subprocess.run([binary, "-c", "-q", "-f", str(HAPROXY_CFG)], env=env, capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused deploy/haproxy.cfg: {check.stderr}")
        self._log = open(self.folder / "haproxy.log", "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([binary, "-db", "-f", str(HAPROXY_CFG)], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"https://localhost:{port}"
        wait_for(lambda: self.stats.exists() and self._listening(port), 30, "haproxy did not start")
        return self

    @staticmethod
    def _listening(port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    def command(self, line: str) -> str:
        """One command on the admin socket (e.g. ``show stat``)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def server_states(self) -> dict[str, str]:
        """Server name -> its status in ``show stat`` (``UP``, ``DOWN``, ``UP 1/2``, ...)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "faceaudit_hosts" and row.get("svname") not in ("BACKEND", "FRONTEND", None):
                states[row["svname"]] = row["status"]
        return states

    def logs(self) -> str:
        return (self.folder / "haproxy.log").read_text()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self._log.close()


def wait_for(condition: Callable[[], object], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


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


def rekognition(url: str, key: dict, verify: Path | None = None, source: str | None = None, attempts: int = 1):
    """A boto3 Rekognition client of ``url`` (https: ``verify`` is the CA; ``source``: the local
    address its connections come from, e.g. ``127.0.0.5``, so that the client is not the proxy;
    ``attempts``: tries per call, 1 = no retry, so that every error shows)."""
    import boto3
    from botocore.config import Config

    rek = boto3.client("rekognition", endpoint_url=url, region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"], verify=str(verify) if verify else None,
                       config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}))
    if source is not None:  # urllib3's pool manager passes source_address to every connection it makes
        rek._endpoint.http_session._manager.connection_pool_kw["source_address"] = (source, 0)
    return rek


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
