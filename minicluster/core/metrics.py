"""The master list of metrics (name, unit, direction, family, workloads, how to compare) and the
metric value type.

Worker, aggregation, comparator and reports all read this one table, so a metric's direction
(e.g. temperature: lower is better), its noise floor and the statistic its per-step samples
reproduce are decided once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from minicluster.core.coverage import Coverage

Direction = Literal["lower", "higher", "none"]
Family = Literal[
    "latency",
    "throughput",
    "efficiency",
    "energy",
    "thermal",
    "memory",
    "communication",
    "llm",
    "reliability",
    "compute",
]
# `node_check`: a figure of `minicluster node-check` (one node's hardware), never of a training or
# inference run: `for_workload("training")` leaves it out.
AppliesTo = Literal["training", "inference", "both", "node_check"]
# The statistic of a run's per-step samples that gives the run-level value (numpy percentiles,
# linear interpolation): what `compare` recomputes on resampled steps.
Statistic = Literal["median", "mean", "p90", "p95", "p99", "harmonic_mean"]


@dataclass(frozen=True)
class Metric:
    """One registry entry.

    `per_step`: in a training result the value is `statistic` of a per-step series (`steps.series`
    in result.json); such a metric is only judged on those samples, never on one number.
    `positive`: a tool that did work cannot have measured 0 (nor a negative value) here, so a 0
    means "not measured".
    """

    name: str
    unit: str
    direction: Direction
    family: Family
    applies_to: AppliesTo
    description: str
    per_step: bool = False
    statistic: Statistic | None = None
    positive: bool = False


_METRICS: tuple[Metric, ...] = (
    Metric(
        "throughput_samples_per_sec",
        "samples/s",
        "higher",
        "throughput",
        "both",
        "Global samples per second: global batch / step time (slowest rank per step).",
        per_step=True,
        statistic="harmonic_mean",
        positive=True,
    ),
    Metric(
        "tokens_per_sec",
        "tokens/s",
        "higher",
        "throughput",
        "both",
        "Global tokens per second (language-model workloads).",
        per_step=True,
        statistic="harmonic_mean",
        positive=True,
    ),
    Metric(
        "latency_p50_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "Median step time (training) or request latency (inference).",
        per_step=True,
        statistic="median",
        positive=True,
    ),
    Metric(
        "latency_p90_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "90th percentile of step time (training) or request latency (inference).",
        per_step=True,
        statistic="p90",
        positive=True,
    ),
    Metric(
        "latency_p95_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "95th percentile of step time (training) or request latency (inference).",
        per_step=True,
        statistic="p95",
        positive=True,
    ),
    Metric(
        "latency_p99_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "99th percentile of step time (training) or request latency (inference).",
        per_step=True,
        statistic="p99",
        positive=True,
    ),
    Metric(
        "latency_mean_ms",
        "ms",
        "lower",
        "latency",
        "both",
        "Mean step time (training) or request latency (inference).",
        per_step=True,
        statistic="mean",
        positive=True,
    ),
    Metric(
        "step_time_mean_ms",
        "ms",
        "lower",
        "latency",
        "training",
        "Mean step time over measured steps, slowest rank per step.",
        per_step=True,
        statistic="mean",
        positive=True,
    ),
    Metric(
        "compute_ms",
        "ms",
        "lower",
        "latency",
        "training",
        "Median over steps of the slowest rank's forward + backward compute (minus exposed "
        "communication): the per-step max over ranks, the critical path.",
        per_step=True,
        statistic="median",
        positive=True,
    ),
    Metric(
        "allreduce_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the per-step max over ranks of the time with at least one gradient "
        "all-reduce in flight (transfer + the longest wait).",
        per_step=True,
        statistic="median",
    ),
    Metric(
        "allreduce_wait_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the longest time any rank waited in the all-reduce for the slowest "
        "(per step: max over ranks of comm - min over ranks of comm).",
        per_step=True,
        statistic="median",
    ),
    Metric(
        "allreduce_transfer_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the all-reduce transfer time (per step: min over ranks of comm time).",
        per_step=True,
        statistic="median",
    ),
    Metric(
        "exposed_comm_ms",
        "ms",
        "lower",
        "communication",
        "training",
        "Median over steps of the per-step max over ranks of communication not hidden behind "
        "backward compute.",
        per_step=True,
        statistic="median",
    ),
    Metric(
        "communication_overhead_percent",
        "%",
        "lower",
        "communication",
        "training",
        "100 * sum of exposed communication / sum of step time (both per-step max over ranks).",
        per_step=True,  # a ratio of two per-step sums: no one series reproduces it
    ),
    Metric(
        "busbw_gbps",
        "GB/s",
        "higher",
        "communication",
        "training",
        "Bus bandwidth (nccl-tests convention): bytes / transfer time x 2(n-1)/n, decimal GB/s.",
        per_step=True,
        statistic="median",
        positive=True,
    ),
    Metric(
        "memory_utilization_percent",
        "%",
        "lower",
        "memory",
        "both",
        "Peak memory as a percent of the device (GPU) or host (CPU) total.",
        positive=True,
    ),
    Metric(
        "achieved_tflops",
        "TFLOP/s",
        "higher",
        "compute",
        "training",
        "Model FLOPs per second of the job: FLOPs per sample (core.flops: 6 per matmul weight, "
        "plus attention for decoders; a custom model's flops_per_sample) x global batch / step "
        "time (slowest rank per step).",
        positive=True,
    ),
    Metric(
        "tflops_per_rank",
        "TFLOP/s",
        "higher",
        "compute",
        "training",
        "achieved_tflops / world size.",
        positive=True,
    ),
    Metric(
        "mfu_pct",
        "%",
        "higher",
        "compute",
        "training",
        "Model FLOPs utilization: tflops_per_rank / the device's dense peak for the run's "
        "precision (core.flops.PEAKS, vendor datasheets); null on CPU or an unlisted device.",
        positive=True,
    ),
    Metric(
        "memory_peak_mib",
        "MiB",
        "lower",
        "memory",
        "both",
        "Peak memory per rank (CUDA max allocated on GPU, process RSS on CPU); max over ranks.",
        positive=True,
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
        positive=True,
    ),
    Metric(
        "energy_per_step_joules",
        "J",
        "lower",
        "energy",
        "training",
        "Energy over the measured window / steps in the window.",
        positive=True,
    ),
    Metric(
        "energy_per_sample_joules",
        "J",
        "lower",
        "energy",
        "both",
        "Energy over the measured window / samples in the window.",
        positive=True,
    ),
    Metric(
        "performance_per_watt",
        "samples/s/W",
        "higher",
        "efficiency",
        "both",
        "Throughput (samples/s) / mean power (W).",
        positive=True,
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
    Metric(
        "ttft_ms",
        "ms",
        "lower",
        "llm",
        "inference",
        "Time to first token.",
        statistic="median",
        positive=True,
    ),
    Metric(
        "decode_tpt_ms",
        "ms",
        "lower",
        "llm",
        "inference",
        "Time per output token (decode).",
        statistic="median",
        positive=True,
    ),
    # Node-check figures (`minicluster node-check`): one node's devices measured alone, each
    # with the conditions it was measured under (`dtype`, `n`, `bytes`), judged against a
    # reference measured under the same conditions. GB/s are decimal (1e9 B/s).
    Metric(
        "gemm_tflops",
        "TFLOP/s",
        "higher",
        "compute",
        "node_check",
        "Dense matrix multiply C = A B of n x n matrices, 2 n^3 / median call time, result "
        "checked; on a node with several devices, the slowest device's rate.",
        positive=True,
    ),
    Metric(
        "device_copy_gbps",
        "GB/s",
        "higher",
        "memory",
        "node_check",
        "Device memory copy (read + write of one buffer: 2 x bytes / time); slowest device.",
        positive=True,
    ),
    Metric(
        "device_triad_gbps",
        "GB/s",
        "higher",
        "memory",
        "node_check",
        "Device memory STREAM triad a = b + s c (3 x bytes per element / time); slowest device.",
        positive=True,
    ),
    Metric(
        "h2d_gbps",
        "GB/s",
        "higher",
        "communication",
        "node_check",
        "Pinned host-to-device copy bandwidth (bytes / time); slowest device.",
        positive=True,
    ),
    Metric(
        "d2h_gbps",
        "GB/s",
        "higher",
        "communication",
        "node_check",
        "Pinned device-to-host copy bandwidth (bytes / time); slowest device.",
        positive=True,
    ),
    Metric(
        "host_triad_gbps",
        "GB/s",
        "higher",
        "memory",
        "node_check",
        "Host memory STREAM triad a = b + s c over all cores (STREAM's count: 3 x 8 bytes per "
        "element, write-allocate traffic not counted).",
        positive=True,
    ),
    Metric(
        "request_success_rate_percent",
        "%",
        "higher",
        "reliability",
        "inference",
        "Requests completed / requests sent (completed + failed, or the prompts issued): every "
        "other metric of an inference benchmark covers the completed requests only.",
    ),
    Metric(
        "requests_completed",
        "requests",
        "none",
        "reliability",
        "inference",
        "Requests that completed (the set the latency and throughput metrics cover).",
    ),
    Metric(
        "requests_failed",
        "requests",
        "none",
        "reliability",
        "inference",
        "Requests that failed (left out of every latency and throughput metric by the tool).",
    ),
)

# Absolute noise floor per unit: a difference smaller than this is no change, whatever the
# statistics say. ms: above perf_counter's resolution and the kernel's default 50 us timer slack
# that every sleep and wake-up carries; degrees: NVML and most hwmon sensors report whole degrees;
# MiB: peak RSS moves by allocator arenas, not by the workload, below 1 MiB. Units without an
# entry have no absolute floor (their resolution is far below any difference a user acts on).
NOISE_FLOOR_BY_UNIT: dict[str, float] = {"ms": 0.05, "°C": 1.0, "MiB": 1.0}

REGISTRY: dict[str, Metric] = {m.name: m for m in _METRICS}


def get(name: str) -> Metric | None:
    """The registered metric called `name`, or None when it is not in the registry."""
    return REGISTRY.get(name)


def noise_floor(name: str) -> float | None:
    """The absolute difference below which metric `name` has not changed (its unit's floor)."""
    m = get(name)
    return None if m is None else NOISE_FLOOR_BY_UNIT.get(m.unit)


def for_workload(workload_type: str) -> list[Metric]:
    """Metrics that apply to a `training` or `inference` workload, in registry order."""
    return [m for m in _METRICS if m.applies_to in (workload_type, "both")]


Status = Literal["measured", "derived", "estimated", "unavailable"]


@dataclass(frozen=True)
class MetricValue:
    """One number with where it came from. Unavailable means `value is None` and a reason.

    `coverage` (optional) says which requests or sources the number covers; `to_dict` leaves it
    out when it is None, so a result without coverage keeps its exact bytes.
    """

    value: float | None
    unit: str
    status: Status
    method: str | None = None
    reason: str | None = None
    coverage: Coverage | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "value": self.value,
            "unit": self.unit,
            "status": self.status,
            "method": self.method,
            "reason": self.reason,
        }
        if self.coverage is not None:
            d["coverage"] = self.coverage.to_dict()
        return d


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
