"""Benchmark: `minicluster aggregate` wall time and peak RSS from 64 to 1,024 ranks x 1,000 steps.

Generates realistic rank files (scripts/gen_rank_files.py) once per size under a temp dir, then
runs `python -m minicluster aggregate DIR` as a child process REPEATS times per size, interleaving
sizes, and prints the medians, the time per rank (linear growth keeps it flat) and the ratio to
the target (<= 5 s and <= 1.5 GB at 1,024 ranks).

usage: python scripts/bench_aggregate.py [--sizes 64,256,1024] [--steps 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_rank_files import write_run  # noqa: E402

TARGET_S = 5.0
TARGET_RSS_GB = 1.5


def run_once(run_dir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB, 1e9 bytes) of one aggregate child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "aggregate", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"aggregate failed: {proc.stderr.strip()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all reaped children: measure each size in rising
    # order inside a round so the max belongs to the largest size run so far.
    return wall, max(before, after) * 1024 / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,256,1024")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    sizes = sorted(int(s) for s in a.sizes.split(","))
    root = Path(tempfile.mkdtemp(prefix="mc-bench-agg-"))
    for n in sizes:
        print(f"generating {n} ranks x {a.steps} steps ...", file=sys.stderr, flush=True)
        write_run(root / str(n), n, a.steps)
    walls: dict[int, list[float]] = {n: [] for n in sizes}
    rss: dict[int, float] = {}
    for rep in range(a.repeats):
        for n in sizes:
            wall, peak = run_once(root / str(n))
            walls[n].append(wall)
            rss[n] = peak
            print(f"  round {rep + 1}: {n} ranks {wall:.2f} s", file=sys.stderr, flush=True)
    print(
        f"aggregate, {a.steps} steps per rank, median of {a.repeats} (cpu_count={os.cpu_count()})"
    )
    print(f"{'ranks':>6} {'wall_s':>8} {'ms/rank':>8} {'peak_rss_GB':>12}")
    for n in sizes:
        med = statistics.median(walls[n])
        print(f"{n:>6} {med:>8.2f} {1000 * med / n:>8.2f} {rss[n]:>12.2f}")
    big = sizes[-1]
    med = statistics.median(walls[big])
    print(
        f"{big} ranks: {med:.2f} s vs target {TARGET_S} s (ratio {med / TARGET_S:.2f}); "
        f"peak RSS {rss[big]:.2f} GB vs target {TARGET_RSS_GB} GB "
        f"(ratio {rss[big] / TARGET_RSS_GB:.2f})"
    )


if __name__ == "__main__":
    main()
