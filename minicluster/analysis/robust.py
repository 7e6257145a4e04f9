"""Robust z-scores: how far each value sits from the median of its group, in units of the median
absolute deviation (MAD), with a floor under the MAD so that a tight group does not turn its
normal spread into outliers.

On the log scale (for positive quantities: times, bandwidths, joules; `log=True`):
z_i = (ln x_i - median(ln x)) / scale, scale = max(MAD(ln x) x 1.4826, floor_frac), so z counts
relative deviations: a value at half the median is as far below it as one at double is above.
On the linear scale a bandwidth could never fall more than median / MAD below its median (it
stops at 0): on a noisy host with a 25% MAD not even a dead link would reach z = -4.
On the linear scale (`log=False`): z_i = (x_i - median) / max(MAD x 1.4826, floor_frac x |median|).

1.4826 (`scipy.stats.median_abs_deviation(scale="normal")`) makes the MAD estimate a normal
distribution's standard deviation, so |z| > 3.5 is Iglewicz and Hoaglin's outlier rule
("How to Detect and Handle Outliers", 1993). The median and the MAD ignore up to half the values
being bad, which a mean and standard deviation do not: one very slow node drags a mean far enough
to hide itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spread:
    """The centre and scale of a group of values, and the rule the z-scores use."""

    n: int
    median: float  # of the values, in their unit
    log: bool  # z is taken on ln(value)
    center: float  # the median on the scale z is taken on
    mad: float  # x 1.4826 (normal-consistent), on the scale z is taken on
    scale: float  # what z divides by: the MAD, or the floor when the MAD is below it
    floored: bool  # the floor set the scale (the group is tighter than the floor)
    min: float
    max: float

    def z(self, value: float) -> float:
        """The robust z-score of `value` (0 when the scale is 0: every value equal, no floor)."""
        x = math.log(value) if self.log else value
        return (x - self.center) / self.scale if self.scale > 0 else 0.0

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "n": self.n,
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "log_scale": self.log,
            "mad": self.mad,
            "scale": self.scale,
            "mad_floored": self.floored,
        }


def spread(values: list[float], floor_frac: float = 0.0, log: bool = False) -> Spread:
    """Median, normal-consistent MAD and floored scale of `values` (finite numbers, at least one;
    all positive when `log`). ValueError otherwise."""
    if not values:
        raise ValueError("no values")
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"non-finite value among {values}")
    if log and not np.all(arr > 0):
        raise ValueError(f"a log-scale spread needs positive values, got {values}")
    from scipy.stats import median_abs_deviation  # lazily: scipy.stats takes a while to import

    t = np.log(arr) if log else arr
    center = float(np.median(t))
    mad = float(median_abs_deviation(t, scale="normal"))
    floor = floor_frac if log else floor_frac * abs(center)
    scale = max(mad, floor)
    return Spread(
        n=int(arr.size),
        median=float(np.median(arr)),
        log=log,
        center=center,
        mad=mad,
        scale=scale,
        floored=floor > mad,
        min=float(arr.min()),
        max=float(arr.max()),
    )


def bad_side_z(z: float, direction: str) -> float:
    """`z` oriented so that positive is worse: lower-is-better metrics keep their sign, higher-is-
    better ones flip it; a metric without a direction has no bad side (nan)."""
    if direction == "lower":
        return z
    if direction == "higher":
        return -z
    return math.nan
