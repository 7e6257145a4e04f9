"""Robust z-scores: median, MAD (scipy, normal-consistent), the floor, the log scale."""

from __future__ import annotations

import math

import pytest
from scipy.stats import median_abs_deviation

from minicluster.analysis.robust import bad_side_z, spread


def test_linear_z_is_distance_from_the_median_in_mads() -> None:
    values = [10.0, 11.0, 9.0, 10.5, 9.5, 30.0]
    d = spread(values)
    assert d.median == 10.25
    assert d.mad == pytest.approx(median_abs_deviation(values, scale="normal"))
    assert not d.floored and not d.log
    assert d.z(30.0) == pytest.approx((30.0 - 10.25) / d.mad)
    assert (d.min, d.max, d.n) == (9.0, 30.0, 6)


def test_one_far_value_does_not_hide_itself_by_widening_the_scale() -> None:
    """A mean and standard deviation would: the 30 drags the mean up and the std with it."""
    values = [10.0, 10.1, 9.9, 10.05, 9.95, 30.0]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    assert (30.0 - mean) / std < 3.5  # classic z would not name it
    assert spread(values).z(30.0) > 100  # robust z does


def test_the_floor_keeps_a_tight_group_from_making_outliers() -> None:
    values = [100.0, 100.1, 99.9, 100.05, 99.95, 110.0]  # 10% off a group within 0.1%
    assert spread(values).z(110.0) > 3.5
    floored = spread(values, floor_frac=0.05)
    assert floored.floored and floored.scale == pytest.approx(0.05 * 100.025)
    assert floored.z(110.0) == pytest.approx((110.0 - 100.025) / (0.05 * 100.025))
    assert floored.z(110.0) < 3.5


def test_log_scale_counts_relative_deviations_both_ways() -> None:
    values = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0]
    d = spread(values, floor_frac=0.1, log=True)
    assert d.log and d.median == 1.0
    assert d.z(2.0) == pytest.approx(-d.z(0.5))  # half is as far below as double is above
    # a dead link is far below even when the healthy ones scatter by 25%: on the linear
    # scale it could never fall more than median / MAD below
    noisy = [1.0, 1.3, 0.75, 1.2, 0.8, 0.02]
    assert spread(noisy).z(0.02) > -4.5
    assert spread(noisy, log=True).z(0.02) < -8


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        spread([])
    with pytest.raises(ValueError):
        spread([1.0, float("nan")])
    with pytest.raises(ValueError):
        spread([1.0, 0.0], log=True)


def test_bad_side_follows_the_direction() -> None:
    assert bad_side_z(4.0, "lower") == 4.0  # slower is worse
    assert bad_side_z(4.0, "higher") == -4.0  # more bandwidth is better
    assert math.isnan(bad_side_z(4.0, "none"))
