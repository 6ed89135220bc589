"""What an audit compares: probes, gallery, subjects, groups and thresholds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceaudit._errors import InvalidParameterError
from faceaudit.audit._groups import GroupColumn, ShareSpec, build_columns, default_columns, relabel_records
from faceaudit.audit._manifest import ImageRecord, Manifest, all_records, label_columns

DEFAULT_THRESHOLDS = (80.0, 90.0, 95.0, 99.0)
"""Similarity thresholds audited by default: Rekognition's default (80) and the ACLU debate's 95 and 99."""

DEFAULT_FMR_TARGETS = (1e-3, 1e-4, 1e-5)
"""Overall false-match rates whose thresholds are found from the impostor scores (exact engines)."""


@dataclass(frozen=True)
class AuditConfig:
    """How to audit.

    thresholds: Similarity thresholds (0-100, higher is stricter) reported everywhere.
    group_by / gallery_group_by: label columns of the probe / gallery manifests
    (None: every label column with two or more values). bands: band edges for
    numeric columns ("age" -> (40, 50, 60, 70)); numeric columns without bands and
    with many values are cut into 10-year-wide bands. intersections: also report
    every pair of probe columns crossed. alpha: weight of the false-match side in
    FDR, IR and GARBE (0.5 = both error types weigh the same). bootstrap: number of
    subject resamples (0 = none) and its seed. fmr_targets: overall FMRs whose
    thresholds are found (engines with exact scores only). candidates_floor: also
    keep candidates down to this Similarity (candidates.csv; the search threshold
    of engines that only return candidates); exact engines always keep them down
    to the lowest threshold any figure uses (None: no lower).
    """

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    group_by: tuple[str, ...] | None = None
    gallery_group_by: tuple[str, ...] | None = None
    bands: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    intersections: bool = True
    alpha: float = 0.5
    bootstrap: int = 1000
    seed: int = 0
    fmr_targets: tuple[float, ...] = DEFAULT_FMR_TARGETS
    min_errors: int = 30
    shares: tuple[ShareSpec, ...] = ()
    match_counts: tuple[int, ...] = ()
    min_group_searches: int = 10
    projection_probes: int = 535
    projection_gallery: int = 25_000
    max_candidates: int = 4096
    relabel: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Labels renamed before grouping, per column ({"race": {"B": "black"}}), on both sides."""
    block_size: int = 256
    candidates_floor: float | None = None

    def __post_init__(self) -> None:
        ts = tuple(self.thresholds)
        if not ts:
            raise InvalidParameterError("at least one threshold is needed")
        for t in ts:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= float(t) <= 100.0:
                raise InvalidParameterError(f"thresholds must be from 0 to 100, got {t!r}")
        object.__setattr__(self, "thresholds", tuple(sorted({round(float(t), 2) for t in ts})))
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise InvalidParameterError(f"alpha must be from 0 to 1, got {self.alpha}")
        if self.bootstrap < 0:
            raise InvalidParameterError("bootstrap resamples must be >= 0")
        for f in self.fmr_targets:
            if not 0.0 < float(f) < 1.0:
                raise InvalidParameterError(f"FMR targets must be between 0 and 1, got {f}")
        for n in self.match_counts:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InvalidParameterError(f"match counts must be whole numbers >= 1, got {n!r}")
        object.__setattr__(self, "match_counts", tuple(sorted(set(self.match_counts))))
        object.__setattr__(self, "shares", tuple(self.shares))
        if self.min_group_searches < 1:
            raise InvalidParameterError("min_group_searches must be >= 1")
        cf = self.candidates_floor
        if cf is not None:
            if isinstance(cf, bool) or not isinstance(cf, (int, float)) or not 0.0 <= float(cf) <= 100.0:
                raise InvalidParameterError(f"the candidates floor must be from 0 to 100, got {cf!r}")
            # on the 0.01 grid, rounded down: a floor keeps at least the candidates asked for
            object.__setattr__(self, "candidates_floor", math.floor(float(cf) * 100.0 + 1e-9) / 100.0)

    @property
    def floor(self) -> float:
        """The lowest audited threshold or the candidates floor if lower: the search threshold of
        engines that only return candidates, and the lowest Similarity kept in candidates.csv."""
        if self.candidates_floor is not None:
            return min(self.thresholds[0], self.candidates_floor)
        return self.thresholds[0]


