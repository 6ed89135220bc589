"""Copying one data dir's accountability store into a deployment's PostgreSQL database (issue 21).

``faceaudit db migrate`` copies the search log first (same records, same chain); then
:func:`copy_accountability` copies ``accountability.db`` table by table (foreign keys first:
leads before their decisions), the kept probes of ``probes/`` (rows of ``probe_images``) and
the review sessions' signing key (``review-session.key``: signed-in reviewers stay signed in).
The leads' sync position is moved from a byte offset in the JSONL file to a seq in the
PostgreSQL log (the same record: leads of every search up to it exist). Access keys are copied
by :func:`faceaudit.service.copy_keys` (``access-keys.json`` -> ``access_keys``).

A target already holding any of these rows is refused (:class:`ConflictError`): nothing is
merged into another deployment's data. Everything is one transaction on the target: an
interrupted copy leaves it empty. Counts are compared before COMMIT.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from faceaudit._errors import ConflictError, InvalidParameterError
from faceaudit.accountability._store import Store

log = logging.getLogger(__name__)

TABLES = ("policies", "video_policies", "audit_collections", "retention", "review_sessions", "leads",
          "decisions", "lead_sync")
"""The tables of ``accountability.db``, in copy order (a referenced table before its referrers)."""

SHARED_TABLES = ("probe_images", "deployment_secrets", "retention_runs")
"""The tables only the PostgreSQL store has (what a data dir keeps as files)."""

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class AccountabilityCopy:
    """What :func:`copy_accountability` copied: rows per table (source and target counts equal),
    kept probe images, and whether the review-session key came along."""

    rows: tuple[tuple[str, int], ...]
    probes: int
    session_key: bool

    def count(self, table: str) -> int:
        return dict(self.rows).get(table, 0)


def copy_accountability(data_dir: str | os.PathLike[str], database_url: str) -> AccountabilityCopy:
    """Copy ``data_dir``'s policies, leads, decisions, retention rules, review sessions, kept
    probes and review-session key into ``database_url`` (PostgreSQL; run after the search log
    was copied, so the leads' sync position names the same record there)."""
    data_dir = Path(data_dir)
    source = data_dir / "accountability.db"
    target = Store(source, database_url)
    if not target.shared:
        raise InvalidParameterError("the accountability store is copied into PostgreSQL (postgresql://...)")
    src = Store(source) if source.exists() else None
    rows: list[tuple[str, int]] = []
    probes = 0
    with target.write() as out:
        for table in TABLES + SHARED_TABLES:
            if out.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                raise ConflictError(f"{target._db.where} already holds accountability data ({table}); "
                                    "copy into a database no deployment uses yet")
        for table in TABLES:
            have = [] if src is None else src.read().execute(f"SELECT * FROM {table}").fetchall()
            if have:
                columns = list(have[0].keys())
                values = [tuple(r) for r in have]
                if table == "lead_sync":  # a byte offset in the JSONL file -> a seq in the PostgreSQL log
                    values = [(r["id"], r["last_seq"], r["last_seq"]) for r in have]
                    columns = ["id", "last_seq", "log_offset"]
                marks = ", ".join("?" for _ in columns)
                out.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
            copied = out.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            if copied != len(have):  # pragma: no cover - a database that lost rows inside a transaction
                raise ConflictError(f"copying {table}: {len(have)} rows read, {copied} on the target")
            rows.append((table, int(copied)))
        insert_probe = target.dialect.insert_ignore("probe_images", ("sha256", "data", "kept_at"))
        for path in sorted((data_dir / "probes").glob("??/*")):
            name = path.name
            if len(name) != 64 or not set(name) <= _HEX or not path.is_file() or path.parent.name != name[:2]:
                continue  # (not a kept probe: a temporary file of an interrupted write)
            out.execute(insert_probe, (name, path.read_bytes(), round(path.stat().st_mtime, 3)))
            probes += 1
        key_file = data_dir / "review-session.key"
        session_key = key_file.is_file() and len(key_file.read_bytes()) >= 32
        if session_key:
            out.execute("INSERT INTO deployment_secrets (name, value) VALUES (?, ?)",
                        ("review-session", key_file.read_bytes()))
    log.info("copied the accountability store of %s: %s; %d probe(s)", data_dir,
             ", ".join(f"{t} {n}" for t, n in rows), probes)
    return AccountabilityCopy(tuple(rows), probes, session_key)
