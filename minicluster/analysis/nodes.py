"""The `nodes` section of a result: per node its ranks, step figures, slowest rank and score.

A node is one launcher agent: torchrun's group rank (`node_rank` in the rank header) and the
hostname, since two agents on one machine share a hostname. A rank that left no records here
(its node died, or its files stay on its own node without a shared filesystem) is placed by the
job's roster, which local rank 0 of every node wrote at start.

Per node, the run-level definitions are reused on the node's ranks: per step the max over the
node's ranks of step time, compute and all-reduce time (a synchronous step lasts as long as its
slowest rank), then the median over measured steps.

Relative performance score (0..1, NVIDIA resiliency extension's "relative" score): the
reference's median compute time over this one's, the reference being the best peer at the same
level. Per rank: the fastest rank's median compute / this rank's. Per node: the fastest node's
compute (as above) / this node's. 1.0 is the best; 0.5 is twice as slow.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from minicluster.analysis.records import RankRecords
from minicluster.analysis.row_medians import row_nanmedians
from minicluster.analysis.steps import JobSteps, r4
from minicluster.core.units import format_ranks

# Node section key -> the step-table column its per-step max over the node's ranks is taken of.
NODE_SERIES = {
    "step_time_ms_median": "step_time_ms",
    "compute_ms_median": "compute_ms",
    "allreduce_ms_median": "comm_ms",
}
NODE_LOST = "node_lost"


@dataclass(frozen=True, order=True)
class NodeId:
    """One launcher agent: its node rank (None: the launcher gave none) and hostname."""

    node_rank: int | None
    hostname: str | None

    def sort_key(self) -> tuple[bool, int, bool, str]:
        return (
            self.node_rank is None,
            self.node_rank or 0,
            self.hostname is None,
            self.hostname or "",
        )

    def label(self) -> str:
        """`node 1 (host-a)`, `host-a` without a node rank, `unknown node` with neither."""
        if self.node_rank is None:
            return self.hostname or "unknown node"
        return f"node {self.node_rank} ({self.hostname or 'unknown host'})"


UNKNOWN = NodeId(None, None)


def locate_ranks(records: list[RankRecords], world_size: int) -> dict[int, NodeId]:
    """Rank -> its node: from its own header, else from the job's roster, else UNKNOWN."""
    where = {rank: UNKNOWN for rank in range(world_size)}
    for node in _roster_nodes(records):
        for rank in node["ranks"]:
            if 0 <= rank < world_size:
                where[rank] = NodeId(node["node_rank"], node["hostname"])
    for rec in records:
        h = rec.header
        if h is not None and 0 <= rec.rank < world_size:
            where[rec.rank] = NodeId(h.get("node_rank"), h.get("hostname"))
    return where


def _roster_nodes(records: list[RankRecords]) -> list[dict[str, Any]]:
    """The nodes of the first well-formed roster among the records (every node wrote the same)."""
    for rec in records:
        nodes = (rec.roster or {}).get("nodes")
        if isinstance(nodes, list) and all(_node_entry_ok(n) for n in nodes):
            return nodes
    return []


def _node_entry_ok(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and (node.get("node_rank") is None or isinstance(node.get("node_rank"), int))
        and (node.get("hostname") is None or isinstance(node.get("hostname"), str))
        and isinstance(node.get("ranks"), list)
        and all(isinstance(r, int) and not isinstance(r, bool) for r in node["ranks"])
    )


def ray_node_ids(records: list[RankRecords]) -> dict[int, str]:
    """Rank -> the Ray node ID its header recorded (ranks started by the Ray launcher only)."""
    out = {}
    for rec in records:
        node_id = ((rec.header or {}).get("ray") or {}).get("node_id")
        if isinstance(node_id, str):
            out[rec.rank] = node_id
    return out


def rank_scores(compute_ms: dict[int, float | None]) -> dict[int, float | None]:
    """Per rank, the fastest rank's median compute / this rank's (None without a median)."""
    return _relative(compute_ms)


def _relative(values: dict[Any, float | None]) -> dict[Any, float | None]:
    timed = [v for v in values.values() if v is not None and v > 0]
    if not timed:
        return dict.fromkeys(values)
    best = min(timed)
    return {k: (r4(best / v) if v is not None and v > 0 else None) for k, v in values.items()}


