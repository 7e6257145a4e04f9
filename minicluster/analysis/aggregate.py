"""Merge per-rank records into one canonical result (`minicluster/1`). Never imports torch.

A collectives run (header `job: collectives`) is merged by `collectives_result` instead.

Input is each rank's header, step records and summary: gathered in-band on rank 0, or read
back from `DIR/ranks/` (also for a broken run, where some ranks left no summary).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

from minicluster import __version__
from minicluster.analysis import energy, fault_detect
from minicluster.analysis.records import RankRecords, from_gathered, read_run_dir
from minicluster.core import metrics as metrics_registry
from minicluster.core import rundir
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue, metric, unavailable
from minicluster.result.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

EMBED_STEPS_MAX = 50_000  # rank-steps embedded in result.json; larger runs point to the rank files


__all__ = ["RankRecords", "aggregate", "from_gathered", "read_run_dir"]


def aggregate(
    records: list[RankRecords],
    launcher_error: str | None = None,
    straggler_threshold_pct: float | None = None,
    aggregated_at: str | None = None,
    exit_codes: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Build the canonical result from all ranks' records (`aggregated_at` fixed for golden tests)."""
    headers = [r.header for r in records if r.header is not None]
    if not headers:
        raise InputError("no rank wrote a header record: nothing to aggregate")
    head0 = next((h for h in headers if h["rank"] == 0), headers[0])
    if head0.get("job") == "collectives":
        # Imported here: collectives_result builds on this module's helpers.
        from minicluster.analysis.collectives import aggregate_collectives

        return aggregate_collectives(records, launcher_error, aggregated_at, exit_codes)
    cfg = head0.get("config", {})
    world_size = max(h["world_size"] for h in headers)
    by_rank = {r.rank: r for r in records}
    if straggler_threshold_pct is None:
        straggler_threshold_pct = cfg.get("run", {}).get("straggler_threshold_pct", 20.0)
    planned_measured = cfg.get("steps", {}).get("measured")

    errors: list[str] = [w for r in records for w in r.warnings]
    failed_ranks: list[int] = []
    for rank in range(world_size):
        rec = by_rank.get(rank)
        if rec is None or rec.header is None:
            failed_ranks.append(rank)
            errors.append(f"rank {rank}: no records (never started or its files are missing)")
        elif rec.summary is None:
            failed_ranks.append(rank)
            last = rec.last_step
            errors.append(f"rank {rank}: no summary; the process died after step {last}")
        elif rec.summary.get("status") != "ok":
            failed_ranks.append(rank)
            errors.append(
                f"rank {rank}: failed at step {rec.summary.get('last_step')}: "
                f"{rec.summary.get('error')}"
            )
    if launcher_error:
        errors.append(f"launcher: {launcher_error}")

    table = _StepTable(records, world_size)
    per_rank_batch = head0["workload"]["per_rank_batch"]
    tokens_per_rank = head0["workload"].get("tokens_per_rank")
    status = "ok"
    if failed_ranks or launcher_error:
        status = "failed"
    elif planned_measured is not None and table.min_measured_steps() < planned_measured:
        status = "incomplete"
        errors.append(
            f"fewer measured steps than planned ({table.min_measured_steps()} < {planned_measured})"
        )

    ranks_out = [
        _rank_entry(rank, by_rank.get(rank), table, rank in failed_ranks)
        for rank in range(world_size)
    ]
    min_excess_ms = cfg.get("run", {}).get("straggler_min_excess_ms", 0.0)
    stragglers = _stragglers(ranks_out, straggler_threshold_pct, min_excess_ms, table)
    detected = fault_detect.detect(records, world_size, stragglers, exit_codes, cfg.get("run"))
    errors += [
        f"rank {d['rank']}: {d['kind']} at step {d['step']}: {d['evidence']}"
        for d in detected
        if d["kind"] in fault_detect.CORRECTNESS_KINDS
    ]
    metrics = _metrics(table, headers, by_rank, world_size, per_rank_batch, tokens_per_rank)
    hosts = sorted({h["hostname"] for h in headers})
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": head0["run_id"],
        "created_at": head0.get("created_at") or _now(),
        "aggregated_at": aggregated_at or _now(),
        "status": status,
        "tool": {"name": "minicluster", "version": __version__},
        "launcher": head0.get("launcher", "outside"),
        "backend": head0.get("backend"),
        "world_size": world_size,
        "nodes": len(hosts),
        "config": cfg,
        "platform": _platform(headers),
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
        "steps": table.steps_section(),
        "scaling": None,
        "collectives": None,
        "faults": {"injected": cfg.get("faults", []), "detected": detected},
        "validation": fault_detect.validation_section(records, cfg, detected),
        "errors": errors,
        "telemetry": energy.telemetry_section(_telemetry_sources(by_rank), metrics),
    }
    return result


