"""The per-step samples each metric of a training result is tested on, taken from the per-step
cross-rank series the result's metrics were computed from (`steps.series`), and checked to give
back the metric's value.

`compare` tests exactly these samples: no other rule re-derives them (from rank files, say), so a
`result.json` moved without its `ranks/` keeps them, and a sample set that does not reproduce its
metric is dropped with a warning instead of being tested.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minicluster.core import metrics as metrics_registry
from minicluster.core.metrics import MetricValue, Statistic

# metric -> the series (key of steps.series) its samples are; step-time metrics share one.
SERIES_OF_METRIC = {
    "latency_p50_ms": "step_time_ms",
    "latency_p90_ms": "step_time_ms",
    "latency_p95_ms": "step_time_ms",
    "latency_p99_ms": "step_time_ms",
    "latency_mean_ms": "step_time_ms",
    "step_time_mean_ms": "step_time_ms",
    "compute_ms": "compute_ms",
    "allreduce_ms": "allreduce_ms",
    "allreduce_wait_ms": "allreduce_wait_ms",
    "allreduce_transfer_ms": "allreduce_transfer_ms",
    "exposed_comm_ms": "exposed_comm_ms",
    "busbw_gbps": "busbw_gbps",
}
_PERCENTILE = {"median": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
# The series hold values rounded to 4 decimals (analysis/steps.py), so a statistic of them can
# differ from the metric (computed before rounding) by up to 0.5e-4 in the metric's unit.
_ABS_TOLERANCE = 1e-4
_REL_TOLERANCE = 1e-3


def statistic_fn(statistic: Statistic) -> Callable[..., Any]:
    """The numpy function computing `statistic` along `axis` (vectorized, for the bootstrap)."""
    if statistic in _PERCENTILE:
        q = _PERCENTILE[statistic]
        return lambda x, axis=-1: np.percentile(x, q, axis=axis)
    if statistic == "mean":
        return lambda x, axis=-1: np.mean(x, axis=axis)
    # harmonic mean: a rate over the whole run is n / sum(1 / per-step rate)
    return lambda x, axis=-1: x.shape[axis] / np.sum(1.0 / x, axis=axis)


def _values(raw: Any) -> np.ndarray | None:
    if not isinstance(raw, list):
        return None
    kept = [
        float(v)
        for v in raw
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    return np.array(kept, dtype=float)


def samples_from_series(
    series: dict[str, Any] | None,
    metrics: dict[str, MetricValue],
    global_batch: int | None,
    seq_len: int | None,
) -> tuple[dict[str, list[float]], list[str]]:
    """(metric -> samples, warnings) from `steps.series`; empty without a series.

    Step-time metrics take `step_time_ms`; throughput takes global_batch * 1000 / step_time_ms
    (tokens/s that times seq_len); every other per-step metric its own series. A metric whose
    samples do not give back its value (its registry statistic, within the 4-decimal rounding of
    the series) gets none, and a warning says so.
    """
    if not isinstance(series, dict):
        return {}, []
    columns: dict[str, np.ndarray] = {}
    for key, raw in series.items():
        if key != "step" and (values := _values(raw)) is not None:
            columns[key] = values
    step = columns.get("step_time_ms")
    if step is not None and step.size and np.all(step > 0) and global_batch:
        columns["throughput"] = global_batch * 1000.0 / step
        if seq_len:
            columns["tokens"] = columns["throughput"] * seq_len
    wanted = dict(
        SERIES_OF_METRIC, throughput_samples_per_sec="throughput", tokens_per_sec="tokens"
    )
    samples: dict[str, list[float]] = {}
    warnings: list[str] = []
    for name, key in wanted.items():
        mv = metrics.get(name)
        values = columns.get(key)
        if mv is None or mv.value is None or values is None or not values.size:
            continue
        m = metrics_registry.get(name)
        assert m is not None and m.statistic is not None
        if m.statistic == "harmonic_mean" and not np.all(values > 0):
            continue
        got = float(statistic_fn(m.statistic)(values))
        if abs(got - mv.value) > _ABS_TOLERANCE + _REL_TOLERANCE * abs(mv.value):
            warnings.append(
                f"{name}: the {m.statistic} of its per-step series is {got:.6g}, not the value "
                f"{mv.value:.6g}: those samples are not what the metric was computed from; "
                "not tested"
            )
            continue
        samples[name] = values.tolist()
    return samples, warnings


def sample_statistic(name: str, values: Sequence[float]) -> float:
    """The registry statistic of metric `name` over `values` (what its run-level value is)."""
    m = metrics_registry.get(name)
    assert m is not None and m.statistic is not None, f"{name} has no sample statistic"
    return float(statistic_fn(m.statistic)(np.asarray(values, dtype=float)))
