"""Achieved TFLOP/s (job and per rank) and MFU of a training run, from the model FLOPs its ranks
recorded (`core.flops`) and its measured step times."""

from __future__ import annotations

from typing import Any

import numpy as np

from minicluster.core import flops as flops_table
from minicluster.core.metrics import MetricValue, metric, unavailable

NAMES = ("achieved_tflops", "tflops_per_rank", "mfu_pct")


def run_flops(
    head0: dict[str, Any],
    headers: list[dict[str, Any]],
    step_max_ms: np.ndarray,
    world_size: int,
    data_ranks: int | None = None,
) -> dict[str, MetricValue]:
    """`achieved_tflops` (the job), `tflops_per_rank` (its mean per rank) and `mfu_pct` (per
    rank against the device's dense peak for the run's precision). `data_ranks`: the ranks that
    train a batch of their own (world size over tp x pp; None: every rank, as under DDP), so the
    global batch is `per_rank_batch x data_ranks`: the ranks of a tensor- or pipeline-parallel
    group share one batch's FLOPs, they do not each add a batch's."""
    workload = head0.get("workload") or {}
    per_sample = workload.get("flops_per_sample")
    batch = workload.get("per_rank_batch")
    n = int(np.count_nonzero(~np.isnan(step_max_ms))) if step_max_ms.size else 0
    if per_sample is None or not batch:
        why = (
            "the model's FLOPs are unknown (a custom model without flops_per_sample)"
            if workload.get("name") == "custom"
            else "the workload recorded no FLOPs per sample"
        )
        return {name: unavailable(name, why) for name in NAMES}
    if n == 0:
        return {name: unavailable(name, "no measured steps were recorded") for name in NAMES}
    total_s = float(np.nansum(step_max_ms)) / 1000.0
    global_batch = batch * (world_size if data_ranks is None else data_ranks)
    job = per_sample * global_batch * n / total_s / 1e12
    how = (
        f"flops_per_sample ({per_sample:.4g}: {workload.get('flops_method')}) x global batch "
        f"{global_batch} x measured steps / sum of per-step max-over-ranks step time"
    )
    out = {
        "achieved_tflops": metric("achieved_tflops", job, "derived", how),
        "tflops_per_rank": metric(
            "tflops_per_rank", job / world_size, "derived", "achieved_tflops / world size"
        ),
    }
    out["mfu_pct"] = _mfu(job / world_size, head0, headers)
    return out


def rank_tflops(
    head0: dict[str, Any], step_p50_ms: float | None, share: float = 1.0
) -> float | None:
    """One rank's TFLOP/s at its own median step time (its share of the FLOPs / that time); None
    when the FLOPs or the time are unknown. `share`: the batches' worth of FLOPs one rank does,
    data ranks / world size (1 under DDP and FSDP2; 1/2 under tp=2, whose two ranks split one
    batch's FLOPs)."""
    workload = head0.get("workload") or {}
    per_sample, batch = workload.get("flops_per_sample"), workload.get("per_rank_batch")
    if per_sample is None or not batch or not step_p50_ms or step_p50_ms <= 0:
        return None
    return float(per_sample * batch * share / (step_p50_ms / 1000.0) / 1e12)


def _mfu(per_rank: float, head0: dict[str, Any], headers: list[dict[str, Any]]) -> MetricValue:
    gpus = {((h.get("platform") or {}).get("gpu") or {}).get("name") for h in headers}
    if gpus == {None}:
        return unavailable(
            "mfu_pct",
            "the ranks ran on CPU: MFU needs a device's dense peak, and the peak table "
            "(core.flops.PEAKS) lists GPUs only",
        )
    if None in gpus or len(gpus) > 1:
        names = ", ".join(sorted(str(g) for g in gpus))
        return unavailable("mfu_pct", f"the ranks ran on different devices ({names})")
    (name,) = gpus
    peak = flops_table.peak_for(str(name))
    if peak is None:
        known = ", ".join(p.model for p in flops_table.PEAKS)
        return unavailable(
            "mfu_pct", f"no dense peak known for {name} (core.flops.PEAKS lists {known})"
        )
    run = (head0.get("config") or {}).get("run") or {}
    precision = run.get("precision") or "fp32"
    tflops = peak.tflops.get(precision)
    if tflops is None:
        return unavailable("mfu_pct", f"no {precision} peak for {peak.model} in core.flops.PEAKS")
    what = "CUDA-core fp32 (TF32 off, PyTorch's default)" if precision == "fp32" else precision
    return metric(
        "mfu_pct",
        100.0 * per_rank / tflops,
        "derived",
        f"tflops_per_rank / the {peak.model}'s dense {what} peak {tflops:g} TFLOP/s "
        f"({peak.source}, {peak.date})",
    )
