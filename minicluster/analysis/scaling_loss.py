"""Where a sweep's scaling efficiency went: per world size, the step time lost against the
baseline split into exposed communication, straggler wait, compute growth and the remainder.

Every part comes from the per-step cross-rank series a run's result keeps (`steps.series`: per
step, step time, compute and exposed communication as the max over ranks, all-reduce wait as max
- min over ranks of `comm_ms`) and its ranks' own mean compute (`ranks[].compute_ms_mean`). Per
step the slowest rank's compute is on the critical path, and the others wait for it:

    step = typical compute + straggler wait + jitter wait + exposed transfer + other, where
    typical compute  = the lower median over ranks of each rank's mean compute (per-rank compute;
                       at 2 ranks the faster one's, so one slow rank does not count as growth)
    straggler wait   = the slowest rank's mean compute - typical compute (a rank slower on
                                                             average: what the others wait for it)
    jitter wait      = compute_ms - the slowest rank's mean compute (per step the max over ranks
                                                             beyond any one rank's mean: waits
                                                             from per-step jitter, E[max] > max
                                                             of the means; no rank is to blame)
    exposed transfer = exposed_comm_ms - allreduce_wait_ms  (exposed all-reduce that is not waiting)
    other            = step - compute_ms - exposed transfer (data, optimizer, framework, and waits
                                                             that are not the slowest's compute,
                                                             e.g. ranks descheduled on shared cores)

Each is averaged over the run's measured steps (the mean is linear, so the parts of a step add up
to its mean; and the weak-scaling efficiency is a ratio of mean step times, since throughput =
global batch / mean step time). Against the baseline run of the same round (weak: `t_N - t_N0`;
strong: `t_N - t_N0 * N0 / N`, every baseline component scaled alike) the four differences add up
to the lost step time exactly; the remainder is what the named parts do not explain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from minicluster.analysis.sweep import Mode
from minicluster.core.config import default_threads

PARTS = ("exposed_comm", "straggler_wait", "jitter_wait", "compute_growth", "remainder")

METHOD = (
    "Lost step time vs the baseline run of the same round (weak: t_N - t_N0; strong: "
    "t_N - t_N0 * N0 / N, with every baseline component scaled by N0 / N), split per step with "
    "the run-level series of result.json (steps.series): compute growth = a typical rank's "
    "compute (the lower median over ranks of each rank's mean compute_ms: at 2 ranks the faster "
    "one) - the baseline's; straggler wait = the slowest rank's mean compute - that typical "
    "compute (a rank slower on average); jitter wait = compute_ms (per step the slowest rank's "
    "compute, the critical path) - the slowest rank's mean compute: the waits from per-step "
    "jitter, which rank is slowest changing from step to step (no rank to blame); exposed "
    "communication = exposed_comm_ms - "
    "allreduce_wait_ms (exposed all-reduce that is not waiting); remainder = lost time - the "
    "three (data, optimizer, framework, and waits that are not the slowest rank's compute, such "
    "as ranks descheduled on shared cores). Each part is the mean over the run's measured "
    "steps that have every series, so the parts add up to the lost time exactly; pts = 100 x "
    "part / t_N (mean step time), and lost % = 100 x lost / t_N, which for weak scaling is "
    "100 - that round's efficiency (throughput = global batch / mean step time). The rounds are "
    "those whose efficiency is the median over rounds (the two middle ones averaged for an even "
    "count). At world size 1 an all-reduce that recorded no time counts as 0 (no other rank)."
)


@dataclass(frozen=True)
class StepParts:
    """Means over one run's measured steps (ms; bytes and buckets per step) of the step's parts.

    `step_time_ms = per_rank_compute_ms + straggler_wait_ms + jitter_wait_ms + exposed_comm_ms +
    other_ms`.
    `transfer_ms`, `comm_bytes`, `buckets` are None when the run did not record them.
    """

    step_time_ms: float
    per_rank_compute_ms: float
    straggler_wait_ms: float
    jitter_wait_ms: float
    exposed_comm_ms: float
    other_ms: float
    transfer_ms: float | None
    comm_bytes: float | None
    buckets: float | None
    steps: int

    def scaled(self, k: float) -> StepParts:
        """Every time scaled by `k` (strong scaling's ideal: the baseline's step split N/N0 ways)."""
        return StepParts(
            self.step_time_ms * k,
            self.per_rank_compute_ms * k,
            self.straggler_wait_ms * k,
            self.jitter_wait_ms * k,
            self.exposed_comm_ms * k,
            self.other_ms * k,
            None if self.transfer_ms is None else self.transfer_ms * k,
            self.comm_bytes,
            self.buckets,
            self.steps,
        )


def run_parts(result: dict[str, Any] | None) -> tuple[StepParts | None, str | None]:
    """(the parts of an ok run's steps, None) or (None, why not) from its `steps.series`."""
    if result is None or result.get("status") != "ok":
        return None, "the run is not ok"
    steps = result.get("steps")
    series = steps.get("series") if isinstance(steps, dict) else None
    if not isinstance(series, dict):
        return None, "its result keeps no per-step series (steps.series)"
    n = int(result.get("world_size") or 0)
    step, compute = _array(series, "step_time_ms"), _array(series, "compute_ms")
    exposed, wait = _array(series, "exposed_comm_ms"), _array(series, "allreduce_wait_ms")
    if step is None or compute is None:
        return None, "its series lack step_time_ms or compute_ms"
    rank_means = sorted(
        float(r["compute_ms_mean"])
        for r in result.get("ranks") or []
        if isinstance(r.get("compute_ms_mean"), (int, float))
    )
    if n > 1 and not rank_means:
        return None, (
            "its ranks lack compute_ms_mean (results before schema minicluster/1.2): re-build "
            "them from the rank files with `minicluster aggregate DIR`"
        )
    if n == 1:  # no other rank to move data to or wait for: an untimed all-reduce counts as 0
        exposed = np.zeros_like(step) if exposed is None else np.nan_to_num(exposed, nan=0.0)
        wait = np.zeros_like(step) if wait is None else np.nan_to_num(wait, nan=0.0)
    if exposed is None or wait is None:
        return None, "its series lack exposed_comm_ms or allreduce_wait_ms"
    used = np.isfinite(step) & np.isfinite(compute) & np.isfinite(exposed) & np.isfinite(wait)
    if not used.any():
        return None, "no measured step has step time, compute, exposed and wait all recorded"

    def mean(values: np.ndarray | None) -> float | None:
        if values is None:
            return None
        kept = values[used & np.isfinite(values)]
        return float(kept.mean()) if kept.size else None

    s, c, e, w = (float(a[used].mean()) for a in (step, compute, exposed, wait))
    # One rank: its own mean compute over the same steps (no other rank to wait for).
    t = c if n == 1 else rank_means[(len(rank_means) - 1) // 2]
    slowest = c if n == 1 else rank_means[-1]
    return (
        StepParts(
            step_time_ms=s,
            per_rank_compute_ms=t,
            straggler_wait_ms=slowest - t,
            jitter_wait_ms=c - slowest,
            exposed_comm_ms=e - w,
            other_ms=s - c - (e - w),
            transfer_ms=0.0 if n == 1 else mean(_array(series, "allreduce_transfer_ms")),
            comm_bytes=mean(_array(series, "comm_bytes")),
            buckets=mean(_array(series, "buckets")),
            steps=int(used.sum()),
        ),
        None,
    )


def _host_threads(result: dict[str, Any]) -> list[tuple[str, int, int, int]] | str:
    """Per host of `result`: (hostname, its ranks, its CPU cores, the CPU threads each of its
    ranks ran with: what the ranks recorded (`ranks[].threads`, from their headers; the most on
    the host), or in a result from before that, the config's `run.threads_per_rank`, or when that
    is 0, the default share of the host's cores). A reason string when the result does not
    record them."""
    ranks = result.get("ranks") or []
    recorded = bool(ranks) and all(_is_count(r.get("threads")) for r in ranks)
    threads = ((result.get("config") or {}).get("run") or {}).get("threads_per_rank")
    cores = {
        str(n.get("hostname")): n.get("cpu_count")
        for n in (result.get("platform") or {}).get("nodes") or []
    }
    per_host: dict[str, list[dict[str, Any]]] = {}
    for r in ranks:
        per_host.setdefault(str(r.get("hostname")), []).append(r)
    hosts = []
    for host, on_host in per_host.items():
        n_cores = cores.get(host)
        if (
            not isinstance(n_cores, int)
            or n_cores < 1
            or not (recorded or isinstance(threads, int))
        ):
            return f"the cores of host {host} or the threads per rank were not recorded"
        if recorded:
            used = max(int(r["threads"]) for r in on_host)
        else:
            used = threads or default_threads(n_cores, len(on_host))
        hosts.append((host, len(on_host), n_cores, used))
    return hosts


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def effective_threads(result: dict[str, Any]) -> int | None:
    """CPU threads each rank of `result` ran with: what the ranks recorded (the fewest), or in a
    result from before that, the config's `run.threads_per_rank`, or when that is 0 (the default:
    a host's cores shared by its ranks) cores // ranks on the fullest host. None when the result
    does not record them."""
    ranks = result.get("ranks") or []
    if ranks and all(_is_count(r.get("threads")) for r in ranks):
        return min(int(r["threads"]) for r in ranks)
    threads = ((result.get("config") or {}).get("run") or {}).get("threads_per_rank")
    if not isinstance(threads, int) or isinstance(threads, bool):
        return None
    if threads > 0:
        return threads
    hosts = _host_threads(result)
    if isinstance(hosts, str) or not hosts:
        return None
    return min(t for _, _, _, t in hosts)


def placement(result: dict[str, Any] | None) -> tuple[bool | None, str]:
    """(oversubscribed, how the ranks sat): whether a CPU run had more threads than cores on a host.

    GPU runs: None (the compute is on the devices). A run without the platform facts: None.
    """
    if not result:
        return None, "no result"
    if any(str(r.get("device") or "").startswith("cuda") for r in result.get("ranks") or []):
        return None, "ranks on GPUs"
    hosts = _host_threads(result)
    if isinstance(hosts, str):
        return None, hosts
    worst: tuple[float, str] | None = None
    for host, local, n_cores, t in hosts:
        text = f"{local} rank(s) x {t} thread(s) on {n_cores} CPU cores of host {host}"
        load = local * t / n_cores
        if worst is None or load > worst[0]:
            worst = (load, text)
    if worst is None:
        return None, "no ranks"
    return worst[0] > 1.0, worst[1]


def breakdown(
    mode: Mode,
    n0: int,
    n: int,
    runs: dict[int, dict[str, Any] | None],
    base_runs: dict[int, dict[str, Any] | None],
    efficiency_rounds: dict[int, float | None],
) -> dict[str, Any]:
    """The `breakdown` of scaling point `n`: its step's parts and, above the baseline, the loss.

    `runs`, `base_runs`: round -> that round's run result at `n` and at the baseline `n0`;
    `efficiency_rounds`: round -> the round's efficiency (None where the round has none).
    Uses the round(s) whose efficiency is the median; at `n0`, or when no round pairs with an
    ok baseline (then `loss` is None and `reason` says why), those whose mean step time is.
    """
    parts = {r: run_parts(res) for r, res in runs.items()}
    over, where = placement(next((res for res in runs.values() if res), None))
    mine_ok = {r: p for r, (p, _) in parts.items() if p is not None}
    base = {r: run_parts(res)[0] for r, res in base_runs.items()}
    paired = [
        (e, r)
        for r, e in efficiency_rounds.items()
        if n != n0 and e is not None and r in mine_ok and base.get(r) is not None
    ]
    if not mine_ok:
        why = next((w for _, w in parts.values() if w), "no run")
        return {
            "status": "unavailable",
            "reason": f"no round has an ok run at world size {n} with the per-step series ({why})",
            "oversubscribed": over,
            "placement": where,
        }
    rounds = _middle(paired or [(p.step_time_ms, r) for r, p in mine_ok.items()])
    mine = _mean_parts([mine_ok[r] for r in rounds])
    out: dict[str, Any] = {
        "status": "derived",
        "reason": None,
        "rounds": rounds,
        "steps": mine.steps,
        "components_ms": components(mine),
        "comm_bytes": mine.comm_bytes,
        "buckets": mine.buckets,
        "oversubscribed": over,
        "placement": where,
        "loss": None,
    }
    if n != n0 and not paired:
        out["reason"] = (
            f"no round has an ok run with the per-step series at both world size {n0} (the "
            f"baseline) and {n}, and an efficiency: no lost time to split"
        )
    elif n != n0:
        k = 1.0 if mode == "weak" else n0 / n
        per_round = []
        for r in rounds:
            b = base[r]
            assert b is not None  # rounds were chosen among those with both runs
            per_round.append(loss(mine_ok[r], b.scaled(k)))
        out["loss"] = _mean_loss(per_round)
    return out


def components(p: StepParts) -> dict[str, float | None]:
    """The step's parts as the `components_ms` of a breakdown (mean ms per step)."""
    return {
        "step_time": p.step_time_ms,
        "per_rank_compute": p.per_rank_compute_ms,
        "straggler_wait": p.straggler_wait_ms,
        "jitter_wait": p.jitter_wait_ms,
        "exposed_comm": p.exposed_comm_ms,
        "other": p.other_ms,
        "transfer": p.transfer_ms,
    }


def loss(run: StepParts, ideal: StepParts) -> dict[str, Any]:
    """The step time `run` lost against `ideal` (the baseline, scaled for strong scaling), in
    parts that add up to it: ms and points of `run`'s step time (pts = 100 x part / t_N)."""
    lost = run.step_time_ms - ideal.step_time_ms
    parts_ms = {
        "exposed_comm": run.exposed_comm_ms - ideal.exposed_comm_ms,
        "straggler_wait": run.straggler_wait_ms - ideal.straggler_wait_ms,
        "jitter_wait": run.jitter_wait_ms - ideal.jitter_wait_ms,
        "compute_growth": run.per_rank_compute_ms - ideal.per_rank_compute_ms,
    }
    # The remainder closes the sum: it is other_N - other_ideal up to float rounding.
    parts_ms["remainder"] = lost - sum(parts_ms.values())
    t = run.step_time_ms
    return {
        "step_time_ms": t,
        "ideal_step_time_ms": ideal.step_time_ms,
        "lost_ms": lost,
        "lost_pct": 100.0 * lost / t if t > 0 else None,
        "parts_ms": parts_ms,
        "parts_pts": {k: 100.0 * v / t if t > 0 else None for k, v in parts_ms.items()},
    }


def _middle(keyed: Sequence[tuple[float, int]]) -> list[int]:
    """The round(s) at the median of their keys: the middle one, or the two middle ones."""
    order = [r for _, r in sorted(keyed)]
    mid = (len(order) - 1) // 2
    return sorted(order[mid : mid + (1 if len(order) % 2 else 2)])


def _mean_loss(losses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean of per-round losses, field by field (linear: the parts still add up, and the lost
    % is the mean of the rounds' lost %, i.e. 100 - the median efficiency of two middle rounds)."""
    if len(losses) == 1:
        return losses[0]

    def mean(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: mean([v[k] for v in values]) for k in values[0]}
        return None if any(v is None for v in values) else float(np.mean(values))

    return {k: mean([x[k] for x in losses]) for k in losses[0]}


def _mean_parts(parts: Sequence[StepParts]) -> StepParts:
    """The mean of several runs' parts (linear: the parts still add up); steps are summed."""
    assert parts, "no parts to average"
    if len(parts) == 1:
        return parts[0]
    values: dict[str, Any] = {}
    for f in fields(StepParts):
        got = [getattr(p, f.name) for p in parts]
        if f.name == "steps":
            values[f.name] = sum(got)
        elif any(v is None for v in got):
            values[f.name] = None
        else:
            values[f.name] = float(np.mean(got))
    return StepParts(**values)


def _array(series: dict[str, Any], key: str) -> np.ndarray | None:
    raw = series.get(key)
    if not isinstance(raw, list):
        return None
    return np.array(
        [v if isinstance(v, (int, float)) and math.isfinite(v) else np.nan for v in raw], float
    )
