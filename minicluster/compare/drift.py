"""Whether a run's per-step series is stationary: a trend through the run (Theil-Sen slope with its
95% interval, Mann-Kendall's test as Kendall's tau against the step index, scipy) or a change of
level within it (a burst: change points by ruptures' binary segmentation, each segment's mean
beyond the threshold from the rest).

The run-to-run spread rule (docs/compare.md, rule 9) measures a run's noise by how its blocks of
steps move. A run that drifts or bursts moves from block to block *because* of the change being
judged, so its blocks would excuse it. For such a run the spread is measured around its
structure instead: the residuals of the trend line, or of the segment means (`adjusted`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_STEPS = 12  # fewer measured steps than this: no structure is looked for
MAX_POINTS = 1000  # longer series are looked at as means of consecutive steps (Theil-Sen is O(n^2))
MAX_SEGMENTS = 6
MIN_SEGMENT = 3


@dataclass(frozen=True)
class Structure:
    """A trend or a level change found in one run's series."""

    kind: str  # "drift" or "shift"
    text: str  # one line for the user
    fitted: tuple[float, ...]  # the structure's value per step (trend line or segment means)
    change_pct: float  # change over the run (drift) or of the most different segment (shift)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "text": self.text, "change_pct": self.change_pct}


def trend(values: Sequence[float] | np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    """(Theil-Sen slope per step, its lower and upper 95% bound, Mann-Kendall p) of `values`."""
    from scipy.stats import kendalltau, theilslopes

    y = np.asarray(values, float)
    x = np.arange(y.size, dtype=float)
    res = theilslopes(y, x, alpha=1 - 0.95)
    tau = kendalltau(x, y)
    p = float(tau.pvalue) if tau.pvalue is not None and math.isfinite(tau.pvalue) else 1.0
    return float(res.slope), float(res.low_slope), float(res.high_slope), p


def find(
    values: Sequence[float], threshold_pct: float, alpha: float, unit: str
) -> Structure | None:
    """The trend or level change of `values` (a per-step series in step order) that is both
    significant and at least `threshold_pct` of the run's median, else None."""
    y = np.asarray(values, float)
    if y.size > MAX_POINTS:
        return _coarse(y, threshold_pct, alpha, unit)
    n = y.size
    if n < MIN_STEPS or not np.all(np.isfinite(y)):
        return None
    median = float(np.median(y))
    if median == 0:
        return None
    slope, low, high, p = trend(y, alpha)
    change = 100.0 * slope * (n - 1) / abs(median)
    drift = None
    if p < alpha and (low > 0 or high < 0) and abs(change) >= threshold_pct:
        line = slope * np.arange(n) + (float(np.median(y - slope * np.arange(n))))
        text = (
            f"drifts {slope:+.4g} {unit}/step (95% CI [{low:.4g}, {high:.4g}], Theil-Sen; "
            f"Mann-Kendall p={p:.2g}): {change:+.0f}% of its median over its {n} measured steps"
        )
        drift = Structure("drift", text, tuple(line.tolist()), change)
    shift = _shift(y, median, threshold_pct, alpha, unit)
    if drift is None or shift is None:
        return drift or shift

    # both fit (a burst also tilts a trend line, and a staircase follows a drift): the levels
    # only when their BIC, n log(RSS/n) + k log(n), beats the line's by more than 10 log(n):
    # the simpler two-parameter description stands unless the levels explain far more
    def bic(st: Structure) -> float:
        fitted = np.asarray(st.fitted)
        rss = max(float(np.sum((y - fitted) ** 2)), 1e-12)
        k = 2 if st.kind == "drift" else len(set(st.fitted))
        return n * math.log(rss / n) + k * math.log(n)

    return shift if bic(shift) < bic(drift) - 10 * math.log(n) else drift


def _coarse(y: np.ndarray, threshold_pct: float, alpha: float, unit: str) -> Structure | None:
    """`find` on the means of consecutive chunks of a long series, its fit spread back per step."""
    chunks = np.array_split(y, MAX_POINTS)
    found = find([float(c.mean()) for c in chunks], threshold_pct, alpha, unit)
    if found is None:
        return None
    fitted = np.concatenate([np.full(c.size, f) for c, f in zip(chunks, found.fitted, strict=True)])
    return Structure(
        found.kind,
        found.text + " (on means of consecutive steps)",
        tuple(fitted.tolist()),
        found.change_pct,
    )


def _shift(
    y: np.ndarray, median: float, threshold_pct: float, alpha: float, unit: str
) -> Structure | None:
    """A level change (burst) by binary segmentation (ruptures, least squares), penalised by a
    BIC-like 3 log(n) sigma^2 with sigma from the steps' successive differences (robust to the
    shift itself); kept when a segment's mean differs from the rest by a Welch test and by at
    least the threshold."""
    import ruptures
    from scipy.stats import ttest_ind

    n = y.size
    diffs = np.diff(y)
    sigma = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)
    if sigma == 0:
        return None
    algo = ruptures.Binseg(model="l2", min_size=MIN_SEGMENT, jump=1).fit(y)
    bkps = algo.predict(pen=3 * math.log(n) * sigma**2)
    bounds = [0, *bkps]
    if len(bounds) <= 2 or len(bounds) - 1 > MAX_SEGMENTS:
        return None
    best: tuple[float, int, int] | None = None
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        seg, rest = y[s:e], np.concatenate([y[:s], y[e:]])
        # the burst is the shorter side of a change: name it, not the steps around it
        if seg.size < MIN_SEGMENT or rest.size < MIN_SEGMENT or seg.size > rest.size:
            continue
        pct = 100.0 * (float(seg.mean()) - float(rest.mean())) / abs(median)
        p = float(ttest_ind(seg, rest, equal_var=False).pvalue)
        if p < alpha and abs(pct) >= threshold_pct and (best is None or abs(pct) > abs(best[0])):
            best = (pct, s, e)
    if best is None:
        return None
    pct, s, e = best
    fitted = np.empty(n)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        fitted[a:b] = y[a:b].mean()
    text = (
        f"changes level within the run: measured steps {s}-{e - 1} of {n} at {pct:+.0f}% of the "
        f"median against the others (change points: ruptures binary segmentation; Welch p<{alpha:g})"
    )
    return Structure("shift", text, tuple(fitted.tolist()), pct)


def adjusted(values: Sequence[float], structure: Structure | None) -> list[float]:
    """`values` with `structure` taken out (residuals around it, plus the series' mean): what its
    blocks would do without the trend or level change. Unchanged without a structure."""
    y = np.asarray(values, float)
    if structure is None:
        return [float(v) for v in y]
    fitted = np.asarray(structure.fitted, float)
    return [float(v) for v in y - fitted + float(fitted.mean())]
