"""Merge the ranks' collective benchmark records into one `minicluster/1` result, in the envelope
every collectives job shares (the pairwise link test's block is built by `analysis.pairwise`).
Never imports torch.

Each rank wrote one record per (op, size) with its own mean time, the max of that mean across
ranks and the wrong elements in its own output; here they become one row per (op, size):
time = that max, algbw and busbw derived from it (nccl-tests conventions, `collective_defs`),
wrong = the sum over ranks.
"""

from __future__ import annotations

from typing import Any

from minicluster.analysis import energy, envelope, nodes, rank_status
from minicluster.analysis.frame import RunFrame
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
ONE_RANK = "one rank: no inter-rank communication (algbw and busbw null)"
NOT_SAMPLED = "not sampled: this result predates telemetry in collectives runs"
# A rank records its power and temperature window in its summary when the benchmark finishes;
# a failed or interrupted rank's summary has none.
NOT_FINISHED = (
    "not recorded: the run {how} before any rank finished the benchmark (a rank records its "
    "telemetry window in its summary when it finishes)"
)
# Power and temperature are taken over the whole benchmark; these need training steps.
_PER_STEP_METRICS = ("energy_per_step_joules", "energy_per_sample_joules", "performance_per_watt")


def telemetry_sources(frame: RunFrame) -> list[dict[str, Any]]:
    """The ranks' telemetry windows (results of runs from before telemetry was sampled in
    collectives jobs have none in their summaries)."""
    pairs = [
        (r.header, r.summary) for _, r in sorted(frame.by_rank.items()) if r.header and r.summary
    ]
    return energy.collect_sources([p for p in pairs if p[1].get("telemetry")])


def benchmark_result(
    frame: RunFrame,
    metrics: dict[str, MetricValue],
    aggregated_at: str | None,
    blocks: dict[str, Any],
    detected: list[dict[str, Any]] | None = None,
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """The canonical result of a collectives job; `blocks` holds its `collectives` and
    `pairwise` sections (the one it lacks is None), `errors` the job's own error lines."""
    fates = frame.fates
    status = frame.status()
    # The benchmark has no planned steps to fall short of: only the rule's note that an
    # interrupt came after every rank finished is kept.
    own = [e for e in status.errors if e == rank_status.FINISHED_BEFORE_INTERRUPT]
    sources = telemetry_sources(frame)
    ray_nodes = nodes.ray_node_ids(frame.records)
    # No training steps: per node its ranks and their status, no step figures or scores.
    node_section = nodes.nodes_section(
        frame.where,
        None,
        {},
        fates.of(rank_status.MISSING),
        fates.failed,
        aborted=fates.of(rank_status.ABORTED),
        ray_nodes=ray_nodes,
    )
    lost = nodes.lost_nodes(node_section, frame.records, frame.multi_node, frame.launch.error)
    all_errors = frame.errors + own + (errors or []) + [f"node lost: {d['evidence']}" for d in lost]
    result = envelope.top_level(
        frame.head0, frame.headers, status.status, frame.world_size, aggregated_at, node_section
    )
    result.update(
        {
            "timing_method": None,  # the benchmark's own rule is in its block
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
                _rank_entry(
                    rank, frame.by_rank.get(rank), frame.fates.status[rank], frame.where[rank]
                )
                | {"ray_node_id": ray_nodes.get(rank)}
                for rank in range(frame.world_size)
            ],
            "stragglers": [],
            "failed_ranks": frame.fates.failed,
            "aborted_ranks": frame.fates.of(rank_status.ABORTED),
            "interrupted": status.interrupted,
            "steps": None,
            "scaling": None,
            "collectives": blocks.get("collectives"),
            "faults": {
                "injected": result["config"].get("faults", []),
                "detected": [*(detected or []), *lost],
            },
            "validation": None,
            "errors": all_errors,
            "telemetry": energy.telemetry_section(sources, metrics) if sources else None,
        }
    )
    for name in ("pairwise", "isolate"):
        if blocks.get(name) is not None:
            result[name] = blocks[name]
    return result


def benchmark_metrics(frame: RunFrame, own: dict[str, MetricValue]) -> dict[str, MetricValue]:
    """Every registry metric a training result has, in registry order: the job's `own` (busbw,
    all-reduce time), memory, power and temperature; the rest have no value here."""
    m = dict(own)
    m.update(envelope.memory_metrics(frame.headers, frame.by_rank, frame.world_size))
    m.update(_telemetry_metrics(telemetry_sources(frame), _no_telemetry_reason(frame)))
    order = [x.name for x in metrics_registry.for_workload("training")]
    return {k: m.get(k) or unavailable(k, NO_STEPS) for k in order}


def collectives_result(frame: RunFrame, aggregated_at: str | None = None) -> dict[str, Any]:
    """The canonical result of a collectives run (`aggregated_at` fixed for golden tests)."""
    section, world_size = frame.config.collectives, frame.world_size
    rows = merge_rows(frame.records, world_size)
    errors = [
        f"{row['op']} at {row['size_bytes']} B: {row['wrong']} wrong elements "
        f"(rank {', '.join(str(r) for r in row['wrong_ranks'])})"
        for row in rows
        if row["wrong"]
    ]
    block = {
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
        "wrong_total": sum(r["wrong"] or 0 for r in rows),
        "results": rows,
    }
    metrics = benchmark_metrics(frame, _metrics(rows, world_size))
    return benchmark_result(frame, metrics, aggregated_at, {"collectives": block}, errors=errors)


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
    # One rank sends nothing across a link: no bandwidth (not busbw 0 from (n-1)/n = 0, nor a
    # broadcast that "moves" its buffer in the time a no-op takes).
    algbw = algbw_gbps(row["size_bytes"], time_us) if world_size > 1 else None
    if algbw is None:
        reasons.append(ONE_RANK)
    row.update(
        time_us=time_us,
        algbw_gbps=algbw,
        busbw_gbps=None if algbw is None else algbw * busbw_factor(op, world_size),
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
        "threads": header.get("threads") if header else None,
        "status": status,
        "steps_recorded": 0,
        "measured_steps": 0,
        "last_step": None,
        "collectives_recorded": len(rec.collectives) if rec else 0,
        "memory": summary.get("memory") if summary else None,
        "error": summary.get("error") if summary else None,
    }


def _no_telemetry_reason(frame: RunFrame) -> str:
    """Why no rank's telemetry is in `frame`: no rank finished (a failed or interrupted rank
    records none), else the ranks finished without it (a result from before collectives runs
    sampled telemetry)."""
    ended = [r.summary.get("status") for r in frame.by_rank.values() if r.summary]
    if "ok" in ended:
        return NOT_SAMPLED
    stopped = frame.launch.interrupted or "interrupted" in ended
    how = "was interrupted" if stopped else "failed"
    return NOT_FINISHED.format(how=how)


def _telemetry_metrics(sources: list[dict[str, Any]], missing: str) -> dict[str, MetricValue]:
    """Power and temperature over the benchmark window; per-step energy has no steps here.
    `missing`: why, when there is no source."""
    if not sources:
        names = ("power_consumption_watts", "temperature_celsius", *_PER_STEP_METRICS)
        return {name: unavailable(name, missing) for name in names}
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


def _metrics(rows: list[dict[str, Any]], world_size: int) -> dict[str, MetricValue]:
    """busbw (peak all_reduce) and all-reduce time (largest size) of an all-ops benchmark."""
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
    return m
