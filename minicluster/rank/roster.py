"""The job's roster: every node and its ranks, gathered from all ranks once when they start.

Local rank 0 of each node writes it into its rank file (`rank_format.ROSTER`), so a node that
holds only its own ranks' files (no shared filesystem) can still name the node and host of a
rank whose files it never sees, e.g. after that node died. Nodes are told apart by torchrun's
group rank as well as by hostname: two agents on one machine share the hostname.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.distributed as tdist

from minicluster.core.rank_format import Roster
from minicluster.rank.dist import RankInfo


def gather_roster(info: RankInfo, out_dir: Path) -> Roster:
    """Every rank's (hostname, node rank) gathered on all ranks: the `roster` record.

    A collective: every rank of the group calls it once. `rank0.out_dir` is rank 0's output
    directory as an absolute path on its own node (where `result.json` is written).
    """
    mine = (info.rank, info.hostname, info.node_rank, str(out_dir.resolve()))
    everyone: list[Any] = [None] * info.world_size
    tdist.all_gather_object(everyone, mine)
    return roster_record(everyone)


def roster_record(identities: list[Any]) -> Roster:
    """The roster record from every rank's `(rank, hostname, node_rank, out_dir)`."""
    nodes: dict[tuple[int | None, str], list[int]] = {}
    rank0: dict[str, Any] = {"hostname": None, "out_dir": None}
    for rank, hostname, node_rank, out_dir in identities:
        nodes.setdefault((node_rank, hostname), []).append(rank)
        if rank == 0:
            rank0 = {"hostname": hostname, "out_dir": out_dir}
    order = sorted(nodes, key=lambda k: (k[0] is None, k[0] or 0, k[1]))
    return Roster(
        nodes=[
            {"node_rank": node_rank, "hostname": host, "ranks": sorted(nodes[(node_rank, host)])}
            for node_rank, host in order
        ],
        rank0=rank0,
    )
