"""Merge the pairwise link test's records into the `pairwise` block of a result: per pair time,
busbw and #wrong, the N x N busbw matrix, per rank and per node medians (which pairs are slow,
and the suspect, are judged by `analysis.pair_verdict`). Never imports torch.

Rules (README "Finding the slow link"):
- a direction's time in one pass is the max over the pair's two ranks of their mean per transfer;
  over passes the fastest counts (a slow link is slow every time; a busy host slows a healthy
  pair now and then); busbw = algbw = size / time (nccl-tests' sendrecv: factor 1); the pair's
  busbw is the lower of its two directions' (a link is as fast as its slower direction), its
  time the higher;
- a pair the passes flag slow is re-measured beside healthy pairs and stays slow only when it is
  slow against them (`pair_verdict.recheck`, `core.pair_recheck`);
- per rank and per node, the median over the pairs with an end there.
"""

from __future__ import annotations

import statistics
from typing import Any

from minicluster.analysis.collectives import benchmark_metrics, benchmark_result
from minicluster.analysis.frame import RunFrame
from minicluster.analysis.pair_verdict import (
    RANK_RULE,
    RECHECK_RULE,
    distribution,
    judge,
    judge_nodes,
    not_judged,
    ranks_not_judged,
    recheck,
    slow_node_text,
    slow_rank_text,
    suspect,
    verdict,
)
from minicluster.analysis.records import RankRecords
from minicluster.core import pair_recheck, pairs, rank_format
from minicluster.core.collective_defs import algbw_gbps
from minicluster.core.metrics import MetricValue, metric, unavailable
from minicluster.core.units import format_size

RULE = (
    "per direction and pass: mean per transfer over `iters` back-to-back transfers on each rank, "
    "max over the pair's two ranks (nccl-tests); then the fastest pass"
)
FORMULAS = {
    "time_us": "a pair's: the higher of its two directions' times",
    "algbw_gbps": "size_bytes / time_s / 1e9 (decimal GB/s)",
    "busbw_gbps": "algbw_gbps x 1 (send/recv, nccl-tests sendrecv); a pair's is its lower "
    "direction's",
    "z": "(busbw - median) / max(MAD x 1.4826, mad_floor_frac x median) over measured pairs",
}
NO_ALLREDUCE = "the pairwise link test runs send/recv between two ranks, no all_reduce"


def pairwise_result(frame: RunFrame, aggregated_at: str | None = None) -> dict[str, Any]:
    """The canonical result of a pairwise link test (`aggregated_at` fixed for golden tests)."""
    block, errors = pairwise_block(frame)
    bad = set(block["slow_ranks"])
    label = dict(zip(block["participants"], block["labels"], strict=True))
    # a slow rank is one finding (every link of it, as `slow_link:rank=R` without a peer
    # injects), its pairs are in its evidence; any other slow pair is a link
    detected = [
        {
            "kind": "slow_link",
            "rank": x,
            "step": None,
            "evidence": slow_rank_text(x, block, label).split(": ", 1)[1],
        }
        for x in sorted(bad)
    ]
    bad_nodes = set(block["slow_nodes"])
    detected += [
        {
            "kind": "slow_link",
            "rank": None,
            "ranks": [r for r, n in enumerate(block["rank_nodes"]) if n == node],
            "step": None,
            "evidence": slow_node_text(node, block).removeprefix("SLOW NODE: "),
        }
        for node in sorted(bad_nodes)
    ]
    detected += [
        {
            "kind": "slow_link",
            "rank": p["a"],
            "peer": p["b"],
            "step": None,
            "evidence": p["why_slow"],
        }
        for p in block["pairs"]
        if p["slow"]
        and not bad & {p["a"], p["b"]}
        and not (p["node_a"] != p["node_b"] and bad_nodes & {p["node_a"], p["node_b"]})
    ]
    metrics = benchmark_metrics(frame, _metrics(block))
    return benchmark_result(frame, metrics, aggregated_at, {"pairwise": block}, detected, errors)


