"""How much each node-check measurement moves from run to run on this machine, and what it costs,
so that no threshold (a reference floor, the fleet's MAD floor, the drift test's 5%) is tighter
than the noise (issue 29).

Part 1, in-process: each measurement of the quick level (GEMM fp32 and bf16 at n = 512 and 1024,
the host STREAM triad) repeated R times, interleaved (one round runs each once), with the node
check's own settings (all cores, 10 timed calls, median). Part 2: the whole `minicluster
node-check --level quick` K times (wall time, its headline figures, busbw included).

Per figure: median, min, max, max/min, the robust relative spread (MAD of ln(value) x 1.4826,
what the fleet's floor is compared with) and a distribution-free 95% interval of the median
(order statistics, binomial). Exit 0 always (it measures; it does not judge), 3 when a command
failed.

Usage: python scripts/check_nodecheck_noise.py [--rounds 10] [--commands 10] [--json OUT]
About 2 minutes for part 1 and 15 s per command on this project's 2-core VM.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """The order-statistic interval of the median and its coverage: the narrowest (k, n+1-k)
    pair whose binomial coverage is at least `confidence` (for n = 10: 2nd and 9th values,
    97.9%); with too few values for that, min and max with the coverage they have (n = 5:
    93.8%)."""
    from scipy.stats import binom

    xs = sorted(values)
    n = len(xs)

    def coverage(k: int) -> float:
        return float(binom.cdf(n - k, n, 0.5) - binom.cdf(k - 1, n, 0.5))

    best = (xs[0], xs[-1], coverage(1))
    for k in range(2, n // 2 + 1):
        if coverage(k) < confidence:
            break
        best = (xs[k - 1], xs[n - k], coverage(k))
    return best


def summary(name: str, values: list[float], unit: str, cost_s: list[float]) -> dict[str, Any]:
    from scipy.stats import median_abs_deviation

    good = [v for v in values if v and math.isfinite(v)]
    if not good:
        return {"name": name, "n": 0}
    lo, hi, cover = median_interval(good)
    logs = [math.log(v) for v in good]
    return {
        "name": name,
        "unit": unit,
        "n": len(good),
        "median": statistics.median(good),
        "min": min(good),
        "max": max(good),
        "max_over_min": max(good) / min(good),
        "log_mad": float(median_abs_deviation(logs, scale="normal")),
        "median_interval": [lo, hi],
        "interval_coverage": cover,
        "cost_s_median": statistics.median(cost_s) if cost_s else None,
    }


def in_process(rounds: int) -> list[dict[str, Any]]:
    import torch

    from minicluster.rank.nodecheck import gemm, memory

    threads = memory.host_threads()
    torch.set_num_threads(threads)
    nbytes, _ = memory.host_triad_bytes()
    cases = {
        f"gemm float32 n={n}": lambda n=n: gemm.gemm(torch.device("cpu"), "float32", n, 10, 2.0)
        for n in (512, 1024)
    }
    cases.update(
        {
            f"gemm bfloat16 n={n}": lambda n=n: gemm.gemm(
                torch.device("cpu"), "bfloat16", n, 10, 2.0
            )
            for n in (512, 1024)
        }
    )
    cases["host triad"] = lambda: memory.host_triad(nbytes, 10, 2.0, threads)
    values: dict[str, list[float]] = {k: [] for k in cases}
    costs: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            obs = fn()
            costs[name].append(time.perf_counter() - t0)
            v = obs.get("tflops") if "gemm" in name else obs.get("gbps")
            values[name].append(float(v) if v is not None else math.nan)
            if obs.get("wrong"):
                print(f"round {r + 1}: {name}: {obs['wrong']} wrong element(s)!", file=sys.stderr)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    return [
        summary(name, vals, "TFLOP/s" if "gemm" in name else "GB/s", costs[name])
        for name, vals in values.items()
    ]


def commands(count: int) -> list[dict[str, Any]]:
    walls: list[float] = []
    figures: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="nc-noise-") as tmp:
        for i in range(count):
            out = Path(tmp) / f"nc{i}"
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "minicluster", "node-check", "--out", str(out), "--quiet"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            walls.append(time.perf_counter() - t0)
            if proc.returncode not in (0, 1):
                print(proc.stderr[-2000:], file=sys.stderr)
                sys.exit(3)
            r = json.loads((out / "result.json").read_text())
            for name, m in r["metrics"].items():
                figures.setdefault(name, []).append(m["value"])
                units[name] = m["unit"]
            print(
                f"command {i + 1}/{count}: {walls[-1]:.1f} s, exit {proc.returncode}",
                file=sys.stderr,
            )
    rows = [summary("node-check --level quick: wall time", walls, "s", [])]
    rows += [summary(f"command: {k}", v, units[k], []) for k, v in figures.items()]
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | unit | n | median | interval of the median (coverage) | min | max | max/min | MAD of ln | cost per run (s) |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if not r.get("n"):
            lines.append(f"| {r['name']} | | 0 | | | | | | | |")
            continue
        lo, hi = r["median_interval"]
        cost = f"{r['cost_s_median']:.2f}" if r.get("cost_s_median") is not None else ""
        lines.append(
            f"| {r['name']} | {r['unit']} | {r['n']} | {r['median']:.4g} | {lo:.4g} - {hi:.4g} "
            f"({100 * r['interval_coverage']:.1f}%) | "
            f"{r['min']:.4g} | {r['max']:.4g} | {r['max_over_min']:.2f} | {r['log_mad']:.3f} | {cost} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--commands", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3]
    rows = in_process(args.rounds) if args.rounds else []
    rows += commands(args.commands) if args.commands else []
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before {' '.join(load)}, after {' '.join(load_after)}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
