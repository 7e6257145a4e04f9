"""How often a healthy run names a straggler, and whether a real one is always named (issue 13,
part 3), under the load of the test suite.

Runs N healthy default jobs (`python -m minicluster run`) and M jobs with
`--fault straggler:rank=1,delay_ms=20`, interleaved, while the fast half of the test suite runs
over and over in the background (`--load tests`, the default; `--load none` for a quiet host).
Prints, per run, each rank's median compute, the share of steps the slowest rank was slowest in,
and who was named; then the false-straggler count (target 0 of N) and the detection count (target
M of M). Exit 0 when both targets are met, 1 otherwise, 3 when a run itself failed.

Usage: python scripts/check_false_stragglers.py [--healthy 30] [--stragglers 10] [--load tests]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STRAGGLER = "straggler:rank=1,delay_ms=20"


def one_run(out: Path, fault: str | None) -> dict[str, Any]:
    args = [sys.executable, "-m", "minicluster", "run", "--out", str(out)]
    if fault:
        args += ["--fault", fault]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        print(f"run {out.name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        sys.exit(3)
    return json.loads((out / "result.json").read_text())


def describe(result: dict[str, Any]) -> tuple[list[int], str]:
    named = [s["rank"] for s in result["stragglers"]]
    medians = [r["compute_ms_median"] for r in result["ranks"]]
    emb = result["steps"].get("embedded") or {}
    share = ""
    if emb:
        per = {
            int(k): {
                s: c
                for s, w, c in zip(v["step"], v["warmup"], v["compute_ms"], strict=True)
                if not w
            }
            for k, v in emb.items()
        }
        common = sorted(set.intersection(*(set(v) for v in per.values())))
        slow = max(per, key=lambda k: sorted(per[k][s] for s in common)[len(common) // 2])
        won = sum(per[slow][s] >= max(per[k][s] for k in per) for s in common)
        share = f"rank {slow} slowest in {won}/{len(common)} steps"
    return named, f"compute medians {medians}; {share}; named {named or 'nobody'}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--healthy", type=int, default=30)
    p.add_argument("--stragglers", type=int, default=10)
    p.add_argument("--load", choices=["tests", "none"], default="tests")
    a = p.parse_args()
    load = None
    if a.load == "tests":
        cmd = (
            f"while true; do {sys.executable} -m pytest -q -x -m 'not slow' -p no:cacheprovider "
            "tests/analysis tests/compare tests/interop tests/report >/dev/null 2>&1; done"
        )
        load = subprocess.Popen(["bash", "-c", cmd], cwd=ROOT, start_new_session=True)
    # spread the straggler runs evenly among the healthy ones: host drift hits both kinds alike
    plan = sorted(
        [((i + 0.5) / max(1, a.healthy), "healthy") for i in range(a.healthy)]
        + [((j + 0.5) / max(1, a.stragglers), "straggler") for j in range(a.stragglers)]
    )
    false, found = 0, 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n, (_, kind) in enumerate(plan, 1):
                fault = STRAGGLER if kind == "straggler" else None
                result = one_run(Path(tmp) / f"{kind}-{n}", fault)
                named, text = describe(result)
                if kind == "healthy" and named:
                    false += 1
                if kind == "straggler" and named == [1]:
                    found += 1
                print(f"[{n}/{len(plan)}] {kind}: {text}", flush=True)
    finally:
        if load is not None:
            os.killpg(load.pid, signal.SIGTERM)
    print(f"false stragglers: {false} of {a.healthy} healthy runs (target 0)")
    print(f"20 ms straggler named: {found} of {a.stragglers} runs (target {a.stragglers})")
    return 0 if false == 0 and found == a.stragglers else 1


if __name__ == "__main__":
    sys.exit(main())
