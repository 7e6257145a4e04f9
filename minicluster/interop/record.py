"""The normalized in-memory record every importer produces and the comparator reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from minicluster.core import metrics as metrics_registry
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue, Status

SourceFormat = Literal["minicluster", "trackiq", "vllm", "markdown"]
# collectives: a collective micro-benchmark result (busbw per message size), neither a training
# run nor an inference benchmark; compared with either only on cross-applicable metrics.
WorkloadType = Literal["training", "inference", "collectives"]
FORMATS: tuple[str, ...] = ("minicluster", "trackiq", "vllm", "markdown")


@dataclass
class BenchmarkRecord:
    """One benchmark or run result, whatever tool wrote it.

    `metrics` holds registry metrics only; a metric the source did not measure is present with
    `value=None` and a reason, or absent. `samples` holds per-step or per-request values for a
    metric when the source kept them (used for significance tests).
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
    name: str, value: float | None, status: Status, method: str, reason: str | None = None
) -> MetricValue:
    """A registry metric; None becomes `unavailable` with `reason`."""
    m = metrics_registry.get(name)
    assert m is not None, f"metric {name!r} is not in the registry"
    if value is None:
        return MetricValue(
            None, m.unit, "unavailable", method, reason or "not reported by the source"
        )
    return MetricValue(value, m.unit, status, method)
