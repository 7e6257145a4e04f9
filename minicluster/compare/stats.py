"""The statistics behind a verdict: the Mann-Whitney U test, the run-to-run spread (a confidence
interval of the difference by the method of batch means), and the geometric mean.

Both tests take the per-step (or per-request) samples the metric was computed from, in step order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from minicluster.core import metrics as metrics_registry

CONFIDENCE = 0.95
BLOCK_STEPS = 10  # steps per block of the spread test (batch means)
MAX_BLOCKS = 20


def mann_whitney_p(sa: Sequence[float], sb: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value of samples `sa` vs `sb` (scipy)."""
    from scipy.stats import mannwhitneyu

    if len(set(sa)) == 1 and set(sa) == set(sb):
        return 1.0  # identical constant samples: scipy would warn; there is no difference
    return float(mannwhitneyu(sa, sb, alternative="two-sided").pvalue)


def blocks(n: int) -> int:
    """How many contiguous blocks `n` samples are cut into: one per 10 steps, 2 to 20."""
    return max(2, min(MAX_BLOCKS, n // BLOCK_STEPS))


def spread_ci(name: str, sa: Sequence[float], sb: Sequence[float]) -> tuple[float, float]:
    """95% confidence interval of B - A beyond the run-to-run spread, in the metric's unit.

    Method of batch means: each run's samples, in step order, are cut into contiguous blocks
    (`blocks`); the metric's own statistic (registry: median, p95, mean, harmonic mean; median
    when it names none) is taken per block, and Welch's t interval (scipy) is taken of the
    difference of the block means. Steps are not independent (a shared host has slow phases
    lasting many steps): blocks carry that, so a difference smaller than the way a run's own
    blocks move is no change. Needs >= 4 samples a side.
    """
    from scipy.stats import ttest_ind

    from minicluster.interop.series import statistic_fn

    m = metrics_registry.get(name)
    fn = statistic_fn(m.statistic if m is not None and m.statistic else "median")
    ba = np.array([fn(x) for x in np.array_split(np.asarray(sa, float), blocks(len(sa)))])
    bb = np.array([fn(x) for x in np.array_split(np.asarray(sb, float), blocks(len(sb)))])
    point = float(bb.mean() - ba.mean())
    if np.ptp(ba) == 0 and np.ptp(bb) == 0:
        return point, point  # every block equal on both sides: the difference is exact
    with np.errstate(all="ignore"):
        ci = ttest_ind(bb, ba, equal_var=False).confidence_interval(CONFIDENCE)
    lo, hi = float(ci.low), float(ci.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return -math.inf, math.inf
    return lo, hi


def geometric_mean(ratios: Sequence[float]) -> float | None:
    """Geometric mean of positive ratios; None for none."""
    if not ratios:
        return None
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))
