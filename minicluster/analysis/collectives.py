"""Merge the ranks' collective benchmark records into one `minicluster/1` result. Never imports torch.

Each rank wrote one record per (op, size) with its own mean time, the max of that mean across
ranks and the wrong elements in its own output; here they become one row per (op, size):
time = that max, algbw and busbw derived from it (nccl-tests conventions, `collective_defs`),
wrong = the sum over ranks.
"""

from __future__ import annotations

from typing import Any

from minicluster.analysis import energy, envelope, nodes, rank_status
from minicluster.analysis.records import RankRecords
from minicluster.core import metrics as metrics_registry
from minicluster.core.collective_defs import (
    DTYPE_BYTES,
    FORMULAS,
    OPS,
    TIME_RULE,
    algbw_gbps,
    busbw_factor,
)
from minicluster.core.metrics import MetricValue, metric, unavailable
from minicluster.core.units import format_size

NO_STEPS = "a collectives run has no training steps"
NOT_SAMPLED = "not sampled: this result predates telemetry in collectives runs"
# Power and temperature are taken over the whole benchmark; these need training steps.
_PER_STEP_METRICS = ("energy_per_step_joules", "energy_per_sample_joules", "performance_per_watt")


def aggregate_collectives(
    records: list[RankRecords],
    launcher_error: str | None = None,
    aggregated_at: str | None = None,
    exit_codes: dict[int, int] | None = None,
    interrupted: bool = False,
) -> dict[str, Any]:
    """The canonical result of a collectives run (`aggregated_at` fixed for golden tests)."""
    head0, headers = envelope.rank0_header(records)
    section = envelope.run_config(head0).collectives
    world_size = max(h["world_size"] for h in headers)
    by_rank = {r.rank: r for r in records}

    errors: list[str] = [w for r in records for w in r.warnings]
    where = nodes.locate_ranks(records, world_size)
    multi_node = nodes.spans_nodes(where)
    fates = rank_status.classify(
        by_rank,
        world_size,
        exit_codes or {},
        lambda rec: f"after {_last(rec)}",
        interrupted,
        node_of=nodes.node_names(where) if multi_node else None,
    )
    errors += fates.errors
    if launcher_error:
        errors.append(f"launcher: {launcher_error}")
    failed_ranks = fates.failed
    interrupted = interrupted or bool(fates.of(rank_status.INTERRUPTED))
    rows = merge_rows(records, world_size)
    for row in rows:
        if row["wrong"]:
            ranks = ", ".join(str(r) for r in row["wrong_ranks"])
            errors.append(
                f"{row['op']} at {row['size_bytes']} B: {row['wrong']} wrong elements "
                f"(rank {ranks})"
            )
    wrong_total = sum(r["wrong"] or 0 for r in rows)
    pairs = [(r.header, r.summary) for _, r in sorted(by_rank.items()) if r.header and r.summary]
    # Results of runs from before telemetry was sampled here have no window in the summaries.
    sources = energy.collect_sources([p for p in pairs if p[1].get("telemetry")])
    metrics = _metrics(rows, by_rank, headers, world_size, sources)
    status = "ok"
    if failed_ranks or (launcher_error and not interrupted):
        status = "failed"
    elif interrupted:
        status = "incomplete"
    missing = fates.of(rank_status.MISSING)
    # No training steps: per node its ranks and their status, no step figures or scores.
    ray_nodes = nodes.ray_node_ids(records)
    node_section = nodes.nodes_section(
        where,
        None,
        {},
        missing,
        failed_ranks,
        aborted=fates.of(rank_status.ABORTED),
        ray_nodes=ray_nodes,
    )
    lost = nodes.lost_nodes(node_section, records, multi_node, launcher_error)
    errors += [f"node lost: {d['evidence']}" for d in lost]
    result = envelope.top_level(head0, headers, status, world_size, aggregated_at, node_section)
    result.update(
        {
            "timing_method": None,  # the benchmark's own rule is in the collectives block
            "link": None,
            "workload": {
                "name": "collectives",
                "workload_type": "collectives",
                "per_rank_batch": None,
                "global_batch": None,
                "seq_len": None,
                "params": None,
            },
            "metrics": {name: mv.to_dict() for name, mv in metrics.items()},
            "ranks": [
                _rank_entry(rank, by_rank.get(rank), fates.status[rank], where[rank])
                | {"ray_node_id": ray_nodes.get(rank)}
                for rank in range(world_size)
            ],
            "stragglers": [],
            "failed_ranks": failed_ranks,
            "aborted_ranks": fates.of(rank_status.ABORTED),
            "interrupted": interrupted,
            "steps": None,
            "scaling": None,
            "collectives": {
                "rule": TIME_RULE,
                "formulas": FORMULAS,
                "dtype": section.dtype,
                "element_bytes": DTYPE_BYTES.get(section.dtype),
                "size_multiple_bytes": world_size * DTYPE_BYTES.get(section.dtype, 1),
                "iters": section.iters,
                "warmup_iters": section.warmup_iters,
                "world_size": world_size,
                "root": section.root,
                "ops": section.ops,
                "wrong_total": wrong_total,
                "results": rows,
            },
            "faults": {"injected": [], "detected": lost},
            "validation": None,
            "errors": errors,
            "telemetry": energy.telemetry_section(sources, metrics) if sources else None,
        }
    )
    return result


