"""The one SQLite helper every store uses: connect, transactions, numbered migrations.

Each store (collections, video jobs, the accountability database, the audit's embedding
cache) describes its tables as a :class:`Schema`: numbered migrations, each applied once,
in order, and recorded in the store's ``meta`` table under ``schema_version``. A
:class:`SQLiteDatabase` opens connections configured the way that store needs (a private
0600 file, WAL, busy timeout, foreign keys, ``synchronous``) and brings the schema up to
date on its first connection: all pending migrations in one ``BEGIN IMMEDIATE``
transaction, so an interrupted migration (an error, kill -9, power loss) leaves the
database as it was, and two processes that open an old database at once migrate it once.

The stores speak to the database only through :meth:`SQLiteDatabase.connect` /
:meth:`SQLiteDatabase.session` and :func:`transaction`. A second dialect (PostgreSQL,
issue 21) slots in as another class with the same entry points (its ``dialect`` named),
the same version record (``meta``, one ``version_key`` per store when the stores share
one database) and a :class:`Schema` per store with that dialect's SQL in its steps.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Mapping, Optional, Union

from faceaudit._errors import DataVersionError
from faceaudit._paths import private_dir, private_file

log = logging.getLogger(__name__)

Step = Union[str, Callable[[sqlite3.Connection], None]]
"""A migration step: SQL (one or more statements) or a function given the connection."""

VERSION_KEY = "schema_version"
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclass(frozen=True)
class Schema:
    """The tables of one store as numbered migrations.

    ``migrations[n]`` brings the schema from version ``n - 1`` to ``n``; the keys run
    without a gap up to :attr:`latest`. ``initial``, when given, creates the latest
    schema in one step on a database with no recorded version (the keys may then start
    above 1: the older steps only ever ran on databases that recorded their version).
    Without ``initial`` the keys start at 1 and every step must be safe on a database
    made before versions were recorded (``CREATE TABLE IF NOT EXISTS``, columns added
    only when missing).
    """

    name: str
    migrations: Mapping[int, Step]
    initial: Optional[Step] = None
    version_key: str = VERSION_KEY

    def __post_init__(self) -> None:
        keys = sorted(self.migrations)
        if not keys:
            if self.initial is None:
                raise ValueError(f"schema {self.name}: neither migrations nor an initial step")
            return
        first = keys[0]
        if keys != list(range(first, first + len(keys))) or first < 1:
            raise ValueError(f"schema {self.name}: migrations must be numbered without gaps, got {keys}")
        if self.initial is None and first != 1:
            raise ValueError(f"schema {self.name}: without an initial step migrations start at 1")

    @property
    def latest(self) -> int:
        return max(self.migrations) if self.migrations else 1


def statements(sql: str) -> List[str]:
    """Split SQL into complete statements (executescript() would COMMIT first); a ``;``
    inside a string literal or a trigger body does not end a statement."""
    out: List[str] = []
    buf = ""
    for piece in sql.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip().rstrip(";").strip():
                out.append(buf.strip())
            buf = ""
    rest = buf.strip().rstrip(";").strip()  # the last statement may lack its ';'
    if rest:
        out.append(rest)
    return out


def _apply(conn: sqlite3.Connection, step: Step) -> None:
    if callable(step):
        step(conn)
    else:
        for stmt in statements(step):
            conn.execute(stmt)


def schema_version(conn: sqlite3.Connection, schema: Schema) -> int:
    """The version recorded in the database (0 when none is)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (schema.version_key,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, schema: Schema, *, where: str = "database") -> int:
    """Apply the migrations the database lacks; returns how many ran (0 when up to date).

    All of them run in one BEGIN IMMEDIATE transaction with foreign keys off (a table
    rebuild must not cascade), the references checked before COMMIT; the version is
    recorded in the same transaction. A database newer than ``schema`` is refused
    (:class:`DataVersionError`), as is a migration that would break a reference.
    """
    if _check_version(conn, schema, where) == schema.latest:
        return 0
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")  # (not changeable inside a transaction)
    try:
        with transaction(conn, write=True):
            version = _check_version(conn, schema, where)  # another process may have migrated
            if version == schema.latest:
                return 0
            start = version
            conn.execute(_META)
            if version == 0 and schema.initial is not None:
                _apply(conn, schema.initial)
                version = schema.latest
            while version < schema.latest:
                _apply(conn, schema.migrations[version + 1])
                version += 1
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise DataVersionError(
                    f"{where}: migrating {schema.name} from version {start} would break "
                    f"{len(broken)} references; nothing was changed")
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (schema.version_key, str(version)))
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(fk)}")
    log.info("%s: %s schema %d -> %d", where, schema.name, start, version)
    return version - start


def _check_version(conn: sqlite3.Connection, schema: Schema, where: str) -> int:
    version = schema_version(conn, schema)
    if version > schema.latest:
        raise DataVersionError(
            f"{where} holds {schema.name} schema {version}; this faceaudit knows up to "
            f"{schema.latest}: use the faceaudit that wrote it, or a newer one")
    return version


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    """One transaction on an autocommit connection: BEGIN IMMEDIATE for a writer (one
    writer at a time across processes, waiting up to the busy timeout), BEGIN (one
    consistent snapshot) for a reader; COMMIT at the end, ROLLBACK on any exception."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        if conn.in_transaction:
            conn.execute("COMMIT")


@dataclass
class SQLiteDatabase:
    """One store's SQLite file and how its connections are set up.

    ``synchronous`` is FULL for data that must survive power loss once COMMIT returned,
    NORMAL for what can be made again (a cache). ``check_dir`` refuses a parent
    directory open to other users (a data dir); without it the directory is only
    created private when missing. Connections are autocommit (``isolation_level=None``):
    transactions are explicit, through :func:`transaction`.
    """

    path: Path
    schema: Schema
    synchronous: str = "FULL"
    foreign_keys: bool = True
    busy_timeout_s: float = 60.0
    check_dir: bool = True
    check_same_thread: bool = True
    row_factory: Optional[Callable[..., object]] = None
    _migrated: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    dialect = "sqlite"

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {self.synchronous!r}")

    def exists(self) -> bool:
        return self.path.exists()

    def connect(self) -> sqlite3.Connection:
        """A new connection, configured, on a schema brought up to date (created if missing)."""
        private_dir(self.path.parent, check=self.check_dir)
        private_file(self.path)
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=self.check_same_thread)
        try:
            if self.row_factory is not None:
                conn.row_factory = self.row_factory
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # pragma: no cover - e.g. a file system without shared memory
                raise OSError(f"cannot put {self.path} in WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            conn.execute(f"PRAGMA foreign_keys = {'ON' if self.foreign_keys else 'OFF'}")
            if not self._migrated:
                with self._lock:
                    if not self._migrated:
                        migrate(conn, self.schema, where=str(self.path))
                        self._migrated = True
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def session(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """A new connection holding one transaction, closed afterwards."""
        conn = self.connect()
        try:
            with transaction(conn, write=write):
                yield conn
        finally:
            conn.close()
