"""Group columns: labels -> integer group codes, age bands, intersections, "unknown"."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from faceaudit._errors import InvalidParameterError
from faceaudit.audit._manifest import ImageRecord

UNKNOWN = "unknown"
"""The group of records with no label for a column (empty cell, or a manifest without the column)."""

INTERSECTION = "&"
"""Joins two column names (``sex&age``) and two group names (``F&50-59``) of an intersection."""

AUTO_BAND_MIN_DISTINCT = 10
"""A numeric column with at least this many distinct values is cut into 10-year-wide bands."""


@dataclass(frozen=True)
class GroupColumn:
    """One way of splitting records into groups.

    ``codes[i]`` is the index into ``groups`` of record ``i``. ``groups`` is
    ordered (numeric bands by value, "unknown" last).
    """

    name: str
    groups: tuple[str, ...]
    codes: np.ndarray
    bands: tuple[float, ...] | None = None

    @property
    def known(self) -> tuple[int, ...]:
        """Indices of the groups other than "unknown"."""
        return tuple(i for i, g in enumerate(self.groups) if g != UNKNOWN)

    def mask(self, group: int) -> np.ndarray:
        return self.codes == group


def parse_bands(specs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``["age=40,50,60,70"]`` -> ``{"age": (40, 50, 60, 70)}`` (band edges, ascending)."""
    out: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        name, sep, edges = spec.partition("=")
        name = name.strip()
        try:
            values = tuple(float(e) for e in edges.split(",") if e.strip())
        except ValueError:
            values = ()
        if not sep or not name or not values or list(values) != sorted(set(values)):
            raise InvalidParameterError(
                f"band spec {spec!r} must look like COLUMN=E1,E2,... with ascending edges"
            )
        out[name] = values
    return out


