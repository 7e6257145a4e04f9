"""`node.json`: what a node of a job across nodes leaves when rank 0 (and the result) is elsewhere.

No shared filesystem is assumed. Rank 0 gathers every rank's records in-band and writes the
complete result into its own output directory; on every node that does not see rank 0's files
(another machine, or another directory), local rank 0 writes `node.json` beside its ranks'
files: the job's run id, this node, its ranks and where the result went. With a shared
filesystem and one output directory, everything lands in that directory and no node.json is
needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from minicluster.core import clock, rank_format, rundir
from minicluster.core.io import atomic_write_json
from minicluster.core.units import format_ranks


def write_node_file(out_dir: Path, rank: int) -> Path | None:
    """On local rank 0 of a node that does not see rank 0's files, write `out_dir/node.json`
    from this rank's records (header and the job's roster); None when it is not needed."""
    if rank == 0:
        return None
    mine, _ = rank_format.read_log(out_dir, rank, keep_steps=False)
    header, roster = mine.header, mine.roster
    if header is None or roster is None:
        return None  # not local rank 0 (only it writes the roster), or a 1.0 rank file
    if _holds_rank0(out_dir, header.run_id):
        return None  # one directory for every node (a shared filesystem): the result lands here
    me = (header.node_rank, header.hostname)
    ranks = next(
        (n["ranks"] for n in roster.nodes if (n["node_rank"], n["hostname"]) == me), [rank]
    )
    ok = []
    for r in ranks:
        peer = rank_format.RankLog()
        peer.read_summary(rundir.rank_summary(out_dir, r), f"rank {r}")
        if peer.summary is not None and peer.summary.status == "ok":
            ok.append(r)
    rank0 = roster.rank0 or {}
    result_dir = rank0.get("out_dir")
    record = {
        "run_id": header.run_id,
        "node_rank": header.node_rank,
        "hostname": header.hostname,
        "ranks": ranks,
        "ranks_ok": ok,
        "result": {
            "hostname": rank0.get("hostname"),
            "path": str(rundir.result_path(Path(result_dir))) if result_dir else None,
        },
        "written_at": clock.utc_now_iso(),
    }
    path = rundir.node_path(out_dir)
    atomic_write_json(path, record)
    return path


def _holds_rank0(out_dir: Path, run_id: str) -> bool:
    """Whether rank 0 of this job writes into `out_dir` too (its header is here)."""
    try:
        with open(rundir.rank_jsonl(out_dir, 0), "rb") as f:
            first = rank_format.decode(json.loads(f.readline()), "rank 0's first line")
    except (OSError, ValueError):  # unreadable, malformed, or not a record this reader knows
        return False
    return isinstance(first, rank_format.Header) and first.run_id == run_id


def read_node_file(out_dir: Path) -> dict[str, Any] | None:
    """`out_dir/node.json` when it is there and well-formed, else None."""
    try:
        data = json.loads(rundir.node_path(out_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and all(k in data for k in rundir.NODE_KEYS)
    return data if ok else None


def where_the_result_went(node: dict[str, Any]) -> str:
    """One line for the user of a node that holds no result."""
    where = node["result"]
    label = (
        f"node {node['node_rank']} ({node['hostname']})"
        if node.get("node_rank") is not None
        else str(node.get("hostname"))
    )
    ok = node.get("ranks_ok") or []
    state = "ok" if len(ok) == len(node["ranks"]) else f"{len(ok)} of {len(node['ranks'])} ok"
    return (
        f"{label}: ranks {format_ranks(node['ranks'])} {state}; rank 0 wrote the result on "
        f"{where.get('hostname')} at {where.get('path')}"
    )


def print_node_line(out_dir: Path) -> bool:
    """Print where the result went when `out_dir` holds a node.json; whether it did."""
    node = read_node_file(out_dir)
    if node is None:
        return False
    print(f"minicluster: run {node['run_id']}: {where_the_result_went(node)}")
    print(f"node: {rundir.node_path(out_dir)}")
    sys.stdout.flush()
    return True
