"""Small statistical helpers shared by calibration and the audit.

The Wilson interval and Fisher's exact test are scipy's; the Gini coefficient and the
bootstrap that resamples people (clusters), which scipy does not provide, are written here.
"""

from __future__ import annotations

import functools

Z95 = 1.959963984540054
"""The standard normal deviate of a two-sided 95% interval (scipy.stats.norm.ppf(0.975))."""

Z95_LEVEL = 0.95
"""The two-sided level that :data:`Z95` covers."""


@functools.lru_cache(maxsize=65536)
def wilson_interval(errors: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``errors / trials`` (scipy's).

    .. math:: \\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    Computed by ``scipy.stats.binomtest(errors, trials).proportion_ci(method="wilson")``
    at the two-sided level that ``z`` standard normal deviates cover (0.95 for
    :data:`Z95`). With zero trials the interval is (0, 1): nothing is known. With
    zero errors the lower bound is exactly 0 and the upper bound close to
    3.84/(n+3.84), the order of the "rule of 3"; with every trial an error the
    upper bound is exactly 1. Cached: an audit asks for the same counts many times,
    and each scipy call costs about 0.2 ms.
    """
    if trials < 0 or errors < 0 or errors > trials:
        raise ValueError(f"need 0 <= errors <= trials, got {errors}/{trials}")
    if trials == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest, norm

    level = Z95_LEVEL if z == Z95 else float(1.0 - 2.0 * norm.sf(z))
    # the interval does not depend on the hypothesised proportion; at p = errors / trials the
    # test's p-value is 1 and scipy skips its search for it (a third of the time per call)
    k, n = int(errors), int(trials)
    ci = binomtest(k, n, p=k / n).proportion_ci(confidence_level=level, method="wilson")
    lo = 0.0 if errors == 0 else max(0.0, float(ci.low))
    hi = 1.0 if errors == trials else min(1.0, float(ci.high))
    return (lo, hi)


def gini(values) -> float:
    """Gini coefficient of non-negative values, with the small-sample factor n / (n - 1).

    .. math:: G = \\frac{n}{n-1} \\cdot \\frac{\\sum_i \\sum_j |x_i - x_j|}{2 n^2 \\bar x}

    (Howard et al. 2022, as used by GARBE). 0 means all values are equal; the
    factor makes the maximum 1 whatever ``n``. Raises ValueError with fewer than
    two values or when every value is 0 (the mean is 0: the coefficient is undefined).
    """
    import numpy as np

    x = np.asarray(values, dtype=np.float64).reshape(-1)
    n = x.size
    if n < 2:
        raise ValueError("the Gini coefficient needs at least two values")
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise ValueError("the Gini coefficient needs finite non-negative values")
    mean = float(x.mean())
    if mean == 0.0:
        raise ValueError("the Gini coefficient is undefined when every value is 0")
    total = float(np.abs(x[:, None] - x[None, :]).sum())
    return n / (n - 1) * total / (2.0 * n * n * mean)


def cluster_bootstrap_rates(errors, trials, resamples: int = 1000, seed=0, level: float = 0.95):
    """Percentile bootstrap intervals of pooled rates, resampling clusters (e.g. subjects).

    ``errors`` has shape (clusters, k) -- e.g. one column per threshold -- and
    ``trials`` shape (clusters,) or (clusters, k): each cluster's own counts.
    Each resample draws ``clusters`` clusters with replacement (multinomial
    weights ``w``) and computes ``sum(w * errors) / sum(w * trials)`` per column,
    so pairs or searches of one person are never split up. ``seed`` is anything
    ``numpy.random.default_rng`` accepts (an int or a SeedSequence).

    Returns (low, high) arrays of shape (k,); NaN where no resample had a trial.
    """
    import numpy as np

    e = np.asarray(errors, dtype=np.float64)
    if e.ndim == 1:
        e = e[:, None]
    t = np.asarray(trials, dtype=np.float64)
    if t.ndim == 1:
        t = np.broadcast_to(t[:, None], e.shape)
    n = e.shape[0]
    k = e.shape[1]
    if n == 0 or resamples <= 0:
        nan = np.full(k, np.nan)
        return nan, nan.copy()
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    num = weights @ e
    den = weights @ t
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    tail = (1.0 - level) / 2.0 * 100.0
    if np.isfinite(rates).all():  # the usual case: one call for every column, same values as below
        low, high = np.percentile(rates, [tail, 100.0 - tail], axis=0)
        return low, high
    low = np.full(k, np.nan)
    high = np.full(k, np.nan)
    for j in range(k):
        col = rates[:, j]
        col = col[np.isfinite(col)]
        if col.size:
            low[j], high[j] = np.percentile(col, [tail, 100.0 - tail])
    return low, high


def fisher_exact_two_sided(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test for the 2x2 table [[a, b], [c, d]] (scipy's).

    ``scipy.stats.fisher_exact``: conditions on the margins (hypergeometric
    distribution of the top-left cell) and sums the probabilities of every table
    no more likely than the one seen (the "minimum likelihood" two-sided rule, as
    R's fisher.test). 1.0 for an empty table or an empty row or column.
    """
    for v in (a, b, c, d):
        if int(v) != v or v < 0:
            raise ValueError(f"a 2x2 table needs non-negative integer counts, got {(a, b, c, d)}")
    import numpy as np
    from scipy.stats import fisher_exact

    result = fisher_exact(np.array([[a, b], [c, d]], dtype=np.int64), alternative="two-sided")
    return min(1.0, float(result.pvalue))
