"""Both search log stores behind one test fixture, with what an insider with file or database
access can do to each: read the records as lines, write lines back, rewrite the head."""

from __future__ import annotations

import json

import pytest

from faceaudit.accountability import PostgresSearchLog, SearchLog


class JsonlStore:
    """The JSONL file and its head file."""

    name = "jsonl"

    def __init__(self, tmp_path) -> None:
        self.log = SearchLog(tmp_path / "search-log.jsonl")

    def lines(self) -> list:
        return self.log.path.read_bytes().splitlines(keepends=True)

    def write(self, lines) -> None:
        self.log.path.write_bytes(b"".join(lines))

    def write_head(self, head: dict) -> None:
        self.log.head_path.write_text(json.dumps(head))


class PostgresStore:
    """The PostgreSQL tables: written back one row per line, its seq column the line's number
    (a rewrite renumbers the rows as a file's line numbers would)."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.log = PostgresSearchLog(url)

    def _sql(self, *statements) -> list:
        import psycopg

        with psycopg.connect(self.url) as conn:  # one transaction, committed on leaving
            rows = [conn.execute(sql, params).fetchall() if sql.startswith("SELECT") else
                    conn.execute(sql, params) for sql, params in statements]
        return rows

    def lines(self) -> list:
        (rows,) = self._sql(("SELECT record FROM search_log ORDER BY seq", ()))
        return [r[0].encode() + b"\n" for r in rows]

    def write(self, lines) -> None:
        self._sql(("DELETE FROM search_log", ()), *[
            ("INSERT INTO search_log (seq, kind, hash, record) VALUES (%s, '', '', %s)",
             (n, line.rstrip(b"\n").decode())) for n, line in enumerate(lines, start=1)])

    def write_head(self, head: dict) -> None:
        self._sql(("UPDATE search_log_head SET seq = %s, hash = %s WHERE id = 1", (head["seq"], head["hash"])))


@pytest.fixture(name="log_store", params=["jsonl", "postgresql"])
def log_store_fixture(request, tmp_path):
    """A fresh, empty search log in each store (PostgreSQL: a new database on the session's server)."""
    if request.param == "jsonl":
        yield JsonlStore(tmp_path)
        return
    store = PostgresStore(request.getfixturevalue("postgres_url"))
    yield store
    store.log.close()
