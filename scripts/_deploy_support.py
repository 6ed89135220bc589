"""Several `faceaudit serve` processes and the HAProxy of deploy/haproxy.cfg, on loopback:
scripts/deploy_failover.py and the deployment tests (tests/_deploy.py, tests/service/conftest.py
load this file by path).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
REGION = "us-east-1"


def faceaudit_cmd() -> list[str]:
    script = Path(sys.executable).with_name("faceaudit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "faceaudit.cli._main"]


def create_key(data_dir: Path, role: str = "operator", person: str = "", cli_args: Sequence[str] = ()) -> dict:
    """`faceaudit keys create --json` in a subprocess: {"AccessKeyId": ..., "SecretAccessKey": ...}
    (``cli_args``: more arguments, e.g. ``--database URL``: the key is then in that database)."""
    extra = ["--person", person] if person else []
    done = subprocess.run([*faceaudit_cmd(), "keys", "create", "--json", "--role", role, "--data-dir", str(data_dir),
                           *extra, *cli_args], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


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



def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)


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
    """A TCP port free on 127.0.0.1 now (the OS's choice)."""
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
    """Poll ``condition()`` every 50 ms until it is true; AssertionError(``message``) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


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
