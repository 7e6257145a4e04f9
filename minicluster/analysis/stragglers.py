"""Name the straggler: the rank slow in compute step after step, not the ones waiting for it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minicluster.analysis.steps import JobSteps, r4
from minicluster.analysis.waited import WaitedFor

STRAGGLER_ALPHA = 0.05


def find_stragglers(
    table: JobSteps,
    threshold_pct: float,
    min_excess_ms: float,
    min_steps_pct: float = 80.0,
    waited: WaitedFor | None = None,
    min_waited_pct: float = 0.0,
) -> list[dict[str, Any]]:
    """The rank with the highest median compute time, when it exceeds the others' median by
    `threshold_pct` percent and by `min_excess_ms` (the size of the effect), is the slowest rank
    in at least `min_steps_pct` percent of the steps (its consistency: a rank that shares a
    core with other work on a loaded host is slow in streaks, a straggler step after step), and
    that is more than chance allows (one-sided sign test against 1/N, alpha 0.05).

    Compute time, not communication: under skew the healthy ranks' all-reduce grows because
    they wait for the slow one. `table` holds the measured steps of every rank (records read
    back after the run, or tailed while it runs: `watch` uses this same rule).

    With `waited` (`analysis.waited`), the rank is named only when the others waited for it:
    the lower bound of the interval of its `waited_for_ms` above `min_waited_pct` percent of the
    run's median step time (a rank whose own clock ran slow on a busy core, with nobody
    waiting for it, is not a straggler). When that cannot be measured the compute rule alone
    names it, and the entry says why (`waited_for_reason`).
    """
    timed = [(rank, c) for rank, c in table.compute_medians().items() if c]
    if len(timed) < 2:
        return []
    slow_rank, slow = max(timed, key=lambda t: t[1])
    others = float(np.median([c for r, c in timed if r != slow_rank]))
    excess_pct = 100.0 * (slow - others) / others if others > 0 else math.inf
    if excess_pct <= threshold_pct or slow - others < min_excess_ms:
        return []
    slowest, steps, p_value = _slowest_in_steps(table, slow_rank)
    if p_value >= STRAGGLER_ALPHA or 100.0 * slowest < min_steps_pct * steps:
        return []
    evidence: dict[str, Any] = {}
    if waited is not None:
        evidence = waited.evidence(slow_rank, min_waited_pct)
        if evidence["waited"] is False:
            return []
        evidence["min_waited_pct"] = min_waited_pct
        evidence.pop("waited")
    return [
        {
            "rank": slow_rank,
            "compute_ms_median": slow,
            "others_compute_ms_median": r4(others),
            "excess_pct": r4(excess_pct),
            "threshold_pct": threshold_pct,
            "min_excess_ms": min_excess_ms,
            "slowest_in_steps": slowest,
            "steps_compared": steps,
            "min_steps_pct": min_steps_pct,
            "sign_test_p": float(f"{p_value:.3g}"),
            "attributed_to": "compute",
            **evidence,
        }
    ]


def min_steps_to_judge(ranks: int) -> int:
    """The fewest steps in which the straggler rule's sign test can reach p < STRAGGLER_ALPHA
    among `ranks` ranks: a rank slowest in every one of n steps has p = (1/ranks)**n (the
    test's own p-value, scipy's binomtest), so 5 with 2 ranks, 3 with 3 or 4, 1 above 20."""
    from scipy.stats import binomtest

    n = 1
    while binomtest(n, n, 1.0 / ranks, alternative="greater").pvalue >= STRAGGLER_ALPHA:
        n += 1
    return n


def not_judged_reason(table: JobSteps) -> str | None:
    """Why no straggler could be named whatever the ranks did, or None: the ranks with compute
    times measured together in fewer steps than `min_steps_to_judge` (so a culprit, judged on
    the same steps, is not judged either). None with fewer than 2 timed ranks (nothing to
    compare)."""
    timed = [rank for rank, c in table.compute_medians().items() if c]
    if len(timed) < 2:
        return None
    _, steps, ranks = table.slowest_in_steps(timed[0])
    if steps >= 1 and (1.0 / max(ranks, 2)) ** steps < STRAGGLER_ALPHA / 2:
        # that many steps reach the test's level, (1/ranks)**steps (half of it: scipy's p-value
        # differs from it by rounding only): enough, without scipy.stats (half a second of import)
        return None
    need = min_steps_to_judge(max(ranks, 2))
    if steps >= need:
        return None
    return (
        f"{steps} measured step(s) with every rank; the straggler sign test needs {need} "
        f"with {max(ranks, 2)} ranks to reach p < {STRAGGLER_ALPHA:g} (raise steps.measured)"
    )


def _slowest_in_steps(table: JobSteps, rank: int) -> tuple[int, int, float]:
    """In how many steps (all ranks present) `rank` had the highest compute time, of how many,
    and the one-sided binomial p-value of that many or more by chance (p = 1 / ranks)."""
    k, n, ranks = table.slowest_in_steps(rank)
    if n == 0:
        return 0, 0, 1.0
    from scipy.stats import binomtest  # lazily: scipy.stats takes a while to import

    # scipy's exact tail (a hand sum of math.comb(n, i) * p0**i ... overflows a float from about
    # 1,030 steps when k is near n/2: math.comb(1200, 660) is about 1e359)
    p_value = float(binomtest(k, n, 1.0 / ranks, alternative="greater").pvalue)
    return k, n, min(1.0, p_value)
