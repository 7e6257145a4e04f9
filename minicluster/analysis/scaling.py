"""Scaling efficiency of a world-size sweep (the `scaling` block), from its runs' results.

Weak scaling: `E = X_N / (N X_1)` on throughput; strong: `E = t_1 / (N t_N)` on the median
step time; each run paired with the baseline run of its own round, the median over rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from minicluster.analysis import scaling_loss
from minicluster.analysis.sweep import Mode, RunOutcome

# The per-run value each mode compares. Weak: throughput, as DESIGN defines it. Strong: the step
# time, taken as the median over measured steps of the per-step max over ranks: a synchronous
# step lasts as long as its slowest rank, and the median resists the odd slow step of a shared
# host (the mean, step_time_mean_ms, would make strong E equal to the throughput ratio).
METRIC: dict[Mode, str] = {"weak": "throughput_samples_per_sec", "strong": "latency_p50_ms"}
_METRIC_TEXT: dict[Mode, str] = {
    "weak": "X = throughput_samples_per_sec of a run (global batch x measured steps / sum of "
    "per-step max-over-ranks step times)",
    "strong": "t = latency_p50_ms of a run (median over measured steps of the per-step "
    "max-over-ranks step time: a synchronous step lasts as long as its slowest rank, and the "
    "median resists the odd slow step of a shared host)",
}

# Per point: the median over its ok runs of these run metrics (point key: run metric).
POINT_METRICS = {
    "throughput_samples_per_sec": "throughput_samples_per_sec",
    "step_time_p50_ms": "latency_p50_ms",
    "compute_ms": "compute_ms",
    "allreduce_ms": "allreduce_ms",
    "exposed_comm_ms": "exposed_comm_ms",
    "communication_overhead_percent": "communication_overhead_percent",
}


def efficiency_pct(mode: Mode, n0: int, v0: float, n: int, v: float) -> float | None:
    """Efficiency of world size `n` (value `v`) against the baseline `n0` (value `v0`), in %.

    Weak: E = X_N * N0 / (N * X_N0); strong: E = N0 * t_N0 / (N * t_N) (with N0 = 1 the
    DESIGN.md formulas X_N / (N X_1) and t_1 / (N t_N)). Not clamped: above 100% is reported.
    """
    if v0 <= 0 or v <= 0:
        return None
    # Ratio of the values first: a run against itself gives exactly 100.
    if mode == "weak":
        return 100.0 * (v / v0) * (n0 / n)
    return 100.0 * (v0 / v) * (n0 / n)


def formula(mode: Mode, n0: int) -> str:
    if n0 == 1:
        return "E = X_N / (N * X_1)" if mode == "weak" else "E = t_1 / (N * t_N)"
    if mode == "weak":
        return f"E = N0 * X_N / (N * X_N0), N0 = {n0}"
    return f"E = N0 * t_N0 / (N * t_N), N0 = {n0}"


def build_scaling(
    outcomes: Sequence[RunOutcome],
    mode: Mode,
    world_sizes: Sequence[int],
    repeats: int,
    per_rank_batch: int | None,
    global_batch: int | None,
    threads_per_rank: int | None = None,
    warnings: Sequence[str] = (),
    order: str | None = None,
) -> dict[str, Any]:
    """The `scaling` block of a sweep from its runs' results.

    Each run is paired with the baseline run (smallest world size N0) of the same round; a
    world size's efficiency is the median over rounds, with min and max. A run that is not ok
    gives no value; a world size left with none has efficiency null and a reason.
    `per_rank_batch` is the fixed per-rank batch of a weak sweep, `global_batch` the fixed
    global batch of a strong one; `order` says how the runs were made when not in this
    session's interleaved rounds (finished runs of separate jobs).
    """
    sizes = sorted(world_sizes)
    n0 = sizes[0]
    name = METRIC[mode]
    by_slot = {(o.planned.round, o.planned.world_size): o for o in outcomes}
    base_runs = [o for o in outcomes if o.planned.world_size == n0]
    base_values = [v for v in (o.value(name) for o in base_runs) if v is not None]
    block: dict[str, Any] = {
        "mode": mode,
        "world_sizes": sizes,
        "repeats": repeats,
        "order": order
        or f"interleaved: {repeats} round(s) of world sizes {', '.join(map(str, sizes))}",
        "metric": name,
        "formula": formula(mode, n0),
        "method": f"{_METRIC_TEXT[mode]}; each run is paired with the baseline run of its own "
        "round; efficiency_pct is the median over rounds, min and max beside it; not clamped: "
        "above 100% is reported",
        "baseline": {
            "world_size": n0,
            "kind": _baseline_kind(n0, base_runs),
            "metric": name,
            "value": _median(base_values),
            "unit": "samples/s" if mode == "weak" else "ms",
            "runs_ok": len(base_values),
        },
        "per_rank_batch": per_rank_batch if mode == "weak" else None,
        "global_batch": global_batch if mode == "strong" else None,
        "threads_per_rank": threads_per_rank,
        "warnings": list(warnings),
        "breakdown_method": scaling_loss.METHOD,
        "points": [
            _point(n, n0, mode, name, repeats, by_slot, per_rank_batch, global_batch) for n in sizes
        ],
    }
    return block


def _point(
    n: int,
    n0: int,
    mode: Mode,
    name: str,
    repeats: int,
    by_slot: dict[tuple[int, int], RunOutcome],
    per_rank_batch: int | None,
    global_batch: int | None,
) -> dict[str, Any]:
    runs = [by_slot[(r, n)] for r in range(1, repeats + 1) if (r, n) in by_slot]
    rounds: list[float | None] = []
    for r in range(1, repeats + 1):
        run, base = by_slot.get((r, n)), by_slot.get((r, n0))
        v = run.value(name) if run else None
        v0 = base.value(name) if base else None
        rounds.append(None if v is None or v0 is None else efficiency_pct(mode, n0, v0, n, v))
    got = [e for e in rounds if e is not None]
    ok = [o for o in runs if o.status == "ok"]
    reason = None
    if not got:
        if not ok:
            failed = "; ".join(f"{o.dir} {o.status}: {o.why_not_ok()}" for o in runs)
            reason = f"no ok run at world size {n} ({failed or 'not run'})"
        elif all(o.value(name) is None for o in ok):
            reason = f"the ok runs at world size {n} did not measure {name}"
        else:
            reason = (
                f"no round has an ok run with {name} at both world size {n0} (the baseline) and {n}"
            )
    stragglers = sorted({s["rank"] for o in ok for s in (o.result or {}).get("stragglers") or []})
    point: dict[str, Any] = {
        "world_size": n,
        "per_rank_batch": per_rank_batch if mode == "weak" else (global_batch or 0) // n,
        "global_batch": (per_rank_batch or 0) * n if mode == "weak" else global_batch,
        "status": "derived" if got else "unavailable",
        "efficiency_pct": _median(got),
        "efficiency_pct_min": min(got) if got else None,
        "efficiency_pct_max": max(got) if got else None,
        "efficiency_pct_rounds": rounds,
        "reason": reason,
        "runs_ok": len(ok),
        **{
            key: _median([v for v in (o.value(m) for o in ok) if v is not None])
            for key, m in POINT_METRICS.items()
        },
        "stragglers": stragglers,
        "runs": [_run_entry(o) for o in runs],
        "breakdown": scaling_loss.breakdown(
            mode,
            n0,
            n,
            {o.planned.round: o.result for o in runs},
            {r: o.result for (r, size), o in by_slot.items() if size == n0},
            dict(enumerate(rounds, start=1)),
        ),
    }
    return point


def _run_entry(o: RunOutcome) -> dict[str, Any]:
    result = o.result or {}
    return {
        "dir": o.dir,
        "round": o.planned.round,
        "run_id": result.get("run_id"),
        "status": o.status,
        "throughput_samples_per_sec": o.value("throughput_samples_per_sec"),
        "step_time_p50_ms": o.value("latency_p50_ms"),
        "stragglers": [s["rank"] for s in result.get("stragglers") or []],
        "failed_ranks": list(result.get("failed_ranks") or []),
        "error": None if o.status == "ok" else o.why_not_ok(),
    }


def _baseline_kind(n0: int, base_runs: Sequence[RunOutcome]) -> str:
    backend = next((str(o.result["backend"]) for o in base_runs if o.result), "unknown")
    # the baseline run's own layout (`sweep --parallel tp=2`: tp=2, not DDP)
    lay = next((o.result.get("layout") for o in base_runs if o.result), None) or {}
    how = "DDP" if lay.get("name") in (None, "DDP") else f"{lay['name']} ({lay.get('label')})"
    if n0 == 1:
        return (
            f"1 rank with {how} (a world-size-1 {backend} process group: its all-reduce moves no "
            "data)"
        )
    return (
        f"{n0} ranks with {how} ({backend}): the sweep has no 1-rank run, so efficiencies are "
        f"relative to {n0} ranks"
    )


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None
