"""A throwaway PostgreSQL server (scripts/bench_log.py, scripts/bench_database.py and the test
suite, whose fixtures in tests/_postgres.py load this file by path).

``initdb`` into a fresh temp dir, ``postgres`` on a free loopback port with its unix socket
in that dir, trust authentication on 127.0.0.1 only; stopped (``pg_ctl stop -m immediate``,
then SIGKILL if need be) and removed at the end whatever happens. When run as root the server
runs as the ``postgres`` OS user (PostgreSQL refuses to run as root).

Binaries are looked up on PATH, then in Debian's ``/usr/lib/postgresql/<version>/bin``
(newest first). Needs psycopg (the 'postgres' extra) to check that the server accepts connections.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_LIMIT_S = 120.0
"""How long to wait for the server to accept connections (a guard: the wait is on a condition)."""

SUPERUSER = "postgres"


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)

    def version(p: Path) -> tuple:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name)) or (0,)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for d in candidates:
        if all((d / name).is_file() and os.access(d / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """One running throwaway server; :meth:`url` gives a connection URL for a database."""

    bin_dir: Path
    root: Path
    port: int
    proc: subprocess.Popen
    run_as: pwd.struct_passwd | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    fsync: bool = True

    def crash(self) -> None:
        """Stop at once, as a crash would (``pg_ctl stop -m immediate``: every backend killed, no
        shutdown checkpoint); the files stay for :meth:`start`."""
        if self.proc.poll() is None:
            _run([str(self.bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data_dir)],
                 self.run_as, check=False, timeout=60)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()

    def start(self) -> None:
        """Start the server (again) on its port; returns once it accepts connections (after
        crash recovery, when it crashed)."""
        import psycopg

        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.root),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"fsync={'on' if self.fsync else 'off'}",
                 "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT, env=_env(self.run_as), cwd="/", **_demote(self.run_as))
        deadline = time.monotonic() + START_LIMIT_S
        while self.proc.poll() is None:
            try:
                psycopg.connect(self.url(), connect_timeout=5).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not accept connections within {START_LIMIT_S:g} s") from None
                time.sleep(0.05)
        log_tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError("PostgreSQL exited at start:\n" + log_tail)

    def stop(self) -> None:
        """Stop at once (no shutdown checkpoint) and remove the files."""
        try:
            self.crash()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _demote(user: pwd.struct_passwd | None) -> dict:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _env(user: pwd.struct_passwd | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    if user is not None:
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return env


def _run(cmd, user, *, check=True, timeout=300):
    return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, text=True,
                          env=_env(user), cwd="/", **_demote(user))


def start_server(bin_dir: Path, *, fsync: bool = True) -> PostgresServer:
    """initdb and start a server; returns once it accepts connections."""
    run_as = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root but there is no 'postgres' OS user to run the server as") from None
    root = Path(tempfile.mkdtemp(prefix="faceaudit-pg-"))  # 0700; under /tmp, reachable by that user
    server = None
    try:
        if run_as is not None:
            os.chown(root, run_as.pw_uid, run_as.pw_gid)
        data = root / "data"
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth-local=peer",
              "--auth-host=reject", "-E", "UTF8", "--no-instructions"], run_as)
        (data / "pg_hba.conf").write_text(
            "# throwaway test server: trust on 127.0.0.1 only\n"
            "local all all peer\n"
            "host all all 127.0.0.1/32 trust\n")
        if run_as is not None:
            os.chown(data / "pg_hba.conf", run_as.pw_uid, run_as.pw_gid)
        for attempt in range(5):  # the free port may be taken between choosing and binding it
            server = PostgresServer(bin_dir, root, _free_port(), None, run_as, fsync)  # type: ignore[arg-type]
            try:
                server.start()
                return server
            except RuntimeError:
                if attempt == 4 or "already in use" not in (root / "server.log").read_text(errors="replace"):
                    raise
        raise AssertionError("unreachable")
    except BaseException:
        if server is not None and server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        raise


@contextlib.contextmanager
def throwaway_server(*, fsync: bool = True) -> Iterator[PostgresServer]:
    """A server started for the ``with`` block (``fsync=False``: faster, for runs that never crash
    the server), stopped and removed after it; FileNotFoundError without the binaries."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("no initdb/pg_ctl/postgres on PATH or in /usr/lib/postgresql/*/bin")
    server = start_server(bin_dir, fsync=fsync)
    try:
        yield server
    finally:
        server.stop()
