#!/usr/bin/env python
"""Benchmark the telemetry sampler's cost: median training-step time with sampling on vs off.

Time-boxed blocks of steps alternate on/off in one process (interleaved, the first mode of each
pair alternating, so drift and neighbours' load hit both modes alike). Each on/off pair gives a
ratio of block medians; the median of those ratios is the figure (robust to load swings on a
shared machine). Target: <= 1.01 at the default 100 ms interval.

    PYTHONPATH=. python scripts/bench_telemetry.py [--interval-ms 100] [--rounds 16] [--block-s 0.5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from minicluster.core.config import MlpConfig
from minicluster.rank.telemetry.session import for_rank
from minicluster.rank.workloads import build


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval-ms", type=float, default=100.0, help="sampler interval")
    ap.add_argument("--rounds", type=int, default=16, help="on/off block pairs")
    ap.add_argument("--block-s", type=float, default=0.5, help="seconds per block")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (a rank's default on 2 cores with 2 ranks)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    wl = build(MlpConfig(), seed=0, device=device)
    opt = torch.optim.SGD(wl.model.parameters(), lr=0.01)

    def step(i: int) -> float:
        x, y = wl.make_batch(i, 0)
        sync()  # inputs on the device before the clock starts
        t0 = time.perf_counter_ns()
        opt.zero_grad(set_to_none=True)
        wl.loss_fn(wl.model(x), y).backward()
        opt.step()
        sync()  # device idle before the clock stops
        return (time.perf_counter_ns() - t0) / 1e6

    for i in range(args.warmup):
        step(i)
    cuda_index = device.index if device.type == "cuda" else None
    times: dict[str, list[float]] = {"off": [], "on": []}
    pair_ratios: list[float] = []
    samples = 0
    poll_ms: list[float] = []
    sources: list[str] = []
    i = args.warmup
    for r in range(args.rounds):
        block_median: dict[str, float] = {}
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            session = for_rank(0, cuda_index, args.interval_ms / 1000.0) if mode == "on" else None
            if session is not None:
                session.begin()
            block: list[float] = []
            t_end = time.perf_counter() + args.block_s
            while time.perf_counter() < t_end:
                block.append(step(i))
                i += 1
            if session is not None:
                rec = session.end(len(block))
                session.close()
                samples += rec["sampler"]["samples"]
                if rec["sampler"]["poll_cost_ms_median"] is not None:
                    poll_ms.append(rec["sampler"]["poll_cost_ms_median"])
                sources = [s["source"] for s in rec["sources"] if s["available"]]
            times[mode].extend(block)
            block_median[mode] = statistics.median(block)
        pair_ratios.append(block_median["on"] / block_median["off"])

    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    ratio = statistics.median(pair_ratios)
    load = os.getloadavg()
    print(
        f"device {device}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} (shared machine: absolute times are noisy)"
    )
    print(
        f"steps on {len(times['on'])}, off {len(times['off'])}; interval "
        f"{args.interval_ms:.0f} ms; {samples} samples taken; sources read: {', '.join(sources)}"
    )
    if poll_ms:
        cost = statistics.median(poll_ms)
        print(
            f"poll cost median {cost:.3f} ms per sample = {100 * cost / args.interval_ms:.3f}% "
            "of one core at this interval"
        )
    print(f"median step time off {off:.3f} ms, on {on:.3f} ms (pooled ratio {on / off:.4f})")
    print("per-pair ratios on/off: " + " ".join(f"{x:.3f}" for x in pair_ratios))
    print(
        f"ratio on/off (median of {len(pair_ratios)} interleaved pairs) {ratio:.4f} "
        f"({100 * (ratio - 1):+.2f}%, target <= +1%)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
