"""The run-level metrics of a training run from its step table and rank summaries."""

from __future__ import annotations

from typing import Any

import numpy as np

from minicluster.analysis import energy, envelope
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import SERIES_METHOD
from minicluster.core import comm_methods
from minicluster.core import metrics as metrics_registry
from minicluster.core.metrics import MetricValue, Status, metric, unavailable

# Layouts without DDP: comm_ms is the union of every kind's collectives, not an all-reduce.
NO_DDP_METHODS = (comm_methods.KINDS_HOST_CLOCK, comm_methods.NO_DDP)


def training_metrics(
    series: dict[str, np.ndarray],
    headers: list[dict[str, Any]],
    by_rank: dict[int, RankRecords],
    world_size: int,
    per_rank_batch: int | None,
    tokens_per_rank: int | None,
    data_ranks: int | None = None,
) -> dict[str, MetricValue]:
    """`data_ranks`: ranks that train on a batch of their own (the world size over the tensor
    and pipeline degrees; None: every rank)."""
    m: dict[str, MetricValue] = {}
    step_max = series["step_time_ms"] if series else np.array([])
    # A rank header without a batch is one whose workload never built: it recorded no step.
    n = step_max.size if per_rank_batch is not None else 0
    data_ranks = world_size if data_ranks is None else data_ranks
    global_batch = (per_rank_batch or 0) * data_ranks
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
                tokens_per_rank * data_ranks * n / total_s,
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

    comm_method = timing_method_text(list(by_rank.values()))
    if n:
        m["compute_ms"] = _median_of(series, "compute_ms", "derived")
        if world_size > 1:
            m["allreduce_ms"] = _median_of(series, "allreduce_ms", "measured", comm_method)
            m["allreduce_transfer_ms"] = _median_of(series, "allreduce_transfer_ms", "derived")
            m["allreduce_wait_ms"] = _median_of(series, "allreduce_wait_ms", "derived")
            m["exposed_comm_ms"] = _median_of(series, "exposed_comm_ms", "measured")
            exposed, steps = series["exposed_comm_ms"], series["step_time_ms"]
            both = ~np.isnan(exposed) & ~np.isnan(steps)
            m["communication_overhead_percent"] = metric(
                "communication_overhead_percent",
                100.0 * float(exposed[both].sum()) / float(steps[both].sum())
                if both.any()
                else None,
                "derived",
                "100 * sum(exposed_comm_ms) / sum(step_time_ms), both per-step max over ranks, "
                "over measured steps",
            )
            busbw = _median_of(series, "busbw_gbps", "derived")
            m["busbw_gbps"] = (
                busbw
                if busbw.value is not None
                else unavailable("busbw_gbps", "no step had a timed all-reduce")
            )
            if timing_method(list(by_rank.values())) in NO_DDP_METHODS:
                why = "no DDP all-reduce in this layout: its collectives by kind are in comm.kinds"
                for name in ("allreduce_ms", "allreduce_transfer_ms", "allreduce_wait_ms"):
                    m[name] = unavailable(name, why)
                m["busbw_gbps"] = unavailable("busbw_gbps", why)
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
    m.update(envelope.memory_metrics(headers, by_rank, world_size))
    m.update(_energy_metrics(by_rank, m.get("throughput_samples_per_sec"), global_batch))
    m["scaling_efficiency_pct"] = unavailable(
        "scaling_efficiency_pct", "a single run has no baseline; use a sweep over world sizes"
    )
    # Keep registry order so every result lists metrics the same way.
    order = [x.name for x in metrics_registry.for_workload("training")]
    return {k: m[k] for k in order if k in m}


def timing_methods(records: list[RankRecords]) -> dict[int, list[str]]:
    """Per rank that wrote a header, the timing methods it used in order (more than one: it
    switched mid-run)."""
    return {r.rank: r.timing_methods() for r in records if r.header is not None}


def timing_method(records: list[RankRecords]) -> str:
    """The run's all-reduce timing method; `mixed` when ranks (or steps) used different ones."""
    used = {m for methods in timing_methods(records).values() for m in methods}
    return used.pop() if len(used) == 1 else "mixed"


def timing_method_text(records: list[RankRecords]) -> str:
    """How the comm figures were taken, for the comm metrics' method text."""
    method = timing_method(records)
    if method != "mixed":
        return comm_methods.describe(method)
    per_rank = "; ".join(
        f"rank {r}: {' then '.join(ms)}" for r, ms in sorted(timing_methods(records).items())
    )
    return f"MIXED timing methods ({per_rank}): these figures are not one quantity"


def _median_of(
    series: dict[str, np.ndarray], name: str, status: Status, how: str | None = None
) -> MetricValue:
    """Run-level metric `name`: the median over measured steps of its per-step series."""
    values = series[name]
    values = values[~np.isnan(values)]
    method = f"median over measured steps of the {SERIES_METHOD[name]}"
    if how:
        method += f"; {how}"
    return metric(name, float(np.median(values)) if values.size else None, status, method)


def telemetry_sources(by_rank: dict[int, RankRecords]) -> list[dict[str, Any]]:
    pairs = [(r.header, r.summary) for _, r in sorted(by_rank.items()) if r.header and r.summary]
    return energy.collect_sources(pairs)


def _energy_metrics(
    by_rank: dict[int, RankRecords], throughput: MetricValue | None, global_batch: int
) -> dict[str, MetricValue]:
    sps = throughput.value if throughput is not None else None
    return energy.energy_metrics(telemetry_sources(by_rank), sps, global_batch)
