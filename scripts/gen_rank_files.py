"""Write realistic rank files (header + step lines + summary) for N ranks x S steps, for benchmarks.

The step figures are drawn from a lognormal around a real 2-rank gloo run's medians (step ~15 ms,
compute ~7 ms, all-reduce ~6.5 ms); they exist only to exercise the coordinator at scale and are
never reported as measurements.

usage: python scripts/gen_rank_files.py OUT_DIR --ranks 1024 --steps 1000
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def write_run(out: Path, ranks: int, steps: int, warmup: int = 5, seed: int = 0) -> None:
    rng = random.Random(seed)
    rdir = out / "ranks"
    rdir.mkdir(parents=True, exist_ok=True)
    cfg = {
        "name": "bench",
        "steps": {"warmup": warmup, "measured": steps - warmup},
        "run": {"nproc": ranks, "straggler_threshold_pct": 20.0},
    }
    for rank in range(ranks):
        host = f"node{rank // 8:04d}"
        header = {
            "type": "header",
            "run_id": "bench",
            "rank": rank,
            "local_rank": rank % 8,
            "world_size": ranks,
            "local_world_size": 8,
            "hostname": host,
            "pid": 1000 + rank,
            "created_at": "2026-01-01T00:00:00+00:00",
            "tool_version": "bench",
            "backend": "nccl",
            "device": f"cuda:{rank % 8}",
            "threads": 1,
            "launcher": "outside",
            "config": cfg,
            "workload": {
                "name": "mlp",
                "per_rank_batch": 64,
                "seq_len": None,
                "tokens_per_rank": None,
                "params": 1_600_000,
            },
            "platform": {
                "hostname": host,
                "cpu": "bench cpu",
                "cpu_count": 64,
                "host_memory_total_bytes": 512 * 2**30,
                "gpu": None,
                "torch": "2.13.0",
                "python": "3.11",
            },
            "telemetry": {
                "nvml": {"available": False, "reason": "generated file"},
                "rapl": {"available": False, "reason": "generated file"},
            },
        }
        lines = [json.dumps(header, separators=(",", ":"))]
        t = 1.7e9
        for i in range(steps):
            compute = 7.0 * rng.lognormvariate(0, 0.1)
            comm = 6.5 * rng.lognormvariate(0, 0.1)
            exposed = comm * 0.9
            step_ms = compute + exposed + 1.0
            t += step_ms / 1000
            lines.append(
                json.dumps(
                    {
                        "type": "step",
                        "step": i,
                        "warmup": i < warmup,
                        "step_time_ms": step_ms,
                        "fwd_ms": compute / 3,
                        "bwd_ms": compute * 2 / 3 + exposed,
                        "opt_ms": 1.0,
                        "compute_ms": compute,
                        "comm_ms": comm,
                        "exposed_comm_ms": exposed,
                        "buckets": 1,
                        "comm_bytes": 6_340_648,
                        "loss": 2.3,
                        "t_unix_s": t,
                    },
                    separators=(",", ":"),
                )
            )
        (rdir / f"rank_{rank:05d}.jsonl").write_text("\n".join(lines) + "\n")
        summary = {
            "run_id": "bench",
            "rank": rank,
            "world_size": ranks,
            "hostname": host,
            "status": "ok",
            "last_step": steps - 1,
            "error": None,
            "memory": {"rss_peak_bytes": 350 * 2**20, "host_total_bytes": 512 * 2**30},
            "ddp_logging": None,
        }
        (rdir / f"rank_{rank:05d}.summary.json").write_text(json.dumps(summary))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--ranks", type=int, default=1024)
    p.add_argument("--steps", type=int, default=1000)
    a = p.parse_args()
    write_run(a.out, a.ranks, a.steps)


if __name__ == "__main__":
    main()
