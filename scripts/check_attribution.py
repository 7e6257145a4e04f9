"""Score culprit attribution on real runs: fault kinds x episodes beside healthy runs, one session.

Each episode runs `minicluster run` with one fault on a rank drawn at random, and the healthy runs
are interleaved with them (so both see the same load). Printed side by side: the confusion matrix
(injected kind -> the top culprit's kind, or none), top-1 culprit accuracy (the top culprit is
the injected rank), false verdicts (a culprit in a healthy run), the cost error (the top
culprit's `cost_pct` against the measured difference: 100 x (the faulty run's accounted wall
time - the healthy runs' median) / the faulty run's), and the time to verdict (aggregation of
the finished run). Intervals: Wilson 95% for the rates (scipy), the cost error's median and
range.

    python scripts/check_attribution.py --episodes 2 --healthy 4 --out /tmp/attribution
    python scripts/check_attribution.py --out /tmp/attribution --rescore   # same runs, new rule
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

CONFIG = (
    "workload: {name: mlp, per_rank_batch: 32, input_dim: 128, hidden_dim: 256, num_layers: 2}\n"
    "steps: {warmup: 3, measured: 40}\n"
    "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 60}\n"
)
# kind name -> (fault spec with {rank}, the culprit kind it should be named as)
KINDS: dict[str, tuple[str, str]] = {
    "intermittent": ("straggler:rank={rank},delay_ms=80,every=5", "intermittent"),
    "pause": ("pause:rank={rank},delay_ms=40,every=4", "intermittent"),
    "persistent": ("straggler:rank={rank},delay_ms=20", "persistent"),
    "onset": ("straggler:rank={rank},delay_ms=30,from_step=22", "onset"),
    "drift": ("drift:rank={rank},ms_per_step=2,from_step=3", "drift"),
}


def _run(out: Path, fault: str | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "minicluster", "run", "-c", str(out.parent / "job.yaml")]
    cmd += ["--out", str(out)]
    if fault:
        cmd += ["--fault", fault]
    env = dict(os.environ, MINICLUSTER_PROGRESS="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    if not (out / "result.json").exists():
        raise SystemExit(f"{out}: the run left no result.json: {proc.stderr[-800:]}")
    return _aggregate(out)


def _aggregate(out: Path) -> dict[str, Any]:
    """The run's result aggregated again from its records by this checkout (timed)."""
    env = dict(os.environ, MINICLUSTER_PROGRESS="0")
    start = time.perf_counter()
    agg = [sys.executable, "-m", "minicluster", "aggregate", str(out)]
    subprocess.run(agg, capture_output=True, text=True, env=env, timeout=600, check=False)
    verdict_s = time.perf_counter() - start
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    result["_verdict_s"] = verdict_s
    return result


def _row(kind: str, rank: int | None, out: Path, result: dict[str, Any], load: float) -> dict:
    culprits = result.get("culprits") or []
    top = culprits[0] if culprits else None
    return {
        "kind": kind,
        "rank": rank,
        "out": str(out),
        "named": top["kind"] if top else "none",
        "named_rank": top["rank"] if top else None,
        "cost_pct": top["cost_pct"] if top else None,
        "wall_ms": _wall(result),
        "verdict_s": result["_verdict_s"],
        "load": load,
    }


def _wall(result: dict[str, Any]) -> float | None:
    tol = (result.get("accounting") or {}).get("tolerance") or {}
    value = tol.get("run_accounted_ms")
    return float(value) if value is not None else None


def _wilson(k: int, n: int) -> str:
    if n == 0:
        return "n/a"
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{k}/{n} = {100 * k / n:.0f}% (95% CI {100 * ci.low:.0f}-{100 * ci.high:.0f}%)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=2, help="episodes per fault kind")
    ap.add_argument("--healthy", type=int, default=4, help="healthy runs")
    ap.add_argument("--kinds", default=",".join(KINDS), help="fault kinds to run")
    ap.add_argument("--out", type=Path, default=Path("/tmp/minicluster-attribution"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="judge the runs recorded in --out again with this checkout (no new runs)",
    )
    args = ap.parse_args()
    ap_rescore = args.rescore
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    if ap_rescore:
        # the same runs judged again by this checkout (their records are not rerun)
        for i, old in enumerate(json.loads((args.out / "attribution.json").read_text())):
            out = Path(old.get("out") or args.out / f"run{i:03d}")
            rows.append(_row(old["kind"], old["rank"], out, _aggregate(out), old["load"]))
    else:
        (args.out / "job.yaml").write_text(CONFIG)
        rng = random.Random(args.seed)
        plan: list[tuple[str, int | None]] = [
            (k, rng.randrange(2)) for k in args.kinds.split(",") for _ in range(args.episodes)
        ]
        plan += [("healthy", None)] * args.healthy
        rng.shuffle(plan)  # healthy runs interleaved with the faulty ones: the same load
        for i, (kind, rank) in enumerate(plan):
            fault = KINDS[kind][0].format(rank=rank) if kind in KINDS else None
            out = args.out / f"run{i:03d}"
            rows.append(_row(kind, rank, out, _run(out, fault), os.getloadavg()[0]))
            r = rows[-1]
            print(
                f"{i + 1}/{len(plan)} {kind} rank={rank} -> {r['named']} "
                f"rank={r['named_rank']} cost={r['cost_pct']}",
                flush=True,
            )
    healthy = [r for r in rows if r["kind"] == "healthy"]
    faulty = [r for r in rows if r["kind"] != "healthy"]
    base = statistics.median(r["wall_ms"] for r in healthy if r["wall_ms"]) if healthy else None
    print("\nconfusion (injected -> top culprit's kind):")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        counts = Counter(r["named"] for r in rows if r["kind"] == kind)
        print(f"  {kind:<13} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    top1 = sum(1 for r in faulty if r["named_rank"] == r["rank"])
    kind_ok = sum(1 for r in faulty if r["named"] == KINDS[r["kind"]][1])
    false = sum(1 for r in healthy if r["named"] != "none")
    print(f"top-1 culprit rank: {_wilson(top1, len(faulty))}")
    print(f"kind named right:   {_wilson(kind_ok, len(faulty))}")
    print(f"false verdicts in healthy runs: {_wilson(false, len(healthy))}")
    errors = []
    for r in faulty:
        if r["cost_pct"] is not None and r["wall_ms"] and base:
            measured = 100.0 * (r["wall_ms"] - base) / r["wall_ms"]
            errors.append(r["cost_pct"] - measured)
            print(
                f"  {r['kind']:<13} cost {r['cost_pct']:6.1f}%  measured {measured:6.1f}%  "
                f"error {r['cost_pct'] - measured:+6.1f} points"
            )
    if errors:
        print(
            f"cost error (points): median {statistics.median(errors):+.1f}, "
            f"range {min(errors):+.1f} to {max(errors):+.1f}, n={len(errors)}; healthy "
            f"wall median {base:.0f} ms over {len(healthy)} runs"
        )
    print(
        f"time to verdict (aggregate of a finished run): median "
        f"{statistics.median(r['verdict_s'] for r in rows):.2f} s"
    )
    print(
        f"load average during the runs: {min(r['load'] for r in rows):.1f}-"
        f"{max(r['load'] for r in rows):.1f} on {os.cpu_count()} cores"
    )
    if not ap_rescore:
        (args.out / "attribution.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