class _StepTable:
    """Measured (non-warm-up) steps of every rank as [rank x step] matrices, NaN where absent."""

    KEYS = ("step_time_ms", "compute_ms", "comm_ms", "exposed_comm_ms", "comm_bytes")

    def __init__(self, records: list[RankRecords], world_size: int) -> None:
        self.world_size = world_size
        self.records = [r for r in records if r.n_steps]
        self.row = {r.rank: i for i, r in enumerate(self.records)}
        masks = [~r.columns.get("warmup", np.zeros(r.n_steps, bool)) for r in self.records]
        measured = [r.columns["step"][m] for r, m in zip(self.records, masks, strict=True)]
        self.indices = np.unique(np.concatenate(measured)) if measured else np.array([], np.int64)
        shape = (len(self.records), self.indices.size)
        self.m: dict[str, np.ndarray] = {k: np.full(shape, np.nan) for k in self.KEYS}
        for i, (rec, mask, steps) in enumerate(zip(self.records, masks, measured, strict=True)):
            cols = np.searchsorted(self.indices, steps)
            for k in self.KEYS:
                if k in rec.columns:
                    self.m[k][i, cols] = rec.columns[k][mask]
        self.present = ~np.isnan(self.m["step_time_ms"])
        if self.indices.size:
            # transfer per step = min over ranks of comm_ms; wait = comm - transfer (DESIGN.md 4)
            self.transfer_ms = np.nanmin(self.m["comm_ms"], axis=0)
            self.step_max_ms = np.nanmax(self.m["step_time_ms"], axis=0)
        else:
            self.transfer_ms = self.step_max_ms = np.array([])
        self.wait_ms = self.m["comm_ms"] - self.transfer_ms[None, :]

    def measured_steps(self, rank: int) -> int:
        i = self.row.get(rank)
        return 0 if i is None else int(self.present[i].sum())

    def min_measured_steps(self) -> int:
        return min(self.measured_steps(r) for r in range(self.world_size))

    def column(self, rank: int, key: str) -> np.ndarray:
        i = self.row.get(rank)
        if i is None:
            return np.array([])
        return self.m[key][i][self.present[i]]

    def wait(self, rank: int) -> np.ndarray:
        i = self.row.get(rank)
        return np.array([]) if i is None else self.wait_ms[i][self.present[i]]

    def transfer(self, rank: int) -> np.ndarray:
        i = self.row.get(rank)
        return np.array([]) if i is None else self.transfer_ms[self.present[i]]

    def pooled(self, key: str) -> np.ndarray:
        return self.m[key][self.present]

    def steps_section(self) -> dict[str, Any]:
        section: dict[str, Any] = {"rank_files": rundir.rank_files_pattern()}
        total = sum(r.n_steps for r in self.records)
        if total > EMBED_STEPS_MAX:
            section["embedded"] = None
            section["reason"] = f"{total} rank-steps > {EMBED_STEPS_MAX}: read the rank files"
            return section
        per_rank: dict[str, Any] = {}
        for rec in sorted(self.records, key=lambda r: r.rank):
            c = rec.columns
            steps = c["step"]
            col = np.searchsorted(self.indices, steps).clip(max=max(0, self.indices.size - 1))
            measured = (
                (self.indices[col] == steps) if self.indices.size else np.zeros(steps.size, bool)
            )
            wait = np.where(
                measured,
                c["comm_ms"] - self.transfer_ms[col] if self.indices.size else np.nan,
                np.nan,
            )
            per_rank[str(rec.rank)] = {
                "step": steps.tolist(),
                "warmup": c.get("warmup", np.zeros(steps.size, bool)).tolist(),
                "step_time_ms": _rl(c["step_time_ms"]),
                "compute_ms": _rl(c["compute_ms"]),
                "comm_ms": _rl(c["comm_ms"]),
                "exposed_comm_ms": _rl(c["exposed_comm_ms"]),
                "wait_ms": _rl(wait),
            }
        section["embedded"] = per_rank
        return section


