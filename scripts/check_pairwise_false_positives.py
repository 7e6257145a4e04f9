"""How often the pairwise link test names a slow pair on a healthy machine, and whether it names
an injected slow link every time (issue 17).

Runs K clean `minicluster collectives --pattern pairwise --serial` tests and S with
`--fault slow_link:rank=1,peer=2,delay_ms=D`, then prints per run the pairs named slow, the lowest
robust z and the pair busbw relative to the median; and, from the same recorded busbw, how many
clean runs each MAD floor would have flagged (the evidence for `collectives.pair_mad_floor`).

Two rules on the same runs: the passes alone (`pairwise.flagged_pairs`: what the test named
before the re-measure) and the re-measure beside healthy pairs (`slow_pairs`, issue 25 item 7);
per rule the rate of clean runs naming a pair and of faulty runs naming pair 1-2, each with its
95% Wilson score interval (scipy's `binomtest(...).proportion_ci(method="wilson")`), and the
load average (1 min) at each run's start. Exit 0 when no clean run named a pair (re-measure
rule) and every faulty run named the faulty pair, 1 otherwise, 3 when a run itself failed.

Usage: python scripts/check_pairwise_false_positives.py [--runs 10] [--fault-runs 3] [--nproc 4]
       [--size 16M] [--passes 2] [--recheck-rounds 8] [--delay-ms 100] [--rank-fault]
       [--out DIR]
--rank-fault: the faulty runs slow every link of rank 2 (`slow_link:rank=2`, no peer) and must
name rank 2 by the rank rule (a rank slow in every pair, issue 25); clean runs must name no rank
either (the `rank z` column: the lowest z of a rank's best pair over the pairs without it).
Each 4-rank run at 16M takes 15-60 s on this project's 2-core VM (load 1-9).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minicluster.analysis.robust import spread  # noqa: E402

FLOORS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)


def run(out: Path, args: argparse.Namespace, *extra: str) -> dict:
    """One pairwise test into `out`; its result. Exits 3 if the run fails."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "minicluster",
            "collectives",
            "--pattern",
            "pairwise",
            "--serial",
            "--nproc",
            str(args.nproc),
            "--size",
            args.size,
            "--iters",
            str(args.iters),
            "--warmup-iters",
            "1",
            "--passes",
            str(args.passes),
            "--recheck-rounds",
            str(args.recheck_rounds),
            "--out",
            str(out),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode not in (0, 1):
        print(f"run {out.name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        sys.exit(3)
    result: dict = json.loads((out / "result.json").read_text())
    return result


def wilson(k: int, n: int) -> str:
    """k of n with its 95% Wilson score interval."""
    if n == 0:
        return "n/a"
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{k}/{n} = {100 * k / n:.0f}% (95% Wilson {100 * ci.low:.0f}-{100 * ci.high:.0f}%)"


def old_and_new(p: dict) -> tuple[list[str], list[str], str]:
    """The pairs named by the passes alone and after the re-measure, and the re-measure's
    ratios (median / upper bound) of each flagged pair."""
    old = [f"{a}-{b}" for a, b in p.get("flagged_pairs", p["slow_pairs"])]
    new = [f"{a}-{b}" for a, b in p["slow_pairs"]]
    notes = []
    for r in p["pairs"]:
        rc = r.get("recheck")
        if rc and rc.get("ratio_median") is not None:
            notes.append(
                f"{r['a']}-{r['b']} {rc['status']}: ratio median {rc['ratio_median']:.2f} "
                f"upper {rc['ratio_upper']:.2f} cut {rc['cut']:.2f}"
            )
        elif rc:
            notes.append(f"{r['a']}-{r['b']} {rc['status']}: {rc['reason']}")
    return old, new, "; ".join(notes)


def rank_rule(p: dict) -> tuple[list[int], str]:
    """The ranks named slow by the rank rule (`slow_ranks`), and the lowest z of a rank's best
    pair over the pairs without it (its margin on a clean run: named below -outlier_z)."""
    zs = [r["z_best"] for r in p.get("per_rank", []) if r.get("z_best") is not None]
    return list(p.get("slow_ranks") or []), (f"{min(zs):.2f}" if zs else "n/a")


def named_with_floor(busbw: list[float], floor: float, z: float) -> int:
    dist = spread(busbw, floor_frac=floor, log=True)
    return sum(1 for b in busbw if dist.z(b) < -z)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fault-runs", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=4)
    parser.add_argument("--size", default="16M")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--recheck-rounds", type=int, default=8)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument(
        "--rank-fault",
        action="store_true",
        help="the faulty runs slow every link of rank 2 (no peer: a slow NIC) and must name rank "
        "2 (the rank rule), instead of the link 1-2",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="pairwise-fp-"))
    fault = (
        f"slow_link:rank=2,delay_ms={args.delay_ms}"
        if args.rank_fault
        else f"slow_link:rank=1,peer=2,delay_ms={args.delay_ms}"
    )
    clean_named = clean_old = clean_ranks = 0
    loads: list[float] = []
    per_floor = dict.fromkeys(FLOORS, 0)
    z_threshold = 3.5
    print(
        f"{'run':<10} {'load':>5} {'passes':<8} {'re-meas.':<9} {'min z':>7} {'rank z':>7} "
        f"{'ranks':<6} busbw / median per pair; re-measure",
        flush=True,
    )
    for i in range(args.runs):
        loads.append(os.getloadavg()[0])
        result = run(out / f"clean-{i}", args)
        p = result["pairwise"]
        z_threshold = p["outlier_z"]
        bws = [r["busbw_gbps"] for r in p["pairs"]]
        med = p["distribution"]["median"]
        old, named, notes = old_and_new(p)
        clean_named += bool(named)
        clean_old += bool(old)
        ranks, rank_z = rank_rule(p)
        clean_ranks += bool(ranks)
        for f in FLOORS:
            per_floor[f] += named_with_floor(bws, f, z_threshold) > 0
        ratios = " ".join(f"{b / med:.2f}" for b in bws)
        min_z = min(r["z"] for r in p["pairs"])
        print(
            f"clean-{i:<4} {loads[-1]:>5.1f} {','.join(old) or '-':<8} {','.join(named) or '-':<9} "
            f"{min_z:>7.2f} {rank_z:>7} {','.join(map(str, ranks)) or '-':<6} "
            f"{ratios}{'; ' + notes if notes else ''}",
            flush=True,
        )
    fault_ok = fault_old = 0
    for i in range(args.fault_runs):
        loads.append(os.getloadavg()[0])
        result = run(out / f"fault-{i}", args, "--fault", fault)
        p = result["pairwise"]
        old, named, notes = old_and_new(p)
        z12 = next(r["z"] for r in p["pairs"] if (r["a"], r["b"]) == (1, 2))
        ranks, rank_z = rank_rule(p)
        if args.rank_fault:
            fault_ok += ranks == [2]
            fault_old += "1-2" in old
        else:
            fault_ok += "1-2" in named and not ranks
            fault_old += "1-2" in old
        print(
            f"fault-{i:<4} {loads[-1]:>5.1f} {','.join(old) or '-':<8} {','.join(named) or '-':<9} "
            f"{z12:>7.2f} {rank_z:>7} {','.join(map(str, ranks)) or '-':<6} "
            f"suspect: {p['suspect']['text']}; {notes}",
            flush=True,
        )
    print()
    if loads:
        print(f"load average (1 min) at the runs' starts: {min(loads):.1f}-{max(loads):.1f}")
    print(f"clean runs naming a pair, passes alone (before): {wilson(clean_old, args.runs)}")
    print(f"clean runs naming a pair, after the re-measure:  {wilson(clean_named, args.runs)}")
    print(f"clean runs naming a rank (the rank rule):        {wilson(clean_ranks, args.runs)}")
    for f in FLOORS:
        print(
            f"  passes alone with a MAD floor of {f:.2f} (log scale): {per_floor[f]} of {args.runs}"
        )
    what = "rank 2 (and no other)" if args.rank_fault else "pair 1-2 (and no rank)"
    print(f"faulty runs naming {what} ({fault}):")
    print(f"  passes alone (pair 1-2 flagged): {wilson(fault_old, args.fault_runs)}")
    print(f"  after the re-measure: {wilson(fault_ok, args.fault_runs)}")
    print(f"runs kept in {out}")
    ok = clean_named == 0 and clean_ranks == 0 and fault_ok == args.fault_runs
    return 0 if ok and not math.isnan(z_threshold) else 1


if __name__ == "__main__":
    sys.exit(main())
