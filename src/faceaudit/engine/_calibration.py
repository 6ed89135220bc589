"""Each model's calibration: the estimated false-match rate of a raw score, and the scale it gives.

A calibration file (``calibration/<model>.json``, written by ``scripts/calibrate.py``,
SHA-256 pinned in the model registry) holds:

- ``knots``: increasing cosines with the estimated log10 FMR at each, the FMR
  being the share of impostor pairs (photos of two different people) scoring at
  or above that cosine. Knots where at least ``min_false_matches`` impostor pairs
  support the estimate are *measured*; the knots above them follow a fitted
  exponential tail and are *extrapolated*.
- ``impostor_tail``: the highest impostor cosines (so any measured FMR can be
  recounted exactly), ``genuine``: every genuine-pair cosine (for FNMR).

Similarity is then ``80 + 10 * (-log10 FMR - 5)`` at each knot, linear in cosine
between knots, continued linearly from Similarity 30 (FMR 1) down to 0 at
cosine -1, and clipped to 0..100: a piecewise-linear, strictly increasing,
continuous function of the cosine whose value promises the same FMR on every
model (see :mod:`faceaudit.engine._riskscale`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from faceaudit._errors import ModelIntegrityError
from faceaudit._stats import wilson_interval
from faceaudit.engine._riskscale import (
    ANCHOR_FMR,
    ANCHOR_SIMILARITY,
    POINTS_PER_DECADE,
    promised_fmr,
)

SCALE_NAME = "fmr1"
"""Name of this scale definition (Similarity = 80 + 10 * (-log10 FMR - 5)); part of every scale version."""


def similarity_of_log10_fmr(log10_fmr: np.ndarray) -> np.ndarray:
    """Similarity of an FMR given as log10 (array): 80 + 10 * (-log10 FMR - 5)."""
    return ANCHOR_SIMILARITY + POINTS_PER_DECADE * (-np.asarray(log10_fmr, np.float64) + math.log10(ANCHOR_FMR))


@dataclass(frozen=True)
class RateAt:
    """An error rate at one Similarity threshold: errors / trials with a 95% Wilson interval.

    ``measured`` is False where the figure is an extrapolation (fitted tail), in
    which case ``errors`` is the count observed on the calibration pairs (usually
    fewer than the rate needs to be supported) and ``rate`` the model's estimate.
    """

    errors: int
    trials: int
    rate: float
    ci95: Tuple[float, float]
    measured: bool = True

    def to_json(self) -> dict:
        return {"errors": self.errors, "trials": self.trials, "rate": self.rate,
                "ci95": list(self.ci95), "measured": self.measured}


@dataclass(frozen=True)
class SimilarityScale:
    """Similarity 0-100 (higher is more alike) of one model: cosine -> estimated FMR -> Similarity.

    Built from a calibration's knots (cosine, Similarity), both strictly
    increasing; linear interpolation between them. ``version`` names the scale
    (scale definition, model, and a hash of the knots), so every stored or
    logged Similarity can be traced to the mapping that produced it.
    """

    cosines: Tuple[float, ...]
    similarities: Tuple[float, ...]
    version: str
    measured_up_to: float
    """Highest Similarity whose FMR is measured; above it the FMR is extrapolated."""
    # the knots as arrays, made once: np.interp would otherwise convert the tuples on every call
    _c: np.ndarray = field(init=False, repr=False, compare=False)
    _s: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c = np.asarray(self.cosines, np.float64)
        s = np.asarray(self.similarities, np.float64)
        if len(c) < 2 or len(c) != len(s) or np.any(np.diff(c) <= 0) or np.any(np.diff(s) <= 0):
            raise ModelIntegrityError("a similarity scale needs strictly increasing knots")
        c.setflags(write=False)
        s.setflags(write=False)
        object.__setattr__(self, "_c", c)
        object.__setattr__(self, "_s", s)

    def to_similarity(self, cosine: float) -> float:
        """Similarity (0-100) of one cosine."""
        return float(np.clip(np.interp(float(cosine), self._c, self._s), 0.0, 100.0))

    def to_similarity_array(self, cosines: np.ndarray) -> np.ndarray:
        """Similarity (0-100, float64) of an array of cosines; same arithmetic as :meth:`to_similarity`."""
        return np.clip(np.interp(np.asarray(cosines, np.float64), self._c, self._s), 0.0, 100.0)

    def to_cosine(self, similarity: float) -> float:
        """The cosine at which a Similarity threshold sits (inverse of :meth:`to_similarity`)."""
        return float(np.interp(float(similarity), self._s, self._c))

    def is_extrapolated(self, similarity: float) -> bool:
        """True where this model's FMR at ``similarity`` comes from the fitted tail, not from counts."""
        return float(similarity) > self.measured_up_to + 1e-9

    @property
    def formula(self) -> str:
        return (
            "Similarity = 80 + 10 * (-log10 FMR - 5), clipped to 0-100, FMR being this model's "
            "estimated false-match rate at the score (80 = 1e-5, 90 = 1e-6, 99 = 1.26e-7); "
            f"measured up to Similarity {self.measured_up_to:.1f}, extrapolated beyond "
            f"(scale {self.version})"
        )


