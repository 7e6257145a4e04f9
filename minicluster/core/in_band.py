"""What a job's ranks send rank 0 in-band, node by node, and what it cost on the wire.

A job whose records are gathered in-band (no shared filesystem) gathers in two levels
(`rank.session`): each node's leader (its lowest rank: rank 0 leads its own node) gathers its
node's rank logs over a node-local group, reduces them with the reducer the caller gave (a
`NodeReducer`: the analysis side's `node_reduce.reduce_logs`; the rank layer never imports
analysis), and only the leaders send to rank 0: one `NodeShare` each. When any node's reduction
cannot be made, every node sends its rank logs instead (rank 0 can merge reductions only when
every node sent one), and the reason says which node and why: no record is lost.

`InBand.traffic()` is the result's `in_band` section: per node, the bytes its share took to
rank 0 and the bytes its ranks' logs would have taken (the per-rank gather), both the pickle
`torch.distributed.gather_object` sends (before it pads each object to the group's largest).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minicluster.core.rank_format import RankLog

NodeReducer = Callable[[list[RankLog]], bytes]

NODE_REDUCTIONS = "node reductions"
RANK_LOGS = "rank logs"
MEASURE = (
    "pickled bytes of each object torch.distributed.gather_object sent (measured on the "
    "objects, before gather_object pads each to the group's largest)"
)


@dataclass
class NodeShare:
    """One node's part of the in-band gather, sent by its leader to rank 0."""

    node_rank: int | None
    hostname: str | None
    ranks: list[int]
    leader: int
    reduction: bytes | None = None  # the node's reduction (the NodeReducer's bytes)
    logs: list[RankLog] = field(default_factory=list)  # its ranks' logs, when not reduced
    log_bytes: int = 0  # its ranks' logs pickled, each as the per-rank gather sends it
    reduce_ms: float | None = None  # the leader's time to reduce (None: not reduced)
    error: str | None = None  # why the node could not reduce


@dataclass
class InBand:
    """Rank 0's in-band gather: every node's share, with the bytes each took (measured at rank
    0 on the object it received), and `reason` when the nodes sent rank logs."""

    shares: list[NodeShare]
    sent_bytes: list[int]
    reason: str | None = None

    @property
    def method(self) -> str:
        reduced = self.shares and all(s.reduction is not None for s in self.shares)
        return NODE_REDUCTIONS if reduced else RANK_LOGS

    def reductions(self) -> list[bytes]:
        """Every node's reduction (the method is node reductions)."""
        return [s.reduction for s in self.shares if s.reduction is not None]

    def logs(self) -> list[RankLog]:
        """Every rank's log, in rank order (the method is rank logs)."""
        logs = [log for s in self.shares for log in s.logs]
        return sorted(logs, key=lambda log: -1 if log.rank is None else log.rank)

    def traffic(self) -> dict[str, Any]:
        """The result's `in_band` section."""
        nodes = [
            {
                "node_rank": s.node_rank,
                "hostname": s.hostname,
                "ranks": s.ranks,
                "leader": s.leader,
                "sent": "node reduction" if s.reduction is not None else RANK_LOGS,
                "bytes_to_rank0": sent,
                "rank_log_bytes": s.log_bytes,
                "reduce_ms": None if s.reduce_ms is None else round(s.reduce_ms, 3),
                "reduce_error": s.error,
            }
            for s, sent in zip(self.shares, self.sent_bytes, strict=True)
        ]
        return {
            "method": self.method,
            "reason": self.reason,
            "bytes_to_rank0": sum(self.sent_bytes),
            "rank_log_bytes": sum(s.log_bytes for s in self.shares),
            "measure": MEASURE,
            "nodes": nodes,
        }


def pickled_size(obj: Any) -> int:
    """The bytes `gather_object` pickles `obj` into (its default protocol)."""
    return len(pickle.dumps(obj))
