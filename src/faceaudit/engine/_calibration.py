"""Each model's calibration: the estimated false-match rate of a raw score, and the scale it gives.

A calibration file (``calibration/<model>.json``, written by ``scripts/calibrate.py``,
SHA-256 pinned in the model registry) holds:

- ``knots``: increasing cosines with the one-sided 95% upper bound of the FMR
  at each, the FMR being the share of impostor pairs (photos of two different
  people) scoring at or above that cosine. Knots where at least
  ``min_false_matches`` impostor pairs support the count are *measured* (exact
  Clopper-Pearson bound of the count); the knots above them follow the upper band
  of a fitted exponential tail and are *extrapolated*.
- ``top``: above the knot of Similarity 99 the scale keeps rising toward 100
  without reaching it, so stronger matches still rank higher.
- ``impostor_tail``: the highest impostor cosines (so any measured FMR can be
  recounted exactly), ``genuine``: every genuine-pair cosine (for FNMR).
- ``quality_bands``: FNMR and measured FMR at Similarity 80 / 90 / 99 with probes
  degraded as doorbell and CCTV cameras take them, per quality band of the probe
  (:data:`faceaudit.engine.QUALITY_BANDS`, by eye distance), and the band below
  which nothing was measured; and ``probe_bands``: the same per band on both axes, eye
  distance and the face's sensor noise (:data:`faceaudit.engine.PROBE_BANDS`, e.g.
  "tiny-noisy"), measured on the face each degraded probe was searched with. These are
  statements about the model at each quality; the scale (the promise) stays one, built
  from the clean pairs only.

Similarity is then ``80 + 10 * (-log10 FMR_bound - 5)`` at each knot, linear in
cosine between knots, continued linearly from Similarity 30 (FMR 1) down to 0 at
cosine -1, and above the last knot ``S + (100 - S) * (1 - exp(-(c - c_top) / w))``:
a strictly increasing, continuous function of the cosine, below 100 everywhere,
whose value promises the same FMR on every model (see
:mod:`faceaudit.engine._riskscale`), with the margin of a 95% bound on the
calibration data.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from faceaudit._errors import InvalidParameterError, ModelIntegrityError
from faceaudit._stats import wilson_interval
from faceaudit.engine._quality import PROBE_BANDS, QUALITY_BANDS, ProbeBand, QualityBand
from faceaudit.engine._riskscale import (
    ANCHOR_FMR,
    ANCHOR_SIMILARITY,
    POINTS_PER_DECADE,
    promised_fmr,
)

BOUND_CONFIDENCE = 0.95
"""Confidence of the FMR upper bounds the knots are built from (one-sided)."""

SCALE_NAME = "fmr1"
"""Name of this scale definition (Similarity = 80 + 10 * (-log10 FMR - 5)); part of every scale version."""


def similarity_of_log10_fmr(log10_fmr: np.ndarray) -> np.ndarray:
    """Similarity of an FMR given as log10 (array): 80 + 10 * (-log10 FMR - 5)."""
    return ANCHOR_SIMILARITY + POINTS_PER_DECADE * (-np.asarray(log10_fmr, np.float64) + math.log10(ANCHOR_FMR))


def fmr_upper_bound(errors: int, trials: int, confidence: float = BOUND_CONFIDENCE) -> float:
    """Exact (Clopper-Pearson) one-sided upper confidence bound of a rate of ``errors`` in ``trials``.

    The largest rate p for which seeing ``errors`` or fewer in ``trials`` still has
    probability >= 1 - confidence: the ``confidence`` quantile of Beta(errors + 1,
    trials - errors); 1.0 when every trial is an error.
    """
    from scipy.stats import beta

    e, n = int(errors), int(trials)
    if n <= 0 or e < 0 or e > n:
        raise ValueError(f"need 0 <= errors <= trials and trials > 0, got {errors}/{trials}")
    if e >= n:
        return 1.0
    return float(beta.ppf(float(confidence), e + 1, n - e))


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
    ci95: tuple[float, float]
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

    ``top_width`` (cosine units): above the last knot (c_top, S_top) the scale
    continues as ``S_top + (100 - S_top) * (1 - exp(-(c - c_top) / top_width))``:
    strictly increasing toward 100 without reaching it, with a slope never steeper
    than the last knot segment's, so it promises at most the FMR the knots' line
    would. None: clipped at the last knot's Similarity (which must then be 100).
    """

    cosines: tuple[float, ...]
    similarities: tuple[float, ...]
    version: str
    measured_up_to: float
    """Highest Similarity whose FMR is measured; above it the FMR is extrapolated."""
    top_width: float | None = None
    # the knots as arrays, made once: np.interp would otherwise convert the tuples on every call
    _c: np.ndarray = field(init=False, repr=False, compare=False)
    _s: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c = np.asarray(self.cosines, np.float64)
        s = np.asarray(self.similarities, np.float64)
        if len(c) < 2 or len(c) != len(s) or np.any(np.diff(c) <= 0) or np.any(np.diff(s) <= 0):
            raise ModelIntegrityError("a similarity scale needs strictly increasing knots")
        w = self.top_width
        if w is not None and (not math.isfinite(w) or w <= 0 or s[-1] >= 100.0):
            raise ModelIntegrityError("a similarity scale's top needs a positive width and a last knot below 100")
        c.setflags(write=False)
        s.setflags(write=False)
        object.__setattr__(self, "_c", c)
        object.__setattr__(self, "_s", s)

    def to_similarity(self, cosine: float) -> float:
        """Similarity (0-100) of one cosine."""
        return float(self.to_similarity_array(np.array([float(cosine)]))[0])

    def to_similarity_array(self, cosines: np.ndarray) -> np.ndarray:
        """Similarity (0-100, float64) of an array of cosines; same arithmetic as :meth:`to_similarity`."""
        x = np.asarray(cosines, np.float64)
        sim = np.interp(x, self._c, self._s)
        if self.top_width is not None:
            c_top, s_top = self._c[-1], self._s[-1]
            above = x > c_top
            if np.any(above):
                rise = -(100.0 - s_top) * np.expm1(-np.maximum(x - c_top, 0.0) / self.top_width)
                sim = np.where(above, s_top + rise, sim)
        return np.clip(sim, 0.0, 100.0)

    def to_cosine(self, similarity: float) -> float:
        """The cosine at which a Similarity threshold sits (inverse of :meth:`to_similarity`).

        With a top that never reaches 100, Similarity 100 sits at a cosine no two
        faces reach (40 widths above the last knot, where the top rounds to 100.0).
        """
        s = float(similarity)
        if self.top_width is None or s <= self._s[-1]:
            return float(np.interp(s, self._s, self._c))
        c_top, s_top = float(self._c[-1]), float(self._s[-1])
        gap = (100.0 - s) / (100.0 - s_top)
        if gap <= math.exp(-40.0):
            return c_top + 40.0 * self.top_width
        return c_top - self.top_width * math.log(gap)

    def is_extrapolated(self, similarity: float) -> bool:
        """True where this model's FMR at ``similarity`` comes from the fitted tail, not from counts."""
        return float(similarity) > self.measured_up_to + 1e-9

    @property
    def formula(self) -> str:
        top = (f"; above {self._s[-1]:g} rising toward 100 without reaching it (stronger matches rank higher)"
               if self.top_width is not None else "")
        return (
            "Similarity = 80 + 10 * (-log10 FMR - 5), clipped to 0-100, FMR being the one-sided 95% "
            "upper bound of this model's false-match rate at the score (80 = 1e-5, 90 = 1e-6, "
            f"99 = 1.26e-7); measured up to Similarity {self.measured_up_to:.1f}, extrapolated beyond"
            f"{top} (scale {self.version})"
        )


