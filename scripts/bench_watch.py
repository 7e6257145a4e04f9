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

`--compare-to SRC` (a source tree of another version, e.g. `git archive main | tar -x -C SRC`)
times that version's refresh and this checkout's side by side instead: one child process each
(PYTHONPATH the tree, cwd outside any checkout), each with its own watch of the same files; each
round appends a step to every file and asks both, in alternating order, for one refresh at the
same `now` (CPU and wall time, and a digest of the snapshot and of the rendered view, which must
be identical). Prints each one's median CPU and wall time and the median per-round CPU ratio
this / SRC, with 95% CIs.

usage: python scripts/bench_watch.py [--ranks 1024] [--steps 200] [--rounds 30] [--compare-to SRC]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
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
            "gap_ms": 0.2,
        }
        with open(run_dir / "ranks" / f"rank_{rank:05d}.jsonl", "a") as f:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def next_step(run_dir: Path) -> int:
    """The step after the last one rank 0's file holds."""
    with open(run_dir / "ranks" / "rank_00000.jsonl", "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
        last = f.read().splitlines()[-1]
    return int(json.loads(last)["step"]) + 1


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


# One side of --compare-to: a watch of RUN_DIR that refreshes at each `now` read from stdin and
# answers one JSON line (only APIs every version of the watch has).
CHILD = r"""
import hashlib, io, json, sys, time
from pathlib import Path
from rich.console import Console
from minicluster.analysis.watcher import Watcher
from minicluster.report.watch import view
watcher = Watcher(Path(sys.argv[1]), window=None, stall_after_s=30.0)
for line in sys.stdin:
    t0, c0 = time.perf_counter(), time.process_time()
    snap = watcher.refresh(float(line))
    out = io.StringIO()
    Console(file=out, width=160).print(view(snap))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    print(json.dumps({
        "cpu_ms": cpu * 1000, "wall_ms": wall * 1000,
        "applied": bool(snap["straggler_check"]["applied"]),
        "snapshot": hashlib.sha256(json.dumps(snap, sort_keys=True, default=str).encode()).hexdigest(),
        "view": hashlib.sha256(out.getvalue().encode()).hexdigest(),
    }), flush=True)
"""


def compare(run_dir: Path, src: Path, ranks: int, steps: int, rounds: int) -> None:
    """This checkout's refresh against SRC's, side by side (the module docstring)."""
    here = Path(__file__).resolve().parents[1]
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(run_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=run_dir.parent,
            env={**os.environ, "PYTHONPATH": str(tree)},
        )
        for name, tree in (("base", src.resolve()), ("this", here))
    }

    def ask(name: str, now_s: float) -> dict[str, object]:
        child = children[name]
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(f"{now_s!r}\n")
        child.stdin.flush()
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"bench_watch: the {name} watch exited ({child.wait()})")
        return json.loads(line)

    got: dict[str, list[dict[str, object]]] = {"base": [], "this": []}
    try:
        for i in range(rounds + 1):  # round 0: the first refresh (the whole backlog)
            if i:
                append_step(run_dir, ranks, steps + i - 1)
            now_s = time.time()
            for name in ("base", "this") if i % 2 else ("this", "base"):
                got[name].append(ask(name, now_s))
            print(
                f"round {i}: "
                + ", ".join(
                    f"{n} {got[n][-1]['cpu_ms']:.0f} ms CPU {got[n][-1]['wall_ms']:.0f} ms wall"
                    for n in got
                ),
                file=sys.stderr,
                flush=True,
            )
    finally:
        for child in children.values():
            if child.stdin is not None:
                child.stdin.close()
            child.wait()
    same = sum(
        b["snapshot"] == t["snapshot"] and b["view"] == t["view"]
        for b, t in zip(got["base"], got["this"], strict=True)
    )
    applied = sum(bool(t["applied"]) for t in got["this"][1:])
    print(
        f"watch refresh over {ranks} rank files ({steps}+ steps each), {rounds} rounds, one new "
        f"step per file a round; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"  identical snapshot and view: {same} of {rounds + 1} refreshes; straggler rule "
        f"applied in {applied} of {rounds} rounds"
    )
    for name in got:
        first = got[name][0]
        for what in ("cpu_ms", "wall_ms"):
            vals = [float(r[what]) for r in got[name][1:]]  # type: ignore[arg-type]
            lo, hi = median_ci(vals)
            print(
                f"  {name:4} refresh {what[:-3]:4}: median {statistics.median(vals):.0f} ms "
                f"(95% CI {lo:.0f}-{hi:.0f}); first refresh {float(first[what]):.0f} ms"  # type: ignore[arg-type]
            )
    ratios = [
        float(t["cpu_ms"]) / float(b["cpu_ms"])  # type: ignore[arg-type]
        for b, t in zip(got["base"][1:], got["this"][1:], strict=True)
    ]
    lo, hi = median_ci(ratios)
    print(
        f"  CPU ratio this / base: median {statistics.median(ratios):.3f} (95% CI {lo:.3f}-{hi:.3f})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=1024)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--compare-to", metavar="SRC", type=Path, help="another version's source tree")
    p.add_argument(
        "--run-dir",
        type=Path,
        help="follow (and append to) the rank files gen_rank_files.py wrote there (--ranks of "
        "them) instead of generating new ones",
    )
    a = p.parse_args()
    if a.compare_to is not None and not (a.compare_to / "minicluster").is_dir():
        raise SystemExit(f"bench_watch: {a.compare_to} holds no minicluster/ source tree")
    with tempfile.TemporaryDirectory(prefix="mc-bench-watch-") as tmp:
        run_dir = Path(tmp) / "run"
        if a.run_dir is not None:
            run_dir = a.run_dir.resolve()
            a.steps = next_step(run_dir)
        else:
            print(f"generating {a.ranks} ranks x {a.steps} steps ...", file=sys.stderr, flush=True)
            write_run(run_dir, a.ranks, a.steps)
        if a.compare_to is not None:
            compare(run_dir, a.compare_to, a.ranks, a.steps, a.rounds)
            return
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
