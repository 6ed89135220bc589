"""The quality of each identification's probe: logged, policed, and explained beside its leads.

Rekognition's responses keep their shape: the probe face's eye distance, sharpness,
brightness and noise go to the search log (``probe_quality``), not to the response. The
collection's policy may ask for a minimum (an eye distance in pixels and/or a quality
band: by eye distance, :data:`faceaudit.engine.QUALITY_BANDS`, or on both axes, eye
distance and noise, :data:`faceaudit.engine.PROBE_BANDS`); a probe below it is refused
before it is searched, or searched and flagged (:class:`LowQualityAction`).

A search by FaceId or UserId has no probe image: its probe is the stored face, whose
eye distance, sharpness and brightness come from its FaceDetail at indexing (its noise
was not kept: its band is by eye distance alone, and it does not meet a "-clear" minimum).

What a band means for the model comes from measured data only: the calibration's
per-band figures when it has them (``Calibration.by_band``, see :func:`band_figures`),
else the page says plainly that this band was not measured.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from faceaudit._errors import InvalidParameterError
from faceaudit.engine import PROBE_BANDS, SIZE_ONLY_BANDS, Quality, probe_band, probe_band_named

log = logging.getLogger(__name__)

BAND_NAMES = (
    *(name for size in SIZE_ONLY_BANDS
      for name in (size.name, *(b.name for b in PROBE_BANDS if b.size.name == size.name))),
    PROBE_BANDS[-1].name,
)
"""Quality band names a policy minimum may name, by size best first: the size band alone ("tiny":
eyes at least 10 px apart, any noise: what it meant before the noise axis), then its clear half
("tiny-clear": and the face's noise under :data:`faceaudit.engine.NOISY_LEVELS`) and its noisy
one ("tiny-noisy": as low as a probe of that size goes, the same minimum as "tiny")."""

BELOW_MEASURED = "below-measured"
"""The band of probes smaller than any condition ever measured."""

MIN_BAND_PAIRS = 20
"""Fewest mated pairs a band on both axes needs for the review sentence to quote its own miss rate;
below, the sentence quotes its eye-distance band (day and night pooled) and says so."""

MAX_MIN_EYE_DISTANCE_PX = 1000.0
"""The largest minimum eye distance a policy may ask for (pixels)."""


class LowQualityAction(str, Enum):  # noqa: UP042 -- StrEnum would change str() of a member (argparse shows it)
    """What a policy does with a probe below its minimum quality."""

    REFUSE = "refuse"
    """The search is not run; it is logged as ``refused`` with the reason."""
    FLAG = "flag"
    """The search runs; its log record and every lead it makes carry the reason as a flag."""

    @classmethod
    def parse(cls, value: Any) -> LowQualityAction:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for action in cls:
                if value.strip().lower() == action.value:
                    return action
        raise InvalidParameterError(
            f"OnLowQuality must be one of {', '.join(a.value for a in cls)}, got {value!r}")


def check_band(name: Any) -> str:
    """A quality band name (one of :data:`BAND_NAMES`), or InvalidParameterError."""
    if isinstance(name, str) and name.strip().lower() in BAND_NAMES:
        return name.strip().lower()
    raise InvalidParameterError(f"MinProbeQuality must be a quality band: one of {', '.join(BAND_NAMES)} "
                                f"(best first), got {name!r}")


def check_min_eye_distance(value: Any) -> float:
    """A minimum eye distance in pixels (above 0, at most :data:`MAX_MIN_EYE_DISTANCE_PX`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_MIN_EYE_DISTANCE_PX:
        raise InvalidParameterError(
            f"MinEyeDistance must be a number of pixels above 0 and at most {MAX_MIN_EYE_DISTANCE_PX:g}, "
            f"got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ProbeQuality:
    """The quality of the face an identification searched with.

    eye_distance_px: pixels between the eye landmarks in the probe image (higher is larger).
    sharpness, brightness: 0-100 (higher is sharper / brighter), as in Rekognition's Quality.
    band: the probe band (:func:`faceaudit.engine.probe_band`), e.g. "tiny-noisy"; by eye
    distance alone ("tiny") where the noise is unknown (a stored face, a record written
    before the noise axis).
    noise: the face's sensor noise in 8-bit gray levels (higher is noisier); None: not measured.
    """

    eye_distance_px: float
    sharpness: float
    brightness: float
    band: str
    noise: float | None = None

    @classmethod
    def of(cls, quality: Quality) -> ProbeQuality:
        eye = float(quality.eye_distance_px)
        noise = None if quality.noise is None else round(float(quality.noise), 2)
        return cls(round(eye, 2), round(float(quality.sharpness), 2), round(float(quality.brightness), 2),
                   probe_band(max(eye, 0.0), None if noise is None else max(noise, 0.0)).name, noise)

    def to_json(self) -> dict:
        return {"eye_distance_px": self.eye_distance_px, "sharpness": self.sharpness,
                "brightness": self.brightness, "band": self.band,
                **({} if self.noise is None else {"noise": self.noise})}

    def to_api(self) -> dict:
        return {"EyeDistancePx": self.eye_distance_px, "Sharpness": self.sharpness,
                "Brightness": self.brightness, "Band": self.band,
                **({} if self.noise is None else {"Noise": self.noise})}

    @classmethod
    def from_json(cls, doc: Any) -> ProbeQuality | None:
        """The quality a log record or lead row holds; None when it holds none (or not this shape)."""
        if not isinstance(doc, Mapping):
            return None
        try:
            noise = doc.get("noise")
            return cls(float(doc["eye_distance_px"]), float(doc["sharpness"]), float(doc["brightness"]),
                       str(doc["band"]), None if noise is None else float(noise))
        except (KeyError, TypeError, ValueError):
            return None

    def text(self) -> str:
        """e.g. "eyes 18 px apart (band tiny-noisy), sharpness 41, brightness 22, noise 7.9"."""
        return (f"eyes {self.eye_distance_px:.0f} px apart (band {self.band}), sharpness {self.sharpness:.0f}, "
                f"brightness {self.brightness:.0f}" + ("" if self.noise is None else f", noise {self.noise:.1f}"))


def _band_of(quality: ProbeQuality):
    """The :class:`faceaudit.engine.ProbeBand` of a probe (its recorded band name, else re-derived)."""
    try:
        return probe_band_named(quality.band)
    except InvalidParameterError:
        return probe_band(max(quality.eye_distance_px, 0.0), quality.noise)


def shortfall(quality: ProbeQuality, min_eye_distance_px: float | None, min_band: str | None) -> str:
    """Why ``quality`` is below a policy's minimum, in plain words ("" when it is not)."""
    reasons = []
    if min_eye_distance_px is not None and quality.eye_distance_px < min_eye_distance_px:
        reasons.append(f"probe eyes {quality.eye_distance_px:.0f} px apart, policy minimum "
                       f"{min_eye_distance_px:g}")
    if min_band is not None and not _band_of(quality).meets(probe_band_named(min_band)):
        noise = "noise not measured" if quality.noise is None else f"noise {quality.noise:.1f} gray levels"
        reasons.append(f"probe quality band {quality.band} (eyes {quality.eye_distance_px:.0f} px apart, "
                       f"{noise}), policy minimum band {min_band}")
    return "; ".join(reasons)


@dataclass(frozen=True)
class BandFigures:
    """One model's measured figures for one quality band at one Similarity threshold.

    fnmr: share of mated searches (same-person pairs) missed with degraded probes in this band
    (0-1, lower is better), errors out of trials; fmr: measured false-match rate there (None if
    the calibration gives none).
    """

    band: str
    threshold: float
    fnmr: float
    errors: int
    trials: int
    fmr: float | None
    condition: str


def band_figures(model_version: str, band: str, threshold: float) -> BandFigures | None:
    """The calibration's measured figures for ``band`` at the Similarity ``threshold`` nearest
    at or below the search's (None when the calibration has none for this band).

    Read through :meth:`faceaudit.engine._calibration.Calibration.by_band` (``make calibrate``
    writes them, issue 19 item 3): pooled over the probe conditions measured in the band;
    ``condition`` names each with its own miss rate there, since a band pools conditions as
    different as a doorbell by day and by night.
    """
    from faceaudit._errors import FaceAuditError
    from faceaudit.engine import get_model

    if not model_version:
        return None
    try:
        rates = get_model(model_version).calibrated().by_band(band)
    except FaceAuditError:
        return None
    usable = [r for r in (rates.rates if rates is not None else ()) if r.similarity <= threshold + 1e-9]
    if rates is None or not usable:
        return None
    at = max(usable, key=lambda r: r.similarity)
    parts = [(p.condition, p.at(at.similarity).fnmr) for p in rates.by_condition]
    mix = ", ".join(f"{name} {100 * f.rate:.0f}% ({f.errors}/{f.trials})" for name, f in parts if f.trials)
    condition = f"by condition: {mix}" if len(parts) > 1 else (parts[0][0] or "") if parts else ""
    return BandFigures(band, at.similarity, at.fnmr.rate, at.fnmr.errors, at.fnmr.trials, at.fmr.rate,
                       condition or "")


def quality_sentence(quality: ProbeQuality, model_version: str, threshold: float) -> str:
    """What the probe's quality means for this model, from measured data only, in one or two sentences.

    The figures are the calibration's for the probe's band on both axes (e.g. "tiny-noisy"); where
    that half was not measured, or the probe's noise is unknown, those of its size band, saying so.
    """
    eyes = f"eyes {quality.eye_distance_px:.0f} px apart"
    if quality.noise is not None:
        eyes += f", noise {quality.noise:.1f} gray levels"
    if quality.band == BELOW_MEASURED:
        return (f"WARNING: {eyes}, below the measured range (band {BELOW_MEASURED}): no error rate was ever "
                "measured for probes this small; a candidate here may well be a look-alike.")
    band = _band_of(quality)
    figures = band_figures(model_version, band.name, threshold)
    pooled = ""
    if band.noisy is not None and (figures is None or figures.trials < MIN_BAND_PAIRS):
        few = "was not measured" if figures is None else f"was measured on {figures.trials} mated pairs only"
        figures = band_figures(model_version, band.size.name, threshold)
        pooled = f"; {band.name} itself {few}: figures of band {band.size.name}, day and night pooled"
    elif band.noisy is None:
        pooled = "; noise not measured: figures of the eye-distance band, day and night pooled"
    if figures is None:
        return (f"{eyes} (band {quality.band}): this model's error rates were not measured for this quality "
                "band; its published figures come from portraits and may not hold here.")
    where = f" ({figures.condition}{pooled})" if figures.condition or pooled else ""
    text = (f"{eyes} (band {quality.band}): on degraded portraits at this quality{where.replace('(; ', '(')} "
            f"the model missed {100 * figures.fnmr:.0f}% of mates at {figures.threshold:g} "
            f"({figures.errors}/{figures.trials})")
    if band.size.name != SIZE_ONLY_BANDS[0].name or band.noisy:
        text += "; a candidate here is more likely a look-alike than at portrait quality"
    return text + "."