BAND_THRESHOLDS = (80.0, 90.0, 99.0)
"""The Similarity thresholds at which the calibration measures each quality band."""


@dataclass(frozen=True)
class BandRateAt:
    """FNMR and measured FMR of probes of one quality band at one Similarity threshold.

    ``fnmr``: genuine pairs (a degraded 2018 portrait against the same member's clean 2014
    portrait) scoring below the threshold / genuine pairs, among probes in which a face was
    found. ``fmr``: impostor pairs (a degraded probe against a clean photo of a stranger)
    scoring at or above it / impostor pairs, a count, never extrapolated. ``fmr_bound95``:
    its one-sided 95% Clopper-Pearson upper bound (a rate, 0-1).
    """

    similarity: float
    fnmr: RateAt
    fmr: RateAt
    fmr_bound95: float


@dataclass(frozen=True)
class BandRates:
    """What the model did on probes of one quality band (by eye distance), from the calibration.

    ``low_px`` (inclusive) and ``high_px`` (exclusive; None: no upper end) are the band's eye
    distances in pixels. ``probes``: probe photos (over every probe condition measured) whose
    eyes fall in the band; ``failed_to_enrol``: those of them in which no face was found (not
    in the rates); ``conditions``: (condition name, probes of the band under it), the mix the
    pooled rates come from. ``rates``: one :class:`BandRateAt` per threshold of
    :data:`BAND_THRESHOLDS`, ascending. ``by_condition``: the same figures for the band's probes
    under each condition alone (their ``condition`` set), since one band pools conditions as
    different as a doorbell by day and by night; ``condition`` is None on the pooled figures.
    """

    band: str
    low_px: float
    high_px: float | None
    probes: int
    failed_to_enrol: int
    genuine_pairs: int
    impostor_pairs: int
    conditions: tuple[tuple[str, int], ...]
    rates: tuple[BandRateAt, ...]
    condition: str | None = None
    by_condition: tuple[BandRates, ...] = ()
    noisy: bool | None = None
    """For a band on both axes (``probe_bands``): True for its noisy half, False for the clear
    one; None for a band by eye distance alone."""

    def at(self, similarity: float) -> BandRateAt:
        """The rates at one measured threshold (80, 90 or 99); InvalidParameterError otherwise."""
        for r in self.rates:
            if abs(r.similarity - float(similarity)) < 1e-9:
                return r
        raise InvalidParameterError(
            f"band {self.band!r} was measured at Similarity {', '.join(f'{r.similarity:g}' for r in self.rates)}, "
            f"not {similarity!r}")

    def fnmr(self, similarity: float) -> RateAt:
        """Share of mates missed (genuine pairs below ``similarity``) at a measured threshold."""
        return self.at(similarity).fnmr

    def fmr(self, similarity: float) -> RateAt:
        """Measured false-match rate (impostor pairs at or above ``similarity``) at a measured threshold."""
        return self.at(similarity).fmr


