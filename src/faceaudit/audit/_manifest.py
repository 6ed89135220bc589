"""Audit manifests: one CSV row per image with ``image``, ``subject`` and group-label columns
(read by :func:`faceaudit.collections.read_manifest_table`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faceaudit._errors import InvalidParameterError
from faceaudit.collections import read_manifest_table

REQUIRED_COLUMNS = ("image", "subject")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a manifest.

    ``path`` is the image path resolved against the manifest's folder; ``subject``
    the identity (two records with the same subject are the same person, across
    manifests too); ``labels`` the group-label columns as written ("" = unknown).
    """

    path: Path
    subject: str
    labels: Mapping[str, str]
    manifest: str
    line: int

    def label(self, column: str) -> str:
        return (self.labels.get(column) or "").strip()


@dataclass(frozen=True)
class Manifest:
    """A manifest file: its path, SHA-256 of its bytes, label columns and records."""

    path: str
    sha256: str
    columns: tuple[str, ...]
    records: tuple[ImageRecord, ...]

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in REQUIRED_COLUMNS)

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "rows": len(self.records),
                "columns": list(self.columns)}


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read one manifest CSV (the collections' reader, a subject required in every row);
    image paths are relative to the CSV's folder.

    Raises ManifestError (an InvalidParameterError) when the file is missing, has no
    ``image`` or ``subject`` column, or a row has an empty image or subject.
    """
    table = read_manifest_table(path, require_subject=True)
    base = table.path.resolve().parent
    records = tuple(
        ImageRecord(path=(base / row.image).resolve(), subject=row.subject, labels=dict(row.labels),
                    manifest=str(table.path), line=row.line)
        for row in table.rows)
    return Manifest(path=str(table.path), sha256=table.sha256, columns=table.columns, records=records)


def read_manifests(paths: Iterable[str | os.PathLike[str]]) -> tuple[Manifest, ...]:
    """Read several manifests (their records are concatenated by the audit)."""
    manifests = tuple(read_manifest(p) for p in paths)
    if not manifests:
        raise InvalidParameterError("at least one manifest is needed")
    return manifests


def all_records(manifests: Sequence[Manifest]) -> tuple[ImageRecord, ...]:
    return tuple(r for m in manifests for r in m.records)


def label_columns(manifests: Sequence[Manifest]) -> tuple[str, ...]:
    """Label columns of the manifests, first-seen order."""
    seen: list[str] = []
    for m in manifests:
        for c in m.label_columns:
            if c not in seen:
                seen.append(c)
    return tuple(seen)
