"""minicluster's own `result.json` (run, sweep, collectives, or a converted import), both directions.

Reading takes each per-step metric's samples from the result's `steps.series` (the series the
metric was computed from; a result without one has none) and the energy metrics' coverage from
its telemetry block. Writing (`to_result`) turns any imported record into a `minicluster/1.x`
result: a field the source does not record is null, with the reason under `imported_from`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from minicluster.analysis.verdicts import verdicts
from minicluster.core import metrics as metrics_registry
from minicluster.core.coverage import Coverage
from minicluster.core.metrics import MetricValue
from minicluster.core.units import format_size
from minicluster.core.version import __version__
from minicluster.interop.record import BenchmarkRecord
from minicluster.interop.series import samples_from_series
from minicluster.result import fingerprint
from minicluster.result.model import SCHEMA_VERSION, Platform, RunResult, Telemetry
from minicluster.result.schema import validate_result

_ENERGY_SOURCES = ("nvml", "rapl")
_ENERGY_METRICS = (
    "power_consumption_watts",
    "energy_per_step_joules",
    "energy_per_sample_joules",
    "performance_per_watt",
)


def to_record(result: RunResult, label: str) -> BenchmarkRecord:
    """`result` as the record `compare` reads: its registry metrics (with the energy metrics'
    coverage from its telemetry), and each per-step metric's samples from `steps.series`."""
    metrics: dict[str, MetricValue] = {}
    warnings: list[str] = []
    for name, mv in result.metrics.items():
        if metrics_registry.get(name) is None:
            warnings.append(f"metric {name!r} is not in the registry; ignored")
            continue
        metrics[name] = mv
    energy = _energy_coverage(result.telemetry)
    if energy is not None:
        for name in _ENERGY_METRICS:
            energy_mv = metrics.get(name)
            if energy_mv is not None and energy_mv.coverage is None:
                metrics[name] = dataclasses.replace(energy_mv, coverage=energy)
    wl = result.workload
    series = result.series
    samples: dict[str, list[float]] = {}
    if wl.workload_type == "training":
        samples, why_not = samples_from_series(series, metrics, wl.global_batch, wl.seq_len)
        warnings += why_not
    if result.status != "ok":
        warnings.append(f"run status is {result.status!r}")
    unknown = result.imported_from.unknown_fields if result.imported_from is not None else {}
    collectives = wl.workload_type == "collectives"
    steps_measured = len(series["step"]) if series is not None and "step" in series else None
    return BenchmarkRecord(
        label=label,
        source_format="minicluster",
        tool=result.tool.name,
        tool_version=result.tool.version,
        workload_type=wl.workload_type,
        workload_name=_collectives_name(result) if collectives else wl.name,
        hardware=result.platform.hardware,
        metrics=metrics,
        samples=samples,
        warnings=warnings,
        details={
            "run_id": result.run_id,
            "timestamp": result.created_at,
            "launcher": result.launcher,
            "nodes": _node_count(result),
            "os": _os(result.platform),
            "framework_version": result.platform.torch,
            "per_rank_batch": wl.per_rank_batch,
            "world_size": result.world_size,
            "backend": result.backend,
            "timing_method": result.timing_method,
            "global_batch": wl.global_batch,
            "seq_len": wl.seq_len,
            "steps_measured": steps_measured,
            "run_status": result.status,
            # what the run's own checks said (its exit-policy verdicts and findings): a gate
            # names them beside what it says of the numbers
            "own_verdicts": verdicts(result),
            "own_findings": _own_findings(result),
            # why its own checks were NOT JUDGED (too few steps, too few pairs), when they were
            "own_not_judged": _own_not_judged(result),
            # the ranks' CPU time and run-queue delay per step (compare.host_load)
            "host_cpu": result.host_cpu.to_json() if result.host_cpu is not None else None,
            "collective_sizes": [r.to_json() for r in result.collectives.results]
            if collectives and result.collectives is not None
            else None,
        },
        series=series,
        unknown={str(k): str(v) for k, v in unknown.items()},
        fingerprint=fingerprint.of_result(result.to_json()),
    )


