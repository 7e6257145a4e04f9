"""Bytes an in-band gather moves to rank 0: every rank's log (today) vs one reduction per node.

For a run directory (every node's `ranks/` files in one place: a real run, or one written by
`gen_rank_files.py`), prints the bytes `torch.distributed.gather_object` would pickle per rank
(its `RankLog`, steps included, as `rank.session` gathers it now) beside the bytes per node of a
node reduction (`analysis.node_reduce`: its codec's bytes, its ranks' logs without their steps
but the last, pickled the same way, and the columns the lean records keep whole for the
per-step accounting, counted as the codec's base64 float64 arrays). Computed from the recorded files, not measured on
a wire: the in-band path does not carry node reductions yet.

usage: python scripts/bench_node_reduce.py RUN_DIR
       python scripts/bench_node_reduce.py --ranks 64 --steps 1000 [--per-node 8]
"""

from __future__ import annotations

import argparse
import base64
import copy
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minicluster.analysis import node_reduce  # noqa: E402
from minicluster.analysis.records import read_run_dir  # noqa: E402
from minicluster.core import rank_format, rundir  # noqa: E402


def measure(run_dir: Path) -> dict[str, float]:
    ranks = sorted(int(p.name[5:10]) for p in rundir.ranks_dir(run_dir).glob("rank_*.jsonl"))
    logs = {r: rank_format.read_log(run_dir, r)[0] for r in ranks}
    per_rank = {r: len(pickle.dumps(log)) for r, log in logs.items()}
    records = read_run_dir(run_dir, workers=1)
    groups: dict[object, list] = {}
    for rec in records:
        head = rec.header or {}
        groups.setdefault(head.get("node_rank", head.get("hostname")), []).append(rec)
    t0 = time.perf_counter()
    reductions = [node_reduce.reduce_node(g) for g in groups.values()]
    reduce_s = time.perf_counter() - t0
    per_node = []
    comm = 0  # of which the per-rank comm_ms columns (the wait median's input)
    whole = 0  # of which the accounting's whole columns
    for red in reductions:
        comm += sum(len(base64.b64encode(c.tobytes())) for c in red.comm.values())
        lean_bytes = 0
        for rank in [r.rank for r in red.lean]:
            lean = copy.copy(logs[rank])
            lean.step_rows = lean.step_rows[-1:]  # the last row: failure order reads its time
            lean_bytes += len(pickle.dumps(lean))
        # the columns the lean records keep whole (the accounting's), as the codec's arrays
        cols = sum(
            len(base64.b64encode(c.astype("<f8").tobytes()))
            for r in red.lean
            for k, c in r.columns.items()
            if c.size > 1 and c.dtype.kind in "fiub"
        )
        whole += cols
        lean_bytes += cols
        per_node.append(len(red.to_bytes()) + lean_bytes)
    return {
        "ranks": len(ranks),
        "nodes": len(reductions),
        "steps": max((r.n_steps for r in records), default=0),
        "before": sum(per_rank.values()),
        "after": sum(per_node),
        "per_rank": sum(per_rank.values()) / len(per_rank),
        "per_node": sum(per_node) / len(per_node),
        "reduce_s": reduce_s,
        "comm_share": comm / max(1, sum(per_node)),
        "whole_share": whole / max(1, sum(per_node)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, nargs="?")
    p.add_argument("--ranks", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--per-node", type=int, default=8)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = a.run_dir
        if run_dir is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from gen_rank_files import write_run

            run_dir = Path(tmp)
            write_run(run_dir, a.ranks, a.steps, per_node=a.per_node, columns=False)
        m = measure(run_dir)
    print(
        f"{'ranks':>6} {'nodes':>6} {'steps':>6} {'bytes/rank':>11} {'bytes/node':>11} "
        f"{'in-band before':>15} {'after':>11} {'ratio':>6} {'comm cols':>9} {'acct cols':>9} {'reduce_s':>9}"
    )
    print(
        f"{m['ranks']:>6} {m['nodes']:>6} {m['steps']:>6} {m['per_rank']:>11,.0f} "
        f"{m['per_node']:>11,.0f} {m['before']:>15,} {m['after']:>11,} "
        f"{m['before'] / m['after']:>6.1f} {m['comm_share']:>9.0%} {m['whole_share']:>9.0%} {m['reduce_s']:>9.3f}"
    )


if __name__ == "__main__":
    main()
