"""Manifest CSVs (the one reader, used by batch indexing and by the audit) and directories.

Manifest: a CSV with a header; column ``image`` (path relative to the CSV, or
absolute), column ``subject`` (the identity; optional for batch indexing, required by
the audit), then any label columns (``dataset``, ``sex``, ``age``, ``race``, ...).
Header names and cells are stripped of surrounding blanks; an empty cell means unknown.
A bad file or row is an :class:`~faceaudit.ManifestError` naming the line and column.

ExternalImageId mapping: Rekognition allows ``[a-zA-Z0-9_.\\-:]``, 1-255
characters. The subject (for a directory: the image path relative to it, with
``/`` as separator) is mapped by replacing every other character with ``_`` and
keeping the first 255 characters; an empty result means no ExternalImageId.
The mapping can merge distinct subjects (``"a b"`` and ``"a_b"``), so the
original subject is kept verbatim in the face labels (``labels["subject"]``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceaudit._errors import InvalidParameterError, ManifestError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_COLUMN, SUBJECT_COLUMN = "image", "subject"
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_.\-:]")


def map_external_image_id(subject: str | None) -> str | None:
    """The ExternalImageId for a subject: disallowed characters become ``_``; at most 255
    characters; None for no subject (or one of blanks only)."""
    if subject is None:
        return None
    mapped = _NOT_ALLOWED.sub("_", subject.strip())[:255]
    return mapped or None


@dataclass(frozen=True)
class ManifestRow:
    """One data row of a manifest.

    ``line`` is its line number in the file (the header is line 1); ``image`` the path as
    written and ``path`` that path joined to the manifest's folder (an absolute one kept);
    ``subject`` "" when the manifest has none; ``labels`` every other column, "" = unknown.
    """

    line: int
    image: str
    path: Path
    subject: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ManifestTable:
    """A manifest file as read: its path, the SHA-256 of its bytes, its columns and rows."""

    path: Path
    sha256: str
    columns: tuple[str, ...]
    rows: tuple[ManifestRow, ...]

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in (IMAGE_COLUMN, SUBJECT_COLUMN))


def read_manifest_table(path: str | os.PathLike[str], *, require_subject: bool) -> ManifestTable:
    """Read a manifest CSV; ``require_subject``: the ``subject`` column and a subject in
    every row are required (the audit), else optional (batch indexing).

    Raises :class:`~faceaudit.ManifestError` when the file is missing, unreadable or not
    UTF-8, a required column is absent, a column name repeats, or a row has an empty
    required cell or more cells than the header.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {p}", str(p)) from None
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {p}: {exc.strerror}", str(p)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ManifestError(f"manifest {p} is not UTF-8 text (line {line})", str(p), line) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        columns = tuple(c.strip() for c in next(reader, []))
        required = (IMAGE_COLUMN, SUBJECT_COLUMN) if require_subject else (IMAGE_COLUMN,)
        missing = [c for c in required if c not in columns]
        if missing:
            raise ManifestError(
                f"manifest {p} lacks the column(s) {', '.join(missing)} "
                f"(needs {', '.join(required)}, then labels)", str(p), 1, missing[0])
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ManifestError(f"manifest {p}, line 1: column {repeated[0]!r} appears twice",
                                str(p), 1, repeated[0])
        rows = []
        for cells in reader:
            line = reader.line_num
            if not cells:
                continue  # a blank line
            if len(cells) > len(columns):
                raise ManifestError(
                    f"manifest {p}, line {line}: {len(cells)} cells for {len(columns)} columns "
                    "(quote a value that holds a comma)", str(p), line)
            row = dict(zip(columns, (c.strip() for c in cells), strict=False))  # a short row: missing cells
            for column in required:
                if not row.get(column):
                    raise ManifestError(f"manifest {p}, line {line}, column {column!r}: empty",
                                        str(p), line, column)
            image = row[IMAGE_COLUMN]
            labels = {c: row.get(c, "") for c in columns if c not in (IMAGE_COLUMN, SUBJECT_COLUMN)}
            rows.append(ManifestRow(line=line, image=image, path=p.parent / image,
                                    subject=row.get(SUBJECT_COLUMN, ""), labels=labels))
    except csv.Error as exc:
        raise ManifestError(f"manifest {p}, line {reader.line_num}: {exc}", str(p), reader.line_num) from None
    return ManifestTable(path=p, sha256=hashlib.sha256(data).hexdigest(), columns=columns, rows=tuple(rows))


@dataclass(frozen=True)
class BatchItem:
    """One image to index: its path, ExternalImageId and labels (kept as face metadata)."""

    source: Path
    external_image_id: str | None
    labels: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""


def read_manifest(path: str | os.PathLike[str]) -> list[BatchItem]:
    """The rows of a manifest CSV as :class:`BatchItem` (ManifestError if malformed): the
    subject, when given, is the ExternalImageId (mapped) and kept in the labels; empty
    label cells are left out."""
    items = []
    for row in read_manifest_table(path, require_subject=False).rows:
        labels: dict[str, Any] = {"subject": row.subject} if row.subject else {}
        labels.update((k, v) for k, v in row.labels.items() if v)
        items.append(BatchItem(source=row.path, external_image_id=map_external_image_id(row.subject),
                               labels=labels, name=row.image))
    return items


def scan_directory(path: str | os.PathLike[str]) -> list[BatchItem]:
    """Every JPEG/PNG under a directory (sorted); ExternalImageId from the relative path."""
    root = Path(path)
    if not root.is_dir():
        raise InvalidParameterError(f"{root} is not a directory")
    items = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            rel = p.relative_to(root).as_posix()
            items.append(BatchItem(source=p, external_image_id=map_external_image_id(rel),
                                   labels={"file": rel}, name=rel))
    return items
