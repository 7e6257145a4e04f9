"""Write a record as a TrackIQ canonical result (schema 1.1.0) that TrackIQ's validator accepts.

TrackIQ requires some metrics as numbers even when a tool did not measure them. Those are
written as 0 *and* listed, with the reason, in `tool_payload.minicluster.unmeasured`; our
importer reads that list back, so a 0 written here never comes back as a measurement.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from minicluster.interop.record import BenchmarkRecord
from minicluster.interop.trackiq import (
    OPTIONAL_METRICS,
    PAYLOAD_KEY,
    REQUIRED_NUMBER_METRICS,
    TRACKIQ_SCHEMA_VERSION,
    validate,
)


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
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
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
                "details": d,
                "warnings": record.warnings,
            }
        },
        "schema_version": TRACKIQ_SCHEMA_VERSION,
    }
    validate(result)
    return result
