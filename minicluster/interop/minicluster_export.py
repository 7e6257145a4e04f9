"""Write a record as a `minicluster/1` result (metrics with provenance; no per-rank data)."""

from __future__ import annotations

from typing import Any

from minicluster import __version__
from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord
from minicluster.result.schema import SCHEMA_VERSION, validate_result


def to_result(record: BenchmarkRecord) -> dict[str, Any]:
    d = record.details
    global_batch = d.get("global_batch") or d.get("batch_size")
    world_size = d.get("world_size") or 1
    per_rank = d.get("per_rank_batch")
    if record.workload_type == "collectives":
        global_batch = per_rank = None  # a collectives benchmark has no batch
    elif not isinstance(global_batch, int) or global_batch < 1:
        raise InputError(f"{record.label}: batch size unknown, minicluster/1 needs one")
    else:
        per_rank = per_rank or max(1, global_batch // world_size)
    if not d.get("timestamp"):
        raise InputError(f"{record.label}: no timestamp in the source, minicluster/1 needs one")
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": str(d.get("run_id") or record.label),
        "created_at": str(d["timestamp"]),
        "status": "ok",
        "tool": {"name": record.tool, "version": record.tool_version or "unknown"},
        "launcher": str(d.get("launcher") or "unknown"),
        "backend": d.get("backend"),
        "world_size": world_size,
        "nodes": d.get("nodes") or 0,
        "config": {},
        "platform": {
            "hardware_name": record.hardware,
            "os": d.get("os"),
            "torch": d.get("framework_version"),
        },
        "workload": {
            "name": record.workload_name,
            "workload_type": record.workload_type,
            "per_rank_batch": per_rank,
            "global_batch": global_batch,
            "seq_len": None,
            "params": None,
        },
        "metrics": {k: v.to_dict() for k, v in record.metrics.items()},
        "ranks": [],
        "steps": None,
        "faults": {"injected": [], "detected": []},
        "errors": [],
        "imported_from": {
            "format": record.source_format,
            "label": record.label,
            "converted_by": f"minicluster {__version__}",
            "warnings": record.warnings,
        },
    }
    validate_result(result)
    return result
