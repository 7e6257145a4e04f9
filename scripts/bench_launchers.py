"""Benchmark: the same workload under `--launcher torchrun` and `--launcher ray`, interleaved.

Each round runs both launchers on the same config (the order alternates between rounds, so a
drifting host weighs on both alike) and reads, from each run's result.json and rank 0's file:
the run's median step time (`latency_p50_ms`: median over measured steps of the slowest rank's
step time), the time from starting the command to the end of rank 0's first measured step, and
the whole command's wall time.

Ratio Ray/torchrun of the median step time: per round, then the geometric mean over rounds with
a 95% t-interval on the log ratios (paired by round). Target <= 1.05, goal 1.03.

usage: python scripts/bench_launchers.py [--rounds 5] [--measured 200] [--nproc 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy import stats

TARGET, GOAL = 1.05, 1.03
LAUNCHERS = ("torchrun", "ray")


def one_run(launcher: str, config: Path, out: Path) -> dict[str, float]:
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "run", "-c", str(config), "--out", str(out)]
        + ["--launcher", launcher],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{launcher} run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads((out / "result.json").read_text())
    lines = (out / "ranks" / "rank_00000.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if r.get("type") == "step"]
    first = next(s for s in steps if not s["warmup"])
    return {
        "p50_ms": result["metrics"]["latency_p50_ms"]["value"],
        "first_step_s": first["t_unix_s"] - t0,
        "wall_s": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--measured", type=int, default=200)
    p.add_argument("--nproc", type=int, default=2)
    a = p.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            "name: bench_launchers\nworkload: {name: mlp}\n"
            f"steps: {{warmup: {a.warmup}, measured: {a.measured}}}\nrun: {{nproc: {a.nproc}}}\n"
        )
        for i in range(a.rounds):
            order = LAUNCHERS if i % 2 == 0 else LAUNCHERS[::-1]
            for name in order:
                runs[name].append(one_run(name, config, Path(tmp) / f"{name}-{i}"))
                r = runs[name][-1]
                print(
                    f"round {i + 1} {name:<8} p50 {r['p50_ms']:7.2f} ms  first measured step "
                    f"{r['first_step_s']:5.1f} s  wall {r['wall_s']:5.1f} s",
                    flush=True,
                )
    logs = [
        math.log(r["p50_ms"] / t["p50_ms"])
        for r, t in zip(runs["ray"], runs["torchrun"], strict=True)
    ]
    mean = statistics.fmean(logs)
    ratio = math.exp(mean)
    if len(logs) > 1:
        half = stats.t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
        lo, hi = math.exp(mean - half), math.exp(mean + half)
        interval = f"95% CI {lo:.3f}..{hi:.3f}"
        # A verdict only from the interval: a point estimate under the target proves nothing.
        if hi <= GOAL:
            verdict = "meets the goal"
        elif hi <= TARGET:
            verdict = "meets the target"
        elif lo > TARGET:
            verdict = "misses the target"
        else:
            verdict = "not decided: the interval spans the target (a noisy host; more rounds)"
    else:
        interval, verdict = "no interval from one round", "not decided: one round"
    print(
        f"\nmedian step time Ray/torchrun: {ratio:.3f} ({interval}; geometric mean of "
        f"{len(logs)} paired rounds; target <= {TARGET}, goal {GOAL}: {verdict})"
    )
    for name in LAUNCHERS:
        print(
            f"{name:<8}: median over rounds: p50 step "
            f"{statistics.median(r['p50_ms'] for r in runs[name]):.2f} ms, first measured step "
            f"{statistics.median(r['first_step_s'] for r in runs[name]):.1f} s after the command "
            f"started, whole command {statistics.median(r['wall_s'] for r in runs[name]):.1f} s"
        )


if __name__ == "__main__":
    main()
