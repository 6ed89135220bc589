"""What a batch indexes: the images of a directory, or the rows of a manifest CSV.

Manifest: a CSV with a header; column ``image`` (path relative to the CSV, or
absolute), optional column ``subject`` (the identity), then any label columns
(``dataset``, ``sex``, ``age``, ``race``, ...). Empty cells mean unknown and are
left out of the labels.

ExternalImageId mapping: Rekognition allows ``[a-zA-Z0-9_.\\-:]``, 1-255
characters. The subject (for a directory: the image path relative to it, with
``/`` as separator) is mapped by replacing every other character with ``_`` and
keeping the first 255 characters; an empty result means no ExternalImageId.
The mapping can merge distinct subjects (``"a b"`` and ``"a_b"``), so the
original subject is kept verbatim in the face labels (``labels["subject"]``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from faceaudit._errors import InvalidParameterError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_.\-:]")


def map_external_image_id(subject: Optional[str]) -> Optional[str]:
    """The ExternalImageId for a subject: disallowed characters become ``_``; at most 255."""
    if subject is None:
        return None
    mapped = _NOT_ALLOWED.sub("_", subject.strip())[:255]
    return mapped or None


@dataclass(frozen=True)
class BatchItem:
    """One image to index: its path, ExternalImageId and labels (kept as face metadata)."""

    source: Path
    external_image_id: Optional[str]
    labels: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""


def read_manifest(path) -> List[BatchItem]:
    """The rows of a manifest CSV as :class:`BatchItem` (InvalidParameterError if malformed)."""
    path = Path(path)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidParameterError(f"cannot read manifest {path}: {exc.strerror}") from None
    with fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "image" not in reader.fieldnames:
            raise InvalidParameterError(f"manifest {path} has no 'image' column")
        items = []
        for n, row in enumerate(reader, start=2):
            image = (row.get("image") or "").strip()
            if not image:
                raise InvalidParameterError(f"manifest {path}, line {n}: empty 'image'")
            subject = (row.get("subject") or "").strip()
            labels: Dict[str, Any] = {}
            if subject:
                labels["subject"] = subject
            for key, value in row.items():
                if key in ("image", "subject") or key is None or value is None:
                    continue
                value = value.strip()
                if value:
                    labels[key] = value
            source = Path(image) if Path(image).is_absolute() else path.parent / image
            items.append(BatchItem(
                source=source, external_image_id=map_external_image_id(subject) if subject else None,
                labels=labels, name=image,
            ))
    return items


def scan_directory(path) -> List[BatchItem]:
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
