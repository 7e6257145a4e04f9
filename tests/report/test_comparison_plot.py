"""The comparison plot: deltas signed so right is better; `~`, `?` and n/a shown as such."""

from __future__ import annotations

import re
from typing import Any

from minicluster.report.comparison_plot import comparison_plot


def _row(metric: str, a: Any, b: Any, pct: Any, verdict: str, reason: str = "") -> dict[str, Any]:
    delta = None if a is None or b is None else b - a
    return {
        "metric": metric,
        "unit": "",
        "a": a,
        "b": b,
        "delta_abs": delta,
        "delta_pct": pct,
        "verdict": verdict,
        "reason": reason,
    }


ROWS = [
    _row("throughput_samples_per_sec", 100.0, 110.0, 10.0, "better"),
    _row("latency_p50_ms", 10.0, 11.0, 10.0, "worse"),
    _row("latency_p95_ms", 12.0, 12.1, 0.8, "no_change", "~ p=0.40"),
    _row("temperature_celsius", 60.0, 55.0, -8.3, "better"),
    _row("allreduce_wait_ms", 0.0, 0.3, None, "worse", "zero baseline"),
    _row("power_consumption_watts", None, 200.0, None, "missing", "not measured in A"),
]


def _bars(svg: str) -> dict[str, tuple[float, float]]:
    """metric -> (x, width) of its bar."""
    out = {}
    for x, w, title in re.findall(
        r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*><title>([^:<]+):', svg
    ):
        out[title] = (float(x), float(w))
    return out


def test_lower_is_better_is_flipped_so_right_means_better() -> None:
    plot = comparison_plot(ROWS)
    assert plot is not None
    bars = _bars(plot.svg)
    zero = bars["throughput_samples_per_sec"][0]  # a positive bar starts at 0
    assert bars["latency_p50_ms"][0] + bars["latency_p50_ms"][1] == zero  # worse: to the left
    assert bars["temperature_celsius"][0] == zero  # -8.3 % temperature is better: to the right
    assert ">+8.3%<" in plot.svg and ">-10.0%<" in plot.svg


def test_no_change_zero_baseline_and_missing_are_marked_not_plotted() -> None:
    plot = comparison_plot(ROWS)
    assert plot is not None
    assert ">~ (-0.8%)<" in plot.svg  # p95 latency up 0.8 %: slightly worse, not significant
    assert ">?: zero baseline<" in plot.svg
    assert ">n/a: not measured in A<" in plot.svg
    assert set(_bars(plot.svg)) == {
        "throughput_samples_per_sec",
        "latency_p50_ms",
        "latency_p95_ms",
        "temperature_celsius",
    }
    # Grouped by the registry's families.
    for family in ("throughput", "latency", "thermal", "communication", "energy"):
        assert f">{family}<" in plot.svg


def test_empty_and_escaped() -> None:
    assert comparison_plot([]) is None
    plot = comparison_plot([_row("x<script>", 1.0, 2.0, 100.0, "better")], "<script>")
    assert plot is not None and "<script" not in plot.svg
