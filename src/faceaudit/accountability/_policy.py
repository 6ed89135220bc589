"""Threshold policies per collection, set by admin keys only."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

from faceaudit._errors import AccessDeniedError, InvalidParameterError, PolicyViolationError
from faceaudit.accountability._probe_quality import (
    LowQualityAction,
    ProbeQuality,
    check_band,
    check_min_eye_distance,
    shortfall,
)
from faceaudit.accountability._store import Store
from faceaudit.engine import one_in, promised_fmr, similarity_for_fmr

MIN_POLICY_FMR = 1e-7
"""The strictest false-match rate a policy can ask for (Similarity 100 on the scale)."""


DEFAULT_POLICY_ID = "*"
"""The policies-table key of the deployment-wide default (no collection id can be ``*``)."""


@dataclass(frozen=True)
class ThresholdPolicy:
    """What a collection's searches must respect.

    min_face_match_threshold: lowest allowed FaceMatchThreshold / similarity threshold (0-100),
        e.g. 99 for a collection used by law enforcement (Amazon's own advice).
    max_faces: most candidates one search may return.
    require_case_reference: searches must carry a case reference (and a purpose).
    purpose: what the collection is for (e.g. "law-enforcement"), shown in reports.
    max_false_match_rate: the riskiest false-match rate a search may run at (e.g. 1e-6); on
        faceaudit's Similarity scale it is the threshold ``similarity_for_fmr(rate)`` (1e-6 -> 90)
        on every model. When both this and ``min_face_match_threshold`` are set, the stricter wins.
    min_eye_distance_px: the smallest probe face a search may use: pixels between its eyes.
    min_probe_quality: the lowest probe quality band a search may use (a name of
        :data:`faceaudit.accountability._probe_quality.BAND_NAMES`, e.g. "small", or "small-clear"
        for eyes at least 20 px apart and a face without the sensor noise of the night).
    on_low_quality: what happens to a probe below either minimum: refused, or searched and flagged.
    """

    collection_id: str
    min_face_match_threshold: float | None = None
    max_faces: int | None = None
    require_case_reference: bool = False
    purpose: str = ""
    set_by: str = ""
    set_at: float = 0.0
    max_false_match_rate: float | None = None
    source: str = "collection"  # "collection" (its own), "default" (the deployment's) or "none"
    min_eye_distance_px: float | None = None
    min_probe_quality: str | None = None
    on_low_quality: LowQualityAction = LowQualityAction.REFUSE

    @property
    def has_probe_minimum(self) -> bool:
        return self.min_eye_distance_px is not None or self.min_probe_quality is not None

    def probe_shortfall(self, quality: ProbeQuality) -> str:
        """Why ``quality`` is below this policy's minimum probe quality ("" when it is not)."""
        return shortfall(quality, self.min_eye_distance_px, self.min_probe_quality)

    @property
    def effective_min_threshold(self) -> float | None:
        """The lowest Similarity threshold a search may use (0-100), from both rules; None if neither."""
        bounds = [b for b in (
            self.min_face_match_threshold,
            None if self.max_false_match_rate is None
            else round(similarity_for_fmr(self.max_false_match_rate), 4),
        ) if b is not None]
        return max(bounds) if bounds else None

    def to_json(self) -> dict[str, Any]:
        eff = self.effective_min_threshold
        return {
            "CollectionId": self.collection_id,
            "MinFaceMatchThreshold": self.min_face_match_threshold,
            "MaxFalseMatchRate": self.max_false_match_rate,
            "EffectiveMinFaceMatchThreshold": eff,
            "PromisedFalseMatchRate": None if eff is None else promised_fmr(eff),
            "MaxFaces": self.max_faces,
            "RequireCaseReference": self.require_case_reference,
            "Purpose": self.purpose,
            "SetBy": self.set_by,
            "SetAt": self.set_at,
            "Source": self.source,
            "MinEyeDistance": self.min_eye_distance_px,
            "MinProbeQuality": self.min_probe_quality,
            "OnLowQuality": self.on_low_quality.value,
        }

    def violations(self, threshold: float, max_faces: int | None,
                   case_reference: str | None) -> list[str]:
        """Every rule of this policy that a search request breaks (empty when it complies)."""
        broken = []
        eff = self.effective_min_threshold
        if eff is not None and threshold < eff:
            why = (f"a false-match rate of at most {self.max_false_match_rate:.3g}"
                   if self.max_false_match_rate is not None
                   and eff == round(similarity_for_fmr(self.max_false_match_rate), 4)
                   else "it")
            broken.append(
                f"a match threshold of at least {eff:g} (false-match rate {promised_fmr(eff):.2g}; "
                f"the policy requires {why}); the request used {threshold:g} "
                f"(false-match rate {promised_fmr(threshold):.2g})"
            )
        if self.max_faces is not None and max_faces is not None and max_faces > self.max_faces:
            broken.append(f"at most {self.max_faces} candidates per search; the request asked for {max_faces}")
        if self.require_case_reference and not (case_reference or "").strip():
            broken.append("a case reference for every search (header x-faceaudit-case-reference, "
                          "or --case-reference on the command line)")
        return broken

    def check(self, threshold: float, max_faces: int | None, case_reference: str | None) -> None:
        """Raise :class:`PolicyViolationError` naming every rule the request breaks, at once."""
        broken = self.violations(threshold, max_faces, case_reference)
        if broken:
            lead = f"collection {self.collection_id!r} requires "
            if len(broken) == 1:
                raise PolicyViolationError(lead + broken[0])
            raise PolicyViolationError(
                lead + "; ".join(f"({i}) {b}" for i, b in enumerate(broken, 1))
                + f" [{len(broken)} rules broken]"
            )


@dataclass(frozen=True)
class PolicyMeaning:
    """What a policy's threshold means for one collection: risk per comparison and per search.

    threshold: the effective minimum Similarity (0-100, higher is more alike).
    promised_fmr: the false-match rate that Similarity promises on every model.
    fnmr / fnmr_errors / fnmr_trials / fnmr_ci95: the collection model's false non-match rate
        there, measured on its calibration's genuine pairs (share of same-person pairs missed).
    gallery_size: faces in the collection; expected_false_candidates: gallery_size x promised_fmr,
        the expected number of strangers returned per search of someone not in the collection.
    warnings: plain-words warnings (e.g. the model misses most people at this threshold).
    """

    threshold: float
    promised_fmr: float
    fmr_extrapolated: bool
    model: str
    fnmr: float
    fnmr_errors: int
    fnmr_trials: int
    fnmr_ci95: tuple[float, float]
    gallery_size: int
    expected_false_candidates: float
    warnings: tuple[str, ...]

    def lines(self) -> list[str]:
        """Human-readable explanation, one sentence a line."""
        out = [
            f"threshold {self.threshold:g} promises a false-match rate of {self.promised_fmr:.2g} per "
            f"comparison ({one_in(self.threshold)})"
            + (" - extrapolated for this model beyond its calibration data" if self.fmr_extrapolated else ""),
            f"model {self.model} misses {100 * self.fnmr:.1f}% of same-person pairs at this threshold "
            f"({self.fnmr_errors}/{self.fnmr_trials}, 95% interval {100 * self.fnmr_ci95[0]:.1f}-"
            f"{100 * self.fnmr_ci95[1]:.1f}%, official portraits: optimistic for other photos)",
            f"expected false candidates per search of someone not in the collection: "
            f"{self.expected_false_candidates:.3g} with its {self.gallery_size:,} faces "
            f"(1,000 faces: {1000 * self.promised_fmr:.2g}; 25,000: {25000 * self.promised_fmr:.2g}; "
            f"1,000,000: {1e6 * self.promised_fmr:.2g})",
        ]
        return out + [f"WARNING: {w}" for w in self.warnings]


def policy_meaning(threshold: float, model: str, gallery_size: int) -> PolicyMeaning:
    """What Similarity ``threshold`` means for a collection of ``gallery_size`` faces of ``model``."""
    from faceaudit.engine import get_model

    cal = get_model(model).calibrated()
    fnmr = cal.fnmr(threshold)
    fmr = promised_fmr(threshold)
    warnings = []
    if fnmr.rate > 0.5:
        warnings.append(
            f"at this threshold this model misses most people ({100 * fnmr.rate:.0f}% of same-person "
            "pairs on official portraits): a search will rarely find anyone"
        )
    expected = gallery_size * fmr
    if expected >= 1:
        warnings.append(
            f"a search of someone not in this collection is expected to return {expected:.2g} "
            "strangers at this threshold"
        )
    return PolicyMeaning(
        threshold=float(threshold), promised_fmr=fmr,
        fmr_extrapolated=cal.scale.is_extrapolated(threshold), model=cal.model,
        fnmr=fnmr.rate, fnmr_errors=fnmr.errors, fnmr_trials=fnmr.trials, fnmr_ci95=fnmr.ci95,
        gallery_size=int(gallery_size), expected_false_candidates=expected, warnings=tuple(warnings),
    )


_POLICY_COLUMNS = ("collection_id", "min_face_match_threshold", "max_faces", "require_case_reference",
                   "purpose", "set_by", "set_at", "max_false_match_rate", "min_eye_distance_px",
                   "min_probe_quality", "on_low_quality")


class PolicyStore:
    """Reads and writes policies; only the admin role may write."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, collection_id: str) -> ThresholdPolicy:
        """The collection's own policy, else the deployment's default (``source`` says which)."""
        conn = self._store.read()
        row = conn.execute("SELECT * FROM policies WHERE collection_id = ?", (collection_id,)).fetchone()
        source = "default" if collection_id == DEFAULT_POLICY_ID else "collection"
        if row is None and collection_id != DEFAULT_POLICY_ID:
            row = conn.execute("SELECT * FROM policies WHERE collection_id = ?", (DEFAULT_POLICY_ID,)).fetchone()
            source = "default"
        if row is None:
            return ThresholdPolicy(collection_id=collection_id, source="none")
        return ThresholdPolicy(
            source=source,
            collection_id=collection_id,
            min_face_match_threshold=row["min_face_match_threshold"],
            max_faces=row["max_faces"],
            require_case_reference=bool(row["require_case_reference"]),
            purpose=row["purpose"],
            set_by=row["set_by"],
            set_at=row["set_at"],
            max_false_match_rate=row["max_false_match_rate"],
            min_eye_distance_px=row["min_eye_distance_px"],
            min_probe_quality=row["min_probe_quality"],
            on_low_quality=LowQualityAction.parse(row["on_low_quality"] or "refuse"),
        )

    def set(self, policy: ThresholdPolicy, *, role: str, actor: str) -> ThresholdPolicy:
        if role != "admin":
            raise AccessDeniedError("only an admin key may change a collection's policy")
        if policy.min_face_match_threshold is not None and not 0 <= policy.min_face_match_threshold <= 100:
            raise InvalidParameterError("MinFaceMatchThreshold must be from 0 to 100")
        if policy.max_faces is not None and not 1 <= policy.max_faces <= 4096:
            raise InvalidParameterError("MaxFaces must be from 1 to 4096")
        rate = policy.max_false_match_rate
        if rate is not None and not (isinstance(rate, (int, float)) and math.isfinite(rate)
                                     and MIN_POLICY_FMR <= rate <= 1):
            raise InvalidParameterError(
                f"MaxFalseMatchRate must be from {MIN_POLICY_FMR:g} to 1 (e.g. 1e-6), got {rate!r}")
        stamped = ThresholdPolicy(
            policy.collection_id, policy.min_face_match_threshold, policy.max_faces,
            policy.require_case_reference, policy.purpose, actor, round(time.time(), 3),
            None if rate is None else float(rate),
            source="default" if policy.collection_id == DEFAULT_POLICY_ID else "collection",
        )
        stamped = replace(
            stamped,
            min_eye_distance_px=None if policy.min_eye_distance_px is None
            else check_min_eye_distance(policy.min_eye_distance_px),
            min_probe_quality=None if policy.min_probe_quality is None else check_band(policy.min_probe_quality),
            on_low_quality=LowQualityAction.parse(policy.on_low_quality),
        )
        with self._store.write() as conn:
            conn.execute(
                self._store.dialect.upsert("policies", _POLICY_COLUMNS, ("collection_id",)),
                (stamped.collection_id, stamped.min_face_match_threshold, stamped.max_faces,
                 int(stamped.require_case_reference), stamped.purpose, actor, stamped.set_at,
                 stamped.max_false_match_rate, stamped.min_eye_distance_px, stamped.min_probe_quality,
                 stamped.on_low_quality.value),
            )
        return stamped
