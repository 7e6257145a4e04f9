"""The significance test that fits the statistic a metric is: a median is tested by Mann-Whitney U
(a shift of the bulk), a mean by Welch's t (a few slow steps move a mean and not the ranks), a
tail percentile (p90/p95/p99) by the exceedance test: how many steps of each side lie above the
pooled percentile (at least 10 of them: the tail's quantile is lowered for short runs), Fisher's
exact test on that 2x2 table (the median test of Mood, at the tail's quantile). So a tail-only regression is tested on the tail, never on the median's test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from minicluster.compare import stats

_QUANTILE = {"p90": 90.0, "p95": 95.0, "p99": 99.0}


def test(statistic: str | None, sa: Sequence[float], sb: Sequence[float]) -> tuple[str, float]:
    """(test name, two-sided p-value) of `sa` vs `sb` for a metric that is `statistic` of them."""
    if statistic in _QUANTILE:
        return "quantile-exceedance-fisher", exceedance_p(_QUANTILE[statistic], sa, sb)
    if statistic in ("mean", "harmonic_mean"):
        return "welch-t", welch_p(
            sa if statistic == "mean" else [1.0 / x for x in sa],
            sb if statistic == "mean" else [1.0 / x for x in sb],
        )
    return "mann-whitney-u", stats.mann_whitney_p(sa, sb)


def welch_p(sa: Sequence[float], sb: Sequence[float]) -> float:
    from scipy.stats import ttest_ind

    a, b = np.asarray(sa, float), np.asarray(sb, float)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return p if np.isfinite(p) else 1.0


MIN_EXCEEDANCES = 10


def exceedance_p(q: float, sa: Sequence[float], sb: Sequence[float]) -> float:
    """Fisher's exact p of (steps above the pooled percentile) x (side). The percentile is the
    metric's own (q), lowered so that at least MIN_EXCEEDANCES pooled steps lie above it: with
    50 steps a side, 5 steps above the pooled p95 can never reach p < 0.05 (5 of 5 on one side
    gives p = 0.056), so the tail tested is the top 10 steps of the 100."""
    from scipy.stats import fisher_exact

    a, b = np.asarray(sa, float), np.asarray(sb, float)
    pooled = np.concatenate([a, b])
    q = min(q, 100.0 * (1 - MIN_EXCEEDANCES / pooled.size))
    cut = float(np.percentile(pooled, q))
    ka, kb = int(np.sum(a > cut)), int(np.sum(b > cut))
    if ka + kb == 0:
        return 1.0
    return float(fisher_exact([[ka, a.size - ka], [kb, b.size - kb]]).pvalue)
