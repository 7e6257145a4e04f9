"""minicluster's own `result.json` (run, sweep, collectives, or a converted import), both directions.

Reading takes each per-step metric's samples from the result's `steps.series` (the series the
metric was computed from; a result without one has none) and the energy metrics' coverage from
its telemetry block. Writing (`to_result`) turns any imported record into a `minicluster/1.x`
result: a field the source does not record is null, with the reason under `imported_from`.
"""

from __future__ import annotations

from typing import Any

from minicluster import __version__
from minicluster.core import metrics as metrics_registry
from minicluster.core.coverage import Coverage
from minicluster.core.metrics import MetricValue
from minicluster.core.units import format_size
from minicluster.interop.record import BenchmarkRecord
from minicluster.interop.series import samples_from_series
from minicluster.result import fingerprint
from minicluster.result.schema import SCHEMA_VERSION, validate_result

_ENERGY_SOURCES = ("nvml", "rapl")
_ENERGY_METRICS = (
    "power_consumption_watts",
    "energy_per_step_joules",
    "energy_per_sample_joules",
    "performance_per_watt",
)


def to_record(data: dict[str, Any], label: str) -> BenchmarkRecord:
    validate_result(data)
    metrics: dict[str, MetricValue] = {}
    warnings: list[str] = []
    for name, mv in data["metrics"].items():
        if metrics_registry.get(name) is None:
            warnings.append(f"metric {name!r} is not in the registry; ignored")
            continue
        cov = mv.get("coverage")
        metrics[name] = MetricValue(
            mv["value"],
            mv["unit"],
            mv["status"],
            mv.get("method"),
            mv.get("reason"),
            Coverage.from_dict(cov) if isinstance(cov, dict) else None,
        )
    energy = _energy_coverage(data.get("telemetry"))
    if energy is not None:
        for name in _ENERGY_METRICS:
            mv = metrics.get(name)
            if mv is not None and mv.coverage is None:
                metrics[name] = MetricValue(
                    mv.value, mv.unit, mv.status, mv.method, mv.reason, energy
                )
    wl = data["workload"]
    workload_type = wl["workload_type"]
    steps = data.get("steps")
    series = steps.get("series") if isinstance(steps, dict) else None
    samples: dict[str, list[float]] = {}
    if workload_type == "training":
        samples, why_not = samples_from_series(
            series, metrics, wl.get("global_batch"), wl.get("seq_len")
        )
        warnings += why_not
    if data["status"] != "ok":
        warnings.append(f"run status is {data['status']!r}")
    imported = data.get("imported_from") or {}
    unknown = imported.get("unknown_fields") or {}
    collectives = workload_type == "collectives"
    steps_measured = len(series["step"]) if isinstance(series, dict) and "step" in series else None
    return BenchmarkRecord(
        label=label,
        source_format="minicluster",
        tool=data["tool"]["name"],
        tool_version=data["tool"]["version"],
        workload_type=workload_type,
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
            "timing_method": data.get("timing_method"),
            "global_batch": wl.get("global_batch"),
            "seq_len": wl.get("seq_len"),
            "steps_measured": steps_measured,
            "run_status": data["status"],
            "collective_sizes": (data.get("collectives") or {}).get("results")
            if collectives
            else None,
        },
        series=series if isinstance(series, dict) else None,
        unknown={str(k): str(v) for k, v in unknown.items()} if isinstance(unknown, dict) else {},
        fingerprint=fingerprint.of_result(data),
    )


def _energy_coverage(telemetry: Any) -> Coverage | None:
    """Which energy sources the run's energy sum covers: those present on the machine (available)
    whose energy counter was read over the window; None when the result has no telemetry block."""
    if not isinstance(telemetry, dict) or not isinstance(telemetry.get("nodes"), list):
        return None
    present: list[str] = []
    read: list[str] = []
    for node in telemetry["nodes"]:
        sources = node.get("sources") if isinstance(node, dict) else None
        for src in sources if isinstance(sources, list) else []:
            if not isinstance(src, dict) or src.get("source") not in _ENERGY_SOURCES:
                continue
            if not src.get("available"):
                continue
            name = f"{src['source']} {src.get('id') or src.get('scope')} on {node.get('hostname')}"
            present.append(name)
            energy = (src.get("readings") or {}).get("energy_j") or {}
            if isinstance(energy, dict) and energy.get("value") is not None:
                read.append(name)
    if not present:
        return None
    return Coverage("energy sources", len(read), len(present), tuple(read))


