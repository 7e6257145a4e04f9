"""How often the pairwise link test names a slow pair on a healthy machine, and whether it names
an injected slow link every time (issue 17).

Runs K clean `minicluster collectives --pattern pairwise --serial` tests and S with
`--fault slow_link:rank=1,peer=2,delay_ms=D`, then prints per run the pairs named slow, the lowest
robust z and the pair busbw relative to the median; and, from the same recorded busbw, how many
clean runs each MAD floor would have flagged (the evidence for `collectives.pair_mad_floor`). Exit 0 when
no clean run named a pair and every faulty run named exactly the faulty pair (and perhaps others
only when the clean target also failed), 1 otherwise, 3 when a run itself failed.

Usage: python scripts/check_pairwise_false_positives.py [--runs 10] [--fault-runs 3] [--nproc 4]
       [--size 16M] [--passes 2] [--delay-ms 100] [--out DIR]
Each 4-rank run at 4M takes about 10 s on this project's 2-core VM.
"""

from __future__ import annotations

import argparse
import json
import math
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
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="pairwise-fp-"))
    fault = f"slow_link:rank=1,peer=2,delay_ms={args.delay_ms}"
    clean_named = 0
    per_floor = dict.fromkeys(FLOORS, 0)
    z_threshold = 3.5
    print(f"{'run':<10} {'named':<14} {'min z':>7}  busbw / median per pair")
    for i in range(args.runs):
        result = run(out / f"clean-{i}", args)
        p = result["pairwise"]
        z_threshold = p["outlier_z"]
        bws = [r["busbw_gbps"] for r in p["pairs"]]
        med = p["distribution"]["median"]
        named = [f"{a}-{b}" for a, b in p["slow_pairs"]]
        clean_named += bool(named)
        for f in FLOORS:
            per_floor[f] += named_with_floor(bws, f, z_threshold) > 0
        ratios = " ".join(f"{b / med:.2f}" for b in bws)
        min_z = min(r["z"] for r in p["pairs"])
        print(f"clean-{i:<4} {','.join(named) or '-':<14} {min_z:>7.2f}  {ratios}")
    fault_ok = 0
    for i in range(args.fault_runs):
        result = run(out / f"fault-{i}", args, "--fault", fault)
        p = result["pairwise"]
        named = [f"{a}-{b}" for a, b in p["slow_pairs"]]
        z12 = next(r["z"] for r in p["pairs"] if (r["a"], r["b"]) == (1, 2))
        fault_ok += "1-2" in named
        print(
            f"fault-{i:<4} {','.join(named) or '-':<14} {z12:>7.2f}  suspect: {p['suspect']['text']}"
        )
    print()
    print(f"clean runs naming a pair: {clean_named} of {args.runs} (target 0)")
    for f in FLOORS:
        print(f"  with a MAD floor of {f:.2f} (log scale): {per_floor[f]} of {args.runs}")
    print(f"faulty runs naming pair 1-2 ({fault}): {fault_ok} of {args.fault_runs} (target all)")
    print(f"runs kept in {out}")
    ok = clean_named == 0 and fault_ok == args.fault_runs
    return 0 if ok and not math.isnan(z_threshold) else 1


if __name__ == "__main__":
    sys.exit(main())