def nodes_section(
    where: dict[int, NodeId],
    table: JobSteps | None,
    rank_compute_ms: dict[int, float | None],
    missing: Iterable[int],
    failed: Iterable[int],
    stragglers: Iterable[int] = (),
    aborted: Iterable[int] = (),
    ray_nodes: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """One entry per node, ordered by node rank then hostname (see the module docstring).

    `where` places every rank (`locate_ranks`); `table` holds the measured steps (None for a
    collectives run: no step figures); `rank_compute_ms` each rank's median compute; `missing`
    the ranks without records here, `failed` every failed rank (missing ones included),
    `aborted` the ranks stopped because a rank elsewhere failed (a node whose ranks only
    aborted is `aborted`, not failed: the culprit is elsewhere); `ray_nodes` each rank's Ray
    node ID (`ray_node_ids`), giving each node its `ray_node_id` (null outside Ray).
    """
    missing, failed, stragglers = set(missing), set(failed), set(stragglers)
    aborted = set(aborted)
    ray_nodes = ray_nodes or {}
    members: dict[NodeId, list[int]] = {}
    for rank, node in sorted(where.items()):
        members.setdefault(node, []).append(rank)
    nodes = sorted(members, key=NodeId.sort_key)
    figures = _node_figures(nodes, members, table)
    scores = _relative({n: figures[n]["compute_ms_median"] for n in nodes})
    out = []
    for node in nodes:
        ranks = members[node]
        gone = [r for r in ranks if r in missing]
        bad = [r for r in ranks if r in failed and r not in missing]
        timed = [(rank_compute_ms.get(r), r) for r in ranks if rank_compute_ms.get(r) is not None]
        slowest = max(timed) if timed else None
        stopped = [r for r in ranks if r in aborted]
        status = "missing" if len(gone) == len(ranks) else ("failed" if gone or bad else "ok")
        if status == "ok" and stopped:
            status = "aborted"
        out.append(
            {
                "node_rank": node.node_rank,
                "hostname": node.hostname,
                "ranks": ranks,
                "status": status,
                "failed_ranks": bad,
                "missing_ranks": gone,
                "aborted_ranks": stopped,
                **figures[node],
                "slowest_rank": slowest[1] if slowest else None,
                "slowest_rank_compute_ms_median": slowest[0] if slowest else None,
                "stragglers": [r for r in ranks if r in stragglers],
                "performance_score": scores[node],
                "ray_node_id": next((ray_nodes[r] for r in ranks if r in ray_nodes), None),
            }
        )
    return out


def _node_figures(
    nodes: list[NodeId], members: dict[NodeId, list[int]], table: JobSteps | None
) -> dict[NodeId, dict[str, Any]]:
    """Per node, the medians over steps of the per-step max over its ranks (NODE_SERIES), and
    how many steps it measured. One pass over the [rank x step] matrices for all nodes."""
    empty = {"measured_steps": 0, **dict.fromkeys(NODE_SERIES)}
    out = {n: dict(empty) for n in nodes}
    if table is None or not table.indices.size:
        return out
    with_steps = {n: [r for r in members.get(n, []) if r in table.row] for n in nodes}
    timed_nodes = [n for n in nodes if with_steps[n]]
    if not timed_nodes:
        return out
    groups = [with_steps[n] for n in timed_nodes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: a node with no step
        for key, column in NODE_SERIES.items():
            # per step, the max over the node's ranks that recorded it
            per_step = table.group_step_max(column, groups)
            medians = row_nanmedians(per_step)  # 512 nodes' rows: not one by one
            if key == "step_time_ms_median":
                counts = (~np.isnan(per_step)).sum(axis=1)
                for i, n in enumerate(timed_nodes):
                    out[n]["measured_steps"] = int(counts[i])
            for i, n in enumerate(timed_nodes):
                out[n][key] = None if np.isnan(medians[i]) else r4(medians[i])
    return out


def spans_nodes(where: dict[int, NodeId]) -> bool:
    """Whether the job ran on more than one node (agents told apart by node rank or host)."""
    return len(set(where.values()) - {UNKNOWN}) > 1


def place(finding: dict[str, Any], where: dict[int, NodeId]) -> None:
    """Add the node of `finding["rank"]` (a straggler or a detected fault) to it, in place."""
    node = where.get(finding.get("rank", -1), UNKNOWN)
    finding.setdefault("node_rank", node.node_rank)
    finding.setdefault("hostname", node.hostname)


def node_names(where: dict[int, NodeId]) -> dict[int, str]:
    """Rank -> its node's label, for sentences that name a rank's node."""
    return {rank: node.label() for rank, node in where.items()}


def lost_nodes(
    nodes: list[dict[str, Any]],
    records: list[RankRecords],
    multi_node: bool,
    launcher_error: str | None = None,
) -> list[dict[str, Any]]:
    """Nodes the others lost: one detected fault per node (`rank` its lowest rank, `ranks` all).

    A node is lost when it left no records here while ranks of other nodes here stopped before
    their end (a failed summary, or none: their agent stopped them), or when every rank of it
    died without a summary while a rank of another node lived to write a failed one. The node
    that aggregates holds, without a shared filesystem, only its own ranks' files: a node whose
    files it never sees is named by the roster, and the evidence says what is known.
    """
    if not multi_node:
        return []
    by_rank = {r.rank: r for r in records}
    found = []
    for node in nodes:
        ranks = node["ranks"]
        present = [by_rank[r] for r in ranks if r in by_rank and by_rank[r].header is not None]
        if any(rec.summary is not None for rec in present):
            continue  # one of its ranks lived to report
        others = [rec for rec in records if rec.rank not in ranks and rec.header is not None]
        reported = [rec for rec in others if (rec.summary or {}).get("status", "ok") != "ok"]
        stopped = [rec for rec in others if rec.summary is None] + reported
        if not (reported if present else stopped):
            continue  # the others finished: this node's files are elsewhere, not lost
        if present:
            what = "wrote no summary: its processes died"
        else:
            what = "left no records here (without a shared filesystem its files stay on it)"
        steps = [s for s in (_last_step(rec) for rec in stopped) if s is not None]
        step = min(steps) + 1 if steps else None
        why = f"; {_ranks_word(rec.rank for rec in stopped)} on the other nodes stopped" + (
            f" at step {step}" if step is not None else ""
        )
        error = (reported[0].summary or {}).get("error") if reported else launcher_error
        if error:
            why += f" ({error})"
        label = NodeId(node["node_rank"], node["hostname"]).label()
        found.append(
            {
                "kind": NODE_LOST,
                "rank": ranks[0],
                "step": step,
                "ranks": ranks,
                "node_rank": node["node_rank"],
                "hostname": node["hostname"],
                "evidence": f"{label}, {_ranks_word(ranks)}: {what}{why}",
            }
        )
    return found


def _last_step(rec: RankRecords) -> int | None:
    """The last step a rank finished: its summary's, else its last step record's."""
    last = (rec.summary or {}).get("last_step", rec.last_step)
    return last if isinstance(last, int) and last >= 0 else None


def _ranks_word(ranks: Iterable[int]) -> str:
    listed = sorted(ranks)
    return f"rank{'s' if len(listed) > 1 else ''} {format_ranks(listed)}"
