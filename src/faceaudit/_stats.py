"""Small statistical helpers shared by calibration and the audit."""

from __future__ import annotations

import math
from typing import Tuple

Z95 = 1.959963984540054


def wilson_interval(errors: int, trials: int, z: float = Z95) -> Tuple[float, float]:
    """Wilson score interval for a binomial proportion ``errors / trials``.

    .. math:: \\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    With zero trials the interval is (0, 1): nothing is known. With zero errors
    the upper bound is close to 3.84/(n+3.84), the order of the "rule of 3".
    """
    if trials < 0 or errors < 0 or errors > trials:
        raise ValueError(f"need 0 <= errors <= trials, got {errors}/{trials}")
    if trials == 0:
        return (0.0, 1.0)
    n = float(trials)
    p = errors / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    lo = max(0.0, (centre - half) / denom)
    hi = min(1.0, (centre + half) / denom)
    if errors == 0:
        lo = 0.0
    if errors == trials:
        hi = 1.0
    return (lo, hi)
