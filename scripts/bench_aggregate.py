"""Benchmark: `minicluster aggregate` wall time and peak RSS from 512 to 4,096 ranks x 1,000 steps.

4,096 ranks is a 512-node, 8-GPU job. Generates realistic rank files (scripts/gen_rank_files.py:
the worker's line shapes, 8 ranks per node, each node's roster) once per size under a temp dir,
then runs `python -m minicluster aggregate DIR` as a child process REPEATS times per size,
interleaving the sizes, and prints per size the median wall time, the time per rank (linear
growth keeps it flat), the CPU time of the command and its reader pool (on a shared machine
the wall time also measures the other jobs; the CPU time much less) and the peak RSS; then,
with 95% confidence intervals (Student t over the rounds), the time and RSS of each size that
has a target (`TARGETS`, issue 28: 4,096 ranks <= 3 s wall, <= 4 s CPU, <= 1.5 GB; 16,384
ranks <= 15 s wall, <= 2 GB) against it, and the per-rank time of the largest size over that of a size 4x smaller, measured in
the same rounds (1.0 = linear). The files are removed at the end.

Beside each aggregate, in the same rounds and on the same bytes, two baselines run as child
processes: `json` parses every rank's journal (orjson, the reader's parser: the floor of reading
the journals) and `columns` reads every rank's columnar file (`core.rank_columns.read_columns`:
the floor of reading the columns). Each is printed with its 95% confidence interval, and the
aggregate's time over each baseline's, per round, with its interval. `--journals` generates the
files without columnar copies (a run whose ranks all died): the aggregate then parses the
journals.

`--compare-to SRC` also runs, in the same rounds and on the same files, the aggregate of another
checkout of minicluster (SRC: its source tree, put first on PYTHONPATH), alternating which goes
first, and prints per size the ratio of wall and CPU time (this checkout / SRC) with a 95%
confidence interval over the rounds: a change's cost measured side by side. Every child runs
in the run's directory with its checkout first on PYTHONPATH (`python -m` would otherwise import
the checkout it is started in); both trees' bytecode is compiled first (as `scripts/setup.sh`
does). `--no-baselines` leaves the two baselines out (16,384 ranks).

usage: python scripts/bench_aggregate.py [--sizes 512,1024,2048,4096] [--steps 1000] [--repeats 3]
                                         [--per-node 8] [--compare-to SRC] [--journals]
                                         [--no-baselines] [--files DIR]
       python scripts/bench_aggregate.py --baseline json|columns DIR   (one baseline, in-process)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_rank_files import write_run  # noqa: E402

# issue 28: 4,096 x 1,000 in <= 3 s wall on a quiet machine and <= 4 s CPU; 16,384 x 1,000 in
# <= 15 s wall and <= 2 GB peak RSS. Per size: wall s, CPU s, peak RSS GB (None: no target).
TARGETS: dict[int, tuple[float | None, float | None, float | None]] = {
    4096: (3.0, 4.0, 1.5),
    16384: (15.0, None, 2.0),
}
BASELINES = ("json", "columns")


def baseline(kind: str, run_dir: Path) -> None:
    """One baseline over every rank of `run_dir`, in this process: `json` parses each journal
    (orjson, one parse of the file as the reader's fast path does), `columns` reads each columnar
    file (complete-checked, all step keys)."""
    from minicluster.core import rank_columns, rank_format, rundir

    ranks = sorted(
        r
        for p in rundir.ranks_dir(run_dir).glob(rundir.RANK_FILE_GLOB)
        if (r := rundir.rank_from_name(p.name)) is not None
    )
    rows = 0
    if kind == "json":
        import orjson

        for rank in ranks:
            path = rundir.rank_jsonl(run_dir, rank)
            objs, _ = rank_format.parse_lines(path.read_bytes(), path.name, orjson.loads)
            rows += len(objs)
    else:
        for rank in ranks:
            got = rank_columns.read_columns(run_dir, rank)
            if got is None:
                raise SystemExit(f"rank {rank}: no complete columnar file")
            rows += got[1].num_rows
    print(rows)


def run_once(
    run_dir: Path, source: Path | None = None, kind: str = "aggregate"
) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, the command and its reader pool) and peak RSS
    (GB, 1e9 bytes: the largest sum over the process tree, sampled every 20 ms; pages the pool
    shares with the command after fork count twice, so an upper bound) of one aggregate, by this
    checkout or (`source`) by the minicluster in that source tree; `kind` a baseline instead."""
    import psutil

    env = dict(os.environ)
    # `python -m` puts its working directory first on sys.path: the child runs in `run_dir`, or
    # started from a checkout's root it would import that checkout whatever PYTHONPATH says
    # (a --compare-to run would have measured this checkout twice)
    first = source if source is not None else ROOT
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(first), env.get("PYTHONPATH")]))
    (run_dir / "result.json").unlink(missing_ok=True)  # each aggregate writes a new one
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if kind == "aggregate":
        cmd = [sys.executable, "-m", "minicluster", "aggregate", str(run_dir)]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline", kind, str(run_dir)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=run_dir,
    )
    peak = 0
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed: {err.strip()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak / 1e9


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% Student-t confidence interval (the mean itself twice for one value)."""
    from scipy import stats  # here: a baseline child process must not pay for its import

    mean = statistics.fmean(values)
    if len(values) < 2 or statistics.pstdev(values) == 0:
        return mean, mean, mean
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(lo), float(hi)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="512,1024,2048,4096")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare-to", type=Path, default=None, metavar="SRC")
    p.add_argument("--journals", action="store_true", help="no columnar files: journals only")
    p.add_argument("--per-node", type=int, default=8, help="ranks per node (nproc per node)")
    p.add_argument("--no-baselines", action="store_true", help="the aggregates only")
    p.add_argument(
        "--files",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the generated files in DIR/SIZE (kept afterwards); a DIR/SIZE that already "
        "holds ranks/ (from gen_rank_files.py with the same --steps and --per-node) is reused",
    )
    p.add_argument("--baseline", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.baseline:
        baseline(a.baseline[0], Path(a.baseline[1]))
        return
    kinds = () if a.no_baselines else ("json",) if a.journals else BASELINES
    # Bytecode compiled once for each tree, as `scripts/setup.sh` does for this checkout: where
    # PYTHONDONTWRITEBYTECODE is set (this project's VMs) an uncompiled tree is compiled anew by
    # every run (0.15 s of `aggregate`'s imports), which no installed minicluster does.
    for tree in filter(None, [ROOT, a.compare_to]):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(tree) / "minicluster")],
            stdout=subprocess.DEVNULL,
            check=False,
        )
    base: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    other: dict[int, list[tuple[float, float]]] = {}
    sizes = sorted(int(s) for s in a.sizes.split(","))
    root = a.files if a.files is not None else Path(tempfile.mkdtemp(prefix="mc-bench-agg-"))
    try:
        for n in sizes:
            if a.files is not None and (root / str(n) / "ranks").is_dir():
                print(f"reusing {root / str(n)}", file=sys.stderr, flush=True)
                continue
            print(f"generating {n} ranks x {a.steps} steps ...", file=sys.stderr, flush=True)
            write_run(root / str(n), n, a.steps, per_node=a.per_node, columns=not a.journals)
        walls: dict[int, list[float]] = {n: [] for n in sizes}
        cpus: dict[int, list[float]] = {n: [] for n in sizes}
        rss: dict[int, list[float]] = {n: [] for n in sizes}
        for rep in range(a.repeats):
            for n in sizes:
                if a.compare_to is not None and rep % 2 == 1:  # the other one first, every other
                    other.setdefault(n, []).append(run_once(root / str(n), a.compare_to)[:2])
                wall, cpu, peak = run_once(root / str(n))
                for kind in kinds:
                    base.setdefault((kind, n), []).append(run_once(root / str(n), kind=kind))
                walls[n].append(wall)
                cpus[n].append(cpu)
                rss[n].append(peak)
                if a.compare_to is not None and rep % 2 == 0:
                    other.setdefault(n, []).append(run_once(root / str(n), a.compare_to)[:2])
                theirs = f"; {a.compare_to}: {other[n][-1][0]:.2f} s" if n in other else ""
                print(
                    f"  round {rep + 1}: {n} ranks {wall:.2f} s wall, {cpu:.2f} s CPU{theirs}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if a.files is None:
            shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    source = "journals only" if a.journals else "columnar files beside the journals"
    print(
        f"aggregate, {a.steps} steps per rank, {source}, median of {a.repeats} rounds "
        f"(cpu_count={os.cpu_count()}, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} at the end: figures taken under that load)"
    )
    print(f"{'ranks':>6} {'wall_s':>8} {'ms/rank':>8} {'cpu_s':>8} {'peak_rss_GB':>12}  what")
    for n in sizes:
        med = statistics.median(walls[n])
        cpu = statistics.median(cpus[n])
        print(
            f"{n:>6} {med:>8.2f} {1000 * med / n:>8.2f} {cpu:>8.2f} {max(rss[n]):>12.2f}  aggregate"
        )
        for kind in kinds:
            runs = base[(kind, n)]
            bw = statistics.median(r[0] for r in runs)
            bc = statistics.median(r[1] for r in runs)
            peak = max(r[2] for r in runs)
            what = "JSON parse only" if kind == "json" else "columnar read only"
            print(f"{n:>6} {bw:>8.2f} {1000 * bw / n:>8.2f} {bc:>8.2f} {peak:>12.2f}  {what}")
    for n in sizes:
        c, c_lo, c_hi = interval(cpus[n])
        parts = [f"{n} ranks: aggregate CPU {c:.2f} s (95% CI {c_lo:.2f}-{c_hi:.2f})"]
        for kind in kinds:
            runs = base[(kind, n)]
            b, b_lo, b_hi = interval([r[1] for r in runs])
            ratio = [ac / r[1] for ac, r in zip(cpus[n], runs, strict=True)]
            q, q_lo, q_hi = interval(ratio)
            parts.append(
                f"{kind} CPU {b:.2f} s ({b_lo:.2f}-{b_hi:.2f}), aggregate/{kind} "
                f"{q:.2f} ({q_lo:.2f}-{q_hi:.2f})"
            )
        print("; ".join(parts))
    for n in sizes if a.compare_to is not None else []:
        wall_r = [w / o[0] for w, o in zip(walls[n], other[n], strict=True)]
        cpu_r = [c / o[1] for c, o in zip(cpus[n], other[n], strict=True)]
        w, w_lo, w_hi = interval(wall_r)
        c, c_lo, c_hi = interval(cpu_r)
        print(
            f"{n} ranks, this checkout / {a.compare_to}, same rounds: wall {w:.3f} "
            f"(95% CI {w_lo:.3f}-{w_hi:.3f}), CPU {c:.3f} (95% CI {c_lo:.3f}-{c_hi:.3f}); "
            f"medians {statistics.median(walls[n]):.2f} s vs "
            f"{statistics.median(o[0] for o in other[n]):.2f} s"
        )
    for n, (t_wall, t_cpu, t_rss) in TARGETS.items():
        if n not in walls:
            continue
        for what, values, target, unit in (
            ("wall", walls[n], t_wall, "s"),
            ("CPU", cpus[n], t_cpu, "s"),
            ("peak RSS", rss[n], t_rss, "GB"),
        ):
            if target is None:
                continue
            v, lo, hi = interval(values)
            print(
                f"{n} ranks: {what} {v:.2f} {unit} (95% CI {lo:.2f}-{hi:.2f}) vs target "
                f"{target} {unit}: ratio {v / target:.2f} ({lo / target:.2f}-{hi / target:.2f})"
            )
    big = sizes[-1]
    quarter = big // 4
    if quarter in walls:
        ratios = [
            (w_big / big) / (w_small / quarter)
            for w_big, w_small in zip(walls[big], walls[quarter], strict=True)
        ]
        r, r_lo, r_hi = interval(ratios)
        print(
            f"linearity: time per rank at {big} / at {quarter}, same rounds: {r:.2f} "
            f"(95% CI {r_lo:.2f}-{r_hi:.2f}; 1.0 = linear, below 1: fixed costs spread out)"
        )


if __name__ == "__main__":
    main()
