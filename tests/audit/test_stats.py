"""Statistics helpers against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceaudit._stats import Z95, cluster_bootstrap_rates, gini, wilson_interval


def wilson_by_hand(k: int, n: int):
    z = Z95
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(28, 535), (5, 10), (1, 3), (29, 30)])
def test_wilson_matches_the_formula(k, n):
    lo, hi = wilson_interval(k, n)
    elo, ehi = wilson_by_hand(k, n)
    assert lo == pytest.approx(elo, abs=1e-12) and hi == pytest.approx(ehi, abs=1e-12)


def test_wilson_known_values():
    # 28/535 (the ACLU count): 3.65% to 7.46%
    lo, hi = wilson_interval(28, 535)
    assert (round(lo, 4), round(hi, 4)) == (0.0365, 0.0746)
    # zero errors: the upper bound is z^2 / (n + z^2), about 3/n ("rule of 3")
    lo, hi = wilson_interval(0, 100)
    assert lo == 0.0 and hi == pytest.approx(Z95**2 / (100 + Z95**2), rel=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == 1.0


def test_gini_by_hand():
    # two values 0.1, 0.3: sum|xi-xj| = 0.4, 2 n^2 mean = 1.6 -> 0.25, times n/(n-1) = 2 -> 0.5
    assert gini([0.1, 0.3]) == pytest.approx(0.5)
    assert gini([0.2, 0.2, 0.2]) == 0.0
    # one group takes everything: maximum inequality is 1 whatever n
    assert gini([0, 0, 1]) == pytest.approx(1.0)
    assert gini([0, 0, 0, 5]) == pytest.approx(1.0)
    # 1, 2, 3: sum|xi-xj| = 8, 2*9*2 = 36 -> 2/9, times 3/2 -> 1/3
    assert gini([1, 2, 3]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        gini([0.0, 0.0])
    with pytest.raises(ValueError):
        gini([0.5])


def test_bootstrap_is_seeded_and_resamples_clusters():
    errors = np.array([[3, 1], [0, 0], [5, 2], [1, 1]])
    trials = np.array([10, 10, 10, 10])
    a = cluster_bootstrap_rates(errors, trials, resamples=500, seed=42)
    b = cluster_bootstrap_rates(errors, trials, resamples=500, seed=42)
    c = cluster_bootstrap_rates(errors, trials, resamples=500, seed=43)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))
    pooled = errors.sum(0) / trials.sum()
    assert np.all(a[0] <= pooled) and np.all(pooled <= a[1])


def test_bootstrap_two_clusters_by_hand():
    # one person always wrong, one never: resampled rates are 0, 1/2, 1 with chances 1/4, 1/2, 1/4,
    # so the 95% percentile interval is [0, 1].
    lo, hi = cluster_bootstrap_rates(np.array([[4], [0]]), np.array([4, 4]), resamples=2000, seed=1)
    assert lo[0] == 0.0 and hi[0] == 1.0
    # every person with the same rate: no spread at all
    lo, hi = cluster_bootstrap_rates(np.array([[1], [2], [3]]), np.array([10, 20, 30]), resamples=200, seed=0)
    assert lo[0] == pytest.approx(0.1) and hi[0] == pytest.approx(0.1)


def test_bootstrap_without_trials_is_nan():
    lo, hi = cluster_bootstrap_rates(np.zeros((3, 1)), np.zeros(3), resamples=50, seed=0)
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    lo, hi = cluster_bootstrap_rates(np.zeros((0, 2)), np.zeros(0), resamples=50, seed=0)
    assert lo.shape == (2,) and np.all(np.isnan(lo))