def _rl(values: np.ndarray) -> list[float | None]:
    """Rounded to 4 decimals, NaN as None (JSON null)."""
    return [None if math.isnan(v) else round(v, 4) for v in values.tolist()]


def _r(x: float) -> float:
    return round(float(x), 4)


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50": _r(p50),
        "p95": _r(p95),
        "p99": _r(p99),
        "mean": _r(values.mean()),
        "n": int(values.size),
    }


def _median(values: np.ndarray) -> float | None:
    return _r(np.median(values)) if values.size else None


def _rank_entry(
    rank: int, rec: RankRecords | None, table: _StepTable, failed: bool
) -> dict[str, Any]:
    header = rec.header if rec else None
    summary = rec.summary if rec else None
    if rec is None or header is None:
        status = "missing"
    else:
        status = "failed" if failed else "ok"
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
        "step_time_ms": _stats(table.column(rank, "step_time_ms")),
        "compute_ms_median": _median(compute),
        "comm_ms_median": _median(table.column(rank, "comm_ms")),
        "exposed_comm_ms_median": _median(table.column(rank, "exposed_comm_ms")),
        "wait_ms_median": _median(table.wait(rank)),
        "transfer_ms_median": _median(table.transfer(rank)),
        "memory": summary.get("memory") if summary else None,
        "ddp_logging": summary.get("ddp_logging") if summary else None,
        "error": summary.get("error") if summary else None,
    }


STRAGGLER_ALPHA = 0.05


def _stragglers(
    ranks: list[dict[str, Any]],
    threshold_pct: float,
    min_excess_ms: float,
    table: _StepTable,
) -> list[dict[str, Any]]:
    """The rank with the highest median compute time, when it exceeds the others' median by
    `threshold_pct` percent and by `min_excess_ms`, and it is the slowest rank in more steps
    than chance allows (one-sided sign test against 1/N, alpha 0.05): noise on a shared host
    moves medians, a real straggler is slow step after step.

    Compute time, not communication: under skew the healthy ranks' all-reduce grows because
    they wait for the slow one.
    """
    timed = [(r["rank"], r["compute_ms_median"]) for r in ranks if r["compute_ms_median"]]
    if len(timed) < 2:
        return []
    slow_rank, slow = max(timed, key=lambda t: t[1])
    others = float(np.median([c for r, c in timed if r != slow_rank]))
    excess_pct = 100.0 * (slow - others) / others if others > 0 else math.inf
    if excess_pct <= threshold_pct or slow - others < min_excess_ms:
        return []
    slowest, steps, p_value = _slowest_in_steps(table, slow_rank)
    if p_value >= STRAGGLER_ALPHA:
        return []
    return [
        {
            "rank": slow_rank,
            "compute_ms_median": slow,
            "others_compute_ms_median": _r(others),
            "excess_pct": _r(excess_pct),
            "threshold_pct": threshold_pct,
            "min_excess_ms": min_excess_ms,
            "slowest_in_steps": slowest,
            "steps_compared": steps,
            "sign_test_p": float(f"{p_value:.3g}"),
            "attributed_to": "compute",
        }
    ]


