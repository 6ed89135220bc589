"""The embedding cache that makes an audit resumable.

One SQLite file; one row per (image SHA-256, FaceModelVersion): the embedding of
the image's largest face, or the reason no face could be used (a failure to
enrol or acquire). Rows are committed every few images, so an interrupted audit
picks up where it stopped, and a second audit of the same images is instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceaudit._db import Schema, SQLiteDatabase

_EMBEDDINGS = """
CREATE TABLE IF NOT EXISTS embeddings (
    sha256 TEXT NOT NULL,
    model_version TEXT NOT NULL,
    status TEXT NOT NULL,          -- 'ok' or 'failed'
    reason TEXT,                   -- why no face could be used (status 'failed')
    vector BLOB,                   -- float32, L2-normalised (status 'ok')
    faces INTEGER,                 -- faces detected in the image
    confidence REAL,               -- detector confidence of the face used, 0-100
    PRIMARY KEY (sha256, model_version)
)
"""

SCHEMA = Schema("embedding cache", {1: _EMBEDDINGS})


@dataclass(frozen=True)
class CachedEmbedding:
    """A cache row: ``vector`` is None when the image failed (``reason`` says why)."""

    vector: np.ndarray | None
    reason: str | None
    faces: int = 0
    confidence: float | None = None

    @property
    def ok(self) -> bool:
        return self.vector is not None


class EmbeddingCache:
    """SQLite cache of embeddings keyed by image SHA-256 and FaceModelVersion.

    Writes are grouped: a transaction opens with the first :meth:`put` and commits every
    25 rows, on :meth:`commit` and on :meth:`close` (``synchronous=NORMAL``: a cache is
    made again when lost; what was committed survives kill -9)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = SQLiteDatabase(self.path, SCHEMA, synchronous="NORMAL", check_dir=False).connect()
        self._pending = 0

    def get(self, sha256: str, model_version: str) -> CachedEmbedding | None:
        row = self._db.execute(
            "SELECT status, reason, vector, faces, confidence FROM embeddings "
            "WHERE sha256 = ? AND model_version = ?", (sha256, model_version),
        ).fetchone()
        if row is None:
            return None
        status, reason, blob, faces, conf = row
        vec = np.frombuffer(blob, dtype=np.float32).copy() if status == "ok" else None
        return CachedEmbedding(vec, reason, int(faces or 0), conf)

    def get_many(self, shas: Iterable[str], model_version: str) -> dict[str, CachedEmbedding]:
        shas = list(dict.fromkeys(shas))
        out: dict[str, CachedEmbedding] = {}
        for i in range(0, len(shas), 500):
            chunk = shas[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT sha256, status, reason, vector, faces, confidence FROM embeddings "
                f"WHERE model_version = ? AND sha256 IN ({marks})",
                [model_version, *chunk],
            )
            for sha, status, reason, blob, faces, conf in rows:
                vec = np.frombuffer(blob, dtype=np.float32).copy() if status == "ok" else None
                out[sha] = CachedEmbedding(vec, reason, int(faces or 0), conf)
        return out

    def put(self, sha256: str, model_version: str, entry: CachedEmbedding) -> None:
        blob = None if entry.vector is None else np.asarray(entry.vector, np.float32).tobytes()
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sha256, model_version, "ok" if entry.ok else "failed", entry.reason, blob,
             entry.faces, entry.confidence),
        )
        self._pending += 1
        if self._pending >= 25:
            self.commit()

    def commit(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._pending = 0

    def close(self) -> None:
        self.commit()
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def count(self, model_version: str | None = None) -> tuple[int, int]:
        """(ok rows, failed rows), for one model version or all."""
        where, args = ("WHERE model_version = ?", [model_version]) if model_version else ("", [])
        rows = dict(self._db.execute(
            f"SELECT status, COUNT(*) FROM embeddings {where} GROUP BY status", args
        ).fetchall())
        return int(rows.get("ok", 0)), int(rows.get("failed", 0))
