"""Benchmark: the per-step cost of timing every collective per kind (rank/comm_kinds.KindTracker).

Two gloo ranks (spawned here) train the default Llama workload in one layout (FSDP2 `dp_shard=2`
or TP `tp=2`) and alternate, in the same processes, blocks of steps with the tracker installed
and blocks without it (which goes first alternates by round). Per round the ratio of median step
times (with / without, the max over ranks of each step); printed with a 95% confidence interval
(Student t over the rounds), beside the tracker's own time per step (wrappers plus `take_step`,
measured inside the step) as a share of the step.

usage: python scripts/bench_comm_kinds.py [--layout dp_shard=2] [--rounds 8] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rank(rank: int, port: int, layout_text: str, rounds: int, steps: int, out: object) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    import gc

    import torch
    import torch.distributed as dist

    from minicluster.core import config, layout
    from minicluster.rank import layouts
    from minicluster.rank.comm_kinds import KindTracker
    from minicluster.rank.workloads.llama import build_llama

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    wl = build_llama(config.LlamaConfig(), 0, torch.device("cpu"))
    lay = layout.resolve(layout.parse_flag(layout_text), 2)
    par = layouts.parallelize(wl.model, lay, torch.device("cpu"), "fp32", False)
    opt = torch.optim.SGD(par.model.parameters(), lr=0.01)
    ratios = _measure(wl, par, opt, KindTracker(), rounds, steps)
    direct = _direct_cost_us(KindTracker(), torch.zeros(1024)) if rank == 0 else None
    if rank == 0:
        out.put((ratios, direct))  # type: ignore[attr-defined]
    del par, opt, wl
    gc.collect()
    dist.destroy_process_group()


def _measure(wl: Any, par: Any, opt: Any, tracker: Any, rounds: int, steps: int) -> list[float]:
    """Per round, median step time with the tracker / without (max over ranks per step)."""
    import torch
    import torch.distributed as dist

    def block(on: bool, step0: int) -> list[float]:
        if on:
            tracker.install()
        times = []
        for s in range(steps):
            x, y = wl.make_batch(step0 + s, par.dp_rank)
            t0 = time.perf_counter_ns()
            wl.loss_fn(par.model(x), y).backward()
            opt.step()
            opt.zero_grad()
            if on:
                tracker.take_step()
            times.append((time.perf_counter_ns() - t0) / 1e6)
        if on:
            tracker.uninstall()
        gathered = [torch.zeros(steps, dtype=torch.float64) for _ in range(2)]
        dist.all_gather(gathered, torch.tensor(times, dtype=torch.float64))
        return torch.stack(gathered).max(dim=0).values.tolist()

    block(False, 0)  # warm-up
    ratios = []
    for r in range(rounds):
        order = (True, False) if r % 2 else (False, True)
        med = {on: statistics.median(block(on, 1000 * r + 100 * i)) for i, on in enumerate(order)}
        ratios.append(med[True] / med[False])
    return ratios


def _direct_cost_us(tracker: Any, tensor: Any, calls: int = 20_000) -> tuple[float, float]:
    """The tracker's own work, with the collective itself taken out: a wrapper around a no-op
    (group of the whole world, so the timed path runs) per call, and take_step per call it
    summarises; both in microseconds, the median of 5 repetitions."""
    wrapped = tracker._c10d_wrapper(lambda *a, **k: None, "all_reduce", 0, ("tensor",))
    per_call, per_take = [], []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            wrapped(tensor)
        t1 = time.perf_counter_ns()
        tracker.take_step()
        t2 = time.perf_counter_ns()
        per_call.append((t1 - t0) / calls / 1e3)
        per_take.append((t2 - t1) / calls / 1e3)
    return statistics.median(per_call), statistics.median(per_take)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layout", default="dp_shard=2")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    import torch.multiprocessing as mp
    from scipy import stats

    from minicluster.rank.dist import free_port

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(
        _rank,
        args=(free_port(), args.layout, args.rounds, args.steps, queue),
        nprocs=2,
        join=True,
    )
    ratios, (per_call_us, per_take_us) = queue.get()
    mean = statistics.mean(ratios)
    half = stats.t.ppf(0.975, len(ratios) - 1) * statistics.stdev(ratios) / len(ratios) ** 0.5
    print(
        f"layout {args.layout}: step time with per-kind timing / without = {mean:.3f} "
        f"(95% CI {mean - half:.3f}..{mean + half:.3f}, {len(ratios)} rounds x {args.steps} "
        f"steps; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"direct cost: {per_call_us:.2f} us per wrapped call + {per_take_us:.2f} us per call in "
        "take_step (the collective itself taken out)"
    )


if __name__ == "__main__":
    main()
