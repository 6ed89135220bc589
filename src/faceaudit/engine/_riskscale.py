"""The model-independent meaning of a Similarity: the false-match rate it promises.

Similarity (0-100, higher is more alike) is defined from the false-match rate
(FMR: the share of pairs of different people whose score is at or above the
threshold) that the answering model's calibration estimates::

    Similarity = 80 + 10 * (-log10(FMR) - 5)      clipped to 0..100

so Similarity 80 promises FMR 1e-5 (1 false match in 100,000 comparisons of
strangers), 90 promises 1e-6 and 99 promises 10**-6.9 (about 1.26e-7), on every
model. Below Similarity 30 (FMR 1) the scale continues linearly to 0 and
promises nothing more than "any stranger may score this high".

These two functions are the promise; a model's calibration
(:class:`faceaudit.engine.SimilarityScale`) is how each model keeps it. The
promise holds on the calibration photos; on other photos and other people the
FMR differs, which is what ``faceaudit audit`` measures.
"""

from __future__ import annotations

import math

ANCHOR_SIMILARITY = 80.0
"""Rekognition's default FaceMatchThreshold; on this scale it promises ANCHOR_FMR."""
ANCHOR_FMR = 1e-5
POINTS_PER_DECADE = 10.0
FMR_ONE_SIMILARITY = ANCHOR_SIMILARITY + POINTS_PER_DECADE * math.log10(ANCHOR_FMR)  # 30.0


def promised_fmr(similarity: float) -> float:
    """The false-match rate a Similarity threshold promises, whatever the model.

    FMR = 10 ** (-(Similarity - 30) / 10), capped at 1 (Similarity <= 30).
    80 -> 1e-5, 90 -> 1e-6, 95 -> 3.16e-7, 99 -> 1.26e-7, 100 -> 1e-7.
    """
    s = float(similarity)
    if s <= FMR_ONE_SIMILARITY:
        return 1.0
    return 10.0 ** (-(s - FMR_ONE_SIMILARITY) / POINTS_PER_DECADE)


def one_in(similarity: float) -> str:
    """The promise of a Similarity threshold as odds: "1 in 100,000" for 80 (one stranger pair in N)."""
    return f"1 in {1.0 / promised_fmr(similarity):,.0f}"


def similarity_for_fmr(fmr: float) -> float:
    """The Similarity threshold that promises false-match rate ``fmr`` (0 < fmr <= 1)."""
    f = float(fmr)
    if not (f > 0.0) or f > 1.0 or math.isnan(f):
        raise ValueError(f"a false-match rate must be in (0, 1], got {fmr!r}")
    return min(100.0, FMR_ONE_SIMILARITY - POINTS_PER_DECADE * math.log10(f))
