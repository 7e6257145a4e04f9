"""A sweep built from finished runs of separate jobs (`sweep --from`): checked to be one workload
at several world sizes, the scaling mode taken from the batches.

On a cluster each world size is usually its own job; the runs then go through the same
formulas (`scaling.build_scaling`) and the same sweep result (`sweep.sweep_result`) as a live
sweep's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minicluster.analysis.scaling_loss import effective_threads
from minicluster.analysis.sweep import Mode, PlannedRun, RunOutcome
from minicluster.core.errors import InputError


@dataclass(frozen=True)
class FinishedRuns:
    """What a sweep built from finished runs is: one outcome per world size, and its plan."""

    outcomes: list[RunOutcome]
    mode: Mode
    world_sizes: list[int]
    per_rank_batch: int | None
    global_batch: int | None
    threads_per_rank: int | None
    warnings: list[str]


# Result fields that must agree for the runs to be one workload at different world sizes.
_SAME_WORKLOAD = ("name", "seq_len", "params")


def from_finished_runs(
    runs: Sequence[tuple[str, dict[str, Any]]], mode: Mode | None
) -> FinishedRuns:
    """Finished runs of different world sizes (`(directory, result)`) as one sweep, checked.

    The runs must be training results of the same workload (name, sizes, parameters: every
    workload field of the config but the batch), backend and device, at distinct world sizes
    (two or more). The mode follows from the batches: the same per-rank batch everywhere is
    weak scaling, the same global batch strong; `mode` states it and is then checked.
    InputError naming the run and the field otherwise. Differences that do not break the
    comparison but matter (steps, threads per rank, hosts) become warnings.
    """
    if len(runs) < 2:
        raise InputError("--from needs at least two finished runs of different world sizes")
    for where, result in runs:
        kind = result["workload"].get("workload_type")
        if kind != "training":
            raise InputError(f"{where}: a {kind} result; a scaling sweep compares training runs")
    sizes = [int(r["world_size"]) for _, r in runs]
    if len(set(sizes)) < len(sizes):
        n = next(x for x in sizes if sizes.count(x) > 1)
        dirs = [w for w, r in runs if r["world_size"] == n]
        raise InputError(
            f"--from: two runs at world size {n} ({', '.join(dirs)}); give one run per world size"
        )
    first_dir, first = runs[0]
    for where, result in runs[1:]:
        for field, a, b in _workload_differences(first, result):
            raise InputError(
                f"--from: {where} ran a different workload than {first_dir} ({field}: {b!r} vs "
                f"{a!r}); a sweep compares one workload at several world sizes"
            )
    per_rank = {int(r["workload"]["per_rank_batch"]) for _, r in runs}
    global_ = {int(r["workload"]["global_batch"]) for _, r in runs}
    inferred: Mode | None = (
        "weak" if len(per_rank) == 1 else "strong" if len(global_) == 1 else None
    )
    if mode is None and inferred is None:
        raise InputError(
            "--from: the runs share neither the per-rank batch (weak scaling) nor the global "
            f"batch (strong scaling): per-rank {sorted(per_rank)}, global {sorted(global_)}"
        )
    mode = mode or inferred
    if mode == "weak" and len(per_rank) > 1:
        raise InputError(
            f"--mode weak keeps the per-rank batch, but the runs have {sorted(per_rank)}"
        )
    if mode == "strong" and len(global_) > 1:
        raise InputError(
            f"--mode strong keeps the global batch, but the runs have {sorted(global_)}"
        )
    assert mode is not None
    ordered = sorted(runs, key=lambda wr: int(wr[1]["world_size"]))
    outcomes = [
        RunOutcome(PlannedRun(1, int(r["world_size"])), r, source=where) for where, r in ordered
    ]
    threads = {effective_threads(r) for _, r in ordered}
    steps = {json.dumps(_run_cfg(r, "steps"), sort_keys=True) for _, r in ordered}
    warnings = []
    if len(threads) > 1:
        by_size = ", ".join(
            f"{r['world_size']} rank(s): {effective_threads(r) or '?'}" for _, r in ordered
        )
        warnings.append(
            f"the runs used different CPU threads per rank ({by_size}): the efficiency also "
            "measures the thread counts"
        )
    if len(steps) > 1:
        warnings.append("the runs measured different numbers of steps")
    hosts = {tuple(sorted(_hosts(r))) for _, r in ordered}
    if len(hosts) > 1:
        warnings.append("the runs ran on different hosts: the efficiency also compares hosts")
    return FinishedRuns(
        outcomes=outcomes,
        mode=mode,
        world_sizes=sorted(sizes),
        per_rank_batch=next(iter(per_rank)) if mode == "weak" else None,
        global_batch=next(iter(global_)) if mode == "strong" else None,
        threads_per_rank=next(iter(threads)) if len(threads) == 1 else None,
        warnings=warnings,
    )


def _run_cfg(result: dict[str, Any], section: str) -> dict[str, Any]:
    value = (result.get("config") or {}).get(section)
    return value if isinstance(value, dict) else {}


def _workload_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, a's, b's) for every workload field but the batch that differs, plus backend and
    device."""
    out = []
    for key in _SAME_WORKLOAD:
        if a["workload"].get(key) != b["workload"].get(key):
            out.append((f"workload.{key}", a["workload"].get(key), b["workload"].get(key)))
    wa, wb = _run_cfg(a, "workload"), _run_cfg(b, "workload")
    for key in sorted((set(wa) | set(wb)) - {"per_rank_batch"}):
        if wa.get(key) != wb.get(key):
            out.append((f"config workload.{key}", wa.get(key), wb.get(key)))
    if a.get("backend") != b.get("backend"):
        out.append(("backend", a.get("backend"), b.get("backend")))
    da, db = _run_cfg(a, "run").get("device"), _run_cfg(b, "run").get("device")
    if da != db:
        out.append(("run.device", da, db))
    return out


def _hosts(result: dict[str, Any]) -> list[str]:
    nodes = (result.get("platform") or {}).get("nodes") or []
    return [str(n.get("hostname")) for n in nodes if isinstance(n, dict)]