@dataclass(frozen=True)
class AuditDesign:
    """Probes against a gallery, with subjects coded as integers shared by both sides.

    ``mated[i]``: probe i's subject has at least one image in the gallery
    manifests (a mated search), whether or not that image enrolled.
    """

    probes: tuple[ImageRecord, ...]
    gallery: tuple[ImageRecord, ...]
    probe_manifests: tuple[Manifest, ...]
    gallery_manifests: tuple[Manifest, ...]
    subjects: tuple[str, ...]
    probe_subject: np.ndarray
    gallery_subject: np.ndarray
    mated: np.ndarray
    probe_columns: tuple[GroupColumn, ...]
    gallery_columns: tuple[GroupColumn, ...]
    config: AuditConfig

    @property
    def n_probes(self) -> int:
        return len(self.probes)

    @property
    def n_gallery(self) -> int:
        return len(self.gallery)

    def probe_column(self, name: str) -> GroupColumn:
        for c in self.probe_columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def gallery_column(self, name: str) -> GroupColumn:
        for c in self.gallery_columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _check_columns(names: Sequence[str], available: Sequence[str], side: str) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        raise InvalidParameterError(
            f"group column(s) {', '.join(missing)} not in the {side} manifests "
            f"(they have: {', '.join(available) or 'no label columns'})"
        )


def build_design(
    probe_manifests: Sequence[Manifest], gallery_manifests: Sequence[Manifest], config: AuditConfig
) -> AuditDesign:
    probes = relabel_records(all_records(probe_manifests), config.relabel)
    gallery = relabel_records(all_records(gallery_manifests), config.relabel)
    if not probes:
        raise InvalidParameterError("the probe manifests hold no images")
    if not gallery:
        raise InvalidParameterError("the gallery manifests hold no images")
    p_avail, g_avail = label_columns(probe_manifests), label_columns(gallery_manifests)
    p_cols = config.group_by if config.group_by is not None else default_columns(probes, p_avail)
    g_cols = (
        config.gallery_group_by if config.gallery_group_by is not None
        else default_columns(gallery, g_avail)
    )
    _check_columns(p_cols, p_avail, "probe")
    _check_columns(g_cols, g_avail, "gallery")
    _check_columns(tuple(dict.fromkeys(s.column for s in config.shares)), p_avail, "probe")
    _check_columns(tuple(c for c in config.relabel if c not in g_avail), p_avail, "probe or gallery")
    subjects: dict[str, int] = {}
    for r in probes + gallery:
        subjects.setdefault(r.subject, len(subjects))
    psub = np.array([subjects[r.subject] for r in probes], dtype=np.int64)
    gsub = np.array([subjects[r.subject] for r in gallery], dtype=np.int64)
    mated = np.isin(psub, gsub)
    # numeric bands are chosen on the probe side and reused for the gallery side
    probe_columns = build_columns(probes, p_cols, config.bands, intersections=config.intersections)
    bands = dict(config.bands)
    for c in probe_columns:
        if c.bands is not None:
            bands.setdefault(c.name, c.bands)
    gallery_columns = build_columns(gallery, g_cols, bands, intersections=False)
    return AuditDesign(
        probes=probes, gallery=gallery,
        probe_manifests=tuple(probe_manifests), gallery_manifests=tuple(gallery_manifests),
        subjects=tuple(subjects), probe_subject=psub, gallery_subject=gsub, mated=mated,
        probe_columns=probe_columns, gallery_columns=gallery_columns, config=config,
    )
