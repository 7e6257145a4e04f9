"""Merge per-rank records into one canonical result (`minicluster/1`). Never imports torch.

Input is each rank's header, step records and summary: gathered in-band on rank 0, or read
back from `DIR/ranks/` (also for a broken run, where some ranks left no summary). A collectives
run (header `job: collectives`) is merged by `analysis.collectives` (the pairwise link test by
`analysis.pairwise`), in the same envelope.
"""

from __future__ import annotations

from typing import Any

from minicluster.analysis import energy, envelope, fault_detect, rank_status
from minicluster.analysis.collectives import aggregate_collectives
from minicluster.analysis.pairwise import aggregate_pairwise
from minicluster.analysis.records import RankRecords
from minicluster.analysis.run_metrics import (
    telemetry_sources,
    timing_method,
    timing_method_text,
    training_metrics,
)
from minicluster.analysis.steps import StepTable, median, stats
from minicluster.analysis.stragglers import find_stragglers


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
    `interrupted`: the user or a scheduler stopped the run (status incomplete, not failed,
    unless a rank failed on its own); `straggler_threshold_pct` overrides the config's.
    InputError when no rank wrote a header.
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
    fates = rank_status.classify(
        by_rank, world_size, exit_codes or {}, rank_status.step_where, interrupted
    )
    errors += fates.errors
    if launcher_error:
        errors.append(f"launcher: {launcher_error}")
    failed_ranks = fates.failed
    interrupted = interrupted or bool(fates.of(rank_status.INTERRUPTED))

    table = StepTable(records, world_size)
    per_rank_batch = head0["workload"]["per_rank_batch"]
    tokens_per_rank = head0["workload"].get("tokens_per_rank")
    status = "ok"
    if failed_ranks or (launcher_error and not interrupted):
        status = "failed"
    elif interrupted:
        status = "incomplete"
        errors.append("interrupted before the planned steps ran: every recorded step is kept")
    elif table.min_measured_steps() < cfg.steps.measured:
        status = "incomplete"
        errors.append(
            f"fewer measured steps than planned ({table.min_measured_steps()} < "
            f"{cfg.steps.measured})"
        )

    ranks_out = [
        _rank_entry(rank, by_rank.get(rank), table, fates.status[rank])
        for rank in range(world_size)
    ]
    stragglers = find_stragglers(
        table,
        straggler_threshold_pct,
        cfg.run.straggler_min_excess_ms,
        cfg.run.straggler_min_steps_pct,
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
    detected += fault_detect.slow_link_fault(link)
    errors += [
        f"rank {d['rank']}: {d['kind']} at step {d['step']}: {d['evidence']}"
        for d in detected
        if d["kind"] in fault_detect.CORRECTNESS_KINDS
    ]
    method = timing_method(headers)
    if method == "mixed":
        errors.append(f"all-reduce timing: {timing_method_text(headers)}")
    result = envelope.top_level(head0, headers, status, world_size, aggregated_at)
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


def _rank_entry(
    rank: int, rec: RankRecords | None, table: StepTable, status: str
) -> dict[str, Any]:
    header = rec.header if rec else None
    summary = rec.summary if rec else None
    compute = table.column(rank, "compute_ms")
    return {
        "rank": rank,
        "hostname": header["hostname"] if header else None,
        "local_rank": header["local_rank"] if header else None,
        "device": header["device"] if header else None,
        "status": status,
        "steps_recorded": rec.n_steps if rec else 0,
        "measured_steps": int(compute.size),
        "last_step": rec.last_step if rec else None,
        "step_time_ms": stats(table.column(rank, "step_time_ms")),
        "compute_ms_median": median(compute),
        "comm_ms_median": median(table.column(rank, "comm_ms")),
        "exposed_comm_ms_median": median(table.column(rank, "exposed_comm_ms")),
        "wait_ms_median": median(table.wait(rank)),
        "transfer_ms_median": median(table.transfer(rank)),
        "memory": summary.get("memory") if summary else None,
        "ddp_logging": summary.get("ddp_logging") if summary else None,
        "error": summary.get("error") if summary else None,
    }
