"""TrackIQ canonical results (schema 1.x, AutoPerfPy or MiniCluster), both directions.

Reading follows TrackIQ's own rules (`validate`); values the file marks as coming from a
simulated source (a `SimulatedPowerReader`, a synthetic collector) are unavailable. Writing
(`to_trackiq`) makes a result TrackIQ's validator accepts: TrackIQ requires some metrics as
numbers even when a tool did not measure them; those are written as 0 *and* listed, with the
reason, in `tool_payload.minicluster.unmeasured`, which the importer reads back, so a 0 written
here never returns as a measurement. The same block carries what TrackIQ has no field for (world
size, per-rank batch, backend, the per-step series), so a round trip keeps them.
"""

from __future__ import annotations

from typing import Any

from minicluster.core import clock
from minicluster.core import metrics as metrics_registry
from minicluster.core.coverage import Coverage
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.interop import trackiq_sources
from minicluster.interop.record import BenchmarkRecord, count, number, registry_metric
from minicluster.interop.series import samples_from_series

TRACKIQ_SCHEMA_VERSION = "1.1.0"
# TrackIQ's `Metrics` dataclass: these must be numbers, the others number or null.
REQUIRED_NUMBER_METRICS = (
    "throughput_samples_per_sec",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "memory_utilization_percent",
)
OPTIONAL_METRICS = (
    "communication_overhead_percent",
    "power_consumption_watts",
    "energy_per_step_joules",
    "performance_per_watt",
    "temperature_celsius",
    "ttft_ms",
    "tokens_per_sec",
    "decode_tpt_ms",
)
PAYLOAD_KEY = "minicluster"  # our own block inside tool_payload (round trip, samples)
# What TrackIQ has no field for, kept in our block of a minicluster export.
_DETAIL_KEYS = (
    "world_size",
    "per_rank_batch",
    "global_batch",
    "seq_len",
    "backend",
    "nodes",
    "launcher",
    "run_id",
    "framework_version",
)


