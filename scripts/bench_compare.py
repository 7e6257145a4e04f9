"""Benchmark `minicluster compare`: two 1,000-step x 64-rank results, and `compare --help` startup.

Writes two synthetic runs (result.json + 64 rank JSONL files each, the layout of a run too large
to embed its steps; the result holds the per-step cross-rank `steps.series` its metrics are
computed from, as `minicluster aggregate` writes it) to a temporary directory, then prints:
- in-process time to load both results (per-step samples from `steps.series`), compare and
  render JSON + Markdown (median of --repeats);
- wall time of the `minicluster compare` command on them (one process each);
- wall time of `minicluster compare --help` (median), and whether torch got imported.

Usage: PYTHONPATH=. python scripts/bench_compare.py [--steps 1000] [--ranks 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tests" / "fixtures" / "compare" / "mc_run.json"


def write_run(run_dir: Path, steps: int, ranks: int, scale: float, seed: int) -> Path:
    import numpy as np

    rng = random.Random(seed)
    (run_dir / "ranks").mkdir(parents=True)
    result = json.loads(TEMPLATE.read_text())
    result["run_id"] = run_dir.name
    result["world_size"] = ranks
    result["ranks"] = [
        dict(result["ranks"][0], rank=r, measured_steps=steps - 5, steps_recorded=steps)
        for r in range(ranks)
    ]
    times = np.zeros((ranks, steps))
    for rank in range(ranks):
        lines = [json.dumps({"type": "header", "rank": rank, "world_size": ranks})]
        for step in range(steps):
            t = round(15.0 * scale * rng.lognormvariate(0, 0.1), 4)
            times[rank, step] = t
            lines.append(
                json.dumps(
                    {
                        "type": "step",
                        "step": step,
                        "warmup": step < 5,
                        "step_time_ms": t,
                        "compute_ms": round(t * 0.45, 4),
                        "comm_ms": round(t * 0.42, 4),
                        "exposed_comm_ms": round(t * 0.42, 4),
                    }
                )
            )
        (run_dir / "ranks" / f"rank_{rank:05d}.jsonl").write_text("\n".join(lines) + "\n")
    measured = times[:, 5:]
    step_max = measured.max(axis=0)
    series = {
        "step": list(range(5, steps)),
        "step_time_ms": step_max.round(4).tolist(),
        "compute_ms": (measured * 0.45).max(axis=0).round(4).tolist(),
        "allreduce_ms": (measured * 0.42).max(axis=0).round(4).tolist(),
        "allreduce_transfer_ms": (measured * 0.42).min(axis=0).round(4).tolist(),
        "exposed_comm_ms": (measured * 0.42).max(axis=0).round(4).tolist(),
    }
    series["allreduce_wait_ms"] = (
        (np.array(series["allreduce_ms"]) - np.array(series["allreduce_transfer_ms"]))
        .round(4)
        .tolist()
    )
    result["steps"] = {
        "rank_files": "ranks/rank_{rank:05d}.jsonl",
        "series": series,
        "embedded": None,
        "reason": f"{steps * ranks} rank-steps: read the rank files",
    }
    m = result["metrics"]
    st = np.array(series["step_time_ms"])
    for name, value in (
        ("latency_p50_ms", np.median(st)),
        ("latency_p95_ms", np.percentile(st, 95)),
        ("latency_p99_ms", np.percentile(st, 99)),
        ("step_time_mean_ms", st.mean()),
        ("throughput_samples_per_sec", result["workload"]["global_batch"] * 1000 / st.mean()),
    ):
        m[name]["value"] = float(value)
    for name in ("compute_ms", "allreduce_ms", "allreduce_wait_ms", "allreduce_transfer_ms",
                 "exposed_comm_ms"):  # fmt: skip
        m[name]["value"] = float(np.median(series[name]))
    m["busbw_gbps"] = {"value": None, "unit": "GB/s", "status": "unavailable",
                       "method": None, "reason": "not in this benchmark"}  # fmt: skip
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--ranks", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from minicluster.compare import compare
    from minicluster.compare.data import to_dict
    from minicluster.interop import load
    from minicluster.report.comparison import to_markdown

    with tempfile.TemporaryDirectory() as tmp:
        a = write_run(Path(tmp) / "run_a", args.steps, args.ranks, 1.0, 1)
        b = write_run(Path(tmp) / "run_b", args.steps, args.ranks, 1.03, 2)
        times_s = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            c = compare([load(a), load(b)])
            json.dumps(to_dict(c))
            to_markdown(c)
            times_s.append(time.perf_counter() - t0)
        rows = {r.metric: r for r in c.pairs[0].rows}
        p50 = rows["latency_p50_ms"]
        print(
            f"compare in-process, {args.steps} steps x {args.ranks} ranks x 2 results: "
            f"median {statistics.median(times_s):.3f} s, min {min(times_s):.3f} s "
            f"(n={args.repeats}; samples per metric {p50.n_a}/{p50.n_b}, "
            f"latency_p50 MWU p={p50.p_value:.3g}, verdict {p50.verdict})"
        )
        cmd = [
            sys.executable,
            "-m",
            "minicluster",
            "compare",
            str(a),
            str(b),
            "--json",
            str(Path(tmp) / "c.json"),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        print(
            f"minicluster compare (whole command, one process): "
            f"{time.perf_counter() - t0:.3f} s, exit {proc.returncode}"
        )
    help_s = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "minicluster", "compare", "--help"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        help_s.append(time.perf_counter() - t0)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from minicluster import cli; "
            "cli.build_parser(); print('torch' in sys.modules)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    print(
        f"minicluster compare --help: median {statistics.median(help_s):.3f} s, "
        f"min {min(help_s):.3f} s (n={args.repeats}); torch imported: {probe.stdout.strip()}"
    )


if __name__ == "__main__":
    main()
