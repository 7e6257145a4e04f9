"""Benchmark: the per-step cost of reading the rank's threads' CPU time and run-queue delay.

A rank's step reads /proc/self/task/*/schedstat twice (`rank.telemetry.schedstat.ThreadClock`:
one listing of the threads and one read per thread at the step's start, one read per thread at
its end). This times that pair in a process set up like a gloo rank (a process group, a DDP
model after one backward: the threads a rank has), and prints the median over repeats.

usage: python scripts/bench_cpu_wait.py [--calls 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import timeit

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from minicluster.rank.dist import free_port
from minicluster.rank.telemetry.schedstat import ThreadClock


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = DDP(
            torch.nn.Sequential(
                torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
            )
        )
        model(torch.randn(32, 128)).sum().backward()
        clock = ThreadClock()
        if clock.reason is not None:
            print(f"not measurable here: {clock.reason}")
            return 0
        per_step = [
            timeit.timeit(lambda: clock.since(clock.read()), number=args.calls) / args.calls * 1e6
            for _ in range(args.repeats)
        ]
        threads = len(os.listdir("/proc/self/task"))
        print(
            f"{threads} threads: two reads per step {statistics.median(per_step):.1f} us "
            f"(median of {args.repeats} x {args.calls}; min {min(per_step):.1f}, "
            f"max {max(per_step):.1f}); load {os.getloadavg()[0]:.2f}"
        )
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