def _rate(d: dict) -> RateAt:
    lo, hi = d["ci95"]
    return RateAt(int(d["errors"]), int(d["trials"]), float(d["rate"]), (float(lo), float(hi)))


def _parse_bands(raw: dict, key: str = "bands") -> tuple[BandRates, ...]:
    """The per-band figures of a calibration file (none in a file written before they existed):
    by eye distance (``key`` "bands") or on both axes ("probe_bands")."""
    section = raw.get("quality_bands")
    if section and key == "probe_bands":
        section = section.get("probe_bands")
    if not section:
        return ()

    def rates(b: dict) -> tuple[BandRateAt, ...]:
        return tuple(sorted(
            (BandRateAt(float(t["similarity"]), _rate(t["fnmr"]), _rate(t["fmr"]), float(t["fmr_bound95"]))
             for t in b["thresholds"]), key=lambda r: r.similarity))

    def one(b: dict, band: dict, condition: str | None, parts: tuple[BandRates, ...]) -> BandRates:
        return BandRates(
            band=str(band["band"]), low_px=float(band["low_px"]),
            high_px=None if band["high_px"] is None else float(band["high_px"]),
            probes=int(b["probes"]), failed_to_enrol=int(b["failed_to_enrol"]),
            genuine_pairs=int(b["genuine_pairs"]), impostor_pairs=int(b["impostor_pairs"]),
            conditions=((condition, int(b["probes"])),) if condition is not None else tuple(
                (p.condition or "", p.probes) for p in parts),
            rates=rates(b), condition=condition, by_condition=parts,
            noisy=None if band.get("noisy") is None else bool(band["noisy"]),
        )

    out = []
    for b in section["bands"]:
        parts = tuple(one(c, b, str(c["condition"]), ()) for c in b["by_condition"])
        out.append(one(b, b, None, parts))
    return tuple(out)


