"""minicluster's own `result.json` (run, sweep or collectives), both directions.

Reading keeps the per-step samples the result holds (for significance tests); writing
(`to_result`) turns any imported record into a `minicluster/1` result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from minicluster import __version__
from minicluster.analysis.records import read_run_dir
from minicluster.core import metrics as metrics_registry
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.core.units import format_size
from minicluster.interop.record import BenchmarkRecord
from minicluster.result.schema import SCHEMA_VERSION, validate_result

# Metrics whose per-step samples are the per-step max-over-ranks step time.
_STEP_LATENCY_METRICS = (
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "step_time_mean_ms",
)


def to_record(data: dict[str, Any], path: Path, label: str) -> BenchmarkRecord:
    validate_result(data)
    metrics: dict[str, MetricValue] = {}
    warnings: list[str] = []
    for name, mv in data["metrics"].items():
        if metrics_registry.get(name) is None:
            warnings.append(f"metric {name!r} is not in the registry; ignored")
            continue
        metrics[name] = MetricValue(
            mv["value"], mv["unit"], mv["status"], mv.get("method"), mv.get("reason")
        )
    wl = data["workload"]
    step_max_ms = _step_max_ms(data, path, warnings)
    samples: dict[str, list[float]] = {}
    if step_max_ms is not None and step_max_ms.size:
        as_list = step_max_ms.tolist()
        for name in _STEP_LATENCY_METRICS:
            if name in metrics:
                samples[name] = as_list
        global_batch = wl.get("global_batch")
        if "throughput_samples_per_sec" in metrics and global_batch and np.all(step_max_ms > 0):
            samples["throughput_samples_per_sec"] = (global_batch * 1000.0 / step_max_ms).tolist()
    if data["status"] != "ok":
        warnings.append(f"run status is {data['status']!r}")
    collectives = wl.get("workload_type") == "collectives"
    return BenchmarkRecord(
        label=label,
        source_format="minicluster",
        tool=data["tool"]["name"],
        tool_version=data["tool"]["version"],
        workload_type="collectives" if collectives else "training",
        workload_name=_collectives_name(data) if collectives else str(wl.get("name", "unknown")),
        hardware=_hardware(data.get("platform") or {}),
        metrics=metrics,
        samples=samples,
        warnings=warnings,
        details={
            "run_id": data["run_id"],
            "timestamp": data["created_at"],
            "launcher": data["launcher"],
            "nodes": _node_count(data["nodes"]),
            "os": _os(data.get("platform") or {}),
            "framework_version": (data.get("platform") or {}).get("torch"),
            "per_rank_batch": wl.get("per_rank_batch"),
            "world_size": data["world_size"],
            "backend": data["backend"],
            "global_batch": wl.get("global_batch"),
            "steps_measured": int(step_max_ms.size) if step_max_ms is not None else None,
        },
    )


def _node_count(nodes: Any) -> int:
    """The node count of a result: its per-node section's length (1.2), or the count results
    before 1.2 hold instead."""
    return len(nodes) if isinstance(nodes, list) else int(nodes)


def _collectives_name(data: dict[str, Any]) -> str:
    """`collectives 1K..16M float32`: size range and dtype in the name, so the comparator warns
    when two benchmarks cover different sizes (their peak busbw and largest-size all_reduce
    time then differ by construction)."""
    coll = data.get("collectives") or {}
    sizes = [r.get("nominal_bytes", r.get("size_bytes")) for r in coll.get("results") or []]
    sizes = [s for s in sizes if isinstance(s, int)]
    span = f" {format_size(min(sizes))}..{format_size(max(sizes))}" if sizes else ""
    dtype = f" {coll['dtype']}" if coll.get("dtype") else ""
    return f"collectives{span}{dtype}"


def _os(platform: dict[str, Any]) -> str | None:
    nodes = platform.get("nodes") or []
    return str(nodes[0]["os"]) if nodes and nodes[0].get("os") else None


def _hardware(platform: dict[str, Any]) -> str | None:
    nodes = platform.get("nodes") or []
    if not nodes:
        hw = platform.get("hardware_name")  # a result converted from another format
        return str(hw) if hw else None
    node = nodes[0]
    gpus = node.get("gpus") or []
    if gpus:
        first = gpus[0]
        return (
            str(first.get("name") or first.get("model") or first)
            if isinstance(first, dict)
            else str(first)
        )
    return str(node.get("cpu")) if node.get("cpu") else None


def _step_max_ms(data: dict[str, Any], path: Path, warnings: list[str]) -> np.ndarray | None:
    """Per measured step, the max over ranks of step time (embedded, or read from rank files)."""
    steps = data.get("steps")
    per_rank: list[dict[int, float]] = []
    if isinstance(steps, dict) and isinstance(steps.get("embedded"), dict):
        for rank_steps in steps["embedded"].values():
            per_rank.append(
                {
                    int(s): float(t)
                    for s, w, t in zip(
                        rank_steps["step"],
                        rank_steps["warmup"],
                        rank_steps["step_time_ms"],
                        strict=True,
                    )
                    if not w and t is not None
                }
            )
    elif isinstance(steps, dict) and isinstance(steps.get("rank_files"), str):
        per_rank, why_not = _read_rank_files(path.parent, data["world_size"])
        if why_not:
            warnings.append(f"no per-step samples ({why_not}): no significance test")
            return None
    else:
        return None
    common = set.intersection(*(set(r) for r in per_rank)) if per_rank else set()
    if not common:
        return None
    order = sorted(common)
    table = np.array([[r[s] for s in order] for r in per_rank], dtype=float)
    return table.max(axis=0)


def _read_rank_files(run_dir: Path, world_size: int) -> tuple[list[dict[int, float]], str | None]:
    """Measured step times per rank from the run's rank files, or ([], why not)."""
    try:
        records = read_run_dir(run_dir)
    except InputError as e:
        return [], str(e)
    by_rank = {rec.rank: rec for rec in records}
    out: list[dict[int, float]] = []
    for rank in range(world_size):
        rec = by_rank.get(rank)
        cols = rec.columns if rec is not None else {}
        if "step_time_ms" not in cols:
            return [], f"rank {rank} recorded no step"
        measured = ~cols["warmup"] if "warmup" in cols else np.ones(rec.n_steps, bool)  # type: ignore[union-attr]
        if not measured.any():
            return [], f"rank {rank} recorded no measured step"
        out.append(
            dict(
                zip(
                    cols["step"][measured].tolist(),
                    cols["step_time_ms"][measured].tolist(),
                    strict=True,
                )
            )
        )
    return out, None


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
        # A count, not the per-node section: an imported record carries no per-node figures.
        "nodes": d.get("nodes") if isinstance(d.get("nodes"), int) else 0,
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