def _node_count(nodes: Any) -> int | None:
    """The node count of a result: its per-node section's length (1.2), or the count results
    before 1.2 hold instead; None for an imported result that did not know it."""
    if nodes is None:
        return None
    return len(nodes) if isinstance(nodes, list) else int(nodes)


def _collectives_name(data: dict[str, Any]) -> str:
    """`collectives 1K..16M float32`: size range and dtype in the name, so the comparator warns
    when two benchmarks cover different sizes (their peak busbw and largest-size all_reduce
    time then differ by construction). The pairwise link test: `pairwise send_recv 64M float32`
    (its busbw is a median pair's send/recv, not an all_reduce's)."""
    pw = data.get("pairwise")
    if isinstance(pw, dict):
        size = pw.get("size_bytes")
        size_text = f" {format_size(size)}" if isinstance(size, int) else ""
        return f"pairwise {pw.get('transport') or 'send_recv'}{size_text} {pw.get('dtype') or ''}".strip()
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


def _known(record: BenchmarkRecord, key: str, value: Any, unknown: dict[str, str], why: str) -> Any:
    """`value`, or None with the reason recorded under `unknown[key]`."""
    if value is None:
        unknown[key] = record.unknown.get(key) or why
    return value


def to_result(record: BenchmarkRecord) -> dict[str, Any]:
    """`record` as a `minicluster/1.x` result dict (validated). Nothing is invented: a field the
    source does not record is null and `imported_from.unknown_fields` says why."""
    d = record.details
    unknown: dict[str, str] = {}
    source = f"not recorded in the {record.source_format} input"
    if record.workload_type == "collectives":
        global_batch = per_rank = None  # a collectives benchmark has no batch
    else:
        global_batch = _known(
            record, "global_batch", d.get("global_batch") or d.get("batch_size"), unknown, source
        )
        per_rank = _known(record, "per_rank_batch", d.get("per_rank_batch"), unknown, source)
    world_size = _known(record, "world_size", d.get("world_size"), unknown, source)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": str(d.get("run_id") or record.label),
        "created_at": _known(record, "created_at", d.get("timestamp"), unknown, source),
        "status": "ok",
        "tool": {"name": record.tool, "version": record.tool_version or "unknown"},
        "launcher": str(d.get("launcher") or "unknown"),
        "backend": _known(record, "backend", d.get("backend"), unknown, source),
        "world_size": world_size,
        "nodes": _known(record, "nodes", d.get("nodes"), unknown, source),
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
            "seq_len": d.get("seq_len"),
            "params": None,
        },
        "metrics": {k: v.to_dict() for k, v in record.metrics.items()},
        "ranks": [],
        "steps": {"series": record.series} if record.series else None,
        "faults": {"injected": [], "detected": []},
        "errors": [],
        "imported_from": {
            "format": record.source_format,
            "label": record.label,
            "converted_by": f"minicluster {__version__}",
            "warnings": record.warnings,
            "unknown_fields": unknown,
            "unread_fields": record.unread_fields,
        },
    }
    if record.workload_type == "collectives" and record.details.get("collective_sizes"):
        result["collectives"] = _collectives_block(record)
    if record.fingerprint is not None:
        result["fingerprint"] = record.fingerprint
    fingerprint.attach(result)
    validate_result(result)
    return result


def _collectives_block(record: BenchmarkRecord) -> dict[str, Any]:
    """The `collectives` table of an imported collectives benchmark (nccl-tests): one row per
    op and size, as the source reported it."""
    d = record.details
    return {
        "rule": d.get("collective_rule") or f"as reported by {record.tool}",
        "dtype": d.get("dtype"),
        "iters": d.get("iters"),
        "warmup_iters": d.get("warmup_iters"),
        "world_size": d.get("world_size") or 1,
        "wrong_total": sum(int(r.get("wrong") or 0) for r in d["collective_sizes"]),
        "results": [dict(r) for r in d["collective_sizes"]],
    }