@dataclass(frozen=True)
class Calibration:
    """A model's shipped calibration: its scale and the scores behind it."""

    model: str
    face_model_version: str
    scale: SimilarityScale
    impostor_pairs: int
    impostor_tail: Tuple[float, ...]  # the highest impostor cosines, descending
    genuine: Tuple[float, ...]  # every genuine-pair cosine
    raw: dict

    def fmr(self, similarity: float) -> RateAt:
        """False-match rate at a Similarity threshold: impostor pairs >= it / impostor pairs.

        Counted exactly from the shipped impostor tail where that tail reaches
        the threshold and at least ten false matches support it; otherwise the
        estimate of the fitted tail (``measured=False``) with the observed count.
        """
        cos = self.scale.to_cosine(similarity)
        tail = np.asarray(self.impostor_tail)
        errors = int(np.count_nonzero(tail >= cos))
        n = self.impostor_pairs
        lo, hi = wilson_interval(errors, n)
        if not len(tail) or cos < tail[-1]:  # below the shipped tail: the knots' estimate, not a recount
            rate = promised_fmr(similarity)
            return RateAt(int(round(rate * n)), n, rate, wilson_interval(int(round(rate * n)), n))
        if self.scale.is_extrapolated(similarity):
            return RateAt(errors, n, promised_fmr(similarity), (lo, hi), measured=False)
        return RateAt(errors, n, errors / n if n else 0.0, (lo, hi), measured=True)

    def fnmr(self, similarity: float) -> RateAt:
        """False non-match rate at a Similarity threshold: genuine pairs below it / genuine pairs."""
        cos = self.scale.to_cosine(similarity)
        g = np.asarray(self.genuine)
        errors = int(np.count_nonzero(g < cos))
        lo, hi = wilson_interval(errors, len(g))
        return RateAt(errors, len(g), errors / len(g) if len(g) else 0.0, (lo, hi))


def parse_calibration(text: str, *, expected_sha256: Optional[str], source: str) -> Calibration:
    """Parse and check a calibration file's text (hash, knots)."""
    actual = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelIntegrityError(
            f"calibration file {source} fails its hash check: SHA-256 {actual}, "
            f"expected {expected_sha256} (rebuild it with `make calibrate`)"
        )
    try:
        raw = json.loads(text)
        knots = raw["scale"]["knots"]
        cosines = tuple(float(k["cosine"]) for k in knots)
        sims = tuple(float(k["similarity"]) for k in knots)
        scale = SimilarityScale(
            cosines=cosines, similarities=sims, version=str(raw["scale"]["version"]),
            measured_up_to=float(raw["scale"]["measured_up_to_similarity"]),
        )
        return Calibration(
            model=str(raw["model"]), face_model_version=str(raw["face_model_version"]),
            scale=scale, impostor_pairs=int(raw["data"]["impostor_pairs"]),
            impostor_tail=tuple(float(x) for x in raw["impostor_tail"]["cosines"]),
            genuine=tuple(float(x) for x in raw["genuine"]["cosines"]), raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelIntegrityError(f"calibration file {source} is malformed: {exc}") from exc


def scale_version(model: str, cosines: Sequence[float], similarities: Sequence[float]) -> str:
    """``fmr1-<model>-<first 10 hex of SHA-256 of the knots>``: changes whenever the mapping does."""
    blob = json.dumps([[round(c, 6), round(s, 4)] for c, s in zip(cosines, similarities)])
    return f"{SCALE_NAME}-{model}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"
