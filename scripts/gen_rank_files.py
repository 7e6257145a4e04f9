"""Write realistic rank files (header + step lines + summary) for N ranks x S steps, for benchmarks.

The step figures are drawn from a lognormal around a real 2-rank gloo run's medians (step ~15 ms,
compute ~7 ms, all-reduce ~6.5 ms); they exist only to exercise the coordinator at scale and are
never reported as measurements. Each rank also gets its columnar file (`core.rank_columns`), as a
rank that finished writes it, unless `--no-columns` (a run whose ranks all died: journals only).

usage: python scripts/gen_rank_files.py OUT_DIR --ranks 1024 --steps 1000 [--per-node 8] [--no-columns]

16,384 ranks x 1,000 steps (2,048 nodes of 8) is about 6.5 GB of files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minicluster.core import rank_columns, rank_format, rundir  # noqa: E402

# The worker's step line (rank_format.STEP_KEYS, in its order) as a format string: json.dumps
# per line would take minutes at 4,096 ranks. A field without a value here is written null.
_VALUES = {
    "step": "{0}",
    "warmup": "{1}",
    "step_time_ms": "{2!r}",
    "fwd_ms": "{3!r}",
    "bwd_ms": "{4!r}",
    "opt_ms": "1.0",
    "compute_ms": "{5!r}",
    "comm_ms": "{6!r}",
    "exposed_comm_ms": "{7!r}",
    "buckets": "1",
    "comm_bytes": "6340648",
    "loss": "2.3",
    "t_unix_s": "{8!r}",
    "gap_ms": "0.2",
}
# The step keys filled from the format arguments, in argument order, and the others' fixed text.
_SLOTS = ("step", "warmup", "step_time_ms", "fwd_ms", "bwd_ms", "compute_ms", "comm_ms")
_SLOTS += ("exposed_comm_ms", "t_unix_s")
_CONSTANTS = {
    k: (None if "{" in _VALUES.get(k, "{") and k in _VALUES else _VALUES.get(k))
    for k in rank_format.STEP_KEYS
    if k != "type" and k not in _SLOTS
}


def _step_line(values: dict[str, str]) -> str:
    return (
        "{{"
        + ",".join(
            '"type":"step"' if k == "type" else f'"{k}":{values.get(k, "null")}'
            for k in rank_format.STEP_KEYS
        )
        + "}}"
    )


STEP_LINE = _step_line(_VALUES)
# --varying: the optimizer's and the between-steps host time and the loss drawn per step and
# rank (a real run's vary; held constant, each is one column every rank shares, which flatters
# the coordinator's memory)
_VARYING = {**_VALUES, "opt_ms": "{9!r}", "gap_ms": "{10!r}", "loss": "{11!r}"}
STEP_LINE_VARYING = _step_line(_VARYING)
_CONSTANTS_VARYING = {k: v for k, v in _CONSTANTS.items() if k not in ("opt_ms", "gap_ms", "loss")}


def write_run(
    out: Path,
    ranks: int,
    steps: int,
    warmup: int = 5,
    seed: int = 0,
    per_node: int = 8,
    columns: bool = True,
    slow: dict[int, float] | None = None,
    varying: bool = False,
) -> None:
    """`ranks` rank files of `steps` steps each, `per_node` ranks per node (torchrun's layout:
    node n holds ranks n*per_node ..), local rank 0 of each node writing the job's roster; with
    `columns`, each rank's columnar file too (the same values as its journal's step lines);
    `slow`: rank -> factor its compute times are multiplied by (a straggler; the other ranks'
    all-reduce grows by its mean extra compute: they wait for it); `varying`: each
    step's `opt_ms`, `gap_ms` and `loss` drawn (around 1.0 ms, 0.2 ms and 2.3) instead of
    constants."""
    slots = (*_SLOTS, "opt_ms", "gap_ms", "loss") if varying else _SLOTS
    template = STEP_LINE_VARYING if varying else STEP_LINE
    constants = _CONSTANTS_VARYING if varying else _CONSTANTS
    rng = np.random.default_rng(seed)
    rdir = out / "ranks"
    rdir.mkdir(parents=True, exist_ok=True)
    roster = {
        "type": "roster",
        "nodes": [
            {
                "node_rank": n,
                "hostname": f"node{n:04d}",
                "ranks": list(range(n * per_node, min(ranks, (n + 1) * per_node))),
            }
            for n in range((ranks + per_node - 1) // per_node)
        ],
        "rank0": {"hostname": "node0000", "out_dir": str(out.resolve())},
    }
    roster_line = json.dumps(roster, separators=(",", ":"))
    timing = {"type": "comm_timing", "method": "ddp_runtime_stats"}
    timing_line = json.dumps(
        {k: timing.get(k) for k in rank_format.COMM_TIMING_KEYS}, separators=(",", ":")
    )
    cfg = {
        "name": "bench",
        "steps": {"warmup": warmup, "measured": steps - warmup},
        # nproc is per node (the config allows at most 4,096): 16,384 ranks are 2,048 nodes of 8
        "run": {"nproc": min(per_node, ranks), "straggler_threshold_pct": 20.0},
    }
    for rank in range(ranks):
        host = f"node{rank // per_node:04d}"
        header = {
            "type": "header",
            "format": "minicluster-rank/1.2",
            "run_id": "bench",
            "rank": rank,
            "local_rank": rank % per_node,
            "world_size": ranks,
            "local_world_size": per_node,
            "node_rank": rank // per_node,
            "hostname": host,
            "pid": 1000 + rank,
            "created_at": "2026-01-01T00:00:00+00:00",
            "tool_version": "bench",
            "backend": "nccl",
            "device": f"cuda:{rank % per_node}",
            "threads": 1,
            "launcher": "outside",
            "job": "train",
            "config": cfg,
            "workload": {
                "name": "mlp",
                "per_rank_batch": 64,
                "seq_len": None,
                "tokens_per_rank": None,
                "params": 1_600_000,
            },
            "platform": {
                "hostname": host,
                "cpu": "bench cpu",
                "cpu_count": 64,
                "host_memory_total_bytes": 512 * 2**30,
                "gpu": None,
                "torch": "2.13.0",
                "python": "3.11",
            },
        }
        lines = [json.dumps(header, separators=(",", ":"))]
        if rank % per_node == 0:
            lines.append(roster_line)
        lines.append(timing_line)
        # Times as the worker writes them: nanosecond clock differences in ms (6 decimals).
        compute = (
            (7.0 * (slow or {}).get(rank, 1.0) * rng.lognormal(0, 0.1, steps)).round(6).tolist()
        )
        # the others wait in the all-reduce for a straggler's mean extra compute
        waits = 0.0 if rank in (slow or {}) else 7.0 * (max((slow or {1: 1.0}).values()) - 1.0)
        comm = (6.5 * rng.lognormal(0, 0.1, steps) + waits).round(6).tolist()
        opt = (1.0 * rng.lognormal(0, 0.1, steps)).round(6).tolist() if varying else None
        gap = (0.2 * rng.lognormal(0, 0.2, steps)).round(6).tolist() if varying else None
        loss = (2.3 * rng.lognormal(0, 0.05, steps)).round(6).tolist() if varying else None
        t = 1.7e9
        cols: dict[str, list] = {k: [] for k in rank_format.STEP_KEYS if k != "type"}
        for i in range(steps):
            c, a = compute[i], comm[i]
            exposed = round(a * 0.9, 6)
            o = 1.0 if opt is None else opt[i]
            step_ms = round(c + exposed + o, 6)
            t += step_ms / 1000
            values: tuple = (
                i,
                i < warmup,
                step_ms,
                round(c / 3, 6),
                round(c * 2 / 3 + exposed, 6),
                c,
                a,
                exposed,
                t,
            )
            if opt is not None and gap is not None and loss is not None:
                values += (o, gap[i], loss[i])
            lines.append(
                template.format(*values[:1], "true" if i < warmup else "false", *values[2:])
            )
            if columns:
                for key, value in zip(slots, values, strict=True):
                    cols[key].append(value)
        journal = rdir / f"rank_{rank:05d}.jsonl"
        journal.write_text("\n".join(lines) + "\n")
        if columns:
            for key, text in constants.items():
                cols[key] = [None if text is None else json.loads(text)] * steps
            records = [json.loads(line) for line in lines[: len(lines) - steps]]
            rank_columns.write_arrays(
                rank_columns.columns_path(out, rank),
                cols,
                records,
                rank_columns.journal_stamp(rundir.rank_jsonl(out, rank)),
            )
        summary = {
            "run_id": "bench",
            "rank": rank,
            "world_size": ranks,
            "hostname": host,
            "status": "ok",
            "last_step": steps - 1,
            "error": None,
            "memory": {"rss_peak_bytes": 350 * 2**20, "host_total_bytes": 512 * 2**30},
            "ddp_logging": None,
        }
        (rdir / f"rank_{rank:05d}.summary.json").write_text(json.dumps(summary))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--ranks", type=int, default=1024)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--per-node", type=int, default=8, help="ranks per node (nproc per node)")
    p.add_argument("--no-columns", action="store_true", help="journals only")
    p.add_argument(
        "--varying",
        action="store_true",
        help="opt_ms, gap_ms and loss drawn per step and rank (as a real run's) instead of "
        "constants, which the coordinator holds once for every rank",
    )
    a = p.parse_args()
    if a.ranks < 1 or a.steps < 1 or a.per_node < 1:
        p.error("--ranks, --steps and --per-node must be at least 1")
    if a.ranks > 99_999:
        p.error("--ranks: at most 99,999 (rank files are named rank_NNNNN)")
    write_run(
        a.out,
        a.ranks,
        a.steps,
        per_node=a.per_node,
        columns=not a.no_columns,
        varying=a.varying,
    )


if __name__ == "__main__":
    main()
