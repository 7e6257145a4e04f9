"""Merge per-rank records into one canonical result (`minicluster/1`). Never imports torch.

Input is each rank's header, step records and summary: gathered in-band on rank 0, or read
back from `DIR/ranks/` (also for a broken run, where some ranks left no summary). A collectives
run (header `job: collectives`) is merged by `analysis.collectives` (the pairwise link test by
`analysis.pairwise`), in the same envelope.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minicluster.analysis import energy, envelope, fault_detect, nodes, rank_status
from minicluster.analysis.collectives import aggregate_collectives
from minicluster.analysis.pairwise import aggregate_pairwise
from minicluster.analysis.records import RankRecords
from minicluster.analysis.run_metrics import (
    telemetry_sources,
    timing_method,
    timing_method_text,
    training_metrics,
)
from minicluster.analysis.steps import StepTable, stats
from minicluster.analysis.stragglers import find_stragglers

# Step fields aggregation never reads: `read_run_dir(..., drop=UNREAD_STEP_FIELDS)` leaves them
# out (a third of the memory of a 4,096-rank run). Every other field, one added later included,
# is kept; a field added to this list must not be read by aggregation (tests/analysis/
# test_step_fields.py compares the result with and without them).
UNREAD_STEP_FIELDS = ("fwd_ms", "bwd_ms", "opt_ms", "loss", "t_unix_s")


def aggregate(
    records: list[RankRecords],
    launcher_error: str | None = None,
    straggler_threshold_pct: float | None = None,
    aggregated_at: str | None = None,
    exit_codes: dict[int, int] | None = None,
    interrupted: bool = False,
) -> dict[str, Any]:
    """The canonical result from all ranks' records (`aggregated_at` fixed for golden tests).

    `exit_codes` are the launcher's per-rank exit codes (negative: killed by that signal);
    `interrupted`: the user or a scheduler stopped the run (Ctrl-C, a scheduler's SIGTERM at
    its time limit): the ranks it stopped are `interrupted`, not failed, no crash or hang is
    claimed for them, and the status is `incomplete` unless a rank failed on its own.
    `straggler_threshold_pct` overrides the config's. InputError when no rank wrote a header.
    """
    head0, headers = envelope.rank0_header(records)
    if head0.get("job") == "collectives":
        pairwise = envelope.run_config(head0).collectives.pattern == "pairwise"
        merge = aggregate_pairwise if pairwise else aggregate_collectives
        return merge(records, launcher_error, aggregated_at, exit_codes, interrupted)
    cfg = envelope.run_config(head0)
    world_size = max(h["world_size"] for h in headers)
    by_rank = {r.rank: r for r in records}
    if straggler_threshold_pct is None:
        straggler_threshold_pct = cfg.run.straggler_threshold_pct

    errors: list[str] = [w for r in records for w in r.warnings]
    where = nodes.locate_ranks(records, world_size)
    multi_node = nodes.spans_nodes(where)
    fates = rank_status.classify(
        by_rank,
        world_size,
        exit_codes or {},
        rank_status.step_where,
        interrupted,
        node_of=nodes.node_names(where) if multi_node else None,
    )
    errors += fates.errors
    if launcher_error:
        errors.append(f"launcher: {launcher_error}")
    failed_ranks = fates.failed

    table = StepTable(records, world_size)
    per_rank_batch = head0["workload"]["per_rank_batch"]
    tokens_per_rank = head0["workload"].get("tokens_per_rank")
    short = table.min_measured_steps() < cfg.steps.measured
    rule = rank_status.run_status(
        fates,
        launcher_error,
        interrupted,
        f"fewer measured steps than planned ({table.min_measured_steps()} < {cfg.steps.measured})"
        if short
        else None,
    )
    status, interrupted = rule.status, rule.interrupted
    errors += rule.errors

    figures = table.rank_figures()
    ray_nodes = nodes.ray_node_ids(records)
    ranks_out = [
        _rank_entry(
            rank, by_rank.get(rank), table, figures.get(rank), fates.status[rank], where[rank]
        )
        | {"ray_node_id": ray_nodes.get(rank)}
        for rank in range(world_size)
    ]
    compute = {r["rank"]: r["compute_ms_median"] for r in ranks_out}
    scores = nodes.rank_scores(compute)
    for entry in ranks_out:
        entry["performance_score"] = scores[entry["rank"]]
    stragglers = find_stragglers(
        table,
        straggler_threshold_pct,
        cfg.run.straggler_min_excess_ms,
        cfg.run.straggler_min_steps_pct,
    )
    node_section = nodes.nodes_section(
        where,
        table,
        compute,
        missing=fates.of(rank_status.MISSING),
        failed=failed_ranks,
        stragglers=[s["rank"] for s in stragglers],
        aborted=fates.of(rank_status.ABORTED),
        ray_nodes=ray_nodes,
    )
    series = table.series(world_size)
    metrics = training_metrics(
        series, headers, by_rank, world_size, per_rank_batch, tokens_per_rank
    )
    busbw = metrics.get("busbw_gbps")
    link = fault_detect.link_check(
        busbw.to_dict() if busbw else {"value": None, "reason": "no measured steps"},
        cfg.run,
        world_size,
    )
    detected = fault_detect.detect(records, world_size, stragglers, exit_codes, cfg.run)
    stopped = set(fates.of(rank_status.INTERRUPTED, rank_status.ABORTED))
    if interrupted:  # ranks the interrupt stopped neither crashed nor hung
        detected = [
            d
            for d in detected
            if d["kind"] not in fault_detect.DEATH_KINDS or d["rank"] not in stopped
        ]
    lost = (
        [] if interrupted else nodes.lost_nodes(node_section, records, multi_node, launcher_error)
    )
    if lost:
        # A rank elsewhere that stopped with no cause of its own (its agent stopped it once the
        # lost node was gone) is explained by the lost node: no fault of its own is claimed.
        on_lost = {r for d in lost for r in d["ranks"]}
        detected = [d for d in detected if d["kind"] != "rank_failure" or d["rank"] in on_lost]
    detected += lost
    detected += fault_detect.slow_link_fault(link)
    for finding in (*stragglers, *detected):
        nodes.place(finding, where)
    errors += [
        f"rank {d['rank']}: {d['kind']} at step {d['step']}: {d['evidence']}"
        for d in detected
        if d["kind"] in fault_detect.CORRECTNESS_KINDS
    ]
    errors += [f"node lost: {d['evidence']}" for d in lost]
    method = timing_method(records)
    if method == "mixed":
        errors.append(f"all-reduce timing: {timing_method_text(records)}")
    result = envelope.top_level(head0, headers, status, world_size, aggregated_at, node_section)
    result.update(
        {
            "timing_method": method,
            "link": link,
            "workload": {
                "name": head0["workload"]["name"],
                "workload_type": "training",
                "per_rank_batch": per_rank_batch,
                "global_batch": per_rank_batch * world_size,
                "seq_len": head0["workload"].get("seq_len"),
                "params": head0["workload"].get("params"),
            },
            "metrics": {name: mv.to_dict() for name, mv in metrics.items()},
            "ranks": ranks_out,
            "stragglers": stragglers,
            "failed_ranks": failed_ranks,
            "aborted_ranks": fates.of(rank_status.ABORTED),
            "interrupted": interrupted,
            "steps": table.steps_section(series),
            "scaling": None,
            "collectives": None,
            "faults": {"injected": result["config"].get("faults", []), "detected": detected},
            "validation": fault_detect.validation_section(records, cfg.run, detected),
            "errors": errors,
            "telemetry": energy.telemetry_section(telemetry_sources(by_rank), metrics),
        }
    )
    return result


_FIGURES = (
    "compute_ms_median",
    "compute_ms_mean",
    "comm_ms_median",
    "exposed_comm_ms_median",
    "wait_ms_median",
    "transfer_ms_median",
)


def _rank_entry(
    rank: int,
    rec: RankRecords | None,
    table: StepTable,
    figures: dict[str, Any] | None,
    status: str,
    node: nodes.NodeId,
) -> dict[str, Any]:
    """One rank's row of `ranks[]` (`figures`: its StepTable.rank_figures, None without steps);
    a rank without records is placed by the job's roster."""
    header = rec.header if rec else None
    summary = rec.summary if rec else None
    figures = figures or {"step_time_ms": stats(np.array([])), **dict.fromkeys(_FIGURES)}
    return {
        "rank": rank,
        "hostname": node.hostname,
        "node_rank": node.node_rank,
        "local_rank": header["local_rank"] if header else None,
        "device": header["device"] if header else None,
        "status": status,
        "steps_recorded": rec.n_steps if rec else 0,
        "measured_steps": table.measured_steps(rank),
        "last_step": rec.last_step if rec else None,
        "step_time_ms": figures["step_time_ms"],
        **{k: figures[k] for k in _FIGURES},
        "memory": summary.get("memory") if summary else None,
        "ddp_logging": summary.get("ddp_logging") if summary else None,
        "error": summary.get("error") if summary else None,
    }
