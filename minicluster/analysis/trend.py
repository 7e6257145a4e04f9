"""Whether a series drifts over time: the Theil-Sen slope with its confidence interval and the
Mann-Kendall trend test (both from scipy), and the drift finding built on them. Never imports
torch.

Both are rank-based: one outlier interval (a preempted call, a page-fault storm) moves neither,
which a least-squares slope and its t-test would not survive. Mann-Kendall is Kendall's tau
between time and value (`scipy.stats.kendalltau`, tau-b, ties handled); Theil-Sen is the median of
the pairwise slopes, its interval Sen's (`scipy.stats.theilslopes`).

A drift is a finding only with significance and an effect a user would care about: Mann-Kendall
p below `alpha`, a slope interval that excludes 0, and a fitted change over the whole window of at
least `min_change_pct` on the metric's bad side (a throughput falling, a time rising).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

MIN_POINTS = 5  # Mann-Kendall cannot reach p < 0.05 two-sided with 4 points (min p = 0.083)
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_CHANGE_PCT = 5.0


@dataclass(frozen=True)
class Trend:
    """The fitted trend of `n` points: slope per unit of x with its interval, the fitted values at
    the first and last x, the change between them (and its interval) in % of the first, and the
    Mann-Kendall tau and two-sided p-value."""

    n: int
    slope: float
    slope_low: float
    slope_high: float
    confidence: float
    start: float
    end: float
    change_pct: float | None
    change_pct_low: float | None
    change_pct_high: float | None
    tau: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trend(
    values: Sequence[float], x: Sequence[float] | None = None, confidence: float = 0.95
) -> Trend:
    """The Theil-Sen / Mann-Kendall trend of `values` over `x` (default 0, 1, 2, ...).
    ValueError for fewer than 2 points, unequal lengths or a non-finite value."""
    from scipy.stats import kendalltau, theilslopes

    ys = [float(v) for v in values]
    xs = [float(v) for v in x] if x is not None else [float(i) for i in range(len(ys))]
    if len(ys) != len(xs):
        raise ValueError(f"{len(ys)} values against {len(xs)} x positions")
    if len(ys) < 2:
        raise ValueError(f"a trend needs at least 2 points, got {len(ys)}")
    if not all(math.isfinite(v) for v in ys + xs):
        raise ValueError("a trend needs finite values")
    fit = theilslopes(ys, xs, alpha=confidence)
    slope, intercept = float(fit.slope), float(fit.intercept)
    low, high = float(fit.low_slope), float(fit.high_slope)
    if len(set(ys)) == 1:
        tau, p = 0.0, 1.0  # a constant series has no trend (kendalltau returns nan)
    else:
        res = kendalltau(xs, ys)
        tau, p = float(res.statistic), float(res.pvalue)
    x0, x1 = min(xs), max(xs)
    # The fitted line through the median point (Theil-Sen's intercept), read at both ends.
    start, end = intercept + slope * x0, intercept + slope * x1
    span = x1 - x0
    change = low_change = high_change = None
    if start != 0 and math.isfinite(start):
        change = 100.0 * (end - start) / abs(start)
        low_change = 100.0 * low * span / abs(start)
        high_change = 100.0 * high * span / abs(start)
    return Trend(
        n=len(ys),
        slope=slope,
        slope_low=low,
        slope_high=high,
        confidence=confidence,
        start=start,
        end=end,
        change_pct=change,
        change_pct_low=low_change,
        change_pct_high=high_change,
        tau=tau,
        p_value=p,
    )


def drift(
    values: Sequence[float],
    x: Sequence[float] | None = None,
    direction: Literal["higher", "lower"] = "higher",
    min_change_pct: float = DEFAULT_MIN_CHANGE_PCT,
    alpha: float = DEFAULT_ALPHA,
) -> dict[str, Any]:
    """The drift finding of a series whose good direction is `direction` (`higher`: a throughput,
    `lower`: a time): `drifting` True when it worsens significantly (Mann-Kendall p < `alpha`,
    Sen's interval excludes 0) by at least `min_change_pct` % over the window; `judged` False with
    the reason when there are fewer than `MIN_POINTS` points. The trend itself is kept either way
    (an improving or flat series is said so, never called a drift)."""
    out: dict[str, Any] = {
        "judged": False,
        "drifting": False,
        "direction": direction,
        "alpha": alpha,
        "min_change_pct": min_change_pct,
        "trend": None,
        "reason": None,
        "rule": f"Mann-Kendall p < {alpha:g}, Theil-Sen slope interval excluding 0, and a fitted "
        f"change over the window of at least {min_change_pct:g}% on the bad side",
    }
    if len(values) < MIN_POINTS:
        out["reason"] = f"{len(values)} point(s): a trend needs at least {MIN_POINTS}"
        return out
    t = trend(values, x)
    out["trend"] = t.to_dict()
    out["judged"] = True
    bad_sign = -1.0 if direction == "higher" else 1.0
    significant = t.p_value < alpha and (t.slope_low > 0 or t.slope_high < 0)
    worse = t.change_pct is not None and bad_sign * t.change_pct >= min_change_pct
    out["drifting"] = bool(significant and worse)
    if out["drifting"]:
        out["reason"] = (
            f"{'fell' if direction == 'higher' else 'rose'} {abs(t.change_pct or 0):.1f}% over the "
            f"window (Sen's {100 * t.confidence:g}% interval {_pct(t.change_pct_low)} to "
            f"{_pct(t.change_pct_high)}; Mann-Kendall p = {t.p_value:.2g})"
        )
    elif not significant:
        out["reason"] = f"no significant trend (Mann-Kendall p = {t.p_value:.2g})"
    elif bad_sign * (t.change_pct or 0.0) < 0:
        out["reason"] = f"improving ({_pct(t.change_pct)} over the window): not a drift"
    else:
        out["reason"] = (
            f"a significant trend of {_pct(t.change_pct)} over the window, under the "
            f"{min_change_pct:g}% that counts"
        )
    return out


def could_drift(
    values: Sequence[float] | np.ndarray,
    x: Sequence[float] | np.ndarray | None = None,
    direction: Literal["higher", "lower"] = "higher",
    min_change_pct: float = DEFAULT_MIN_CHANGE_PCT,
) -> bool:
    """False when `drift` of the same series cannot call it drifting: Theil-Sen's fitted change
    over the window (computed as `scipy.stats.theilslopes` computes it: the median of the
    pairwise slopes, the intercept through the medians of x and y) falls short of
    `min_change_pct` on the bad side by more than rounding could make up. True otherwise, and
    for a series `drift` does not fit (too few points, a non-finite value): `drift` decides.
    Spares a series that does not drift scipy.stats (half a second of import) and the
    Mann-Kendall test (tests/analysis/test_trend.py checks it against `drift`)."""
    ys = np.asarray(values, dtype=float)
    xs = np.arange(ys.size, dtype=float) if x is None else np.asarray(x, dtype=float)
    if ys.size < MIN_POINTS or xs.shape != ys.shape:
        return True
    if not (np.isfinite(ys).all() and np.isfinite(xs).all()):
        return True
    dx = xs[:, np.newaxis] - xs
    up = dx > 0
    slopes = (ys[:, np.newaxis] - ys)[up] / dx[up]
    if not slopes.size:
        return True
    slope = float(np.median(slopes))
    intercept = float(np.median(ys)) - slope * float(np.median(xs))
    start = intercept + slope * float(xs.min())
    end = intercept + slope * float(xs.max())
    if not (math.isfinite(start) and start != 0):
        return True
    change = 100.0 * (end - start) / abs(start)
    bad_sign = -1.0 if direction == "higher" else 1.0
    return bool(bad_sign * change >= min_change_pct - 1e-6 * max(1.0, abs(min_change_pct)))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"
