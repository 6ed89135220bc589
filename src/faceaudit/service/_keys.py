"""Access keys of the HTTP service: created, listed and revoked with ``faceaudit keys``.

SigV4 needs the secret itself on the server (the signature is an HMAC keyed with
it), so secrets are stored as they are, in ``<data dir>/access-keys.json``,
protected by file permissions: the file is created with mode 0600 (and refused
if it is readable by group or others), rewritten atomically under a lock, and no
secret is ever logged or listed; a secret is shown once, when its key is created.

The service re-reads the file when it changes, so a revoked key is refused by
every worker from its next request on.

A deployment of several hosts keeps its keys in its database instead
(``KeyStore(data_dir, database_url="postgresql://...")``, issue 21): the table ``access_keys``
of that database, read on every lookup, so a key created on one host authenticates on every
host and a key revoked on one is refused by all of them from their next request on. The
secrets are then protected by the database's own access control; they are never logged.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from faceaudit._db import Schema, SQLiteDatabase, open_database, transaction
from faceaudit._errors import InvalidParameterError, KeyFileError, ResourceNotFoundError, ServiceUnavailableError

KEYS_FILE = "access-keys.json"
ROLES = ("admin", "operator", "auditor", "reviewer")
DEFAULT_ROLE = "operator"
ACCESS_KEY_PREFIX = "FAKI"

_KEYS_TABLE = """
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    role TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL DEFAULT 'Active',
    revoked DOUBLE PRECISION,
    description TEXT NOT NULL DEFAULT '',
    person TEXT NOT NULL DEFAULT ''
)
"""

KEYS_SCHEMA = Schema("access_keys", {}, initial=_KEYS_TABLE, version_key="access_keys_schema_version")
"""The access keys in a deployment's database: one row per key (the file's fields)."""


@dataclass(frozen=True)
class AccessKey:
    """One access key. ``secret`` is the SigV4 secret; ``role`` is admin, operator, auditor or reviewer.

    ``person``: the named person the key belongs to (one person may hold several keys; two
    confirmations of a lead must come from two different people).
    """

    access_key_id: str
    secret: str
    role: str
    created: float  # epoch seconds
    status: str = "Active"  # or "Revoked"
    revoked: float | None = None
    description: str = ""
    person: str = ""

    @property
    def active(self) -> bool:
        return self.status == "Active"

    def public(self) -> dict[str, Any]:
        """Everything but the secret (what ``faceaudit keys list`` shows)."""
        out = {
            "AccessKeyId": self.access_key_id,
            "Role": self.role,
            "Status": self.status,
            "Created": _iso(self.created),
            "Description": self.description,
            "Person": self.person,
        }
        if self.revoked is not None:
            out["Revoked"] = _iso(self.revoked)
        return out

    def __repr__(self) -> str:  # never print a secret by accident
        return f"AccessKey({self.access_key_id!r}, role={self.role!r}, status={self.status!r})"

    __str__ = __repr__


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def new_access_key_id() -> str:
    """``FAKI`` and 16 base32 characters (AWS's shape: 20 upper-case characters)."""
    return ACCESS_KEY_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode("ascii")


def new_secret() -> str:
    """40 characters from 240 random bits (AWS's secret length)."""
    return secrets.token_urlsafe(30)


class KeyStore:
    """The access keys in one data dir (``access-keys.json``), or in the deployment's database
    (``database_url``: the table ``access_keys``, shared by every host). Thread-safe; several
    processes (and, with a database, hosts) may share them."""

    def __init__(self, data_dir: Path | str, database_url: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / KEYS_FILE
        self.database_url = database_url
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, AccessKey] = {}
        self._db = None if database_url is None else open_database(database_url, KEYS_SCHEMA, qmark=True)
        if isinstance(self._db, SQLiteDatabase):  # (sqlite:///path: rows by name, as PostgreSQL's)
            self._db.row_factory = sqlite3.Row
        self._local = threading.local()

    # -- reading -----------------------------------------------------------------------------

    def lookup(self, access_key_id: str) -> AccessKey | None:
        """The key with this id (active or revoked), or None. Re-reads the file if it changed
        (the database: read on every call)."""
        if self._db is not None:
            with self._session(write=False) as conn:
                row = conn.execute("SELECT * FROM access_keys WHERE access_key_id = ?", (access_key_id,)).fetchone()
            return None if row is None else _key_of(row)
        with self._lock:
            self._refresh()
            return self._keys.get(access_key_id)

    def list(self) -> builtins.list[AccessKey]:
        if self._db is not None:
            with self._session(write=False) as conn:
                rows = conn.execute("SELECT * FROM access_keys ORDER BY created, access_key_id").fetchall()
            return [_key_of(r) for r in rows]
        with self._lock:
            self._refresh()
            return sorted(self._keys.values(), key=lambda k: (k.created, k.access_key_id))

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Any]:
        """One transaction on this thread's database connection. A connection found broken at
        BEGIN (the server restarted, a failover) is replaced and BEGIN tried once more; one that
        breaks inside the transaction: ServiceUnavailableError (HTTP 503)."""
        import psycopg

        if self._db is None:
            raise KeyFileError("this key store keeps its keys in a file, not a database")
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None or getattr(conn, "closed", False):
                conn = self._local.conn = self._db.connect()
            began = False
            try:
                with transaction(conn, write=write):
                    began = True
                    yield conn
                return
            except psycopg.OperationalError as exc:  # the server went away
                self._local.conn = None
                with contextlib.suppress(Exception):
                    conn.close()
                if began or attempt == 2:
                    lines = str(exc).strip().splitlines()
                    raise ServiceUnavailableError(
                        f"the access keys' database failed: {lines[-1] if lines else type(exc).__name__}") from None

    def check_permissions(self) -> None:
        """KeyFileError if the keys file is readable or writable by group or others (keys in a
        database: the database's access control protects them; nothing to check here)."""
        if self._db is not None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{self.path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"it holds secrets: chmod 600 {self.path}"
            )

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        self.check_permissions()
        self._keys = self._read()
        self._stamp = stamp

    def _read(self) -> dict[str, AccessKey]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read {self.path}: {exc}") from None
        keys = {}
        for item in doc.get("keys", []):
            key = AccessKey(
                access_key_id=item["AccessKeyId"],
                secret=item["SecretAccessKey"],
                role=item.get("Role", DEFAULT_ROLE),
                created=float(item.get("Created", 0.0)),
                status=item.get("Status", "Active"),
                revoked=item.get("Revoked"),
                description=item.get("Description", ""),
                person=item.get("Person", ""),
            )
            keys[key.access_key_id] = key
        return keys

    # -- writing -----------------------------------------------------------------------------

    def create(self, role: str = DEFAULT_ROLE, description: str = "", person: str = "") -> AccessKey:
        """A new active key with a fresh secret (the only time the secret is returned)."""
        if role not in ROLES:
            raise InvalidParameterError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        person = " ".join(person.split())
        if len(person) > 200 or any(not c.isprintable() for c in person):
            raise InvalidParameterError("person must be a printable name of at most 200 characters")
        if self._db is not None:
            key = AccessKey(new_access_key_id(), new_secret(), role, time.time(), description=description,
                            person=person)
            with self._session(write=True) as conn:
                conn.execute(_INSERT_KEY, _row_of(key))
            return key
        with self._locked() as keys:
            key_id = new_access_key_id()
            while key_id in keys:  # pragma: no cover - 80 random bits
                key_id = new_access_key_id()
            key = AccessKey(key_id, new_secret(), role, time.time(), description=description, person=person)
            keys[key_id] = key
            self._write(keys)
        return key

    def revoke(self, access_key_id: str) -> AccessKey:
        """Revoke a key: every later request signed with it is refused (UnrecognizedClient)."""
        if self._db is not None:
            with self._session(write=True) as conn:
                conn.execute("UPDATE access_keys SET status = 'Revoked', revoked = ? "
                             "WHERE access_key_id = ? AND status = 'Active'", (time.time(), access_key_id))
                row = conn.execute("SELECT * FROM access_keys WHERE access_key_id = ?", (access_key_id,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"no access key {access_key_id!r}")
            return _key_of(row)
        with self._locked() as keys:
            key = keys.get(access_key_id)
            if key is None:
                raise ResourceNotFoundError(f"no access key {access_key_id!r}")
            if key.active:
                key = replace(key, status="Revoked", revoked=time.time())
                keys[access_key_id] = key
                self._write(keys)
        return key

    @contextmanager
    def _locked(self) -> Iterator[dict[str, AccessKey]]:
        _make_private_dir(self.data_dir)
        lock_path = self.data_dir / (KEYS_FILE + ".lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.check_permissions()
            yield self._read()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, keys: dict[str, AccessKey]) -> None:
        doc = {
            "keys": [
                {
                    "AccessKeyId": k.access_key_id,
                    "SecretAccessKey": k.secret,
                    "Role": k.role,
                    "Created": k.created,
                    "Status": k.status,
                    "Revoked": k.revoked,
                    "Description": k.description,
                    "Person": k.person,
                }
                for k in sorted(keys.values(), key=lambda k: (k.created, k.access_key_id))
            ]
        }
        tmp = self.path.with_name(f".{KEYS_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)  # whatever the umask
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def copy_keys(data_dir: Path | str, database_url: str) -> int:
    """Copy the data dir's ``access-keys.json`` into the database's ``access_keys`` (ids, secrets,
    roles, persons, status and times unchanged: every client keeps signing as before); returns
    how many. A database already holding keys is refused (ConflictError); one transaction."""
    from faceaudit._errors import ConflictError

    keys = KeyStore(data_dir).list()  # (KeyFileError: a keys file open to others)
    target = KeyStore(data_dir, database_url=database_url)
    with target._session(write=True) as conn:
        if conn.execute("SELECT 1 FROM access_keys LIMIT 1").fetchone() is not None:
            raise ConflictError("the database already holds access keys; copy into a database no deployment "
                                "uses yet")
        if keys:
            conn.executemany(_INSERT_KEY, [_row_of(k) for k in keys])
        copied = int(conn.execute("SELECT COUNT(*) FROM access_keys").fetchone()[0])
    return copied


_INSERT_KEY = ("INSERT INTO access_keys (access_key_id, secret, role, created, status, revoked, description, "
               "person) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _row_of(key: AccessKey) -> tuple[Any, ...]:
    return (key.access_key_id, key.secret, key.role, key.created, key.status, key.revoked, key.description,
            key.person)


def _key_of(row: Any) -> AccessKey:
    return AccessKey(row["access_key_id"], row["secret"], row["role"], float(row["created"]), row["status"],
                     None if row["revoked"] is None else float(row["revoked"]), row["description"] or "",
                     row["person"] or "")


def _make_private_dir(path: Path) -> None:
    """Create the data dir (0700 for the parts created here); refuse one open to other users."""
    from faceaudit._paths import private_dir

    private_dir(path)
