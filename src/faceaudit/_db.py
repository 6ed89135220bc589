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
:meth:`SQLiteDatabase.session` and :func:`transaction`. :class:`PostgreSQLDatabase`
(issue 21, psycopg 3) has the same entry points and the same version record (``meta``,
one ``version_key`` per store, as the stores share one database there); its migrations
run in one transaction that first takes ``pg_advisory_xact_lock`` (a lock per store), so
hosts that start at once migrate once. :func:`open_database` picks the class from a URL
(``sqlite:///path`` or a plain path: SQLite; ``postgresql://...``: PostgreSQL). Where the
SQL of the two differs (placeholders, insert-or-ignore, JSON fields, generated keys) a
store asks the database's :class:`Dialect`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

from faceaudit._errors import (
    DataVersionError,
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ServiceUnavailableError,
)
from faceaudit._paths import private_dir, private_file
from faceaudit._settings import POSTGRES_SCHEMES, redact_url

log = logging.getLogger(__name__)

Step: TypeAlias = str | Callable[[Any], None]
"""A migration step: SQL (one or more statements) or a function given the connection
(a ``sqlite3.Connection``, or a ``psycopg.Connection`` in a PostgreSQL schema)."""

VERSION_KEY = "schema_version"
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclass(frozen=True)
class Dialect:
    """Where the SQL of the two databases differs; a store writes its SQL with ``?``
    placeholders and asks its database's dialect (``db.dialect``) for the rest.

    Use the two instances :data:`SQLITE` and :data:`POSTGRESQL`.
    """

    name: str
    positional: str  # the driver's placeholder: "?" (sqlite3) or "%s" (psycopg)
    json_text_sql: str  # the text of a top-level key of a JSON column: {column}, {key}
    auto_id_sql: str  # a column declaration: a generated integer primary key
    insert_ignore_verb: str  # "INSERT OR IGNORE" / "INSERT" ...
    insert_ignore_suffix: str  # ... "" / " ON CONFLICT DO NOTHING"

    def sql(self, text: str) -> str:
        """``text`` (``?`` placeholders) in this driver's form: for psycopg ``?`` outside quoted
        literals and identifiers becomes ``%s`` and every ``%`` is doubled."""
        if self.positional == "?":
            return text
        out, quote = [], ""
        for ch in text:
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in ("'", '"'):
                quote = ch
            elif ch == "?":
                out.append("%s")
                continue
            out.append("%%" if ch == "%" else ch)
        return "".join(out)

    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        """INSERT of one row (``?`` placeholders) that does nothing when a unique key exists."""
        cols = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        return f"{self.insert_ignore_verb} INTO {table} ({cols}) VALUES ({marks}){self.insert_ignore_suffix}"

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        """INSERT of one row that replaces the other columns of the row with the same ``key``
        (``ON CONFLICT ... DO UPDATE``: SQLite 3.24 and PostgreSQL 9.5 speak it alike)."""
        cols = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        rest = [c for c in columns if c not in key]
        action = ("DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest)) if rest else "DO NOTHING"
        return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) {action}"

    def json_text(self, column: str, key: str) -> str:
        """An expression: the value of top-level ``key`` of the JSON text in ``column``, as text."""
        if not key.replace("_", "").isalnum():
            raise ValueError(f"JSON key must be a plain name, got {key!r}")
        return self.json_text_sql.format(column=column, key=key)

    def auto_id(self) -> str:
        """The declaration of a generated integer primary key column (``id {auto_id}``)."""
        return self.auto_id_sql


SQLITE = Dialect("sqlite", "?", "json_extract({column}, '$.{key}')", "INTEGER PRIMARY KEY AUTOINCREMENT",
                 "INSERT OR IGNORE", "")
POSTGRESQL = Dialect("postgresql", "%s", "({column}::jsonb ->> '{key}')",
                     "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "INSERT", " ON CONFLICT DO NOTHING")


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
    initial: Step | None = None
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


def statements(sql: str) -> list[str]:
    """Split SQL into complete statements (executescript() would COMMIT first); a ``;``
    inside a string literal or a trigger body does not end a statement."""
    out: list[str] = []
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
def transaction(conn: Any, *, write: bool) -> Iterator[Any]:
    """One transaction on an autocommit connection: BEGIN IMMEDIATE for a writer (one
    writer at a time across processes, waiting up to the busy timeout), BEGIN (one
    consistent snapshot) for a reader; COMMIT at the end, ROLLBACK on any exception.

    On a PostgreSQL connection: BEGIN (READ COMMITTED; writers serialise on the rows they
    lock) for a writer, BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY (one snapshot) for
    a reader."""
    if not isinstance(conn, sqlite3.Connection):
        with _pg_transaction(conn, write=write):
            yield conn
        return
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


@contextlib.contextmanager
def _pg_transaction(conn: Any, *, write: bool) -> Iterator[Any]:
    conn.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield conn
    except BaseException:
        if not conn.closed:
            with contextlib.suppress(Exception):  # (a broken connection: the server rolled back)
                conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


class _MigratesOnce:
    """What both databases share: each store object brings its schema up to date once, on its first
    connection (under a lock, so threads of one process migrate once; other processes are kept out
    by the migration's own transaction and lock)."""

    _migrated: bool
    _lock: threading.Lock

    def _migrate_once(self, run: Callable[[], object]) -> None:
        if not self._migrated:
            with self._lock:
                if not self._migrated:
                    run()
                    self._migrated = True


@dataclass
class SQLiteDatabase(_MigratesOnce):
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
    row_factory: Callable[..., object] | None = None
    _migrated: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    dialect: ClassVar[Dialect] = SQLITE

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
            self._migrate_once(lambda: migrate(conn, self.schema, where=str(self.path)))
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


# -- PostgreSQL ------------------------------------------------------------------------------


def _lock_key(schema: Schema) -> int:
    """The advisory lock of one store's migrations: a signed 64-bit number from its version key."""
    digest = hashlib.sha256(f"faceaudit-migrate:{schema.version_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _pg_one(conn: Any, sql: Any, params: Sequence[Any] = ()) -> tuple | None:
    """One row as a tuple, whatever the connection's row factory."""
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(sql, params).fetchone()


def pg_schema_version(conn: Any, schema: Schema) -> int:
    """The version a PostgreSQL database records for ``schema`` (0 when none is)."""
    # pg_tables, not to_regclass(): a catalog scan sees what another host committed while we
    # waited on the advisory lock (the relation cache may not have caught up yet)
    found = _pg_one(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
                          "WHERE schemaname = current_schema() AND tablename = 'meta')")
    if not found or not found[0]:
        return 0
    row = _pg_one(conn, "SELECT value FROM meta WHERE key = %s", (schema.version_key,))
    return int(row[0]) if row else 0


def pg_migrate(conn: Any, schema: Schema, *, where: str = "database") -> int:
    """Apply the migrations a PostgreSQL database lacks; returns how many ran.

    One transaction: ``pg_advisory_xact_lock`` on the store's key first (another host
    migrating waits, then finds nothing to do), then every pending step and the version
    record; DDL is transactional in PostgreSQL, so an interrupted migration changes nothing.
    """
    def check() -> int:
        version = pg_schema_version(conn, schema)
        if version > schema.latest:
            raise DataVersionError(
                f"{where} holds {schema.name} schema {version}; this faceaudit knows up to "
                f"{schema.latest}: use the faceaudit that wrote it, or a newer one")
        return version

    if check() == schema.latest:
        return 0
    with _pg_transaction(conn, write=True):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        start = version = check()  # another host may have migrated while we waited
        if version == schema.latest:
            return 0
        conn.execute(_META)
        steps: list[Step] = []
        if version == 0 and schema.initial is not None:
            steps, version = [schema.initial], schema.latest
        steps += [schema.migrations[v] for v in range(version + 1, schema.latest + 1)]
        for step in steps:
            if callable(step):
                step(conn)
            else:
                conn.execute(step)  # (no parameters: several statements in one call)
        conn.execute(POSTGRESQL.sql(POSTGRESQL.upsert("meta", ("key", "value"), ("key",))),
                     (schema.version_key, str(schema.latest)))
    log.info("%s: %s schema %d -> %d", where, schema.name, start, schema.latest)
    return schema.latest - start


_redacted = redact_url  # the URL without its password (for messages): one redaction for every module


@dataclass
class PostgreSQLDatabase(_MigratesOnce):
    """One store's tables in a PostgreSQL database (psycopg 3), with the same entry points as
    :class:`SQLiteDatabase`.

    ``url`` is a libpq URL (``postgresql://user@host:port/db``). Connections are autocommit:
    transactions are explicit, through :func:`transaction`. Durability is the server's
    (``synchronous_commit``); foreign keys are always enforced. ``row_factory`` is a psycopg
    row factory (``psycopg.rows.dict_row`` ...); tuples without one. A server that cannot be
    reached raises :class:`ServiceUnavailableError` (HTTP 503).
    """

    url: str
    schema: Schema
    connect_timeout_s: float = 10.0
    row_factory: Callable[..., Any] | None = None
    qmark: bool = False
    """True: :meth:`connect` returns a :class:`QmarkConnection` (sqlite3-style SQL, :class:`Row` rows)."""
    _migrated: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    dialect: ClassVar[Dialect] = POSTGRESQL

    def __post_init__(self) -> None:
        self.url = _postgres_url(self.url)

    @property
    def where(self) -> str:
        return _redacted(self.url)

    def exists(self) -> bool:
        """True when the database records a version of this store's schema."""
        conn = self._open()
        try:
            return pg_schema_version(conn, self.schema) > 0
        finally:
            conn.close()

    def _open(self) -> Any:
        import psycopg

        kwargs: dict = {"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout_s))}
        if self.row_factory is not None:
            kwargs["row_factory"] = self.row_factory
        try:
            return psycopg.connect(self.url, **kwargs)
        except psycopg.OperationalError as exc:
            raise ServiceUnavailableError(
                f"the database {self.where} cannot be reached: {str(exc).strip().splitlines()[-1].strip()}") from None

    def connect(self) -> Any:
        """A new connection (``psycopg.Connection``, or a :class:`QmarkConnection` when
        ``qmark``) on a schema brought up to date."""
        conn = self._open()
        try:
            self._migrate_once(lambda: pg_migrate(conn, self.schema, where=self.where))
        except BaseException:
            conn.close()
            raise
        return QmarkConnection(conn) if self.qmark else conn

    @contextlib.contextmanager
    def session(self, *, write: bool) -> Iterator[Any]:
        """A new connection holding one transaction, closed afterwards."""
        conn = self.connect()
        try:
            with transaction(conn, write=write):
                yield conn
        finally:
            conn.close()


class Row(tuple):
    """A result row readable by position and by column name, as ``sqlite3.Row`` is
    (``row[0]``, ``row["name"]``, ``row.keys()``, ``dict(zip(row.keys(), row))``)."""

    _names: tuple[str, ...]

    def __new__(cls, names: tuple[str, ...], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise IndexError(f"no column {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    """A psycopg row factory making :class:`Row` (position and name access)."""
    names = tuple(c.name for c in cursor.description) if cursor.description else ()
    return lambda values: Row(names, values)


class QmarkConnection:
    """A psycopg connection that takes SQL written for sqlite3 (``?`` placeholders, see
    :meth:`Dialect.sql`) and returns :class:`Row` rows, so a store writes its statements once
    for both databases. ``raw`` is the psycopg connection underneath (COPY, ``%s`` SQL)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._sql: dict[str, str] = {}

    def _translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = POSTGRESQL.sql(sql)
        return out

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """Run one statement; returns the psycopg cursor (``fetchone``, ``fetchall``, ``rowcount``,
        iteration). Use ``RETURNING id`` where sqlite3 code would read ``lastrowid``."""
        cur = self.raw.cursor(row_factory=row_factory)
        return cur.execute(self._translate(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cur = self.raw.cursor(row_factory=row_factory)
        cur.executemany(self._translate(sql), rows)
        return cur

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> QmarkConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_POSTGRES_SCHEMES = POSTGRES_SCHEMES


def _postgres_url(url: str) -> str:
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql://" + url[len(scheme):]
    raise InvalidParameterError(f"not a PostgreSQL URL: {_redacted(url)!r} (postgresql://user@host:port/db)")


Database: TypeAlias = SQLiteDatabase | PostgreSQLDatabase


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    return isinstance(target, str) and target.startswith(_POSTGRES_SCHEMES)


def open_database(target: str | os.PathLike[str], schema: Schema, *, timeout_s: float = 60.0,
                  synchronous: str = "FULL", foreign_keys: bool = True, check_dir: bool = True,
                  check_same_thread: bool = True, qmark: bool = False) -> Database:
    """The database a URL or path names, for ``schema``.

    ``sqlite:///relative/path``, ``sqlite:////absolute/path`` (as SQLAlchemy writes them) or a
    plain path: :class:`SQLiteDatabase`; ``postgresql://...`` (also ``postgres://``,
    ``postgresql+psycopg://``): :class:`PostgreSQLDatabase`. ``timeout_s`` is SQLite's busy
    timeout and PostgreSQL's connect timeout; ``synchronous``, ``foreign_keys``, ``check_dir``
    and ``check_same_thread`` are SQLite's (PostgreSQL's durability is set on the server and
    its foreign keys are always on). ``qmark``: PostgreSQL connections take sqlite3-style SQL
    (:class:`QmarkConnection`), so one store's statements serve both. Any other scheme is an
    :class:`InvalidParameterError`.
    """
    if isinstance(target, str) and "://" in target:
        if is_postgres_url(target):
            return PostgreSQLDatabase(target, schema, connect_timeout_s=min(timeout_s, 30.0), qmark=qmark)
        if target.startswith("sqlite:///"):
            target = target[len("sqlite:///"):]
            if not target:
                raise InvalidParameterError("sqlite:/// needs a path (sqlite:////absolute/path.db)")
        else:
            raise InvalidParameterError(
                f"unknown database URL {_redacted(target)!r}: use sqlite:///path or postgresql://...")
    return SQLiteDatabase(Path(target), schema, synchronous=synchronous, foreign_keys=foreign_keys,
                          busy_timeout_s=timeout_s, check_dir=check_dir, check_same_thread=check_same_thread)


# -- copying a store's tables (``faceaudit db migrate``) --------------------------------------


@dataclass(frozen=True)
class StoreTables:
    """What ``faceaudit db migrate`` copies of one store: its SQLite file in the data dir, its
    schema on each database and its tables in copy order (a table after those it references).

    ``sqlite_schema`` brings the source file up to date before it is read (as opening the store
    would); ``postgres_schema`` creates the tables in the target (the same schema object when one
    serves both)."""

    name: str
    sqlite_file: str
    sqlite_schema: Schema
    postgres_schema: Schema
    tables: tuple[str, ...]
    renamed: Mapping[str, str] = field(default_factory=dict)
    """SQLite table -> its PostgreSQL name, where they differ (e.g. ``jobs`` -> ``video_jobs``)."""

    def target(self, table: str) -> str:
        """The PostgreSQL name of the SQLite table ``table``."""
        return self.renamed.get(table, table)

    def source(self, data_dir: str | os.PathLike[str]) -> SQLiteDatabase | None:
        """The store's SQLite database in ``data_dir`` (None when the data dir has none)."""
        path = Path(data_dir) / self.sqlite_file
        return SQLiteDatabase(path, self.sqlite_schema) if path.is_file() else None


def pg_table_has_rows(conn: Any, table: str) -> bool:
    """True when the PostgreSQL table exists and holds a row (``conn``: a psycopg connection)."""
    from psycopg import sql

    found = _pg_one(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
                          "WHERE schemaname = current_schema() AND tablename = %s)", (table,))
    if not found or not found[0]:
        return False
    row = _pg_one(conn, sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
    return bool(row and row[0])


def table_count(conn: Any, table: str) -> int:
    """The number of rows of ``table`` (a sqlite3 or psycopg connection; a trusted table name)."""
    if isinstance(conn, sqlite3.Connection):
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    from psycopg import sql

    row = _pg_one(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return int(row[0]) if row else 0


def copy_rows(src: sqlite3.Connection, dst: Any, table: str, *, into: str | None = None,
              batch: int = 1000) -> int:
    """Copy every row of ``table`` from a SQLite connection into the same table (or the table
    ``into``) of a PostgreSQL connection (psycopg, or a :class:`QmarkConnection`), inside the
    caller's transactions; returns the number of rows copied.

    The target table must be empty (:class:`ResourceAlreadyExistsError` otherwise). Columns are
    matched by name (every source column must exist in the target); generated identity columns
    keep their values (``OVERRIDING SYSTEM VALUE``) and their sequences go on after the largest
    (``setval``), so the next row the store inserts gets a fresh id. SQLite's 0/1 become booleans
    where the target column is BOOLEAN; BLOBs become BYTEA.
    """
    from psycopg import sql

    dst = getattr(dst, "raw", dst)
    source, table = table, into or table
    columns = {str(r[0]): (str(r[1]), str(r[2]) == "YES") for r in _pg_rows(
        dst, "SELECT column_name, data_type, is_identity FROM information_schema.columns "
             "WHERE table_schema = current_schema() AND table_name = %s", (table,))}
    if not columns:
        raise InvalidParameterError(f"the target database has no table {table!r}")
    if pg_table_has_rows(dst, table):
        raise ResourceAlreadyExistsError(f"the target's table {table} already holds rows: migrate only "
                                         "into an empty database (nothing was copied)")
    cur = src.execute(f'SELECT * FROM "{source}"')
    names = [d[0] for d in cur.description]
    missing = [n for n in names if n not in columns]
    if missing:
        raise InvalidParameterError(f"table {table}: the target lacks column(s) {', '.join(missing)}")
    booleans = [i for i, n in enumerate(names) if columns[n][0] == "boolean"]
    identity = [n for n in names if columns[n][1]]
    insert = sql.SQL("INSERT INTO {} ({}) {}VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL("OVERRIDING SYSTEM VALUE " if identity else ""),
        sql.SQL(", ").join(sql.Placeholder() * len(names)))
    copied = 0
    with dst.cursor() as out:
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                break
            if booleans:
                rows = [tuple(bool(v) if i in booleans and v is not None else v for i, v in enumerate(r))
                        for r in rows]
            out.executemany(insert, [tuple(r) for r in rows])
            copied += len(rows)
        for column in identity:
            out.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, {}), m) FROM "
                                "(SELECT max({}) AS m FROM {}) AS t WHERE m IS NOT NULL").format(
                sql.Literal(table), sql.Literal(column), sql.Identifier(column), sql.Identifier(table)))
    log.info("copied %d rows of %s", copied, table)
    return copied


def _pg_rows(conn: Any, query: Any, params: Sequence[Any] = ()) -> list[tuple]:
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


def copy_tables(src: SQLiteDatabase, dst: PostgreSQLDatabase, tables: Sequence[str],
                renamed: Mapping[str, str] | None = None) -> dict[str, int]:
    """Copy ``tables`` (in this order: a table after those it references) of one store from its
    SQLite database into a PostgreSQL database whose tables are empty, in one transaction on
    each side (a failure leaves the target as it was); returns the rows copied per table.
    ``renamed``: SQLite table -> PostgreSQL table where the names differ.

    Both schemas are brought up to date first (the source's as opening the store would, the
    target's created). See :func:`copy_rows` for how rows travel."""
    source = src.connect()
    try:
        target = dst.connect()
        try:
            with transaction(source, write=False), transaction(target, write=True):
                return {table: copy_rows(source, target, table, into=(renamed or {}).get(table))
                        for table in tables}
        finally:
            target.close()
    finally:
        source.close()
