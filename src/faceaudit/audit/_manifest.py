"""Audit manifests: one CSV row per image with ``image``, ``subject`` and group-label columns."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence, Tuple

from faceaudit._errors import InvalidParameterError

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
    columns: Tuple[str, ...]
    records: Tuple[ImageRecord, ...]

    @property
    def label_columns(self) -> Tuple[str, ...]:
        return tuple(c for c in self.columns if c not in REQUIRED_COLUMNS)

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "rows": len(self.records),
                "columns": list(self.columns)}


def read_manifest(path: "str | os.PathLike[str]") -> Manifest:
    """Read one manifest CSV; image paths are relative to the CSV's folder.

    Raises InvalidParameterError when the file is missing, has no ``image`` or
    ``subject`` column, or a row has an empty image or subject.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InvalidParameterError(f"manifest not found: {p}") from None
    except OSError as exc:
        raise InvalidParameterError(f"cannot read manifest {p}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidParameterError(f"manifest {p} is not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    columns = tuple((c or "").strip() for c in (reader.fieldnames or ()))
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidParameterError(
            f"manifest {p} lacks the column(s) {', '.join(missing)} (needs image, subject, then labels)"
        )
    base = p.resolve().parent
    records = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        image, subject = row.get("image", ""), row.get("subject", "")
        if not image or not subject:
            raise InvalidParameterError(f"{p}:{line}: empty image or subject")
        labels = {c: row.get(c, "") for c in columns if c not in REQUIRED_COLUMNS}
        records.append(
            ImageRecord(path=(base / image).resolve(), subject=subject, labels=labels,
                        manifest=str(p), line=line)
        )
    return Manifest(path=str(p), sha256=hashlib.sha256(data).hexdigest(), columns=columns,
                    records=tuple(records))


def read_manifests(paths: Iterable["str | os.PathLike[str]"]) -> Tuple[Manifest, ...]:
    """Read several manifests (their records are concatenated by the audit)."""
    manifests = tuple(read_manifest(p) for p in paths)
    if not manifests:
        raise InvalidParameterError("at least one manifest is needed")
    return manifests


def all_records(manifests: Sequence[Manifest]) -> Tuple[ImageRecord, ...]:
    return tuple(r for m in manifests for r in m.records)


def label_columns(manifests: Sequence[Manifest]) -> Tuple[str, ...]:
    """Label columns of the manifests, first-seen order."""
    seen: list[str] = []
    for m in manifests:
        for c in m.label_columns:
            if c not in seen:
                seen.append(c)
    return tuple(seen)