def pairwise_block(frame: RunFrame) -> tuple[dict[str, Any], list[str]]:
    """The `pairwise` block, and lines for the result's errors (unmeasured and wrong pairs)."""
    s = frame.config.collectives
    plan = _plan(frame.records)
    rank_nodes = _rank_nodes(frame, plan)
    who = plan["participants"] if plan else []
    per_node = s.per == "node"
    label = {r: (rank_nodes.get(r, "?") if per_node else f"rank {r}") for r in who}
    errors: list[str] = []
    rounds = pairs.round_robin(who) if len(who) >= 2 else []
    scheduled = [p for r in rounds for p in r]
    if s.schedule == "serial":
        rounds = pairs.serial(rounds)
    if not plan:
        errors.append("no rank wrote the pairwise plan: no pair was measured")
    lines = _pair_lines(frame.records)
    size = int(plan["size_bytes"]) if plan else 0
    rows = [_pair_row(a, b, lines.get((a, b), []), size, rank_nodes) for a, b in scheduled]
    evidence = judge(rows, s.outlier_z, s.min_busbw_gbps, s.pair_mad_floor, label, rank_nodes)
    flagged_ranks = {x for x, ev in evidence.items() if ev["slow"]}
    node_ev = {} if per_node else judge_nodes(rows, rank_nodes, s.outlier_z, s.pair_mad_floor)
    node_flagged = {
        p: n
        for n, ev in node_ev.items()
        if ev["slow"]
        for p in pair_recheck.node_pairs([(r["a"], r["b"]) for r in rows], rank_nodes, n)
    }
    flagged = [[r["a"], r["b"]] for r in rows if r["slow"]]
    rechecks = [ln for rec in frame.records for ln in rec.other.get(rank_format.PAIR_RECHECK, [])]
    recheck(
        rows,
        rechecks,
        size,
        s.outlier_z,
        s.min_busbw_gbps,
        s.pair_mad_floor,
        s.recheck_rounds,
        flagged_ranks,
        set(node_flagged),
    )
    dist = distribution(rows, s.pair_mad_floor)
    # a rank flagged by the rank rule is slow when every measured pair with it stayed slow
    slow_ranks = sorted(
        x
        for x in flagged_ranks
        if all(r["slow"] for r in rows if x in (r["a"], r["b"]) and r["busbw_gbps"] is not None)
    )
    by_row = {(r["a"], r["b"]): r for r in rows}
    slow_nodes = sorted(
        n
        for n in set(node_flagged.values())
        if all(
            by_row[p]["slow"]
            for p, m in node_flagged.items()
            if m == n and by_row[p]["busbw_gbps"] is not None
        )
    )
    for row in rows:
        name = f"pair {label[row['a']]} - {label[row['b']]}"
        if row["status"] != "measured":
            errors.append(f"{name}: not measured ({row['reason']})")
        if row["wrong"]:
            errors.append(f"{name}: {row['wrong']} wrong elements")
    slow = [r for r in rows if r["slow"]]
    named = suspect(slow, rows, rank_nodes, label, per_node, set(slow_ranks), set(slow_nodes))
    block: dict[str, Any] = {
        "per": s.per,
        "schedule": s.schedule,
        "transport": plan.get("transport") if plan else None,
        "rule": RULE,
        "formulas": FORMULAS,
        "size_bytes": size or None,
        "nominal_bytes": s.pair_bytes,
        "count": plan.get("count") if plan else None,
        "dtype": s.dtype,
        "iters": s.iters,
        "warmup_iters": s.warmup_iters,
        "passes": s.passes,
        "participants": who,
        "labels": [label[r] for r in who],
        "rank_nodes": [rank_nodes.get(r) for r in range(frame.world_size)],
        "rounds": len(rounds),
        "outlier_z": s.outlier_z,
        "min_busbw_gbps": s.min_busbw_gbps,
        "mad_floor_frac": s.pair_mad_floor,
        "distribution": dist,
        "pairs": rows,
        "matrix_gbps": _matrix(who, rows),
        "slow_pairs": [[r["a"], r["b"]] for r in slow],
        "recheck_rounds": s.recheck_rounds,
        "recheck_rule": RECHECK_RULE,
        "flagged_pairs": flagged,
        "cleared_pairs": [
            [r["a"], r["b"]] for r in rows if (r["recheck"] or {}).get("status") == "cleared"
        ],
        "wrong_total": sum(r["wrong"] or 0 for r in rows),
        "suspect": named,
        "rank_rule": RANK_RULE,
        "slow_ranks": slow_ranks,
        "slow_nodes": slow_nodes,
        "ranks_not_judged": ranks_not_judged(who, rows, rank_nodes),
        "not_judged": not_judged(
            rows, dist, s.min_busbw_gbps, s.outlier_z, s.pair_mad_floor, label
        ),
        "per_rank": _per_rank(who, rows, rank_nodes, evidence, set(slow_ranks)),
        "per_node": _per_node(rows, rank_nodes, node_ev, set(slow_nodes)),
    }
    block["verdict"] = verdict(block, label)
    return block, errors


