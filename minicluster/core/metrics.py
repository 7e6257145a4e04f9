"""The master list of metrics (name, unit, direction, family, workloads) and the metric value type.

Worker, coordinator, comparator and reports all read this one table, so a metric's direction
(e.g. temperature: lower is better) is decided once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Direction = Literal["lower", "higher", "none"]
Family = Literal[
    "latency", "throughput", "efficiency", "energy", "thermal", "memory", "communication", "llm"
]
AppliesTo = Literal["training", "inference", "both"]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    direction: Direction
    family: Family
    applies_to: AppliesTo
    description: str


_METRICS: tuple[Metric, ...] = (
    Metric(
        "throughput_samples_per_sec",
        "samples/s",
        "higher",
        "throughput",
        "both",
        "Global samples per second: global batch / step time (slowest rank per step).",
    ),
    Metric(
        "tokens_per_sec",
        "tokens/s",
        "higher",
        "throughput",
        "both",
        "Global tokens per second (language-model workloads).",
    ),
    Metric(
        "latency_p50_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "Median step time (training) or request latency (inference).",
    ),
    Metric(
        "latency_p90_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "90th percentile of step time (training) or request latency (inference).",
    ),
    Metric(
        "latency_p95_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "95th percentile of step time (training) or request latency (inference).",
    ),
    Metric(
        "latency_p99_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "99th percentile of step time (training) or request latency (inference).",
    ),
    Metric(
        "latency_mean_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "Mean step time (training) or request latency (inference).",
    ),
    Metric(
        "step_time_mean_ms",
        "ms",
        "lower",
        "latency",
        "training",
        "Mean step time over measured steps, slowest rank per step.",
    ),
    Metric(
        "compute_ms",
        "ms",
        "lower",
        "latency",
        "training",
        "Median over steps of the slowest rank's forward + backward compute (minus exposed "
        "communication): the per-step max over ranks, the critical path.",
    ),
    Metric(
        "allreduce_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the per-step max over ranks of the time with at least one gradient "
        "all-reduce in flight (transfer + the longest wait).",
    ),
    Metric(
        "allreduce_wait_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the longest time any rank waited in the all-reduce for the slowest "
        "(per step: max over ranks of comm - min over ranks of comm).",
    ),
    Metric(
        "allreduce_transfer_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the all-reduce transfer time (per step: min over ranks of comm time).",
    ),
    Metric(
        "exposed_comm_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the per-step max over ranks of communication not hidden behind "
        "backward compute.",
    ),
    Metric(
        "communication_overhead_percent",
        "%",
        "lower",
        "communication",
        "training",
        "100 * sum of exposed communication / sum of step time (both per-step max over ranks).",
    ),
    Metric(
        "busbw_gbps",
        "GB/s",
        "higher",
        "communication",
        "training",
        "Bus bandwidth (nccl-tests convention): bytes / transfer time x 2(n-1)/n, decimal GB/s.",
    ),
    Metric(
        "memory_utilization_percent",
        "%",
        "lower",
        "memory",
        "both",
        "Peak memory as a percent of the device (GPU) or host (CPU) total.",
    ),
    Metric(
        "memory_peak_mib",
        "MiB",
        "lower",
        "memory",
        "both",
        "Peak memory per rank (CUDA max allocated on GPU, process RSS on CPU); max over ranks.",
    ),
    Metric(
        "device_utilization_percent",
        "%",
        "none",
        "efficiency",
        "both",
        "Mean accelerator (GPU) utilization reported by the tool.",
    ),
    Metric(
        "power_consumption_watts",
        "W",
        "none",
        "energy",
        "both",
        "Mean power over the measured window.",
    ),
    Metric(
        "energy_per_step_joules",
        "J",
        "lower",
        "energy",
        "training",
        "Energy over the measured window / steps in the window.",
    ),
    Metric(
        "energy_per_sample_joules",
        "J",
        "lower",
        "energy",
        "both",
        "Energy over the measured window / samples in the window.",
    ),
    Metric(
        "performance_per_watt",
        "samples/s/W",
        "higher",
        "efficiency",
        "both",
        "Throughput (samples/s) / mean power (W).",
    ),
    Metric(
        "temperature_celsius",
        "°C",
        "lower",
        "thermal",
        "both",
        "Maximum temperature over the measured window.",
    ),
    Metric(
        "scaling_efficiency_pct",
        "%",
        "higher",
        "efficiency",
        "training",
        "Weak: X_N / (N * X_1); strong: t_1 / (N * t_N); measured in the same session.",
    ),
    Metric("ttft_ms", "ms", "lower", "llm", "inference", "Time to first token."),
    Metric("decode_tpt_ms", "ms", "lower", "llm", "inference", "Time per output token (decode)."),
)

REGISTRY: dict[str, Metric] = {m.name: m for m in _METRICS}


def get(name: str) -> Metric | None:
    """The registered metric called `name`, or None when it is not in the registry."""
    return REGISTRY.get(name)


def for_workload(workload_type: str) -> list[Metric]:
    """Metrics that apply to a `training` or `inference` workload, in registry order."""
    return [m for m in _METRICS if m.applies_to in (workload_type, "both")]


Status = Literal["measured", "derived", "estimated", "unavailable"]


@dataclass(frozen=True)
class MetricValue:
    """One number with where it came from. Unavailable means `value is None` and a reason."""

    value: float | None
    unit: str
    status: Status
    method: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metric(name: str, value: float | None, status: Status, method: str) -> MetricValue:
    """A registered metric's value; a None or non-finite value becomes unavailable."""
    unit = _unit(name)
    if value is None or not math.isfinite(value):
        return MetricValue(None, unit, "unavailable", method, "no finite value was recorded")
    return MetricValue(float(value), unit, status, method)


def unavailable(name: str, reason: str, method: str | None = None) -> MetricValue:
    return MetricValue(None, _unit(name), "unavailable", method, reason)


def _unit(name: str) -> str:
    m = get(name)
    assert m is not None, f"metric {name!r} is not in the registry"
    return m.unit
