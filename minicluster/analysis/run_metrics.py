"""The run-level metrics of a training run from its step table and rank summaries."""

from __future__ import annotations

from typing import Any

import numpy as np

from minicluster.analysis import energy, envelope
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable
from minicluster.core import metrics as metrics_registry
from minicluster.core.metrics import MetricValue, metric, unavailable


def training_metrics(
    table: StepTable,
    headers: list[dict[str, Any]],
    by_rank: dict[int, RankRecords],
    world_size: int,
    per_rank_batch: int,
    tokens_per_rank: int | None,
) -> dict[str, MetricValue]:
    m: dict[str, MetricValue] = {}
    step_max = table.step_max_ms
    n = step_max.size
    global_batch = per_rank_batch * world_size
    if n:
        total_s = float(step_max.sum()) / 1000.0
        m["throughput_samples_per_sec"] = metric(
            "throughput_samples_per_sec",
            global_batch * n / total_s,
            "derived",
            "global_batch * measured_steps / sum of per-step max-over-ranks step time",
        )
        if tokens_per_rank:
            m["tokens_per_sec"] = metric(
                "tokens_per_sec",
                tokens_per_rank * world_size * n / total_s,
                "derived",
                "global tokens * measured_steps / sum of per-step max-over-ranks step time",
            )
        else:
            m["tokens_per_sec"] = unavailable("tokens_per_sec", "workload has no tokens")
        p50, p95, p99 = np.percentile(step_max, [50, 95, 99])
        how = "percentile (linear) of per-step max-over-ranks step time, measured steps"
        m["latency_p50_ms"] = metric("latency_p50_ms", p50, "measured", how)
        m["latency_p95_ms"] = metric("latency_p95_ms", p95, "measured", how)
        m["latency_p99_ms"] = metric("latency_p99_ms", p99, "measured", how)
        m["step_time_mean_ms"] = metric(
            "step_time_mean_ms",
            float(step_max.mean()),
            "measured",
            "mean of per-step max-over-ranks step time",
        )
    else:
        for name in (
            "throughput_samples_per_sec",
            "tokens_per_sec",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "step_time_mean_ms",
        ):
            m[name] = unavailable(name, "no measured steps were recorded")

    used = headers[0].get("comm_timing", {}).get("method", "comm_hook_host_clock")
    comm_method = _COMM_METHODS.get(used, used)
    compute = table.pooled("compute_ms")
    comm = table.pooled("comm_ms")
    exposed = table.pooled("exposed_comm_ms")
    steps_all = table.pooled("step_time_ms")
    if compute.size:
        m["compute_ms"] = metric(
            "compute_ms",
            float(np.median(compute)),
            "derived",
            "median over ranks and steps of forward + backward - exposed comm",
        )
        if world_size > 1:
            m["allreduce_ms"] = metric(
                "allreduce_ms",
                float(np.median(comm)),
                "measured",
                f"median over ranks and steps; {comm_method}",
            )
            transfer = table.transfer_ms
            waits = table.wait_ms[table.present]
            m["allreduce_transfer_ms"] = metric(
                "allreduce_transfer_ms",
                float(np.median(transfer)),
                "derived",
                "median over steps of min over ranks of comm_ms",
            )
            m["allreduce_wait_ms"] = metric(
                "allreduce_wait_ms",
                float(np.median(waits)),
                "derived",
                "median over ranks and steps of comm_ms - transfer_ms",
            )
            m["exposed_comm_ms"] = metric(
                "exposed_comm_ms",
                float(np.median(exposed)),
                "measured",
                "median over ranks and steps of end of backward compute to end of last all-reduce",
            )
            m["communication_overhead_percent"] = metric(
                "communication_overhead_percent",
                100.0 * float(exposed.sum()) / float(steps_all.sum()),
                "derived",
                "100 * sum(exposed_comm_ms) / sum(step_time_ms) over ranks and measured steps",
            )
            m["busbw_gbps"] = _busbw(table, world_size)
        else:
            reason = "one rank: no inter-rank communication"
            for name in (
                "allreduce_ms",
                "allreduce_transfer_ms",
                "allreduce_wait_ms",
                "exposed_comm_ms",
                "communication_overhead_percent",
                "busbw_gbps",
            ):
                m[name] = unavailable(name, reason)
    m.update(envelope.memory_metrics(headers, by_rank))
    m.update(_energy_metrics(by_rank, m.get("throughput_samples_per_sec"), global_batch))
    m["scaling_efficiency_pct"] = unavailable(
        "scaling_efficiency_pct", "a single run has no baseline; use a sweep over world sizes"
    )
    # Keep registry order so every result lists metrics the same way.
    order = [x.name for x in metrics_registry.for_workload("training")]
    return {k: m[k] for k in order if k in m}


_COMM_METHODS = {
    "ddp_runtime_stats": "DDP's C++ runtime stats per step (first all-reduce start to last end)",
    "comm_hook_host_clock": "DDP comm hook, host clock at hook entry and in the future's callback",
    "comm_hook_cuda_events": "DDP comm hook, CUDA events",
}


def _busbw(table: StepTable, world_size: int) -> MetricValue:
    """nccl-tests convention for all-reduce: busbw = bytes / transfer_time * 2(n-1)/n."""
    factor = 2 * (world_size - 1) / world_size
    if not table.indices.size:
        return unavailable("busbw_gbps", "no measured steps were recorded")
    n_bytes = np.nanmax(table.m["comm_bytes"], axis=0)
    t_ms = table.transfer_ms
    ok = (t_ms > 0) & (n_bytes > 0)
    rates = n_bytes[ok] / (t_ms[ok] / 1000.0) / 1e9 * factor
    if not rates.size:
        return unavailable("busbw_gbps", "no step had a timed all-reduce")
    return metric(
        "busbw_gbps",
        float(np.median(rates)),
        "derived",
        "median over steps of gradient bytes / transfer_ms * 2(n-1)/n (nccl-tests)",
    )


def telemetry_sources(by_rank: dict[int, RankRecords]) -> list[dict[str, Any]]:
    pairs = [(r.header, r.summary) for _, r in sorted(by_rank.items()) if r.header and r.summary]
    return energy.collect_sources(pairs)


def _energy_metrics(
    by_rank: dict[int, RankRecords], throughput: MetricValue | None, global_batch: int
) -> dict[str, MetricValue]:
    sps = throughput.value if throughput is not None else None
    return energy.energy_metrics(telemetry_sources(by_rank), sps, global_batch)
