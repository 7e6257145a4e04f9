"""The comparison plot: B/A signed so right is better, on a log scale that keeps every bar
readable; only judged rows are drawn."""

from __future__ import annotations

import math
import re
from typing import Any

from minicluster.report.comparison_plot import comparison_plot


def _row(
    metric: str,
    a: Any,
    b: Any,
    verdict: str,
    reason: str = "",
    below_floor: bool = False,
) -> dict[str, Any]:
    both = a is not None and b is not None
    return {
        "metric": metric,
        "unit": "",
        "a": a,
        "b": b,
        "delta_abs": b - a if both else None,
        "delta_pct": 100.0 * (b - a) / a if both and a else None,
        "ratio": b / a if both and a and b else None,
        "verdict": verdict,
        "reason": reason,
        "below_floor": below_floor,
    }


ROWS = [
    _row("throughput_samples_per_sec", 100.0, 110.0, "better"),
    _row("latency_p50_ms", 10.0, 11.0, "worse"),
    _row("latency_p95_ms", 12.0, 12.1, "no_change", "~ p=0.40"),
    _row("temperature_celsius", 60.0, 55.0, "better"),
    # issue 13: a wait of 0.001 ms vs 0.02 ms (x20) used to flatten every other bar
    _row("allreduce_wait_ms", 0.001, 0.02, "no_change", "below the noise floor", True),
    _row("exposed_comm_ms", 1.0, 200.0, "worse"),  # x200: clipped, value printed
    _row("compute_ms", 10.0, 20.0, "not_tested", "not tested, not gated"),
    _row("allreduce_transfer_ms", 0.0, 0.3, "worse", "baseline is 0"),
    _row("power_consumption_watts", None, 200.0, "missing", "not measured in A"),
]


def _bars(svg: str) -> dict[str, tuple[float, float]]:
    """metric -> (x, width) of its bar."""
    out = {}
    for x, w, title in re.findall(
        r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*><title>([^:<]+):', svg
    ):
        out[title] = (float(x), float(w))
    return out


def test_right_means_better_and_lower_is_better_is_flipped() -> None:
    plot = comparison_plot(ROWS)
    assert plot is not None
    bars = _bars(plot.svg)
    zero = bars["throughput_samples_per_sec"][0]  # a positive bar starts at x1
    lat_x, lat_w = bars["latency_p50_ms"]
    assert math.isclose(lat_x + lat_w, zero, abs_tol=0.15)  # worse: to the left
    assert bars["temperature_celsius"][0] == zero  # -8.3 % temperature is better: right
    # labels are the table's own percent change: the bar's side says better or worse
    assert plot.svg.count(">+10.0%<") == 2 and ">-8.3%<" in plot.svg


def test_a_latency_increase_is_labelled_as_an_increase() -> None:
    """Issue 26: a +134.9% latency was labelled "-134.9%", a +329.2% an impossible
    "-329.2% (clipped)"."""
    rows = [
        _row("latency_p50_ms", 10.0, 23.49, "worse"),
        _row("latency_p99_ms", 10.0, 42.92, "worse"),
    ]
    plot = comparison_plot(rows)
    assert plot is not None
    assert ">+134.9%<" in plot.svg and ">+329.2% (clipped)<" in plot.svg
    assert "-134.9%" not in plot.svg and "-329.2%" not in plot.svg


def test_log_scale_keeps_small_changes_readable_beside_a_huge_one() -> None:
    plot = comparison_plot(ROWS)
    assert plot is not None
    bars = _bars(plot.svg)
    huge = bars["exposed_comm_ms"][1]
    # +10 % is log2(1.1) / log2(4) of the clipped x200 bar, not 10/19900 of it
    assert bars["throughput_samples_per_sec"][1] / huge > 0.05
    assert bars["throughput_samples_per_sec"][1] > 10  # pixels: visible
    assert ">x200 (clipped)<" in plot.svg  # B/A as in the table
    assert "e+0" not in plot.svg  # ticks read x2, ÷4, not -2e+05
    assert ">x1<" in plot.svg and ">÷4<" in plot.svg and ">x4<" in plot.svg


def test_only_judged_rows_are_drawn() -> None:
    plot = comparison_plot(ROWS)
    assert plot is not None
    assert set(_bars(plot.svg)) == {
        "throughput_samples_per_sec",
        "latency_p50_ms",
        "latency_p95_ms",
        "temperature_celsius",
        "exposed_comm_ms",
    }
    for left_out in ("allreduce_wait_ms", "compute_ms", "allreduce_transfer_ms", "power_con"):
        assert left_out not in plot.svg
    assert ">~ (+0.8%)<" in plot.svg  # p95 up 0.8 %: slightly worse, not significant
    assert "4 row(s) are not drawn" in plot.caption
    for family in ("throughput", "latency", "thermal", "communication"):
        assert f">{family}<" in plot.svg


def test_title_fits_and_text_is_escaped() -> None:
    long = "A = " + "x" * 300 + " vs B = <script>"
    plot = comparison_plot(ROWS, long)
    assert plot is not None
    shown = re.search(r'class="ptitle">([^<]*)<', plot.svg)
    assert shown is not None and len(shown.group(1)) < 40  # the long names go in the caption
    assert long.replace("<", "&lt;")[:50] not in plot.svg and "<script" not in plot.svg
    assert comparison_plot([]) is None
    assert comparison_plot([ROWS[-1]]) is None  # nothing judged: no plot
    plot = comparison_plot([{**_row("x<script>", 1.0, 2.0, "better"), "direction": "higher"}])
    assert plot is not None and "<script" not in plot.svg