def _slowest_in_steps(table: _StepTable, rank: int) -> tuple[int, int, float]:
    """In how many steps (all ranks present) `rank` had the highest compute time, of how many,
    and the one-sided binomial p-value of that many or more by chance (p = 1 / ranks)."""
    row = table.row.get(rank)
    compute = table.m["compute_ms"]
    full = ~np.isnan(compute).any(axis=0)
    if row is None or not full.any():
        return 0, 0, 1.0
    cols = compute[:, full]
    k = int((cols[row] >= cols.max(axis=0)).sum())
    n = int(cols.shape[1])
    p0 = 1.0 / cols.shape[0]
    p_value = sum(math.comb(n, i) * p0**i * (1 - p0) ** (n - i) for i in range(k, n + 1))
    return k, n, min(1.0, p_value)


def _metrics(
    table: _StepTable,
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
    m.update(_memory_metrics(headers, by_rank))
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


def _busbw(table: _StepTable, world_size: int) -> MetricValue:
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


def _memory_metrics(
    headers: list[dict[str, Any]], by_rank: dict[int, RankRecords]
) -> dict[str, MetricValue]:
    summaries = [(r.header, r.summary) for r in by_rank.values() if r.header and r.summary]
    if not summaries:
        return {
            "memory_utilization_percent": unavailable(
                "memory_utilization_percent", "no rank wrote a summary"
            ),
            "memory_peak_mib": unavailable("memory_peak_mib", "no rank wrote a summary"),
        }
    gpu = [s["memory"] for _, s in summaries if "cuda_max_allocated_bytes" in s["memory"]]
    if gpu:
        peak = max(g["cuda_max_allocated_bytes"] for g in gpu)
        pct = max(100.0 * g["cuda_max_allocated_bytes"] / g["cuda_total_bytes"] for g in gpu)
        how = "max over ranks of torch.cuda.max_memory_allocated"
        return {
            "memory_peak_mib": metric("memory_peak_mib", peak / 2**20, "measured", how),
            "memory_utilization_percent": metric(
                "memory_utilization_percent", pct, "derived", f"{how} / device total"
            ),
        }
    peak = max(s["memory"]["rss_peak_bytes"] for _, s in summaries)
    per_host: dict[str, int] = {}
    totals: dict[str, int] = {}
    for h, s in summaries:
        per_host[h["hostname"]] = per_host.get(h["hostname"], 0) + s["memory"]["rss_peak_bytes"]
        totals[h["hostname"]] = s["memory"]["host_total_bytes"]
    pct = max(100.0 * per_host[host] / totals[host] for host in per_host)
    return {
        "memory_peak_mib": metric(
            "memory_peak_mib",
            peak / 2**20,
            "measured",
            "max over ranks of process peak RSS (getrusage)",
        ),
        "memory_utilization_percent": metric(
            "memory_utilization_percent",
            pct,
            "derived",
            "max over hosts of (sum of ranks' peak RSS on the host) / host memory total",
        ),
    }


def _telemetry_sources(by_rank: dict[int, RankRecords]) -> list[dict[str, Any]]:
    pairs = [(r.header, r.summary) for _, r in sorted(by_rank.items()) if r.header and r.summary]
    return energy.collect_sources(pairs)


def _energy_metrics(
    by_rank: dict[int, RankRecords], throughput: MetricValue | None, global_batch: int
) -> dict[str, MetricValue]:
    sps = throughput.value if throughput is not None else None
    return energy.energy_metrics(_telemetry_sources(by_rank), sps, global_batch)


def _platform(headers: list[dict[str, Any]]) -> dict[str, Any]:
    nodes: dict[str, dict[str, Any]] = {}
    for h in sorted(headers, key=lambda h: h["rank"]):
        p = h.get("platform", {})
        node = nodes.setdefault(
            h["hostname"],
            {
                "hostname": h["hostname"],
                "cpu": p.get("cpu"),
                "cpu_count": p.get("cpu_count"),
                "host_memory_total_bytes": p.get("host_memory_total_bytes"),
                "os": p.get("os"),
                "gpus": [],
            },
        )
        if p.get("gpu") and p["gpu"] not in node["gpus"]:
            node["gpus"].append(p["gpu"])
    p0 = headers[0].get("platform", {})
    return {"nodes": list(nodes.values()), "torch": p0.get("torch"), "python": p0.get("python")}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
