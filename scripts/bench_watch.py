"""Benchmark: one `minicluster watch` refresh over 1,024 rank files (target < 200 ms).

Generates realistic rank files (scripts/gen_rank_files.py: 1,024 ranks on 128 hosts, STEPS steps
each), takes the first refresh (the whole backlog), then runs ROUNDS rounds. Each round appends
one step line to every rank file (as the ranks do between two refreshes) and times, side by side
and in alternating order:

- `incremental`: one watch refresh as the live command does it, with the default window: read
  what every file gained, build the snapshot (progress, rates, stalls, the straggler rule),
  render the view to text;
- `full re-read`: what a watch without the incremental reader would do each time: read every
  rank file whole (`records.read_run_dir`, a process pool) and apply the same straggler rule.

Prints the median refresh with its 95% confidence interval (bootstrap over rounds), the ratio to
the target, and the median per-round ratio incremental / full re-read with its 95% CI.

Also prints the refreshes' CPU time (median, 95% CI) and the load average.

usage: python scripts/bench_watch.py [--ranks 1024] [--steps 200] [--rounds 30]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_rank_files import write_run  # noqa: E402

from minicluster.analysis import envelope  # noqa: E402
from minicluster.analysis.records import read_run_dir  # noqa: E402
from minicluster.analysis.steps import StepTable  # noqa: E402
from minicluster.analysis.stragglers import find_stragglers  # noqa: E402
from minicluster.analysis.watcher import Watcher  # noqa: E402
from minicluster.report.watch import view  # noqa: E402

TARGET_MS = 200.0


def append_step(run_dir: Path, ranks: int, step: int) -> None:
    """One more step line on every rank file, stamped now (the shape gen_rank_files writes)."""
    now = time.time()
    for rank in range(ranks):
        line = {
            "type": "step",
            "step": step,
            "warmup": False,
            "step_time_ms": 15.0,
            "fwd_ms": 2.3,
            "bwd_ms": 11.0,
            "opt_ms": 1.0,
            "compute_ms": 7.0,
            "comm_ms": 6.5,
            "exposed_comm_ms": 5.9,
            "buckets": 1,
            "comm_bytes": 6_340_648,
            "loss": 2.3,
            "t_unix_s": now,
        }
        with open(run_dir / "ranks" / f"rank_{rank:05d}.jsonl", "a") as f:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


CPU_MS: list[float] = []  # each incremental refresh's CPU time (this process), ms


def incremental(watcher: Watcher) -> tuple[float, bool]:
    """Milliseconds for one refresh and its rendering; whether the straggler rule ran in it.
    Its CPU time goes to CPU_MS (on a shared machine the wall time also measures the others)."""
    t0, c0 = time.perf_counter(), time.process_time()
    snap = watcher.refresh()
    assert snap is not None
    Console(file=io.StringIO(), width=160).print(view(snap))
    CPU_MS.append((time.process_time() - c0) * 1000)
    return (time.perf_counter() - t0) * 1000, bool(snap["straggler_check"]["applied"])


def full_reread(run_dir: Path) -> float:
    t0 = time.perf_counter()
    records = read_run_dir(run_dir)
    head0, headers = envelope.rank0_header(records)
    cfg = envelope.run_config(head0)
    table = StepTable(records, max(h["world_size"] for h in headers))
    find_stragglers(table, cfg.checks.straggler_threshold_pct, cfg.checks.straggler_min_excess_ms)
    return (time.perf_counter() - t0) * 1000


def median_ci(values: list[float]) -> tuple[float, float]:
    res = stats.bootstrap(
        (np.asarray(values),), np.median, confidence_level=0.95, random_state=0, method="percentile"
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=1024)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=30)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mc-bench-watch-") as tmp:
        run_dir = Path(tmp)
        print(f"generating {a.ranks} ranks x {a.steps} steps ...", file=sys.stderr, flush=True)
        write_run(run_dir, a.ranks, a.steps)
        watcher = Watcher(run_dir, window=None, stall_after_s=30.0)  # the default window
        first_ms, _ = incremental(watcher)
        inc: list[float] = []
        full: list[float] = []
        for i in range(a.rounds):
            append_step(run_dir, a.ranks, a.steps + i)
            # alternate which goes first, so neither always meets a warmer page cache
            if i % 2:
                full.append(full_reread(run_dir))
                ms, applied = incremental(watcher)
            else:
                ms, applied = incremental(watcher)
                full.append(full_reread(run_dir))
            # the appended steps are stamped now, far from the generated ones: the window spans
            # enough for the straggler rule, so every timed refresh includes it
            assert applied, "the straggler rule did not run"
            inc.append(ms)
        snap = watcher.refresh()
        assert snap is not None and snap["ranks_reporting"] == a.ranks
        window = snap["window_steps"]
    med = statistics.median(inc)
    lo, hi = median_ci(inc)
    cpu = CPU_MS[1:-1]  # the rounds' (not the first refresh's, not the final one's)
    print(
        f"incremental refresh CPU: median {statistics.median(cpu):.1f} ms (95% CI "
        f"{median_ci(cpu)[0]:.1f}-{median_ci(cpu)[1]:.1f}); first refresh (whole backlog) "
        f"{first_ms:.0f} ms wall, {CPU_MS[0]:.0f} ms CPU; load average "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    ratios = [x / y for x, y in zip(inc, full, strict=True)]
    r_med = statistics.median(ratios)
    r_lo, r_hi = median_ci(ratios)
    print(
        f"watch refresh over {a.ranks} rank files ({a.steps}+ steps each, window {window} "
        f"steps), {a.rounds} rounds"
    )
    print(f"  first refresh (whole backlog): {first_ms:.0f} ms")
    print(
        f"  refresh (1 new step per file): median {med:.1f} ms, 95% CI [{lo:.1f}, {hi:.1f}], "
        f"min {min(inc):.1f}, max {max(inc):.1f}"
    )
    print(f"  full re-read + straggler rule: median {statistics.median(full):.0f} ms")
    print(
        f"ratio to target ({TARGET_MS:.0f} ms): {med / TARGET_MS:.3f} "
        f"[{lo / TARGET_MS:.3f}, {hi / TARGET_MS:.3f}]"
    )
    print(f"ratio incremental / full re-read: {r_med:.3f} [{r_lo:.3f}, {r_hi:.3f}]")


if __name__ == "__main__":
    main()
