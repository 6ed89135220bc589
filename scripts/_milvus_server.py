"""A throwaway Milvus standalone server for the tests and scripts/bench_milvus.py (loaded by path
by tests/_milvus.py, which adds the fixtures).

The server is the ``milvus`` package (2.3 series: the standalone binary with embedded etcd,
local storage and rocksmq), installed by ``make install`` into its own virtualenv
``.venv-milvus`` (its pymilvus pins conflict with the project's). scripts/_milvus_prepare.py,
run with that virtualenv's Python, unpacks the binary and writes a configuration into a fresh
temp dir with free loopback ports; the binary is then run here in its own process group, waited
for (its health endpoint says OK and the project's pymilvus lists collections), and at the end
killed (SIGKILL to its process group) and its dir removed whatever happens.

Without ``.venv-milvus`` :func:`throwaway_server` raises FileNotFoundError (the tests then skip,
or fail under CI: tests/_milvus.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-milvus"
PREPARE = Path(__file__).resolve().parent / "_milvus_prepare.py"
START_LIMIT_S = 240.0
"""How long to wait for the server to answer (a guard: the wait is on a condition)."""


def server_python() -> Path | None:
    """The Python of the virtualenv holding the ``milvus`` server package, or None."""
    python = VENV / "bin" / "python"
    if python.is_file() and (VENV / ".installed-milvus-2.3.5").is_file():
        return python
    return None


@dataclass
class MilvusServer:
    """One running throwaway server; :attr:`uri` is what ``--milvus-uri`` takes."""

    root: Path
    port: int
    metrics_port: int
    binary: Path
    lib_dir: Path
    version: str = ""
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        """The server's own health check (every component up)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=5) as resp:
                return b"OK" in resp.read()
        except (OSError, urllib.error.URLError):
            return False

    def answers(self) -> bool:
        """The project's pymilvus connects and lists collections."""
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        try:
            client = MilvusClient(self.uri, timeout=10)
        except (MilvusException, OSError):
            return False
        try:
            client.list_collections()
            return True
        except (MilvusException, OSError):
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Run the binary; returns once the server is healthy and answers pymilvus."""
        env = dict(os.environ, DEPLOY_MODE="STANDALONE", METRICS_PORT=str(self.metrics_port),
                   MILVUS_RUN_DIR=str(self.root / "run"),
                   LD_LIBRARY_PATH=":".join(p for p in (str(self.lib_dir), os.environ.get("LD_LIBRARY_PATH")) if p))
        with open(self.root / "server.log", "ab") as out:
            # cwd: the server reads configs/milvus.yaml from it; its own session, to be killed whole
            self.proc = subprocess.Popen([str(self.binary), "run", "standalone"], cwd=self.root, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + START_LIMIT_S
        while self.proc.poll() is None:
            if self.healthy() and self.answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Milvus did not answer within {START_LIMIT_S:g} s:\n{self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"Milvus exited at start (code {self.proc.returncode}):\n{self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")[-n:]
        return ""

    def kill(self) -> None:
        """Stop the server as a crash would (SIGKILL to its process group: its graceful stop takes a
        minute, and nothing here needs it); the files stay for :meth:`start`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """Stop the server and remove its files."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server(python: Path) -> MilvusServer:
    """Prepare a fresh dir and start a server in it; returns once it answers."""
    root = Path(tempfile.mkdtemp(prefix="faceaudit-milvus-"))
    server = None
    try:
        # -I: neither PYTHONPATH nor the script's folder on sys.path
        done = subprocess.run([str(python), "-I", str(PREPARE), str(root)], capture_output=True, text=True,
                              timeout=600, cwd=root)
        if done.returncode:
            raise RuntimeError(f"preparing the Milvus server failed:\n{done.stderr[-3000:]}")
        info = json.loads(done.stdout.strip().splitlines()[-1])
        server = MilvusServer(root, int(info["port"]), int(info["metrics_port"]), Path(info["binary"]),
                              Path(info["lib_dir"]), str(info["version"]))
        server.start()
        return server
    except BaseException:
        if server is not None:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)
        raise


@contextlib.contextmanager
def throwaway_server() -> Iterator[MilvusServer]:
    python = server_python()
    if python is None:
        raise FileNotFoundError(f"no Milvus server virtualenv at {VENV} (make install makes it)")
    server = start_server(python)
    try:
        yield server
    finally:
        server.stop()