@dataclass(frozen=True)
class Calibration:
    """A model's shipped calibration: its scale, the scores behind it, and the rates per probe quality."""

    model: str
    face_model_version: str
    scale: SimilarityScale
    impostor_pairs: int
    impostor_tail: tuple[float, ...]  # the highest impostor cosines, descending
    genuine: tuple[float, ...]  # every genuine-pair cosine
    raw: dict
    bands: tuple[BandRates, ...] = ()
    """The measured quality bands by eye distance, best first (empty for a calibration without them)."""
    probe_bands: tuple[BandRates, ...] = ()
    """The measured bands on both axes, eye distance and noise (:data:`PROBE_BANDS` order; empty
    for a calibration without them)."""

    def by_band(self, band: QualityBand | ProbeBand | str) -> BandRates | None:
        """The rates measured on probes of ``band`` (a :class:`QualityBand`, a :class:`ProbeBand`
        or its name: "tiny" by eye distance alone, "tiny-noisy" on both axes); None where nothing
        was measured at that quality. InvalidParameterError for a name that is no band."""
        name = band.name if isinstance(band, (QualityBand, ProbeBand)) else band
        if name in {b.name for b in QUALITY_BANDS}:
            return next((b for b in self.bands if b.band == name), None)
        if name in {b.name for b in PROBE_BANDS}:
            return next((b for b in self.probe_bands if b.band == name), None)
        raise InvalidParameterError(
            f"unknown quality band {name!r} (bands: "
            f"{', '.join(dict.fromkeys([*(b.name for b in QUALITY_BANDS), *(b.name for b in PROBE_BANDS)]))})")

    @property
    def measured_down_to(self) -> QualityBand | None:
        """The lowest quality band with measured rates: below it nothing was measured (None: no
        band was measured)."""
        names = {b.band for b in self.bands if b.genuine_pairs or b.impostor_pairs}
        measured = [b for b in QUALITY_BANDS if b.name in names]
        return measured[-1] if measured else None

    def fmr(self, similarity: float) -> RateAt:
        """False-match rate at a Similarity threshold: impostor pairs >= it / impostor pairs.

        Counted exactly from the shipped impostor tail where that tail reaches
        the threshold and at least ten false matches support it; otherwise the
        estimate of the fitted tail (``measured=False``) with the observed count.
        The promise (:func:`promised_fmr`) is at least :meth:`fmr_bound`, which is
        above this estimate.
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
            fitted = self._tail_fmr(cos, upper=False)
            rate = fitted if fitted is not None else promised_fmr(similarity)
            return RateAt(errors, n, rate, (lo, hi), measured=False)
        return RateAt(errors, n, errors / n if n else 0.0, (lo, hi), measured=True)

    def fmr_bound(self, similarity: float) -> float:
        """One-sided 95% upper bound of the FMR at a Similarity threshold (what the scale is built from).

        Measured range: the exact Clopper-Pearson bound of the impostor pairs at or
        above the threshold's cosine (or, above the tail's threshold u, the fitted
        tail's upper band where that is higher). Above it: the band. Below the
        shipped impostor tail (Similarity under ~57): the promise itself.
        """
        cos = self.scale.to_cosine(similarity)
        tail = np.asarray(self.impostor_tail)
        if not len(tail) or cos < tail[-1]:
            return promised_fmr(similarity)
        band = self._tail_fmr(cos, upper=True)
        if self.scale.is_extrapolated(similarity) and band is not None:
            return band
        counted = fmr_upper_bound(int(np.count_nonzero(tail >= cos)), self.impostor_pairs)
        u = self.raw.get("scale", {}).get("tail_fit", {}).get("u")
        return max(counted, band) if band is not None and u is not None and cos >= float(u) else counted

    def _tail_fmr(self, cosine: float, upper: bool) -> float | None:
        """The fitted exponential tail's FMR at ``cosine`` (``upper``: its 95% upper band); None
        for a calibration file without the fit's band."""
        fit = self.raw.get("scale", {}).get("tail_fit", {})
        band = fit.get("upper_band") if upper else fit
        try:
            k_over_n = float(band["k_over_n"]) if upper else float(fit["k"]) / self.impostor_pairs
            return k_over_n * math.exp(-(float(cosine) - float(fit["u"])) / float(band["scale"]))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

    def fnmr(self, similarity: float) -> RateAt:
        """False non-match rate at a Similarity threshold: genuine pairs below it / genuine pairs."""
        cos = self.scale.to_cosine(similarity)
        g = np.asarray(self.genuine)
        errors = int(np.count_nonzero(g < cos))
        lo, hi = wilson_interval(errors, len(g))
        return RateAt(errors, len(g), errors / len(g) if len(g) else 0.0, (lo, hi))


def parse_calibration(text: str, *, expected_sha256: str | None, source: str) -> Calibration:
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
        top = raw["scale"].get("top")
        scale = SimilarityScale(
            cosines=cosines, similarities=sims, version=str(raw["scale"]["version"]),
            measured_up_to=float(raw["scale"]["measured_up_to_similarity"]),
            top_width=None if top is None else float(top["width"]),
        )
        return Calibration(
            model=str(raw["model"]), face_model_version=str(raw["face_model_version"]),
            scale=scale, impostor_pairs=int(raw["data"]["impostor_pairs"]),
            impostor_tail=tuple(float(x) for x in raw["impostor_tail"]["cosines"]),
            genuine=tuple(float(x) for x in raw["genuine"]["cosines"]), raw=raw,
            bands=_parse_bands(raw), probe_bands=_parse_bands(raw, "probe_bands"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelIntegrityError(f"calibration file {source} is malformed: {exc}") from exc


def scale_version(model: str, cosines: Sequence[float], similarities: Sequence[float],
                  top_width: float | None = None) -> str:
    """``fmr1-<model>-<first 10 hex of SHA-256 of the knots (and the top's width)>``: changes
    whenever the mapping does."""
    pairs = [[round(c, 6), round(s, 4)] for c, s in zip(cosines, similarities, strict=True)]
    blob = json.dumps(pairs if top_width is None else [pairs, round(float(top_width), 6)])
    return f"{SCALE_NAME}-{model}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"
