"""``faceaudit db migrate``: copy a single-host deployment (a data dir) into PostgreSQL.

What is copied: the search log (``search-log.jsonl`` -> the ``search_log`` table, the same
records and hashes, the chain verified as it goes in), then every store of :func:`store_tables`
(its SQLite file's tables in foreign-key order), all in one PostgreSQL transaction: a failure
leaves the target as it was. Then it is checked: row counts per table equal, the log verifies on
the target with the source's head hash. Last, each store of :func:`store_copies` copies itself
(a store with more than tables to move: files, secrets, positions in the log), in a transaction
of its own, after the log is in (the leads' sync position names a record of the copied log). A
target that already holds data of any of them is refused (exit 5) before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceaudit._db import StoreTables
from faceaudit._errors import (
    FaceAuditError,
    InvalidParameterError,
    LogIntegrityError,
    ResourceAlreadyExistsError,
)
from faceaudit.cli._output import print_json, print_table

LOG_FILE = "search-log.jsonl"

NOT_STORES = frozenset({"milvus.db"})
"""SQLite files of a data dir that hold no store's data (milvus-lite's vectors: re-indexed)."""


def store_tables() -> tuple[StoreTables, ...]:
    """Every store ``faceaudit db migrate`` copies after the search log, in copy order.

    A store joins when it has a PostgreSQL schema: add its :class:`~faceaudit._db.StoreTables`
    (name, SQLite file in the data dir, the two schemas, tables in foreign-key order) here.
    The accountability store and the keys copy themselves (:func:`store_copies`).
    """
    from faceaudit.collections import _jobs as jobs_store
    from faceaudit.collections import _store as collections_store  # (their schemas are not public)

    return (
        StoreTables("collections", "collections.sqlite3", collections_store.SCHEMA, collections_store.PG_SCHEMA,
                    ("collections", "images", "users", "faces", "face_log", "idempotency", "face_thumbnails")),
        StoreTables("video jobs", "video-jobs.sqlite3", jobs_store.SCHEMA, jobs_store.PG_SCHEMA, ("jobs", "job_items"),
                    renamed={"jobs": "video_jobs", "job_items": "video_job_items"}),
    )


@dataclass(frozen=True)
class StoreCopy:
    """A store that copies itself from a data dir into PostgreSQL: ``copy(data_dir, url)`` runs
    in a transaction of its own, refuses a target holding its data, compares counts and returns
    the rows copied per table. ``tables``: its tables in the target (checked empty before the
    migration writes anything); ``files``: what of the data dir it copies."""

    name: str
    files: tuple[str, ...]
    tables: tuple[str, ...]
    copy: Callable[[Path, str], Mapping[str, int]]


def store_copies() -> tuple[StoreCopy, ...]:
    """The stores that copy themselves, run in this order after the log and :func:`store_tables`.

    Issue 21, once helper C's branch is merged::

        StoreCopy("accountability", ("accountability.db",), TABLES + SHARED_TABLES,
                  lambda d, url: dict(copy_accountability(d, url).rows)),
        StoreCopy("keys", ("access-keys.json",), ("access_keys",),
                  lambda d, url: {"access_keys": copy_keys(d, url)}),
    """
    from faceaudit.accountability import copy_accountability
    from faceaudit.accountability._copy import SHARED_TABLES, TABLES
    from faceaudit.service import copy_keys

    return (
        StoreCopy("accountability", ("accountability.db",), TABLES + SHARED_TABLES,
                  lambda d, url: dict(copy_accountability(d, url).rows)),
        StoreCopy("keys", ("access-keys.json",), ("access_keys",),
                  lambda d, url: {"access_keys": copy_keys(d, url)}),
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="the database behind the stores (copy a data dir into PostgreSQL)")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION")
    dsub.required = True
    m = dsub.add_parser(
        "migrate", help="copy a single-host data dir into an empty PostgreSQL database, then verify it",
        description=("Copy the search log (same records and hashes, verified as it goes in) and the "
                     "stores' tables of DATA_DIR into the empty PostgreSQL database URL, in one "
                     "transaction; then check row counts and the log's chain on the target. Stop "
                     "`faceaudit serve` on the data dir first. Refuses a target that holds data."))
    m.add_argument("--from", dest="source", required=True, metavar="DATA_DIR", help="the data dir to copy")
    m.add_argument("--to", dest="target", default=None, metavar="URL",
                   help="postgresql://user:password@host:port/db, empty (default $FACEAUDIT_DATABASE_URL; "
                        "the password is never shown)")
    m.add_argument("--json", action="store_true", help="the result as one JSON document")
    m.set_defaults(handler=cmd_migrate)


@dataclass(frozen=True)
class MigrationResult:
    """What ``faceaudit db migrate`` copied and checked."""

    target: str
    """The target database (URL without its password)."""
    log_records: int
    """Search-log records copied (equal on both sides, the chain verified on the target)."""
    log_head: str
    """The hash of the last record (the same on both sides; empty for an empty log)."""
    tables: dict[str, int] = field(default_factory=dict)
    """Rows copied per table (``store.table``), equal on both sides."""
    not_copied: tuple[str, ...] = ()
    """SQLite files of the data dir no registered store copies yet (they stay in the data dir)."""

    def to_json(self) -> dict[str, Any]:
        return {"Target": self.target, "LogRecords": self.log_records, "LogHead": self.log_head,
                "Tables": dict(self.tables), "NotCopied": list(self.not_copied)}


def migrate(data_dir: Path, url: str, stores: tuple[StoreTables, ...] | None = None,
            copies: tuple[StoreCopy, ...] | None = None) -> MigrationResult:
    """Copy ``data_dir`` into the empty PostgreSQL database ``url`` and verify the copy (see the
    module docstring). ``stores``, ``copies``: the stores to copy (default :func:`store_tables`,
    :func:`store_copies`)."""
    from faceaudit._db import (
        PostgreSQLDatabase,
        is_postgres_url,
        pg_migrate,
        pg_table_has_rows,
        table_count,
        transaction,
    )
    from faceaudit._paths import check_private_dir
    from faceaudit._settings import redact_url
    from faceaudit.accountability import PostgresSearchLog, SearchLog

    if not is_postgres_url(url):
        raise InvalidParameterError(f"--to {redact_url(url)!r}: a PostgreSQL URL (postgresql://user@host:port/db)")
    if not data_dir.is_dir():
        raise InvalidParameterError(f"--from {data_dir}: no such data dir")
    check_private_dir(data_dir)
    stores = store_tables() if stores is None else stores
    copies = store_copies() if copies is None else copies
    source_log = SearchLog(data_dir / LOG_FILE)
    checked = source_log.verify()  # before anything is written: a log that fails stays where it is
    if not checked.ok:
        raise LogIntegrityError(f"the search log {source_log.path} does not verify ({checked.problem}); "
                                "nothing was copied: run `faceaudit log verify` and investigate")
    target_log = PostgresSearchLog(url)
    conn = PostgreSQLDatabase(url, PostgresSearchLog.schema).connect()  # (creates the log's tables if missing)
    where = redact_url(url)
    copied: dict[str, int] = {}
    try:
        busy = [t for t in ("search_log",) if pg_table_has_rows(conn, t)]
        declared = [(s.name, tuple(map(s.target, s.tables))) for s in stores] + [(s.name, s.tables) for s in copies]
        busy += [f"{name}.{t}" for name, tables in declared for t in tables if pg_table_has_rows(conn, t)]
        if busy:
            raise ResourceAlreadyExistsError(f"the target {where} already holds data ({', '.join(busy)}): "
                                             "migrate only into an empty database; nothing was copied")
        for store in stores:
            pg_migrate(conn, store.postgres_schema, where=where)
        sources = [(s, s.source(data_dir)) for s in stores]
        opened = [(s, db.connect()) for s, db in sources if db is not None]
        try:
            with transaction(conn, write=True):
                target_log.import_jsonl(source_log, conn=conn)
                for store, src in opened:
                    with transaction(src, write=False):
                        for table in store.tables:
                            copied[f"{store.name}.{store.target(table)}"] = _copy(src, conn, store, table, where)
            # the checks, on what was committed
            for store, src in opened:
                for table in store.tables:
                    have, want = table_count(conn, store.target(table)), table_count(src, table)
                    if have != want:
                        raise FaceAuditError(f"{store.name}.{table}: {want} rows in the data dir but "
                                             f"{have} in {where} after the copy")
        finally:
            for _, src in opened:
                src.close()
    finally:
        conn.close()
    verified = target_log.verify(expect_head=checked.head_hash if checked.records else None)
    target_log.close()
    if not verified.ok or verified.records != checked.records or verified.head_hash != checked.head_hash:
        raise LogIntegrityError(f"the search log in {where} does not match the data dir's after the copy "
                                f"({verified.problem or f'{verified.records} records, head {verified.head_hash}'})")
    for self_copying in copies:
        for table, rows in self_copying.copy(data_dir, url).items():
            copied[f"{self_copying.name}.{table}"] = int(rows)
    known = {s.sqlite_file for s in stores} | {f for s in copies for f in s.files} | NOT_STORES
    left = tuple(sorted(p.name for pattern in ("*.sqlite3", "*.db", "access-keys.json")
                        for p in data_dir.glob(pattern) if p.name not in known))
    return MigrationResult(where, checked.records, checked.head_hash if checked.records else "", copied, left)


def _copy(src: Any, conn: Any, store: StoreTables, table: str, where: str) -> int:
    """:func:`~faceaudit._db.copy_rows`, a row PostgreSQL refuses (a reference SQLite let through,
    a value out of its type) said in one line."""
    import psycopg

    from faceaudit._db import copy_rows

    try:
        return copy_rows(src, conn, table, into=store.target(table))
    except psycopg.errors.IntegrityError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FaceAuditError(f"{store.name}.{table}: {where} refused a row ({first}); "
                             "nothing was copied") from None
    except psycopg.errors.DataError as exc:
        raise FaceAuditError(f"{store.name}.{table}: {where} refused a value ({exc}); nothing was copied") from None


def cmd_migrate(args: argparse.Namespace) -> int:
    from faceaudit.cli._context import settings_of

    target = args.target or settings_of(args).postgres_url
    if not target:
        raise InvalidParameterError("give --to postgresql://... (or set FACEAUDIT_DATABASE_URL)")
    result = migrate(Path(args.source).expanduser(), target)
    if args.json:
        print_json(result.to_json())
        return 0
    print(f"copied into {result.target} and verified:")
    rows = [["search_log", result.log_records]] + [[t, n] for t, n in result.tables.items()]
    print_table(["table", "rows"], rows, indent="  ")
    if result.log_records:
        print(f"search log: {result.log_records} records, the chain verifies on the target, head {result.log_head}")
    if result.not_copied:
        print(f"faceaudit: note: not copied (their stores have no PostgreSQL schema yet; they stay in "
              f"{args.source}): {', '.join(result.not_copied)}", file=sys.stderr)
    return 0
