"""Benchmark: how well the accounting adds up over many sync points per step (FSDP2, TP, 2-D).

For each finished run directory given: the accounting's residual (host + compute + wait +
transfer summed over the sync points, minus the step's time; `analysis.accounting`) over the run
and per step, as a share of the step time, and each rank's wait per step summed over the sync
points beside what one sync point per step would say (the difference of the own work). One
Markdown table row per run.

usage: python scripts/bench_accounting_syncs.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minicluster.analysis import accounting  # noqa: E402
from minicluster.analysis.records import read_run_dir  # noqa: E402
from minicluster.analysis.steps import StepTable  # noqa: E402

HEADER = (
    "| run | ranks | steps | sync points / step | step p50 ms | residual, run | residual / step "
    "p50, p95 | wait ms / step per rank: over the sync points | one sync point |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
)


def row(run: Path) -> str:
    records = read_run_dir(run, workers=1)
    acc = accounting.account(records, StepTable(records, len(records)))
    if not acc.n:
        return f"| {run.name} | not accounted: {acc.reason} |"
    one = accounting.Accounting(
        acc.ranks, acc.steps, acc.host, acc.compute, acc.exposed, acc.period
    )
    step_ms = acc.accounted
    share = np.abs(acc.residual) / step_ms[None, :]
    run_pct = 100 * float(np.abs(acc.residual.sum(axis=1)).max()) / float(step_ms.sum())
    syncs = "1 (DDP)" if acc.syncs is None else str(int(np.median(acc.syncs.count)))
    per_sync = "-" if acc.syncs is None else ", ".join(f"{w:.1f}" for w in acc.wait.mean(axis=1))
    return (
        f"| {run.name} | {len(acc.ranks)} | {acc.n} | {syncs} | {np.median(step_ms):.1f} | "
        f"{run_pct:.2f}% | {100 * np.median(share):.2f}%, {100 * np.percentile(share, 95):.2f}% "
        f"| {per_sync} | {', '.join(f'{w:.1f}' for w in one.wait.mean(axis=1))} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print(HEADER)
    for run in args.runs:
        print(row(run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
