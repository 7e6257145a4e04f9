"""Benchmark: harness overhead per step, measured side by side in one run.

Two gloo ranks (spawned) build the same workload twice: a plain DDP model driven by a minimal
training loop ("raw"), and one driven by minicluster's own step path ("harness": the comm-hook
timer, the per-step JSONL record, and the telemetry sampler when the worker has one), once with
each all-reduce timing method (`ddp_stats`, the default, and `hook`). Blocks of steps rotate
through the modes so machine drift hits all alike; the first blocks are discarded as warm-up.
Prints per-mode median step time and the ratio to raw (target <= 1.02).

usage: python scripts/bench_overhead.py [-c CONFIG] [--blocks 16] [--block-steps 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from minicluster import config, worker, workloads
from minicluster.dist import free_port
from minicluster.timing import attach_comm_timer

WARMUP_BLOCKS = 2


def _raw_step(
    ddp: DDP, opt: torch.optim.Optimizer, wl: workloads.Workload, step: int, rank: int
) -> float:
    x, y = wl.make_batch(step, rank)
    t0 = time.perf_counter_ns()
    opt.zero_grad(set_to_none=True)
    wl.loss_fn(ddp(x), y).backward()
    opt.step()
    return (time.perf_counter_ns() - t0) / 1e6


def _rank(
    rank: int, world: int, port: int, cfg_path: str | None, blocks: int, block_steps: int, out: str
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cfg = config.load(cfg_path)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    device = torch.device("cpu")
    held: dict[str, object] = {}
    try:
        modes = ["raw", "harness_ddp_stats", "harness_hook"]
        models = {}
        for mode in modes:
            wl = workloads.build(cfg.workload, cfg.run.seed, device)
            ddp = DDP(wl.model, bucket_cap_mb=cfg.run.bucket_cap_mb)
            timer = None
            if mode != "raw":
                method = "ddp_stats" if mode == "harness_ddp_stats" else "hook"
                timer, _, _ = attach_comm_timer(ddp, method, "gloo", world)
            opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
            models[mode] = (wl, ddp, opt, timer)
        held["models"] = models
        recorder = worker.RankRecorder(Path(out), rank)
        times: dict[str, list[float]] = {m: [] for m in modes}
        step = 0
        for block in range(blocks):
            for mode in modes[block % 3 :] + modes[: block % 3]:  # rotate the order per block
                wl, ddp, opt, timer = models[mode]
                for _ in range(block_steps):
                    dist.barrier()  # both ranks start each step together in every mode
                    if timer is None:
                        ms = _raw_step(ddp, opt, wl, step, rank)
                    else:
                        t0 = time.perf_counter_ns()
                        rec = worker._train_step(ddp, opt, wl, timer, device, step, rank, 0)
                        recorder.write(rec)
                        ms = (time.perf_counter_ns() - t0) / 1e6
                    if block >= WARMUP_BLOCKS:
                        times[mode].append(ms)
                    step += 1
        recorder.close()
        gathered: list[object] = [None] * world
        dist.all_gather_object(gathered, times)
        if rank == 0:
            summarize(json.dumps(gathered))
    finally:
        held.clear()
        gc.collect()
        dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", help="workload config (default: configs/default.yaml)")
    p.add_argument("--blocks", type=int, default=16)
    p.add_argument("--block-steps", type=int, default=10)
    a = p.parse_args()
    cfg_path = a.config or str(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank, args=(2, free_port(), cfg_path, a.blocks, a.block_steps, out), nprocs=2)


def summarize(line: str) -> None:
    per_rank = json.loads(line)
    raw = [t for r in per_rank for t in r["raw"]]
    m_raw = statistics.median(raw)
    print(f"steps per mode: {len(raw)} (2 ranks, interleaved blocks)")
    print(f"raw DDP loop        median step {m_raw:.3f} ms")
    for mode in ("harness_ddp_stats", "harness_hook"):
        med = statistics.median([t for r in per_rank for t in r[mode]])
        print(f"{mode:<19} median step {med:.3f} ms  ratio {mode} / raw = {med / m_raw:.3f}")
    print("target: harness (default timing, ddp_stats) / raw <= 1.02")


if __name__ == "__main__":
    main()