def _own_findings(result: RunResult) -> list[str]:
    """One line per finding of the run's own checks: detected faults (a straggler, a slow link,
    diverged replicas), culprits, a failed validation."""
    out = [
        f"{d.kind} rank {d.rank if d.rank is not None else 'n/a'}"
        + (f": {d.evidence}" if d.evidence else "")
        for d in result.faults.detected
    ]
    out += [
        c.summary or f"culprit rank {c.rank}: cost the run {c.cost_pct:.0f}% ({c.kind})"
        for c in result.culprits or []
    ]
    if result.validation is not None and result.validation.passed is False:
        out.append(f"validation failed: {result.validation.reason or 'see its checks'}")
    return out


def _own_not_judged(result: RunResult) -> list[str]:
    """Why the run's own verdict was NOT JUDGED (exit 2, nothing else found): the pairs' speed
    (`pairwise.not_judged`), the straggler test's too few steps (`not_judged`), a late rank or
    slow link that was host CPU contention (`host_contention`); [] when judged."""
    if "not_judged" not in verdicts(result):
        return []
    out = []
    if result.pairwise is not None and result.pairwise.not_judged:
        out.append(f"pairwise speed: {result.pairwise.not_judged}")
    if result.not_judged:
        out.append(result.not_judged)
    out += [h.text for h in result.host_contention or []]  # late for the host's other work
    return out or ["its own verdict was NOT JUDGED"]


def _energy_coverage(telemetry: Telemetry | None) -> Coverage | None:
    """Which energy sources the run's energy sum covers: those present on the machine (available)
    whose energy counter was read over the window; None when the result has no telemetry block."""
    if telemetry is None:
        return None
    present: list[str] = []
    read: list[str] = []
    for node in telemetry.nodes:
        for src in node.sources:
            if src.source not in _ENERGY_SOURCES or not src.available:
                continue
            name = f"{src.source} {src.id or src.scope} on {node.hostname}"
            present.append(name)
            energy = (src.readings or {}).get("energy_j") or {}
            if isinstance(energy, dict) and energy.get("value") is not None:
                read.append(name)
    if not present:
        return None
    return Coverage("energy sources", len(read), len(present), tuple(read))


def _collectives_name(result: RunResult) -> str:
    """`collectives 1K..16M float32`: size range and dtype in the name, so the comparator warns
    when two benchmarks cover different sizes (their peak busbw and largest-size all_reduce
    time then differ by construction). The pairwise link test: `pairwise send_recv 64M float32`
    (its busbw is a median pair's send/recv, not an all_reduce's)."""
    pw = result.pairwise
    if pw is not None:
        size_text = f" {format_size(pw.size_bytes)}" if isinstance(pw.size_bytes, int) else ""
        return f"pairwise {pw.transport or 'send_recv'}{size_text} {pw.dtype or ''}".strip()
    coll = result.collectives
    rows = coll.results if coll is not None else []
    sizes = [r.nominal_bytes if r.nominal_bytes is not None else r.size_bytes for r in rows]
    sizes = [s for s in sizes if isinstance(s, int)]
    span = f" {format_size(min(sizes))}..{format_size(max(sizes))}" if sizes else ""
    dtype = f" {coll.dtype}" if coll is not None and coll.dtype else ""
    return f"collectives{span}{dtype}"


def _node_count(result: RunResult) -> int | None:
    """The node count of a result: its per-node section's length (1.2), or the count results
    before 1.2 hold instead; None for an imported result that did not know it."""
    nodes = result.nodes
    if nodes is None:
        return None
    return len(nodes) if isinstance(nodes, list) else int(nodes)


def _os(platform: Platform) -> str | None:
    if platform.nodes:
        return platform.nodes[0].os or None
    return None


def _known(record: BenchmarkRecord, key: str, value: Any, unknown: dict[str, str], why: str) -> Any:
    """`value`, or None with the reason recorded under `unknown[key]`."""
    if value is None:
        unknown[key] = record.unknown.get(key) or why
    return value


def to_result(record: BenchmarkRecord) -> RunResult:
    """`record` as a `minicluster/1.x` result (validated). Nothing is invented: a field the
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
    return RunResult.from_json(result)


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
