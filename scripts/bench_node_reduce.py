"""Bytes an in-band gather moves to rank 0: every rank's log (the per-rank gather) vs one share
per node (the by-node gather, `rank.session._gather_by_node`).

For a run directory (every node's `ranks/` files in one place: a real run, or one written by
`gen_rank_files.py`), prints the bytes `torch.distributed.gather_object` pickles per rank (its
`RankLog`, steps included, as the per-rank gather sends it) beside the bytes per node of the
share a node's leader sends instead (`core.in_band.NodeShare` holding
`analysis.node_reduce.reduce_logs` of its ranks' logs, pickled the same way): the objects the
in-band path sends, counted here on the same objects built from the recorded files (no wire).
`raw` is the reduction before its zlib compression; `reduce_s` the leaders' reduce time, summed.

usage: python scripts/bench_node_reduce.py RUN_DIR
       python scripts/bench_node_reduce.py --ranks 64 --steps 1000 [--per-node 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minicluster.analysis import node_reduce  # noqa: E402
from minicluster.core import in_band, rank_format, rundir  # noqa: E402


def measure(run_dir: Path) -> dict[str, float]:
    ranks = sorted(int(p.name[5:10]) for p in rundir.ranks_dir(run_dir).glob("rank_*.jsonl"))
    logs = {r: rank_format.read_log(run_dir, r)[0] for r in ranks}
    per_rank = {r: in_band.pickled_size(log) for r, log in logs.items()}
    groups: dict[object, list[rank_format.RankLog]] = {}
    for log in logs.values():
        head = log.header
        groups.setdefault(None if head is None else (head.node_rank, head.hostname), []).append(log)
    per_node = []
    raw = 0
    reduce_s = 0.0
    steps = 0
    for node_logs in groups.values():
        t0 = time.perf_counter()
        reduction = node_reduce.reduce_logs(node_logs)
        reduce_s += time.perf_counter() - t0
        raw += len(zlib.decompress(reduction))
        ranks_of = [log.rank for log in node_logs]
        share = in_band.NodeShare(None, None, ranks_of, min(ranks_of), reduction=reduction)
        per_node.append(in_band.pickled_size(share))
        steps = max(steps, *(log.steps_seen for log in node_logs))
    return {
        "ranks": len(ranks),
        "nodes": len(groups),
        "steps": steps,
        "before": sum(per_rank.values()),
        "after": sum(per_node),
        "per_rank": sum(per_rank.values()) / len(per_rank),
        "per_node": sum(per_node) / len(per_node),
        "raw_per_node": raw / len(per_node),
        "reduce_s": reduce_s,
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
        f"{'raw/node':>11} {'in-band before':>15} {'after':>11} {'ratio':>6} {'reduce_s':>9}"
    )
    print(
        f"{m['ranks']:>6} {m['nodes']:>6} {m['steps']:>6} {m['per_rank']:>11,.0f} "
        f"{m['per_node']:>11,.0f} {m['raw_per_node']:>11,.0f} {m['before']:>15,} "
        f"{m['after']:>11,} {m['before'] / m['after']:>6.1f} {m['reduce_s']:>9.3f}"
    )


if __name__ == "__main__":
    main()
