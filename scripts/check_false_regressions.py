"""How often `minicluster compare` calls identical healthy runs a regression, and whether it
catches a real straggler every time (issue 13, part 1).

Runs K identical default jobs (`python -m minicluster run --out DIR/clean-N`, nothing else
changed) and S 2-rank jobs with `--fault straggler:rank=1,delay_ms=20`, then:
- compares each clean run with the next one (K - 1 pairs; target: none exits 1);
- compares each straggler run with every clean run (S x K pairs; target: every one exits 1).
Prints every comparison's exit code and the metrics it gated, then the two counts against
their targets. Exit 0 when both targets are met, 1 otherwise, 3 when a run itself failed.

Usage: python scripts/check_false_regressions.py [--runs 10] [--straggler-runs 1] [--out DIR]
Each run takes about 10 s on a quiet 2-core machine (more when it is busy): measure on a quiet
one, since the comparisons are only as steady as the host is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRAGGLER = "straggler:rank=1,delay_ms=20"


def run(out: Path, *extra: str) -> float:
    """One `minicluster run` into `out`; its wall time in seconds. Exits 3 if the run fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "run", "--out", str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"run {out.name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        sys.exit(3)
    return time.perf_counter() - t0


def compare(a: Path, b: Path, json_out: Path) -> tuple[int, list[str]]:
    """Exit code of `minicluster compare a b` and the metrics it gated."""
    json_out.unlink(missing_ok=True)  # a refused compare must not leave the last one's verdict
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "compare", str(a), str(b), "--json", str(json_out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # exit 2 is NOT JUDGED (nothing could be judged: docs/compare.md rule 14) only when the
    # comparison wrote that verdict; otherwise it is bad input
    data = json.loads(json_out.read_text()) if json_out.is_file() else {}
    judged_none = proc.returncode == 2 and data.get("verdict") == "not_judged"
    if proc.returncode not in (0, 1) and not judged_none:
        print(f"compare {a.name} {b.name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        sys.exit(3)
    return proc.returncode, data["comparisons"][0]["regressions"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="identical default runs (K, >= 2)")
    ap.add_argument("--straggler-runs", type=int, default=1, help="straggler runs (S, >= 1)")
    ap.add_argument("--out", type=Path, help="directory for the runs (default: a new temp dir)")
    args = ap.parse_args()
    if args.runs < 2 or args.straggler_runs < 1:
        ap.error("--runs must be >= 2 and --straggler-runs >= 1")
    out = args.out or Path(tempfile.mkdtemp(prefix="mc_false_regressions_"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"runs in {out}")
    clean = [out / f"clean-{i + 1}" for i in range(args.runs)]
    strag = [out / f"straggler-{i + 1}" for i in range(args.straggler_runs)]
    for d in clean:
        print(f"{d.name}: {run(d):.1f} s")
    for d in strag:
        print(f"{d.name} (--fault {STRAGGLER}): {run(d, '--fault', STRAGGLER):.1f} s")

    false_alarms = 0
    print("\nneighbouring identical runs (target: exit 0)")
    for a, b in zip(clean, clean[1:], strict=False):
        code, gated = compare(a, b, out / f"cmp-{a.name}-{b.name}.json")
        false_alarms += code == 1
        print(f"  {a.name} vs {b.name}: exit {code}  {', '.join(gated) or '-'}")
    caught = 0
    print("straggler against clean runs (target: exit 1)")
    for s in strag:
        for c in clean:
            code, gated = compare(c, s, out / f"cmp-{c.name}-{s.name}.json")
            caught += code == 1
            print(f"  {c.name} vs {s.name}: exit {code}  {', '.join(gated) or '-'}")
    pairs, strag_pairs = len(clean) - 1, len(clean) * len(strag)
    print(
        f"\nidentical pairs that exit 1: {false_alarms} of {pairs} (target 0)\n"
        f"straggler pairs that exit 1: {caught} of {strag_pairs} (target {strag_pairs})"
    )
    return 0 if false_alarms == 0 and caught == strag_pairs else 1


if __name__ == "__main__":
    sys.exit(main())
