"""The Similarity scale's promise against this audit's measurement.

Similarity = 80 + 10 * (-log10 FMR - 5): a threshold promises the same
false-match rate (FMR) on every model (:func:`faceaudit.engine.promised_fmr`).
The promise is kept on the calibration photos; here it is checked on the
audit's own photos and people, overall and per group, and a gap whose interval
excludes the promise is written as a finding in plain words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from faceaudit.audit._html import sci, times
from faceaudit.audit._results import PromiseCheck, PromiseGap, Rate
from faceaudit.engine import promised_fmr


def _bounds(r: Rate) -> tuple[float, float]:
    lo, hi = r.wilson95
    if r.bootstrap95 and r.bootstrap95[0] is not None and r.bootstrap95[1] is not None:
        lo, hi = min(lo, r.bootstrap95[0]), max(hi, r.bootstrap95[1])
    return lo, hi


def who(column: str, group: str) -> str:
    """Plain words for the start of a finding: "Overall", "For sex F", "For race black"."""
    return "Overall" if not column else f"For {column} {group}"


def gap(column: str, group: str, measured: Rate, threshold: float, promised: float) -> PromiseGap:
    """Compare one measured FMR with the promise."""
    subject = who(column, group)
    if measured.trials == 0 or measured.rate is None:
        return PromiseGap(column, group, measured, None, (None, None), "no data",
                          f"{subject}, there were no comparisons of two different people at {threshold:g}.")
    lo, hi = _bounds(measured)
    ratio = measured.rate / promised
    r95 = (lo / promised, hi / promised)
    where = f"at {threshold:g}"
    counts = f"{measured.errors:,} of {measured.trials:,} comparisons"
    if lo > promised:
        verdict = "above"
        finding = (f"{subject}, the false-match rate {where} was {times(ratio)} what the scale promises "
                   f"({sci(measured.rate)}, {counts}; promised {sci(promised)}; the interval "
                   f"{times(r95[0])}–{times(r95[1])} lies above the promise).")
    elif hi < promised:
        verdict = "below"
        finding = (f"{subject}, the false-match rate {where} was lower than the scale promises "
                   f"({sci(measured.rate)}, {counts}; promised {sci(promised)}).")
    else:
        verdict = "consistent"
        need = int(round(3.0 / promised))
        finding = (f"{subject}, the false-match rate {where} ({sci(measured.rate)}, {counts}) is consistent "
                   f"with the promised {sci(promised)}: its interval holds the promise"
                   + (f" (telling them apart needs about {need:,} comparisons)" if measured.trials < need else "")
                   + ".")
    return PromiseGap(column, group, measured, ratio, r95, verdict, finding)


def promise_checks(thresholds: Sequence[float], overall_fmr: Sequence[Rate],
                   group_fmr: Mapping[str, Mapping[str, Sequence[Rate]]]) -> tuple[PromiseCheck, ...]:
    """One check per threshold: ``overall_fmr[k]`` and ``group_fmr[column][group][k]``."""
    out: list[PromiseCheck] = []
    for k, t in enumerate(thresholds):
        p = promised_fmr(float(t))
        groups: list[PromiseGap] = []
        for col, per in group_fmr.items():
            for g, rates in per.items():
                groups.append(gap(col, g, rates[k], float(t), p))
        out.append(PromiseCheck(float(t), p, gap("", "everyone", overall_fmr[k], float(t), p), tuple(groups)))
    return tuple(out)
