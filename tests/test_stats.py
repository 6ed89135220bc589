"""faceaudit._stats on scipy: the same numbers as the hand-written implementation it replaced.

The expected values below were printed by the hand-written Wilson interval and Fisher's exact
test of commit 353c9ba (before scipy), to full float precision; results.json keeps 7 significant
digits, so agreement to 1e-12 relative means nothing a user sees changes.
"""

from __future__ import annotations

import math

import pytest

from faceaudit._stats import Z95, fisher_exact_two_sided, wilson_interval

OLD_WILSON = {
    (3, 535): (0.0019088425934096567, 0.016355265818428392),
    (28, 535): (0.036455131840741645, 0.07460064874389055),
    (0, 100): (0.0, 0.03699349820698568),
    (0, 535): (0.0, 0.007129107751102753),
    (535, 535): (0.9928708922488971, 1.0),
    (1, 1): (0.20654931437723742, 1.0),
    (11, 28): (0.23565686541579586, 0.5759095570340281),
    (113, 535): (0.17874880408709795, 0.24779866188503427),
    (7, 1000000): (3.3908678349008564e-06, 1.4450522448827192e-05),
    (5, 12): (0.19326031365875665, 0.6804886874504503),
}
"""(errors, trials) -> the old implementation's interval."""

OLD_FISHER = {
    # the composition test's table for 6 of the 28 falsely matched in a set of 113 of 535 searches:
    # [[matched in set, not matched in set], [matched outside, not matched outside]]
    (6, 107, 22, 400): 1.0,
    # 6 of 28 against 113 of 535 as a 2x2 of counts
    (6, 22, 113, 422): 0.9999999999992004,
    (11, 17, 113, 422): 0.033510086336396766,
    (3, 1, 1, 3): 0.4857142857142843,
    (1, 9, 11, 3): 0.002759456185220084,
    (0, 5, 0, 5): 1.0,
    (0, 0, 0, 7): 1.0,
    (28, 0, 0, 507): 2.5262663706243414e-47,
}
"""(a, b, c, d) of [[a, b], [c, d]] -> the old implementation's two-sided p-value."""


@pytest.mark.parametrize("counts", sorted(OLD_WILSON))
def test_wilson_is_the_old_interval(counts):
    lo, hi = wilson_interval(*counts)
    old_lo, old_hi = OLD_WILSON[counts]
    assert lo == pytest.approx(old_lo, rel=1e-12, abs=1e-300)
    assert hi == pytest.approx(old_hi, rel=1e-12)
    assert f"{lo:.7g}" == f"{old_lo:.7g}" and f"{hi:.7g}" == f"{old_hi:.7g}"


def test_wilson_ends_are_exact_at_zero_and_all_errors():
    assert wilson_interval(0, 535)[0] == 0.0
    assert wilson_interval(535, 535)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_other_levels():
    # z = 2.5758293035489 covers 99% two-sided: wider than 95%, same centre
    lo95, hi95 = wilson_interval(28, 535)
    lo99, hi99 = wilson_interval(28, 535, z=2.5758293035489004)
    assert lo99 < lo95 and hi99 > hi95
    n, p, z = 535, 28 / 535, 2.5758293035489004
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    assert (lo99 + hi99) / 2 == pytest.approx(centre, rel=1e-12)
    assert pytest.approx(1.959963984540054) == Z95


@pytest.mark.parametrize("bad", [(-1, 5), (6, 5), (1, -1)])
def test_wilson_rejects_impossible_counts(bad):
    with pytest.raises(ValueError):
        wilson_interval(*bad)


@pytest.mark.parametrize("table", sorted(OLD_FISHER))
def test_fisher_is_the_old_p_value(table):
    p = fisher_exact_two_sided(*table)
    assert p == pytest.approx(OLD_FISHER[table], rel=1e-9)
    assert f"{p:.7g}" == f"{OLD_FISHER[table]:.7g}"


def test_fisher_against_the_hypergeometric_sum():
    # [[2, 3], [4, 1]]: margins 5/5 and 6/4; P(x) = C(5,x) C(5,6-x) / C(10,6) for x = 1..5
    probs = {x: math.comb(5, x) * math.comb(5, 6 - x) / math.comb(10, 6) for x in range(1, 6)}
    expected = sum(q for q in probs.values() if q <= probs[2] * (1 + 1e-7))
    assert fisher_exact_two_sided(2, 3, 4, 1) == pytest.approx(expected, rel=1e-12)
    assert fisher_exact_two_sided(0, 0, 0, 0) == 1.0


@pytest.mark.parametrize("bad", [(-1, 0, 0, 0), (1.5, 0, 0, 0)])
def test_fisher_rejects_non_counts(bad):
    with pytest.raises(ValueError):
        fisher_exact_two_sided(*bad)
