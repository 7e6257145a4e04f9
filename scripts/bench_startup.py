"""Benchmark: start-up costs. `--help` of the analysis commands (no torch import: target
<= 0.5 s) and, for `minicluster run`, the time from launching the command to the end of the
first measured step (read from rank 0's step records).

usage: python scripts/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELP_TARGET_S = 0.5
COMMANDS = [["--help"], ["aggregate", "--help"], ["compare", "--help"], ["report", "--help"]]
TINY = "workload: {name: mlp}\nsteps: {warmup: 5, measured: 5}\nrun: {nproc: 2}\n"


def time_help(args: list[str]) -> float | None:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "minicluster", *args], capture_output=True)
    wall = time.perf_counter() - t0
    return wall if proc.returncode == 0 else None  # a command this version does not have


def time_to_first_measured_step(tmp: Path) -> tuple[float, float]:
    cfg = tmp / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp / f"run-{time.monotonic_ns()}"
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-m", "minicluster", "run", "-c", str(cfg), "--out", str(out)],
        capture_output=True,
        check=True,
    )
    total = time.time() - t0
    lines = (out / "ranks" / "rank_00000.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if r["type"] == "step"]
    first = next(s for s in steps if not s["warmup"])
    return first["t_unix_s"] - t0, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    print(f"start-up, median of {a.repeats} runs")
    for args in COMMANDS:
        walls = [time_help(args) for _ in range(a.repeats)]
        name = "minicluster " + " ".join(args)
        if any(w is None for w in walls):
            print(f"  {name:<32} (not available in this version)")
            continue
        med = statistics.median(w for w in walls if w is not None)
        print(
            f"  {name:<32} {med:.3f} s  ratio to target {HELP_TARGET_S} s: {med / HELP_TARGET_S:.2f}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        firsts, totals = zip(
            *(time_to_first_measured_step(Path(tmp)) for _ in range(a.repeats)), strict=True
        )
    print(
        f"  minicluster run (2 ranks, 5 warm-up steps): first measured step after "
        f"{statistics.median(firsts):.2f} s; whole command {statistics.median(totals):.2f} s"
    )


if __name__ == "__main__":
    main()
