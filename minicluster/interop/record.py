"""The normalized in-memory record every importer produces and the comparator reads, and the
checks every imported number passes (physically possible, not a placeholder, not simulated)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from minicluster.core import metrics as metrics_registry
from minicluster.core.coverage import Coverage
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue, Status

SourceFormat = Literal["minicluster", "trackiq", "vllm", "markdown", "sglang", "nccl-tests"]
# collectives: a collective micro-benchmark result (busbw per message size), neither a training
# run nor an inference benchmark; compared with either only on cross-applicable metrics.
WorkloadType = Literal["training", "inference", "collectives"]
FORMATS: tuple[str, ...] = ("minicluster", "trackiq", "vllm", "markdown", "sglang", "nccl-tests")


@dataclass
class BenchmarkRecord:
    """One benchmark or run result, whatever tool wrote it.

    `metrics` holds registry metrics only; a metric the source did not measure is present with
    `value=None` and a reason, or absent. `samples` holds per-step or per-request values for a
    metric when the source kept them (used for significance tests); `series` is a training
    result's `steps.series` as the source holds it (kept for round trips). `unknown` names the
    canonical fields the source does not record (world size, batch, ...) with the reason: they
    stay null, never a default.
    """

    label: str
    source_format: SourceFormat
    tool: str
    tool_version: str | None
    workload_type: WorkloadType
    workload_name: str
    hardware: str | None
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[Any]] | None = None
    unknown: dict[str, str] = field(default_factory=dict)
    # what ran (result/fingerprint.py): the defining fields compare checks before any verdict
    fingerprint: dict[str, Any] | None = None
    # fields of the source the importer does not read: listed, never dropped silently
    unread_fields: list[str] = field(default_factory=list)
    # the repeats this record stands for (compare/repeats.py: several runs a side), else empty
    runs: list[BenchmarkRecord] = field(default_factory=list)

    def measured(self, name: str) -> MetricValue | None:
        """The metric's value when the source measured it, else None."""
        mv = self.metrics.get(name)
        if mv is None or mv.value is None or mv.status == "unavailable":
            return None
        return mv


def number(value: Any, where: str) -> float | None:
    """`value` as a finite float, None for null; InputError for wrong types, NaN or infinity."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a number or null, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def count(value: Any, where: str) -> int | None:
    """`value` as a non-negative integer count, None for null."""
    x = number(value, where)
    if x is None:
        return None
    if x < 0 or x != int(x):
        raise InputError(f"{where}: expected a non-negative whole count, got {value!r}")
    return int(x)


def registry_metric(
    name: str,
    value: float | None,
    status: Status,
    method: str,
    reason: str | None = None,
    coverage: Coverage | None = None,
) -> MetricValue:
    """A registry metric; None becomes `unavailable` with `reason`."""
    m = metrics_registry.get(name)
    assert m is not None, f"metric {name!r} is not in the registry"
    if value is None:
        return MetricValue(
            None, m.unit, "unavailable", method, reason or "not reported by the source", coverage
        )
    return MetricValue(value, m.unit, status, method, None, coverage)


ABSOLUTE_ZERO_C = -273.15


def impossible(name: str, value: float) -> str | None:
    """Why `value` cannot be a measurement of metric `name` by a tool that did work, else None.

    Negative values of any registry metric (latency, throughput, energy, counts, ...), a
    temperature below absolute zero, and 0 for a metric the registry marks `positive` (a latency,
    throughput, power or energy of 0 is what a tool writes when it did not measure).
    """
    m = metrics_registry.get(name)
    assert m is not None, f"metric {name!r} is not in the registry"
    if m.unit == "°C":
        if value < ABSOLUTE_ZERO_C:
            return f"{value:g} °C, below absolute zero: physically impossible"
        return None
    if value < 0:
        return f"{value:g} {m.unit}, negative: physically impossible"
    if value == 0 and m.positive:
        return f"0 {m.unit} with work done: what a tool writes when it did not measure"
    return None


def check_physical(record: BenchmarkRecord) -> None:
    """Turn every physically impossible value of `record` into `unavailable`, with a warning."""
    dropped: list[str] = []
    for name, mv in record.metrics.items():
        if mv.value is None or mv.status == "unavailable":
            continue
        why = impossible(name, mv.value)
        if why is not None:
            record.metrics[name] = MetricValue(
                None, mv.unit, "unavailable", mv.method, why, mv.coverage
            )
            record.samples.pop(name, None)
            dropped.append(f"{name} = {mv.value:g} {mv.unit}")
    if dropped:
        record.warnings.append(
            "not measured (0 with work done, negative, or below absolute zero): "
            + ", ".join(dropped)
        )


def mark_simulated(record: BenchmarkRecord, names: tuple[str, ...], marker: str) -> None:
    """Metrics `names` of `record` came from a simulated source (`marker` says where the source
    says so): unavailable, never a measurement."""
    hit = []
    for name in names:
        mv = record.metrics.get(name)
        if mv is None or mv.value is None:
            continue
        record.metrics[name] = MetricValue(
            None, mv.unit, "unavailable", mv.method, f"simulated in the source ({marker})"
        )
        record.samples.pop(name, None)
        hit.append(name)
    if hit:
        record.warnings.append(
            f"{', '.join(hit)}: simulated in the source ({marker}): treated as not measured"
        )
