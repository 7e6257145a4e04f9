"""Benchmark: why `--launcher ray` uses plain actors, not Ray Train's TorchTrainer.

The same per-rank function (`minicluster.rank.worker.run`) on a local Ray instance of the same
size, started two ways, interleaved: `minicluster run --launcher ray` (placement-group actors,
each rank joining its own process group) and a TorchTrainer (Ray Train V2, `ScalingConfig`,
`FailureConfig(max_failures=0)`, Ray Train's health-check interval and preemption watcher set
for speed) whose train function hands Ray Train's process group over to the worker (it picks a
fresh rendezvous port over Ray Train's group, destroys that group, then runs the worker). Per
run: time from starting the command to the end of rank 0's first measured step, the whole
command's wall time, and the run's median step time (all ranks' measured steps, max over ranks).

usage: python scripts/bench_ray_trainer.py [--rounds 3] [--measured 100]
       python scripts/bench_ray_trainer.py --trainer-run CONFIG OUT   (one TorchTrainer run)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENV = {
    "RAY_AUTH_MODE": "disabled",
    # TorchTrainer at its quickest: poll workers every 0.5 s, no preemption watcher actor, no
    # state-actor reconciliation.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION": "0",
}


def _train_fn(config: dict[str, Any]) -> Any:
    """Ray Train's worker: give its process group over to minicluster's worker, then run it."""
    import ray.train
    import torch.distributed as tdist

    from minicluster.core.config import from_dict
    from minicluster.rank import worker
    from minicluster.rank.dist import free_port

    context = ray.train.get_context()
    box = [free_port() if context.get_world_rank() == 0 else None]
    tdist.broadcast_object_list(box, src=0)
    tdist.barrier()
    tdist.destroy_process_group()
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(box[0]),
            "GROUP_RANK": str(context.get_node_rank()),
            "MINICLUSTER_LAUNCHER": "ray-torchtrainer",
            "MINICLUSTER_PROGRESS": "0",
        }
    )
    cfg = from_dict(config["config"], source="bench")
    return worker.run(cfg, Path(config["out"]), "torchtrainer")


def trainer_run(config_path: Path, out: Path) -> None:
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from minicluster.core.config import load

    cfg = load(config_path)
    nproc = cfg.run.nproc
    ray.init(address="local", num_cpus=nproc, include_dashboard=False, log_to_driver=False)
    try:
        trainer = TorchTrainer(
            _train_fn,
            train_loop_config={"config": cfg.to_dict(), "out": str(out)},
            scaling_config=ScalingConfig(num_workers=nproc, resources_per_worker={"CPU": 1}),
            torch_config=TorchConfig(backend="gloo"),
            run_config=RunConfig(
                name="bench", storage_path=str(out / "ray_train"), failure_config=FailureConfig(0)
            ),
        )
        trainer.fit()
    finally:
        ray.shutdown()


def measure(cmd: list[str], out: Path) -> dict[str, float]:
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ENV})
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed: {proc.stderr[-2000:]}")
    ranks = sorted((out / "ranks").glob("rank_*.jsonl"))
    per_rank = [
        [r for r in map(json.loads, f.read_text().splitlines()) if r.get("type") == "step"]
        for f in ranks
    ]
    first = next(s for s in per_rank[0] if not s["warmup"])
    slowest = [
        max(steps[i]["step_time_ms"] for steps in per_rank)
        for i in range(len(per_rank[0]))
        if not per_rank[0][i]["warmup"]
    ]
    return {
        "first_step_s": first["t_unix_s"] - t0,
        "wall_s": wall,
        "p50_ms": statistics.median(slowest),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--measured", type=int, default=100)
    p.add_argument("--trainer-run", nargs=2, metavar=("CONFIG", "OUT"), type=Path)
    a = p.parse_args()
    if a.trainer_run:
        trainer_run(*a.trainer_run)
        return
    runs: dict[str, list[dict[str, float]]] = {"actors": [], "torchtrainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            f"workload: {{name: mlp}}\nsteps: {{warmup: 5, measured: {a.measured}}}\n"
            "run: {nproc: 2, threads_per_rank: 1}\n"
        )
        for i in range(a.rounds):
            for name in ("actors", "torchtrainer") if i % 2 == 0 else ("torchtrainer", "actors"):
                out = Path(tmp) / f"{name}-{i}"
                if name == "actors":
                    cmd = [sys.executable, "-m", "minicluster", "run", "--launcher", "ray"]
                    cmd += ["-c", str(config), "--out", str(out)]
                else:
                    cmd = [sys.executable, __file__, "--trainer-run", str(config), str(out)]
                r = measure(cmd, out)
                runs[name].append(r)
                print(
                    f"round {i + 1} {name:<12} first measured step {r['first_step_s']:5.1f} s  "
                    f"wall {r['wall_s']:5.1f} s  p50 step {r['p50_ms']:6.2f} ms",
                    flush=True,
                )
    print()
    for name, rs in runs.items():
        print(
            f"{name:<12}: medians over {len(rs)} rounds: first measured step "
            f"{statistics.median(r['first_step_s'] for r in rs):.1f} s, whole command "
            f"{statistics.median(r['wall_s'] for r in rs):.1f} s, p50 step "
            f"{statistics.median(r['p50_ms'] for r in rs):.2f} ms"
        )


if __name__ == "__main__":
    main()
