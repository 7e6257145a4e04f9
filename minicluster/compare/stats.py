"""The statistics behind a verdict: the Mann-Whitney U test, the run-to-run spread (a prediction
interval of the difference over blocks of steps), and the geometric mean.

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


def spread_ci(
    name: str,
    sa: Sequence[float],
    sb: Sequence[float],
    spread_a: Sequence[float] | None = None,
    spread_b: Sequence[float] | None = None,
) -> tuple[float, float]:
    """95% interval of B - A that the run-to-run spread alone would produce, in the metric's unit.

    Each run's samples, in step order, are cut into contiguous blocks (`blocks`); the metric's
    own statistic (registry: median, p95, mean, harmonic mean; median when it names none) is taken
    per block. Steps are not independent (a shared host has slow phases lasting many steps), and
    neither are runs: a whole run can land in a slow phase. So the interval is a prediction
    interval, not a confidence interval of the mean: the run-level difference of the statistic,
    plus or minus Student's t (Welch-Satterthwaite degrees of freedom, scipy) times
    sqrt(s_a^2 (1 + 1/n_a) + s_b^2 (1 + 1/n_b)), the spread of one block of B against one block
    of A. A difference inside it is no larger than a run's own blocks move from one another:
    no change. Needs >= 4 samples a side (2 blocks).

    `spread_a`/`spread_b`: the samples whose blocks measure a side's spread, when they are not
    its samples themselves (a run that drifts or bursts: the residuals around its structure,
    `compare.drift.adjusted`); the difference is always that of the samples.
    """
    from scipy.stats import t as student_t

    from minicluster.interop.series import statistic_fn

    m = metrics_registry.get(name)
    fn = statistic_fn(m.statistic if m is not None and m.statistic else "median")

    def block_stats(x: Sequence[float]) -> np.ndarray:
        return np.array([fn(c) for c in np.array_split(np.asarray(x, float), blocks(len(x)))])

    # centred on the run-level difference (the metric's own statistic over all steps): a mean
    # of block statistics dilutes a tail's burst over the blocks it did not touch
    point = float(fn(np.asarray(sb, float)) - fn(np.asarray(sa, float)))
    ba = block_stats(sa if spread_a is None else spread_a)
    bb = block_stats(sb if spread_b is None else spread_b)
    if np.ptp(ba) == 0 and np.ptp(bb) == 0:
        return point, point  # every block equal on both sides: the difference is exact
    na, nb = len(ba), len(bb)
    va, vb = float(ba.var(ddof=1)), float(bb.var(ddof=1))
    spread = va * (1 + 1 / na) + vb * (1 + 1 / nb)
    # Welch-Satterthwaite degrees of freedom of the two block variances
    df = spread**2 / ((va * (1 + 1 / na)) ** 2 / (na - 1) + (vb * (1 + 1 / nb)) ** 2 / (nb - 1))
    half = float(student_t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(spread)
    lo, hi = point - half, point + half
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return -math.inf, math.inf
    return lo, hi


def geometric_mean(ratios: Sequence[float]) -> float | None:
    """Geometric mean of positive ratios; None for none."""
    if not ratios:
        return None
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))
