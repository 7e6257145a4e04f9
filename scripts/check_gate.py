"""The gate's measured error rate: false regressions on identical runs and recall on real slowdowns,
for one run a side (`compare A B`), three runs a side (`compare A1,A2,A3 B1,B2,B3`) and a history
(`history check` against the N comparable runs before).

Records (resumable, into --out) identical runs of a short 2-rank job and runs of the same job
slowed by 3, 5, 10 and 20%, interleaved (b s3 b s5 b b s10 b s20 b, repeated) so slow phases of a
shared host fall on both kinds. The slowdown is real compute, not a sleep inside the timer: a
torch optimizer hook (scripts/check_gate_hook/sitecustomize.py) runs N extra 256x256 matmuls
after every optimizer step on every rank; N is calibrated from the job's step time and the
matmul's time here, and the achieved slowdown is measured (median step time of the slowed runs /
the identical runs') and printed. The job and its config are the same, so the fingerprints match.

Usage: python scripts/check_gate.py [--out DIR] [--cycles 6] [--history 8] [--analyze-only]
Prints per method: false-positive rate (Wilson 95% interval), recall per shift, the smallest
shift detected with >= 90% recall, and the load average during the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOOK = ROOT / "scripts" / "check_gate_hook"
MC = [sys.executable, "-m", "minicluster"]
JOB = """name: gate
workload: {name: mlp, per_rank_batch: 32, input_dim: 256, hidden_dim: 512, num_layers: 2}
steps: {warmup: 3, measured: 30}
run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 120}
"""
SHIFTS = (3, 5, 10, 20)
CYCLE = ("b", "s3", "b", "s5", "b", "b", "s10", "b", "s20", "b")
MATMUL = 256


def matmul_ms() -> float:
    """Time of one MATMUL x MATMUL fp32 matmul on one thread here (median of 200)."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(MATMUL, MATMUL), torch.randn(MATMUL, MATMUL)
    for _ in range(20):
        torch.mm(a, b)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def record(out: Path, name: str, matmuls: int) -> dict[str, Any]:
    """One run into out/runs/NAME (skipped when its result is there)."""
    run_dir = out / "runs" / name
    meta = out / "runs" / f"{name}.meta.json"
    if (run_dir / "result.json").is_file() and meta.is_file():
        return dict(json.loads(meta.read_text()))
    env = dict(os.environ)
    env["GATE_EXTRA_MATMULS"] = str(matmuls)
    env["GATE_MATMUL_SIZE"] = str(MATMUL)
    env["PYTHONPATH"] = f"{HOOK}{os.pathsep}{env.get('PYTHONPATH', '')}"
    load0 = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.run(
        [*MC, "run", "-c", str(out / "job.yaml"), "--out", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
    )
    info = {
        "name": name,
        "matmuls": matmuls,
        "exit_code": proc.returncode,
        "load_1min_start": load0,
        "load_1min_end": os.getloadavg()[0],
        "wall_s": time.time() - t0,
    }
    if not (run_dir / "result.json").is_file():
        print(
            f"  {name}: no result (exit {proc.returncode}): {proc.stderr[-300:]}", file=sys.stderr
        )
    meta.write_text(json.dumps(info))
    return info


def step_ms(out: Path, name: str) -> float | None:
    try:
        d = json.loads((out / "runs" / name / "result.json").read_text())
        return float(d["metrics"]["step_time_mean_ms"]["value"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def record_all(out: Path, cycles: int) -> None:
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "job.yaml").write_text(JOB)
    plan_path = out / "plan.json"
    if plan_path.is_file():
        plan = json.loads(plan_path.read_text())
    else:
        for i in range(2):  # calibration: the job's step time here
            record(out, f"b{i:03d}", 0)
        base = statistics.median(v for i in range(2) if (v := step_ms(out, f"b{i:03d}")))
        unit = matmul_ms()
        plan = {
            "base_step_ms": base,
            "matmul_ms": unit,
            "matmuls": {str(s): max(1, round(s / 100 * base / unit)) for s in SHIFTS},
            "order": [],
        }
        nb, ns = 2, dict.fromkeys(SHIFTS, 0)
        for _ in range(cycles):
            for kind in CYCLE:
                if kind == "b":
                    plan["order"].append(f"b{nb:03d}")
                    nb += 1
                else:
                    s = int(kind[1:])
                    plan["order"].append(f"s{s:02d}_{ns[s]:03d}")
                    ns[s] += 1
        plan_path.write_text(json.dumps(plan, indent=1))
        print(
            f"calibration: step {base:.2f} ms, one {MATMUL}x{MATMUL} matmul {unit:.4f} ms: "
            f"extra matmuls per step {plan['matmuls']}",
            flush=True,
        )
    for i, name in enumerate(plan["order"]):
        n = 0 if name.startswith("b") else plan["matmuls"][str(int(name[1:3]))]
        info = record(out, name, n)
        print(
            f"[{i + 1}/{len(plan['order'])}] {name} matmuls={n} step={step_ms(out, name)} "
            f"load={info['load_1min_start']:.1f} ({info['wall_s']:.0f} s)",
            flush=True,
        )


def wilson(k: int, n: int) -> str:
    from scipy.stats import binomtest

    if n == 0:
        return "n/a"
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{k}/{n} = {100 * k / n:.0f}% [{100 * ci.low:.0f}, {100 * ci.high:.0f}]"


def analyze(out: Path, k: int, history_n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from minicluster.compare import compare
    from minicluster.compare.history import History, Provenance
    from minicluster.compare.history_check import check
    from minicluster.compare.repeats import combine
    from minicluster.interop import load

    plan = json.loads((out / "plan.json").read_text())
    order = [
        n
        for n in (["b000", "b001"] + plan["order"])
        if (out / "runs" / n / "result.json").is_file()
    ]
    recs = {n: load(out / "runs" / n) for n in order}
    base = [n for n in order if n.startswith("b")]
    slowed = {s: [n for n in order if n.startswith(f"s{s:02d}_")] for s in SHIFTS}
    bstep = statistics.median(v for n in base if (v := step_ms(out, n)))
    loads = [
        json.loads((out / "runs" / f"{n}.meta.json").read_text())["load_1min_start"] for n in order
    ]
    print(
        f"runs: {len(base)} identical, {sum(map(len, slowed.values()))} slowed; load average "
        f"(1 min) during them: median {statistics.median(loads):.1f}, min {min(loads):.1f}, "
        f"max {max(loads):.1f} on {os.cpu_count()} CPUs"
    )
    achieved = {}
    for s in SHIFTS:
        vals = [v for n in slowed[s] if (v := step_ms(out, n))]
        achieved[s] = 100 * (statistics.median(vals) / bstep - 1) if vals else float("nan")
        print(
            f"shift {s}%: {plan['matmuls'][str(s)]} extra matmuls/step, achieved median step "
            f"+{achieved[s]:.1f}% vs the identical runs' median ({len(vals)} runs)"
        )

    def before(name: str, pool: list[str], count: int) -> list[str]:
        i = order.index(name)
        return [n for n in order[:i] if n in pool][-count:]

    def gate(a: list[str], b: list[str]) -> bool:
        ra = combine([recs[n] for n in a], "A") if len(a) > 1 else recs[a[0]]
        rb = combine([recs[n] for n in b], "B") if len(b) > 1 else recs[b[0]]
        return compare([ra, rb]).gate_failed

    rows: dict[str, dict[str, tuple[int, int]]] = {}
    # one run a side: each identical run against the identical run before it
    fp = [gate(before(n, base, 1), [n]) for n in base[1:]]
    rows["1 run a side"] = {"fp": (sum(fp), len(fp))}
    for s in SHIFTS:
        hits = [gate(before(n, base, 1), [n]) for n in slowed[s] if before(n, base, 1)]
        rows["1 run a side"][str(s)] = (sum(hits), len(hits))
    # k runs a side: each window of k identical runs against the k before it
    fp = [gate(base[i - k : i], base[i : i + k]) for i in range(k, len(base) - k + 1)]
    rows[f"{k} runs a side"] = {"fp": (sum(fp), len(fp))}
    for s in SHIFTS:
        hits = [
            gate(before(slowed[s][j], base, k), slowed[s][j : j + k])
            for j in range(0, len(slowed[s]) - k + 1)
        ]
        rows[f"{k} runs a side"][str(s)] = (sum(hits), len(hits))
    # history: each run against the history_n identical runs recorded before it
    with tempfile.TemporaryDirectory() as tmp, History(Path(tmp) / "h.sqlite") as db:
        ids = {}
        for n in base:
            ids[n], _ = db.add(recs[n], n, n.encode(), Provenance(n, None, {}))

        def hist(name: str) -> bool:
            prior = set(before(name, base, history_n))
            runs = [
                r
                for r in db.comparable(recs[name].fingerprint or {}, (), 10_000)
                if r.source in prior
            ]
            if len(runs) < history_n:
                return False
            return bool(check(recs[name], runs).regressions)

        fp = [hist(n) for n in base if len(before(n, base, history_n)) == history_n]
        rows[f"history ({history_n} runs)"] = {"fp": (sum(fp), len(fp))}
        for s in SHIFTS:
            hits = [hist(n) for n in slowed[s] if len(before(n, base, history_n)) == history_n]
            rows[f"history ({history_n} runs)"][str(s)] = (sum(hits), len(hits))
    print()
    head = (
        "| method | false regressions (identical runs) | "
        + " | ".join(f"recall at {s}% (achieved +{achieved[s]:.0f}%)" for s in SHIFTS)
        + " | smallest shift with recall >= 90% |"
    )
    print(head)
    print("|" + "---|" * (3 + len(SHIFTS)))
    for method, r in rows.items():
        ok = [s for s in SHIFTS if r[str(s)][1] and r[str(s)][0] / r[str(s)][1] >= 0.9]
        fp_k, fp_n = r["fp"]
        smallest = (
            f"{ok[0]}%"
            if ok and fp_n and fp_k / fp_n <= 0.05
            else "none (at <= 5% false regressions)"
        )
        print(
            f"| {method} | {wilson(*r['fp'])} | "
            + " | ".join(wilson(*r[str(s)]) for s in SHIFTS)
            + f" | {smallest} |"
        )
    (out / "table.json").write_text(json.dumps({"rows": rows, "achieved_pct": achieved}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/check_gate"))
    ap.add_argument("--cycles", type=int, default=6, help="cycles of b s3 b s5 b b s10 b s20 b")
    ap.add_argument("--k", type=int, default=3, help="runs a side (default 3)")
    ap.add_argument("--history", type=int, default=8, help="history runs before each check")
    ap.add_argument("--analyze-only", action="store_true")
    args = ap.parse_args()
    if not args.analyze_only:
        record_all(args.out, args.cycles)
    analyze(args.out, args.k, args.history)


if __name__ == "__main__":
    main()
