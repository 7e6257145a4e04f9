"""Does `compare` call a busier host a regression, and does it still catch a slower job there?
(issue 25: the host-load rule of `compare.host_load`.)

Runs K identical default jobs (`python -m minicluster run`), every other one beside H busy loops
(`python -c "while True: pass"`, started before the run and killed by PID after it), and S jobs
with `--fault straggler:rank=1,delay_ms=20` on the quiet side of the same alternation, then
compares each clean run with the next one (a quiet and a busy host in every pair, either way
round) and each straggler run with the quiet clean run just before it. Each comparison is made twice on the
same two results: with their `host_cpu` (the rule on) and with it removed (no rule: what
`compare` said before). Prints every pair and the counts with 95% Wilson intervals
(scipy's `binomtest`). Exit 0 always (a measurement); 3 when a run itself failed.

Usage: python scripts/check_host_load.py [--runs 12] [--straggler-runs 4] [--hogs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
STRAGGLER = "straggler:rank=1,delay_ms=20"


def run(out: Path, hogs: int, *extra: str) -> None:
    """One `minicluster run` into `out`, beside `hogs` busy loops (killed by PID after)."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "minicluster", "run", "--out", str(out), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        for p in loops:
            p.kill()
            p.wait()
    # 1: a finding (the straggler runs name their culprit), 2: NOT JUDGED; both wrote a result
    if proc.returncode not in (0, 1, 2) or not (out / "result.json").is_file():
        print(f"run {out.name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        sys.exit(3)


def without_host_cpu(result: Path, into: Path) -> Path:
    data = json.loads(result.read_text())
    data.pop("host_cpu", None)
    into.write_text(json.dumps(data))
    return into


def compare(a: Path, b: Path, json_out: Path) -> tuple[int, dict[str, Any]]:
    """Exit code of `minicluster compare a b` and its pair."""
    json_out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "compare", str(a), str(b), "--json", str(json_out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if not json_out.is_file():
        print(f"compare {a} {b} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        sys.exit(3)
    return proc.returncode, json.loads(json_out.read_text())["comparisons"][0]


def wilson(k: int, n: int) -> str:
    if n == 0:
        return "n/a"
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{k}/{n} ({100 * ci.low:.0f}-{100 * ci.high:.0f}%)"


def load_said(result: Path) -> str:
    data = json.loads(result.read_text())
    step = data["metrics"]["step_time_mean_ms"]["value"]
    host = data.get("host_cpu") or {}
    return (
        f"step {step:.1f} ms, cpu {host.get('cpu_ms', float('nan')):.1f}, "
        f"wait {host.get('cpu_wait_ms', float('nan')):.1f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=12, help="identical default runs (K, >= 2)")
    ap.add_argument("--straggler-runs", type=int, default=4, help="straggler runs (S)")
    ap.add_argument("--hogs", type=int, default=2, help="busy loops beside every other run")
    ap.add_argument("--out", type=Path, help="directory for the runs (default: a new temp dir)")
    args = ap.parse_args()
    if args.runs < 2 or args.straggler_runs < 0 or args.hogs < 1:
        ap.error("--runs must be >= 2, --straggler-runs >= 0, --hogs >= 1")
    out = args.out or Path(tempfile.mkdtemp(prefix="mc_host_load_"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"runs in {out}; load at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    clean, strag = [], []
    for i in range(max(args.runs, args.straggler_runs)):
        if i < args.runs:
            d = out / f"clean-{i + 1}"
            busy = i % 2 == 1
            run(d, args.hogs if busy else 0)
            clean.append((d, busy))
            print(f"{d.name} ({'busy' if busy else 'quiet'}): {load_said(d / 'result.json')}")
        if i < args.straggler_runs:
            d = out / f"straggler-{i + 1}"
            run(d, 0, "--fault", STRAGGLER)
            quiet = [c for c, busy in clean if not busy]  # the quiet clean run just before
            strag.append((d, quiet[-1]))
            print(f"{d.name} (quiet, --fault {STRAGGLER}): {load_said(d / 'result.json')}")

    def both(a: Path, b: Path, tag: str) -> tuple[int, int, str | None]:
        ra, rb = a / "result.json", b / "result.json"
        new, pair = compare(ra, rb, out / f"cmp-{tag}.json")
        old, _ = compare(
            without_host_cpu(ra, out / f"{tag}-a.json"),
            without_host_cpu(rb, out / f"{tag}-b.json"),
            out / f"cmp-{tag}-norule.json",
        )
        return new, old, pair.get("host_load")

    counts = {"false_new": 0, "false_old": 0, "nj": 0, "caught_new": 0, "caught_old": 0}
    print("\nneighbouring identical runs, one beside busy loops (a regression is false)")
    for (a, _), (b, _) in zip(clean, clean[1:], strict=False):
        new, old, said = both(a, b, f"{a.name}-{b.name}")
        counts["false_new"] += new == 1
        counts["false_old"] += old == 1
        counts["nj"] += said is not None
        print(f"  {a.name} vs {b.name}: exit {new} with the rule, {old} without")
    print("straggler (quiet host) against a clean run (a regression is right)")
    for s, c in strag:
        new, old, said = both(c, s, f"{c.name}-{s.name}")
        counts["caught_new"] += new == 1
        counts["caught_old"] += old == 1
        print(
            f"  {c.name} vs {s.name}: exit {new} with the rule, {old} without"
            + (" (host load said)" if said else "")
        )
    pairs, sp = len(clean) - 1, len(strag)
    print(
        f"\nidentical pairs called a regression: with the rule {wilson(counts['false_new'], pairs)},"
        f" without {wilson(counts['false_old'], pairs)}; NOT JUDGED for host load "
        f"{wilson(counts['nj'], pairs)}\n"
        f"straggler pairs called a regression: with the rule {wilson(counts['caught_new'], sp)}, "
        f"without {wilson(counts['caught_old'], sp)}\n"
        f"load at end: {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