def parse_relabel(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["race:B=black", "race:W=white_non_hispanic"]`` -> ``{"race": {"B": "black", "W": "white_non_hispanic"}}``.

    A relabelling joins one data set's labels to another's (e.g. NIST MEDS's ``B``/``W`` to the
    Congress lists' ``black``/``white_non_hispanic``). Labels are matched whole, after trimming.
    """
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        column, sep, rest = spec.partition(":")
        old, sep2, new = rest.partition("=")
        column, old, new = column.strip(), old.strip(), new.strip()
        if not sep or not sep2 or not column or not old or not new:
            raise InvalidParameterError(f"relabel {spec!r} must look like COLUMN:OLD=NEW, e.g. race:B=black")
        seen = out.setdefault(column, {})
        if seen.get(old, new) != new:
            raise InvalidParameterError(f"relabel {spec!r}: {column}:{old} is already relabelled {seen[old]!r}")
        seen[old] = new
    return out


def relabel_records(records: Sequence[ImageRecord], relabel: Mapping[str, Mapping[str, str]]
                    ) -> tuple[ImageRecord, ...]:
    """The records with their labels renamed per column (``relabel``: column -> {old: new})."""
    if not relabel:
        return tuple(records)
    out = []
    for r in records:
        labels = {c: relabel.get(c, {}).get(v.strip(), v) if v else v for c, v in r.labels.items()}
        out.append(r if labels == dict(r.labels) else replace(r, labels=labels))
    return tuple(out)


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _fmt(v: float) -> str:
    return f"{v:g}"


def _band_name(value: float, edges: tuple[float, ...]) -> str:
    if value < edges[0]:
        return f"<{_fmt(edges[0])}"
    for lo, hi in itertools.pairwise(edges):
        if lo <= value < hi:
            if float(lo).is_integer() and float(hi).is_integer():
                return f"{_fmt(lo)}-{_fmt(hi - 1)}"
            return f"{_fmt(lo)}-<{_fmt(hi)}"
    return f">={_fmt(edges[-1])}"


def auto_bands(values: Sequence[str]) -> tuple[float, ...] | None:
    """10-year-wide band edges for a numeric column with many distinct values, else None."""
    present = [v for v in values if v]
    nums = [n for n in (_number(v) for v in present) if n is not None]
    if not present or len(nums) < len(present) or len(set(nums)) < AUTO_BAND_MIN_DISTINCT:
        return None
    lo = math.floor(min(nums) / 10.0) * 10
    hi = math.floor(max(nums) / 10.0) * 10 + 10
    return tuple(float(x) for x in range(int(lo) + 10, int(hi), 10)) or (float(lo) + 10,)


def _order_key(name: str):
    if name == UNKNOWN:
        return (2, 0.0, name)
    head = name.lstrip("<>=")
    num = _number(head.split("-")[0]) if head else None
    if num is not None:
        return (0, num - (0.5 if name.startswith("<") else 0.0), name)
    return (1, 0.0, name)


def build_column(
    records: Sequence[ImageRecord], name: str, bands: tuple[float, ...] | None = None,
    auto: bool = True,
) -> GroupColumn:
    """Group records by one label column; empty labels go to "unknown"."""
    raw = [r.label(name) for r in records]
    if bands is None and auto:
        bands = auto_bands(raw)
    labels = []
    for v in raw:
        if not v:
            labels.append(UNKNOWN)
        elif bands is not None:
            n = _number(v)
            if n is None:
                raise InvalidParameterError(f"column {name!r} has bands but a non-numeric value {v!r}")
            labels.append(_band_name(n, bands))
        else:
            labels.append(v)
    groups = tuple(sorted(set(labels), key=_order_key))
    index = {g: i for i, g in enumerate(groups)}
    codes = np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))
    return GroupColumn(name=name, groups=groups, codes=codes, bands=bands)


def intersect(a: GroupColumn, b: GroupColumn) -> GroupColumn:
    """The intersection of two columns: one group per pair of groups that occurs.

    A record is "unknown" in the intersection when it is unknown in either column.
    """
    pairs = []
    for ca, cb in zip(a.codes.tolist(), b.codes.tolist(), strict=True):
        ga, gb = a.groups[ca], b.groups[cb]
        pairs.append(UNKNOWN if UNKNOWN in (ga, gb) else f"{ga}{INTERSECTION}{gb}")
    order = {g: i for i, g in enumerate(a.groups)}
    order_b = {g: i for i, g in enumerate(b.groups)}

    def key(name: str):
        if name == UNKNOWN:
            return (1, 0, 0)
        ga, gb = name.split(INTERSECTION, 1)
        return (0, order[ga], order_b[gb])

    groups = tuple(sorted(set(pairs), key=key))
    index = {g: i for i, g in enumerate(groups)}
    codes = np.fromiter((index[p] for p in pairs), dtype=np.int64, count=len(pairs))
    return GroupColumn(name=f"{a.name}{INTERSECTION}{b.name}", groups=groups, codes=codes)


def build_columns(
    records: Sequence[ImageRecord], names: Sequence[str], bands: Mapping[str, tuple[float, ...]],
    intersections: bool = True,
) -> tuple[GroupColumn, ...]:
    """The named columns, then (optionally) the intersection of every pair of them."""
    cols = [build_column(records, n, bands.get(n)) for n in names]
    out = list(cols)
    if intersections:
        for i in range(len(cols)):
            for j in range(i + 1, len(cols)):
                out.append(intersect(cols[i], cols[j]))
    return tuple(out)


def default_columns(records: Sequence[ImageRecord], candidates: Sequence[str]) -> tuple[str, ...]:
    """Label columns worth grouping by: those with at least two distinct non-empty values."""
    out = []
    for c in candidates:
        values = {r.label(c) for r in records} - {""}
        if len(values) >= 2:
            out.append(c)
    return tuple(out)


@dataclass(frozen=True)
class ShareSpec:
    """A set of labels of one probe column, for the composition test (e.g. race: people of color).

    ``values`` are whole labels as written in the manifests; a label counts only if
    it is listed exactly (``black;asian_pacific`` is its own label: list it too).
    ``label`` names the set in the report ("people of color").
    """

    column: str
    values: tuple[str, ...]
    label: str

    @classmethod
    def parse(cls, spec: str, label: str | None = None) -> ShareSpec:
        """``"race=black,hispanic,black;asian_pacific"`` -> column race, three labels.

        Labels are separated by commas only, so a label may hold ``;`` (two groups)
        or spaces; quote the whole spec in a shell.
        """
        name, sep, rest = spec.partition("=")
        name = name.strip()
        values = tuple(dict.fromkeys(v.strip() for v in rest.split(",") if v.strip()))
        if not sep or not name or not values:
            raise InvalidParameterError(
                f"share spec {spec!r} must look like COLUMN=LABEL1,LABEL2,... "
                "(e.g. 'race=black,hispanic,black;asian_pacific')"
            )
        if UNKNOWN in values:
            raise InvalidParameterError(f"share spec {spec!r}: {UNKNOWN!r} cannot be part of a set")
        text = (label or "").strip() or f"{name} in {{{', '.join(values)}}}"
        return cls(column=name, values=values, label=text)
