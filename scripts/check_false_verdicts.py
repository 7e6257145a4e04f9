"""How often a clean run is given a verdict (straggler, culprit, slow link: exit 1) under CPU
load, and whether injected faults are still found (issue 25).

Runs, one after another, N clean default jobs (`python -m minicluster run`) and M faulted ones
(alternately `straggler:rank=1,delay_ms=40` and `slow_link:rank=1,delay_ms=40`), spread evenly
among the clean ones, while K busy loops (`--hogs K`, `python -c "while True: pass"`, unpinned)
compete for the cores. Every run is judged for its link against an expected busbw measured
first, on the same host under the same load: `minicluster collectives --ops all_reduce` at the
gradient's size (the first clean run's `comm_bytes`), its busbw.

Prints per run its verdicts, then the false-verdict rate of the clean runs and the detection
rate of the faulted ones, each with its 95% Wilson score interval (scipy's
`binomtest(...).proportion_ci(method="wilson")`). `--rejudge-with PATH` also re-judges every
recorded run with the minicluster package found at PATH (`aggregate DIR` with PYTHONPATH=PATH),
so two rules are compared on the very same runs: run the script with the old package on
PYTHONPATH (e.g. an export of main: its rank headers are readable by newer code, not always
the other way round) and re-judge with the new one. The rows say `ran` and `rejudged`.
`--keep DIR` keeps the run directories (to record fixtures from them).

Usage: python scripts/check_false_verdicts.py [--clean 20] [--faulted 5] [--hogs 2]
           [--rejudge-with PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("straggler:rank=1,delay_ms=40", "slow_link:rank=1,delay_ms=40")
HOG = "while True: pass"


def _cli(args: list[str], pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m minicluster ARGS`, run outside any checkout (`-m` puts the working directory
    first on sys.path, before PYTHONPATH: from a checkout its package would be the one run)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath or env.get("PYTHONPATH") or str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "minicluster", *args],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def verdicts(result: dict[str, Any]) -> list[str]:
    """The findings that give a clean run exit 1 here, each with its rank."""
    found = [f"straggler {s['rank']}" for s in result.get("stragglers") or []]
    found += [f"culprit {c['rank']}" for c in result.get("culprits") or []]
    found += ["slow_link" for d in result["faults"]["detected"] if d["kind"] == "slow_link"]
    return found


def not_judged(result: dict[str, Any]) -> list[str]:
    """What the run left NOT JUDGED because the host's other processes held the CPU (exit 2
    when nothing else was found; `analysis.contention`): not a verdict, not a pass either."""
    return [f"{h['finding']} {h['rank']}" for h in result.get("host_contention") or []]


def detected(fault: str, found: list[str]) -> bool:
    if fault.startswith("straggler"):
        return "straggler 1" in found or "culprit 1" in found
    return "slow_link" in found


def expected_busbw(work: Path, result: dict[str, Any]) -> str:
    size = int(max(result["steps"]["series"]["comm_bytes"]))
    out = work / "expect"
    proc = _cli(
        ["collectives", "--ops", "all_reduce", "--sizes", str(size), "--iters", "10"]
        + ["--out", str(out)]
    )
    if proc.returncode != 0:
        sys.exit(f"the busbw expectation could not be measured:\n{proc.stderr[-2000:]}")
    (row,) = json.loads((out / "result.json").read_text())["collectives"]["results"]
    return f"{row['busbw_gbps']:.4g}"


def one_run(out: Path, fault: str | None, expect: str | None) -> tuple[int, dict[str, Any]]:
    args = ["run", "--out", str(out)]
    if expect is not None:
        args += ["--expect-busbw", expect]
    if fault:
        args += ["--fault", fault]
    proc = _cli(args)
    if proc.returncode not in (0, 1, 2) or not (out / "result.json").exists():
        sys.exit(f"run {out.name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.returncode, json.loads((out / "result.json").read_text())


def rejudge(run: Path, tree: str, result: dict[str, Any]) -> list[str]:
    """The verdicts of the package at `tree` on the recorded run (a threshold flag, the run's
    own value, makes `aggregate` re-judge beside result.json instead of rebuilding it)."""
    before = set(run.glob("result.rejudged-*.json"))
    pct = result["config"]["checks"]["straggler_threshold_pct"]
    proc = _cli(["aggregate", str(run), "--straggler-threshold", str(pct)], pythonpath=tree)
    new = sorted(set(run.glob("result.rejudged-*.json")) - before)
    if proc.returncode not in (0, 1, 2) or not new:
        sys.exit(f"re-judging {run} with {tree} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(new[-1].read_text())
    new[-1].unlink()
    return verdicts(result)


def wilson(k: int, n: int) -> str:
    if n == 0:
        return "n/a"
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{k}/{n} = {100 * k / n:.0f}% (95% Wilson {100 * ci.low:.0f}-{100 * ci.high:.0f}%)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clean", type=int, default=20, help="clean default runs (default 20)")
    p.add_argument("--faulted", type=int, default=5, help="faulted runs (default 5)")
    p.add_argument("--hogs", type=int, default=2, help="busy-loop processes meanwhile (default 2)")
    p.add_argument(
        "--rejudge-with", metavar="PATH", help="also re-judge each run with the package at PATH"
    )
    p.add_argument("--keep", type=Path, help="keep the run directories here")
    a = p.parse_args()
    if a.clean < 1 or a.faulted < 0 or a.hogs < 0:
        p.error("--clean must be at least 1, --faulted and --hogs at least 0")
    plan = sorted(
        [((i + 0.5) / a.clean, None) for i in range(a.clean)]
        + [((j + 0.5) / max(1, a.faulted), FAULTS[j % 2]) for j in range(a.faulted)],
        key=lambda t: t[0],
    )
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(a.hogs)]
    tally: dict[str, list[int]] = {}  # (rule, kind) -> [hits, runs]
    try:
        with tempfile.TemporaryDirectory(prefix="h-load-") as tmp:
            work = a.keep or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            expect = None
            for n, (_, fault) in enumerate(plan, 1):
                run = work / f"{n:03d}-{(fault or 'clean').split(':')[0]}"
                code, result = one_run(run, fault, expect)
                if expect is None and fault is None:
                    expect = expected_busbw(work, result)
                    print(f"expected busbw (collectives, same load): {expect} GB/s", flush=True)
                    code, result = one_run(run.with_name(run.name + "b"), fault, expect)
                    run = run.with_name(run.name + "b")
                rules = {"ran": verdicts(result)}
                contended = not_judged(result)
                if contended:
                    nj = f"not_judged {'clean' if fault is None else fault.split(':')[0]}"
                    tally.setdefault(nj, [0, 0])
                    tally[nj][0] += 1
                if a.rejudge_with:
                    rules["rejudged"] = rejudge(run, a.rejudge_with, result)
                for rule, found in rules.items():
                    key = f"{rule} {'clean' if fault is None else fault.split(':')[0]}"
                    hit = bool(found) if fault is None else detected(fault, found)
                    tally.setdefault(key, [0, 0])
                    tally[key][0] += hit
                    tally[key][1] += 1
                    if rule == "ran":
                        nj = f"not_judged {key.split(' ', 1)[1]}"
                        tally.setdefault(nj, [0, 0])
                        tally[nj][1] += 1
                shown = "; ".join(f"{r}: {', '.join(v) or 'none'}" for r, v in rules.items())
                if contended:
                    shown += f"; NOT JUDGED (host CPU contention): {', '.join(contended)}"
                print(f"[{n}/{len(plan)}] {fault or 'clean'} exit {code}: {shown}", flush=True)
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait(timeout=10)
    print(f"host: {os.cpu_count()} cores, {a.hogs} busy loops; load avg {os.getloadavg()[0]:.1f}")
    for key in sorted(tally):
        rule, kind = key.split(" ", 1)
        what = "false verdicts" if kind == "clean" else f"{kind} detected"
        if rule == "not_judged":
            what = f"{kind} runs NOT JUDGED (host CPU contention)"
        print(f"{rule} rule, {what}: {wilson(*tally[key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