def merge_rows(records: list[RankRecords], world_size: int) -> list[dict[str, Any]]:
    """One row per (op, nominal size) over every rank's records, in op order then size order."""
    lines: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for rec in records:
        for line in rec.collectives:
            lines.setdefault((line["op"], line["nominal_bytes"]), {})[rec.rank] = line
    order = {op: i for i, op in enumerate(OPS)}
    rows = []
    for key in sorted(lines, key=lambda k: (order.get(k[0], len(order)), k[1])):
        rows.append(_row(key[0], lines[key], world_size))
    return rows


def _row(op: str, per_rank: dict[int, dict[str, Any]], world_size: int) -> dict[str, Any]:
    first = per_rank[min(per_rank)]
    row: dict[str, Any] = {
        "op": op,
        "size_bytes": first["size_bytes"],
        "nominal_bytes": first["nominal_bytes"],
        "count": first["count"],
        "time_us": None,
        "algbw_gbps": None,
        "busbw_gbps": None,
        "wrong": None,
        "wrong_ranks": [],
        "status": "unavailable",
        "reason": first.get("reason"),
        "ranks_reported": len(per_rank),
    }
    measured = [ln for ln in per_rank.values() if ln.get("status") == "measured"]
    if not measured:
        return row
    # Every rank recorded the same all_reduce MAX; the max over them also covers a lost file.
    time_us = max(float(ln["time_us_max"]) for ln in measured)
    checked = {r: ln["wrong"] for r, ln in per_rank.items() if ln.get("wrong") is not None}
    reasons = sorted({ln["check_reason"] for ln in measured if ln.get("check_reason")})
    algbw = algbw_gbps(row["size_bytes"], time_us)
    row.update(
        time_us=time_us,
        algbw_gbps=algbw,
        busbw_gbps=algbw * busbw_factor(op, world_size),
        wrong=sum(checked.values()) if checked else None,
        wrong_ranks=sorted(r for r, w in checked.items() if w),
        status="measured",
        reason="; ".join(reasons) or None,
    )
    if len(per_rank) < world_size:
        missing = world_size - len(per_rank)
        row["reason"] = "; ".join(
            filter(None, [row["reason"], f"{missing} rank(s) left no record: #wrong is partial"])
        )
    return row


def _last(rec: RankRecords) -> str:
    if not rec.collectives:
        return "no (op, size) record"
    last = rec.collectives[-1]
    return f"{last['op']} at {last['size_bytes']} B ({len(rec.collectives)} records)"


def _rank_entry(
    rank: int, rec: RankRecords | None, status: str, node: nodes.NodeId
) -> dict[str, Any]:
    header = rec.header if rec else None
    summary = rec.summary if rec else None
    return {
        "rank": rank,
        "hostname": node.hostname,
        "node_rank": node.node_rank,
        "local_rank": header["local_rank"] if header else None,
        "device": header["device"] if header else None,
        "status": status,
        "steps_recorded": 0,
        "measured_steps": 0,
        "last_step": None,
        "collectives_recorded": len(rec.collectives) if rec else 0,
        "memory": summary.get("memory") if summary else None,
        "error": summary.get("error") if summary else None,
    }


def _telemetry_metrics(sources: list[dict[str, Any]]) -> dict[str, MetricValue]:
    """Power and temperature over the benchmark window; per-step energy has no steps here."""
    if not sources:
        names = ("power_consumption_watts", "temperature_celsius", *_PER_STEP_METRICS)
        return {name: unavailable(name, NOT_SAMPLED) for name in names}
    m = energy.energy_metrics(sources, None, 1)
    power = m["power_consumption_watts"]
    if power.value is not None:
        power = metric(
            "power_consumption_watts",
            power.value,
            power.status,
            f"over the whole benchmark window (every op and size): {power.method}",
        )
    m["power_consumption_watts"] = power
    for name in _PER_STEP_METRICS:
        m[name] = unavailable(name, NO_STEPS)
    return m


def _metrics(
    rows: list[dict[str, Any]],
    by_rank: dict[int, RankRecords],
    headers: list[dict[str, Any]],
    world_size: int,
    sources: list[dict[str, Any]],
) -> dict[str, MetricValue]:
    """Every registry metric a training result has, in registry order; most have no value here."""
    m: dict[str, MetricValue] = {}
    reduce_rows = [r for r in rows if r["op"] == "all_reduce" and r["status"] == "measured"]
    if world_size < 2:
        m["busbw_gbps"] = unavailable("busbw_gbps", "one rank: no inter-rank communication")
    elif not reduce_rows:
        m["busbw_gbps"] = unavailable("busbw_gbps", "all_reduce was not measured in this run")
    else:
        peak = max(reduce_rows, key=lambda r: r["busbw_gbps"])
        m["busbw_gbps"] = metric(
            "busbw_gbps",
            peak["busbw_gbps"],
            "derived",
            f"peak all_reduce busbw over sizes, at {format_size(peak['size_bytes'])} "
            f"({peak['size_bytes']} B): algbw x 2(n-1)/n (nccl-tests); {TIME_RULE}",
        )
    if reduce_rows:
        last = max(reduce_rows, key=lambda r: r["size_bytes"])
        m["allreduce_ms"] = metric(
            "allreduce_ms",
            last["time_us"] / 1000.0,
            "measured",
            f"one all_reduce of {format_size(last['size_bytes'])} ({last['size_bytes']} B), "
            f"the largest size: {TIME_RULE} (not a training step's gradient all-reduce)",
        )
    else:
        m["allreduce_ms"] = unavailable("allreduce_ms", "all_reduce was not measured in this run")
    m.update(envelope.memory_metrics(headers, by_rank))
    m.update(_telemetry_metrics(sources))
    order = [x.name for x in metrics_registry.for_workload("training")]
    return {k: m.get(k) or unavailable(k, NO_STEPS) for k in order}
