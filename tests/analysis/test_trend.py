"""The drift test (Theil-Sen slope and interval, Mann-Kendall) on series whose answer is known:
a throttling decline is a drift, noise and improvement are not, a lower-is-better series drifts
upwards, one outlier interval does not make a trend, too few points are not judged."""

from __future__ import annotations

import random

import pytest

from minicluster.analysis.trend import MIN_POINTS, could_drift, drift, trend


def noisy(values: list[float], sd: float, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [v + rng.gauss(0, sd) for v in values]


def test_a_throttling_decline_is_a_drift_with_its_size() -> None:
    rates = noisy([800 - 4 * i for i in range(30)], sd=3)  # -116 over 29 intervals: -14.5%
    d = drift(rates)
    assert d["drifting"] and d["judged"]
    assert d["trend"]["change_pct"] == pytest.approx(-14.5, abs=1.0)
    assert (
        d["trend"]["change_pct_low"] < d["trend"]["change_pct"] < d["trend"]["change_pct_high"] < 0
    )
    assert d["reason"].startswith("fell 1")


def test_noise_and_improvement_are_not_drifts() -> None:
    assert not drift(noisy([800] * 30, sd=8))["drifting"]
    up = drift(noisy([800 + 4 * i for i in range(30)], sd=3))
    assert not up["drifting"] and up["reason"].startswith("improving")


def test_a_small_significant_trend_is_said_not_called_a_drift() -> None:
    d = drift([100 - 0.1 * i for i in range(30)])  # -2.9%: significant, under 5%
    assert not d["drifting"] and "under the 5% that counts" in d["reason"]


def test_lower_is_better_drifts_upwards() -> None:
    times = [10 + 0.2 * i for i in range(20)]
    assert drift(times, direction="lower")["drifting"]
    assert not drift(times, direction="higher")["drifting"]


def test_one_outlier_interval_makes_no_trend() -> None:
    rates = noisy([800] * 20, sd=2)
    rates[17] = 200  # one preempted interval
    d = drift(rates)
    assert not d["drifting"], d["reason"]


def test_too_few_points_and_a_constant_series() -> None:
    d = drift([3.0, 2.0, 1.0, 0.5])
    assert not d["judged"] and d["reason"] == f"4 point(s): a trend needs at least {MIN_POINTS}"
    t = trend([5.0] * 6, [0, 1, 2, 3, 4, 5])
    assert t.slope == 0 and t.p_value == 1.0 and t.change_pct == 0
    with pytest.raises(ValueError):
        trend([1.0, 2.0], [0.0])


def test_could_drift_is_false_only_where_drift_finds_none() -> None:
    """`could_drift` (Theil-Sen's fitted change by numpy, scipy's arithmetic) says False only for
    series `drift` does not call drifting: noise, improvements, drifts under and over the 5%
    (the ones near it too), both directions, ties and integer x. And it does say False (the
    shortcut is taken) for most series that do not drift."""
    rng = random.Random(0)
    skipped = drifting = 0
    for trial in range(400):
        n = rng.choice([5, 6, 12, 40, 200])
        base = rng.uniform(5, 500)
        change = rng.choice([0.0, 0.02, 0.049, 0.05, 0.0501, 0.051, 0.2, -0.05, -0.2])
        values = noisy([base * (1 + change * i / (n - 1)) for i in range(n)], base * 0.01, trial)
        if trial % 5 == 0:
            values = [round(v) for v in values]  # ties
        x = [float(10 + 3 * i) for i in range(n)] if trial % 2 else None
        for direction in ("higher", "lower"):
            d = drift(values, x, direction=direction)
            if not could_drift(values, x, direction=direction):
                skipped += 1
                assert not d["drifting"], (trial, direction, d)
            drifting += d["drifting"]
    assert skipped > 300 and drifting > 50
    assert could_drift([1.0] * 4) and could_drift([1.0, float("nan")] * 5)