def _plan(records: list[RankRecords]) -> dict[str, Any] | None:
    """Rank 0's plan (every rank wrote the same one), else the lowest rank's."""
    for rec in sorted(records, key=lambda r: r.rank):
        for line in rec.collectives:
            if line.get("type") == rank_format.PAIR_PLAN:
                return line
    return None


def _rank_nodes(frame: RunFrame, plan: dict[str, Any] | None) -> dict[int, str]:
    """The node of every rank: as the run used it (the plan), else from the headers."""
    if plan and plan.get("nodes"):
        return {r: str(n) for r, n in enumerate(plan["nodes"])}
    return {h["rank"]: pairs.node_of(h) for h in frame.headers}


def _pair_lines(records: list[RankRecords]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """(a, b) -> every record of that pair, from both ranks and every pass."""
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for rec in records:
        for line in rec.collectives:
            if line.get("type") == rank_format.PAIR:
                out.setdefault((line["a"], line["b"]), []).append({**line, "_rank": rec.rank})
    return out


def _pair_row(
    a: int, b: int, lines: list[dict[str, Any]], size: int, rank_nodes: dict[int, str]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "a": a,
        "b": b,
        "node_a": rank_nodes.get(a),
        "node_b": rank_nodes.get(b),
        "round": next((ln["round"] for ln in lines), None),
        "status": "unavailable",
        "reason": None,
        "time_us_ab": None,
        "time_us_ba": None,
        "time_us_ab_passes": [],
        "time_us_ba_passes": [],
        "busbw_ab_gbps": None,
        "busbw_ba_gbps": None,
        "time_us": None,
        "busbw_gbps": None,
        "wrong": None,
        "z": None,
        "slow": False,
        "why_slow": None,
    }
    measured = [ln for ln in lines if ln.get("status") == "measured"]
    if not measured or size <= 0:
        missing = [r for r in (a, b) if r not in {ln["_rank"] for ln in lines}]
        row["reason"] = (
            f"rank {', '.join(map(str, missing))} left no record of it"
            if missing
            else "; ".join(sorted({str(ln.get("reason")) for ln in lines}))
        )
        return row
    # Per pass, both ranks recorded the max over the pair (the max over their records covers a
    # lost file); over passes the fastest counts: a slow link is slow in every pass.
    by_pass: dict[int, list[dict[str, Any]]] = {}
    for ln in measured:
        by_pass.setdefault(int(ln.get("pass", 0)), []).append(ln)
    ab = [max(float(ln["time_us_ab_max"]) for ln in by_pass[k]) for k in sorted(by_pass)]
    ba = [max(float(ln["time_us_ba_max"]) for ln in by_pass[k]) for k in sorted(by_pass)]
    t_ab, t_ba = min(ab), min(ba)
    bw_ab, bw_ba = algbw_gbps(size, t_ab), algbw_gbps(size, t_ba)
    checked = [ln["wrong"] for ln in measured if ln.get("wrong") is not None]
    row.update(
        status="measured",
        time_us_ab=t_ab,
        time_us_ba=t_ba,
        time_us_ab_passes=ab,
        time_us_ba_passes=ba,
        busbw_ab_gbps=bw_ab,
        busbw_ba_gbps=bw_ba,
        time_us=max(t_ab, t_ba),
        busbw_gbps=min(bw_ab, bw_ba),
        wrong=sum(checked) if checked else None,
    )
    one_sided = [k for k, lns in by_pass.items() if len({ln["_rank"] for ln in lns}) < 2]
    if one_sided:
        row["reason"] = (
            f"one rank's record only in pass {', '.join(map(str, sorted(one_sided)))}: "
            "#wrong covers one direction there"
        )
    return row


def _matrix(who: list[int], rows: list[dict[str, Any]]) -> list[list[float | None]]:
    """`[i][j]`: busbw of direction who[i] -> who[j] (GB/s); None on the diagonal and unmeasured."""
    index = {r: i for i, r in enumerate(who)}
    m: list[list[float | None]] = [[None] * len(who) for _ in who]
    for r in rows:
        i, j = index[r["a"]], index[r["b"]]
        m[i][j], m[j][i] = r["busbw_ab_gbps"], r["busbw_ba_gbps"]
    return m


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _per_rank(
    who: list[int],
    rows: list[dict[str, Any]],
    rank_nodes: dict[int, str],
    evidence: dict[int, dict[str, Any]],
    slow_ranks: set[int],
) -> list[dict[str, Any]]:
    out = []
    for rank in who:
        ev = evidence.get(rank)
        mine = [r for r in rows if rank in (r["a"], r["b"])]
        bws = [r["busbw_gbps"] for r in mine if r["busbw_gbps"] is not None]
        out.append(
            {
                "rank": rank,
                "node": rank_nodes.get(rank),
                "pairs": len(mine),
                "pairs_measured": len(bws),
                "busbw_gbps_median": _median(bws),
                "time_us_median": _median([r["time_us"] for r in mine if r["time_us"]]),
                "slow_pairs": sum(1 for r in mine if r["slow"]),
                "best_busbw_gbps": ev["best_busbw_gbps"] if ev else None,
                "others_median_gbps": ev["others_median_gbps"] if ev else None,
                "others_pairs": ev["others_pairs"] if ev else None,
                "z_best": ev["z"] if ev else None,
                "slow": (rank in slow_ranks) if ev else None,
            }
        )
    return out


def _per_node(
    rows: list[dict[str, Any]],
    rank_nodes: dict[int, str],
    evidence: dict[str, dict[str, Any]],
    slow_nodes: set[str],
) -> list[dict[str, Any]]:
    """Per node, the median over every pair with an end on it (a pair inside it counts once),
    and the slow-node rule's evidence where it judged the node."""
    nodes = list(dict.fromkeys(rank_nodes[r] for r in sorted(rank_nodes)))
    out = []
    for node in nodes:
        ev = evidence.get(node)
        mine = [r for r in rows if node in (r["node_a"], r["node_b"])]
        bws = [r["busbw_gbps"] for r in mine if r["busbw_gbps"] is not None]
        out.append(
            {
                "node": node,
                "ranks": [r for r in sorted(rank_nodes) if rank_nodes[r] == node],
                "pairs": len(mine),
                "pairs_measured": len(bws),
                "busbw_gbps_median": _median(bws),
                "slow_pairs": sum(1 for r in mine if r["slow"]),
                "best_busbw_gbps": ev["best_busbw_gbps"] if ev else None,
                "others_median_gbps": ev["others_median_gbps"] if ev else None,
                "others_pairs": ev["others_pairs"] if ev else None,
                "z_best": ev["z"] if ev else None,
                "slow": (node in slow_nodes) if ev else None,
            }
        )
    return out


def _metrics(block: dict[str, Any]) -> dict[str, MetricValue]:
    measured = [r["busbw_gbps"] for r in block["pairs"] if r["busbw_gbps"] is not None]
    m = {"allreduce_ms": unavailable("allreduce_ms", NO_ALLREDUCE)}
    if not measured:
        m["busbw_gbps"] = unavailable("busbw_gbps", "no pair was measured")
        return m
    size = block["size_bytes"]
    m["busbw_gbps"] = metric(
        "busbw_gbps",
        statistics.median(measured),
        "derived",
        f"median over {len(measured)} pairs of the pair's busbw (its slower direction), send/recv "
        f"of {format_size(size)} ({size} B), busbw = algbw (nccl-tests sendrecv); {RULE}",
    )
    return m