def validate(data: dict[str, Any]) -> None:
    """Raise InputError at the first place `data` breaks TrackIQ's schema 1.1.0 rules."""

    def need(obj: Any, key: str, where: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise InputError(f"TrackIQ result: missing {where}{key}")
        return obj[key]

    def need_str(obj: Any, key: str, where: str) -> None:
        if not isinstance(need(obj, key, where), str):
            raise InputError(f"TrackIQ result: {where}{key} must be a string")

    for key in ("tool_name", "tool_version", "timestamp"):
        need_str(data, key, "")
    platform = need(data, "platform", "")
    for key in ("hardware_name", "os", "framework", "framework_version"):
        need_str(platform, key, "platform.")
    workload = need(data, "workload", "")
    need_str(workload, "name", "workload.")
    if need(workload, "workload_type", "workload.") not in ("inference", "training"):
        raise InputError("TrackIQ result: workload.workload_type must be 'inference' or 'training'")
    for key in ("batch_size", "steps"):
        v = need(workload, key, "workload.")
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputError(f"TrackIQ result: workload.{key} must be an integer")
        count(v, f"workload.{key}")
    metrics = need(data, "metrics", "")
    if not isinstance(metrics, dict):
        raise InputError("TrackIQ result: metrics must be an object")
    for key in REQUIRED_NUMBER_METRICS:
        if number(need(metrics, key, "metrics."), f"metrics.{key}") is None:
            raise InputError(f"TrackIQ result: metrics.{key} must be a number")
    for key in OPTIONAL_METRICS:
        number(metrics.get(key), f"metrics.{key}")
    regression = need(data, "regression", "")
    need(regression, "baseline_id", "regression.")
    number(need(regression, "delta_percent", "regression."), "regression.delta_percent")
    if need(regression, "status", "regression.") not in ("pass", "fail"):
        raise InputError("TrackIQ result: regression.status must be 'pass' or 'fail'")
    if not isinstance(need(regression, "failed_metrics", "regression."), list):
        raise InputError("TrackIQ result: regression.failed_metrics must be a list")


def to_record(data: dict[str, Any], label: str) -> BenchmarkRecord:
    validate(data)
    payload = _object(data.get("tool_payload"))
    ours = _object(payload.get(PAYLOAD_KEY))
    metrics, warnings = _metrics(data["metrics"], ours)
    wl, platform = data["workload"], data["platform"]
    hardware = platform["hardware_name"]
    details: dict[str, Any] = {
        "batch_size": wl["batch_size"],
        "steps": wl["steps"],
        "timestamp": data["timestamp"],
        "os": platform["os"],
        "framework": f"{platform['framework']} {platform['framework_version']}",
    }
    unknown: dict[str, str] = {}
    saved = _object(ours.get("details"))
    if ours:  # a minicluster export: what TrackIQ has no field for comes back from our block
        details.update({k: saved[k] for k in _DETAIL_KEYS if k in saved})
        raw_unknown = _object(ours.get("null_fields"))
        unknown = {str(k): str(v) for k, v in raw_unknown.items() if isinstance(v, str)}
    else:
        _foreign_details(wl, payload, details, unknown)
    series = ours.get("series") if isinstance(ours.get("series"), dict) else None
    if series is not None:
        samples, why_not = samples_from_series(
            series, metrics, details.get("global_batch"), details.get("seq_len")
        )
        warnings += why_not
    else:
        samples = _samples(ours)
    record = BenchmarkRecord(
        label=label,
        source_format="trackiq",
        tool=data["tool_name"],
        tool_version=data["tool_version"],
        workload_type=wl["workload_type"],
        workload_name=wl["name"],
        hardware=None if hardware in ("", "unknown") else hardware,
        metrics=metrics,
        samples=samples,
        warnings=warnings,
        details=details,
        series=series,
        unknown=unknown,
    )
    trackiq_sources.apply(record, payload)
    record.unread_fields = _unread(data, payload, ours)
    return record


def _foreign_details(
    wl: dict[str, Any], payload: dict[str, Any], details: dict[str, Any], unknown: dict[str, str]
) -> None:
    """World size and batches of a TrackIQ file from another tool: only what it records."""
    workers = payload.get("num_workers")
    if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
        details["world_size"] = workers
    else:
        unknown["world_size"] = "not in the TrackIQ result (no tool_payload.num_workers)"
    if wl["workload_type"] == "inference" or details.get("world_size") == 1:
        details["global_batch"] = wl["batch_size"] or None
        details["per_rank_batch"] = wl["batch_size"] or None
    else:
        why = "TrackIQ's one batch_size does not say whether it is per worker or global"
        unknown["global_batch"] = unknown["per_rank_batch"] = why
    unknown["backend"] = "not in the TrackIQ result"
    unknown["nodes"] = "not in the TrackIQ result"


def _unread(data: dict[str, Any], payload: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """What of the file no rule reads: top-level keys beyond TrackIQ's schema, and the
    tool_payload keys of another tool (per-sample data, summaries, configs)."""
    top = {
        "tool_name",
        "tool_version",
        "timestamp",
        "platform",
        "workload",
        "metrics",
        "regression",
        "tool_payload",
        "schema_version",
    }
    out = [k for k in data if k not in top]
    if ours:
        return out
    read = {"num_workers", "collector_name", "power_profile", "power_tool_payload", "config"}
    return out + [f"tool_payload.{k}" for k in payload if k not in read]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _samples(ours: dict[str, Any]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    raw = ours.get("samples")
    if isinstance(raw, dict):
        for name, values in raw.items():
            if isinstance(values, list):
                out[name] = [
                    v
                    for i, x in enumerate(values)
                    if (v := number(x, f"tool_payload.samples.{name}[{i}]")) is not None
                ]
    return out


def _metrics(raw: dict[str, Any], ours: dict[str, Any]) -> tuple[dict[str, MetricValue], list[str]]:
    """The canonical metrics, or, in a minicluster export, the full ones with their provenance
    (and the metrics TrackIQ has no field for). Zeros a tool writes when it did not measure are
    turned into unavailable later, by `record.check_physical`, like every format's."""
    warnings: list[str] = []
    full = _object(ours.get("metrics"))
    metrics: dict[str, MetricValue] = {}
    for name in () if full else REQUIRED_NUMBER_METRICS + OPTIONAL_METRICS:
        value = number(raw.get(name), f"metrics.{name}")
        metrics[name] = registry_metric(
            name, value, "measured", "TrackIQ canonical metrics", "null in the TrackIQ result"
        )
    for name, mv in full.items():
        if metrics_registry.get(name) is None:
            warnings.append(f"metric {name!r} is not in the registry; ignored")
            continue
        if isinstance(mv, dict) and "unit" in mv and "status" in mv:
            if mv["status"] not in ("measured", "derived", "estimated", "unavailable"):
                raise InputError(f"tool_payload metric {name}: unknown status {mv['status']!r}")
            cov = mv.get("coverage")
            metrics[name] = MetricValue(
                number(mv.get("value"), f"tool_payload metric {name}"),
                str(mv["unit"]),
                mv["status"],
                mv.get("method"),
                mv.get("reason"),
                Coverage.from_dict(cov) if isinstance(cov, dict) else None,
            )
    return metrics, warnings


def to_trackiq(record: BenchmarkRecord) -> dict[str, Any]:
    d = record.details
    unknown: list[str] = []

    def known(key: str, value: Any, fallback: Any) -> Any:
        if value is None:
            unknown.append(key)
            return fallback
        return value

    metrics: dict[str, float | None] = {}
    unmeasured: dict[str, str] = {}
    for name in REQUIRED_NUMBER_METRICS + OPTIONAL_METRICS:
        mv = record.measured(name)
        if mv is not None:
            metrics[name] = mv.value
            continue
        metrics[name] = 0.0 if name in REQUIRED_NUMBER_METRICS else None
        src = record.metrics.get(name)
        unmeasured[name] = src.reason if src and src.reason else "not reported by the source"
    result: dict[str, Any] = {
        "tool_name": record.tool,
        "tool_version": known("tool_version", record.tool_version, "unknown"),
        "timestamp": known(
            "timestamp",
            d.get("timestamp"),
            clock.utc_now_iso(),
        ),
        "platform": {
            "hardware_name": known("hardware_name", record.hardware, "unknown"),
            "os": known("os", d.get("os"), "unknown"),
            "framework": "pytorch" if record.source_format == "minicluster" else "unknown",
            "framework_version": known("framework_version", d.get("framework_version"), "unknown"),
        },
        "workload": {
            "name": record.workload_name,
            # TrackIQ knows training and inference only: a collectives benchmark measures the
            # training side's fabric (its name says "collectives").
            "workload_type": "training"
            if record.workload_type == "collectives"
            else record.workload_type,
            "batch_size": int(known("batch_size", d.get("global_batch") or d.get("batch_size"), 0)),
            "steps": int(known("steps", d.get("steps_measured") or d.get("steps"), 0)),
        },
        "metrics": metrics,
        "regression": {
            "baseline_id": None,
            "delta_percent": 0.0,
            "status": "pass",
            "failed_metrics": [],
        },
        "tool_payload": {
            PAYLOAD_KEY: {
                "note": "converted by minicluster; no regression check was run (regression is a "
                "placeholder); metrics listed in 'unmeasured' were not measured",
                "source_format": record.source_format,
                "label": record.label,
                "unmeasured": unmeasured,
                "unknown_fields": unknown,
                "metrics": {k: v.to_dict() for k, v in record.metrics.items()},
                "samples": record.samples,
                "series": record.series,
                "details": d,
                "null_fields": record.unknown,
                "warnings": record.warnings,
            }
        },
        "schema_version": TRACKIQ_SCHEMA_VERSION,
    }
    validate(result)
    return result
