"""The per-node table of a run report, from the result's `nodes` section (schema 1.2)."""

from __future__ import annotations

from minicluster.core.units import format_ranks
from minicluster.report.text import TextTable, fmt_num, text
from minicluster.result.model import NodeEntry, RunResult

NOTE = (
    "A node is one launcher agent (torchrun's group rank; two agents on one machine share a "
    "host). step, compute and allreduce: per step the max over the node's ranks, median over "
    "measured steps. score: relative performance score, the fastest node's compute / this "
    "node's (1 = fastest, 0.5 = twice as slow). missing: no records of the rank here (its "
    "node died, or its files stay on its own node without a shared filesystem)."
)


def nodes_table(result: RunResult, max_rows: int | None = None) -> TextTable | None:
    """One row per node; None for a one-node job or a result without the per-node section.

    With `max_rows`, keeps nodes that are not ok or hold a straggler, then the lowest scores,
    and says how many it left out.
    """
    nodes = result.node_entries
    if len(nodes) < 2:
        return None
    training = result.workload.workload_type != "collectives"
    headers = ["node", "host", "ranks", "status"]
    if training:
        headers += ["steps", "step ms", "compute ms", "allreduce ms", "slowest rank", "score"]
    table = TextTable(
        "Nodes",
        [*headers, "note"],
        note=NOTE if training else "A node is one launcher agent (torchrun's group rank).",
        numeric=set(range(4, len(headers))),
        wrap={len(headers)},
    )
    shown = _shown(nodes, max_rows)
    if len(shown) < len(nodes):
        table.note += (
            f" Showing {len(shown)} of {len(nodes)} nodes: nodes not ok or with a straggler "
            "first, then the lowest scores; every node is in result.json."
        )
    for n in shown:
        notes = []
        if n.missing_ranks:
            notes.append(f"missing ranks {format_ranks(n.missing_ranks)}")
        if n.failed_ranks:
            notes.append(f"failed ranks {format_ranks(n.failed_ranks)}")
        if n.stragglers:
            notes.append(f"straggler rank {format_ranks(n.stragglers)}")
        if n.flagged:
            table.highlight.add(len(table.rows))
        row = [text(n.node_rank), text(n.hostname), format_ranks(n.ranks), str(n.status)]
        if training:
            row += [
                text(n.measured_steps),
                fmt_num(n.step_time_ms_median),
                fmt_num(n.compute_ms_median),
                fmt_num(n.allreduce_ms_median),
                text(n.slowest_rank),
                fmt_num(n.performance_score),
            ]
        table.rows.append([*row, "; ".join(notes)])
    return table


def _shown(nodes: list[NodeEntry], max_rows: int | None) -> list[NodeEntry]:
    if max_rows is None or len(nodes) <= max_rows:
        return nodes

    def score(n: NodeEntry) -> float:
        s = n.performance_score
        return float(s) if isinstance(s, (int, float)) else 2.0

    order = sorted(range(len(nodes)), key=lambda i: (not nodes[i].flagged, score(nodes[i])))
    keep = set(order[:max_rows])
    return [n for i, n in enumerate(nodes) if i in keep]
