"""Judge the pairs of the pairwise link test: which are slow (robust z of ln(busbw) over all
measured pairs, or below an absolute floor), what they have in common (the suspect: a link, a
rank or a node), and the one-line verdict. Never imports torch.

Rules (README "Finding the slow link"):
- z = robust z of ln(busbw) (median and MAD of the logs, `analysis.robust`), the MAD counted as
  at least `collectives.pair_mad_floor`; it needs `MIN_PAIRS_FOR_Z` measured pairs;
- slow: z < -outlier_z, or busbw < min_busbw_gbps;
- a flagged pair is re-measured beside healthy pairs after the passes and stays slow only when
  it is slow against them too (`core.pair_recheck`; `recheck`), else it is cleared;
- the suspect is what every slow pair has in common: one slow pair whose ranks are normal with
  every other peer is the link; slow pairs that all involve one rank name that rank; slow pairs
  across nodes that all touch one node name that node; otherwise no single suspect.
"""

from __future__ import annotations

import math
from typing import Any

from minicluster.analysis.robust import Spread, spread
from minicluster.core import pair_recheck
from minicluster.core.collective_defs import algbw_gbps

MIN_PAIRS_FOR_Z = pair_recheck.MIN_PAIRS_FOR_Z  # below this, only min_busbw judges
RECHECK_RULE = (
    "every pair the passes flag slow is measured again in `recheck_rounds` rounds, each beside "
    "a healthy pair (one after the other, alone, the order alternating); per round ratio = its "
    "busbw / the healthy pair's; it stays slow only when the one-sided upper confidence bound "
    "of the median ratio (sign test, >= 95% where the rounds allow) is below the cut "
    "exp(-outlier_z x pair_mad_floor) (the passes' scale when the floor is 0; or, flagged by "
    "--min-busbw, the same bound of its busbw is below it); otherwise it is cleared"
)

RANK_RULE = (
    "a rank (or node) is flagged slow when its best pair's busbw is below -outlier_z by the "
    "robust z of ln(busbw) over the pairs without it (3 or more: 4 ranks or more), the MAD "
    "counted as at least mad_floor_frac: then every pair with it is slow; each of its pairs is "
    "re-measured beside healthy pairs, and the rank is named slow when every pair with it "
    "stays slow"
)


def judge(
    rows: list[dict[str, Any]],
    outlier_z: float,
    min_busbw: float | None,
    floor: float,
    label: dict[int, str] | None = None,
    nodes: dict[int, str] | None = None,
) -> dict[int, dict[str, Any]]:
    """Set each measured row's `z`, `slow` and `why_slow` (rows: dicts with `busbw_gbps`, None
    when the pair was not measured); every pair of a slow rank (`core.pair_recheck.slow_ranks`)
    is slow too. Returns the rank rule's evidence per rank it could judge (`nodes`: every
    rank's node, as the ranks judged it: cross-node pairs only across nodes)."""
    measured = [r for r in rows if r["busbw_gbps"] is not None]
    dist = _spread(measured, floor)
    evidence = pair_recheck.rank_evidence(
        {(r["a"], r["b"]): r["busbw_gbps"] for r in measured}, outlier_z, floor, nodes
    )
    name = label or {}
    for r in measured:
        why = []
        if dist is not None:
            r["z"] = dist.z(r["busbw_gbps"])
            if r["z"] < -outlier_z:
                why.append(
                    f"busbw {r['busbw_gbps']:.3g} GB/s, z {r['z']:.1f} < -{outlier_z:g} "
                    f"(median of {dist.n} pairs {dist.median:.3g} GB/s)"
                )
        if min_busbw is not None and r["busbw_gbps"] < min_busbw:
            why.append(f"busbw {r['busbw_gbps']:.3g} GB/s < --min-busbw {min_busbw:g}")
        for x in (r["a"], r["b"]):
            ev = evidence.get(x)
            if ev is not None and ev["slow"]:
                why.append(
                    f"every pair with {name.get(x, f'rank {x}')} is slow: its best of "
                    f"{ev['pairs']} pairs {ev['best_busbw_gbps']:.3g} GB/s is "
                    f"{ev['ratio']:.2f} of the median of the {ev['others_pairs']} pairs without "
                    f"it ({ev['others_median_gbps']:.3g} GB/s), z {ev['z']:.1f} < -{outlier_z:g}"
                )
        if why:
            r["slow"] = True
            r["why_slow"] = "; ".join(why)
    return evidence


def _spread(measured: list[dict[str, Any]], floor: float) -> Spread | None:
    if len(measured) < MIN_PAIRS_FOR_Z:
        return None
    return spread([r["busbw_gbps"] for r in measured], floor_frac=floor, log=True)


def judge_nodes(
    rows: list[dict[str, Any]], rank_nodes: dict[int, str], outlier_z: float, floor: float
) -> dict[str, dict[str, Any]]:
    """The slow-node rule of a per-rank run with 2 or more ranks on a node
    (`core.pair_recheck.node_evidence`): every cross-node pair of a slow node is slow too.
    Returns the rule's evidence per node it could judge."""
    measured = [r for r in rows if r["busbw_gbps"] is not None]
    evidence = pair_recheck.node_evidence(
        {(r["a"], r["b"]): r["busbw_gbps"] for r in measured}, rank_nodes, outlier_z, floor
    )
    for node, ev in evidence.items():
        if not ev["slow"]:
            continue
        mine = set(pair_recheck.node_pairs([(r["a"], r["b"]) for r in measured], rank_nodes, node))
        for r in measured:
            if (r["a"], r["b"]) not in mine:
                continue
            why = (
                f"every cross-node pair with {node} is slow: its best of {ev['pairs']} "
                f"{ev['best_busbw_gbps']:.3g} GB/s is {ev['ratio']:.2f} of the median of the "
                f"{ev['others_pairs']} cross-node pairs without it "
                f"({ev['others_median_gbps']:.3g} GB/s), z {ev['z']:.1f} < -{outlier_z:g}"
            )
            r["slow"] = True
            r["why_slow"] = f"{r['why_slow']}; {why}" if r["why_slow"] else why
    return evidence


def distribution(rows: list[dict[str, Any]], floor: float) -> dict[str, Any]:
    """The spread of the measured pairs' busbw (`Spread.to_dict`), or why there is none."""
    measured = [r for r in rows if r["busbw_gbps"] is not None]
    dist = _spread(measured, floor)
    if dist is None:
        return {
            "n": len(measured),
            "reason": f"fewer than {MIN_PAIRS_FOR_Z} measured pairs: no distribution to judge "
            "against (only --min-busbw applies)",
        }
    return {**dist.to_dict(), "reason": None}


def ranks_not_judged(
    who: list[int], rows: list[dict[str, Any]], nodes: dict[int, str] | None = None
) -> str | None:
    """Why the rank rule (`RANK_RULE`) judged no rank, or None when it could judge one. `nodes`:
    every rank's node, as `judge` was given them: with ranks on two nodes or more only the
    cross-node pairs count (`core.pair_recheck.rule_pairs`), and the reason says so."""
    measured = {(r["a"], r["b"]): r["busbw_gbps"] for r in rows if r["busbw_gbps"] is not None}
    counted = pair_recheck.rule_pairs(measured, nodes)
    without = [0]  # per rank with 2 or more counted pairs: the counted pairs without it
    for x in who:
        mine = sum(1 for p in counted if x in p)
        if mine >= 2:
            if len(counted) - mine >= MIN_PAIRS_FOR_Z:
                return None
            without.append(len(counted) - mine)
    if len(counted) < len(_pairs_measured(measured)):
        return (
            f"a slow rank is not judged with {_placement(who, nodes or {})}: only cross-node "
            "pairs count (a pair inside a node crosses no NIC), and they leave at most "
            f"{max(without)} without any one rank, {MIN_PAIRS_FOR_Z} needed (more ranks or "
            "nodes judge it: 2 nodes x 3 ranks, 3 nodes x 2); --min-busbw judges each pair "
            "against a floor"
        )
    if len(who) == 3:
        return (
            "a slow rank is not judged with 3 ranks: a rank's 2 pairs are 2 of the 3, and the "
            f"1 pair without it is too few to judge them against ({MIN_PAIRS_FOR_Z} needed); "
            "--min-busbw judges each pair against a floor"
        )
    return (
        f"no rank has 2 measured pairs and {MIN_PAIRS_FOR_Z} measured pairs without it: "
        "a slow rank is not judged (4 ranks or more judge it)"
    )


def _pairs_measured(measured: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    return [p for p, b in measured.items() if b > 0 and math.isfinite(b)]


def _placement(who: list[int], nodes: dict[int, str]) -> str:
    """`2 nodes x 2 ranks`, or `5 ranks on 2 nodes (3, 2)` when the nodes hold different counts."""
    per_node: dict[str, int] = {}
    for x in who:
        per_node[nodes.get(x, "?")] = per_node.get(nodes.get(x, "?"), 0) + 1
    counts = list(per_node.values())
    if len(set(counts)) == 1:
        plural = "s" if counts[0] != 1 else ""
        return f"{len(counts)} nodes x {counts[0]} rank{plural}"
    return f"{len(who)} ranks on {len(counts)} nodes ({', '.join(map(str, counts))})"


def not_judged(
    rows: list[dict[str, Any]],
    dist: dict[str, Any],
    min_busbw: float | None,
    outlier_z: float,
    floor: float,
    label: dict[int, str],
) -> str | None:
    """Why the pairs' speed could not be judged (exit 1, NOT JUDGED), or None. Without
    --min-busbw: fewer than MIN_PAIRS_FOR_Z measured pairs (nothing to judge a pair against);
    or 3 ranks where both pairs of one rank are below the cut exp(-outlier_z x scale) of the
    pair without it (a slow rank, or one fast pair: 3 ranks cannot tell which)."""
    measured = [r for r in rows if r["busbw_gbps"] is not None]
    if not measured:
        return f"no pair of {len(rows)} was measured (see the errors)"
    if min_busbw is not None:
        return None
    if dist.get("median") is None:
        return (
            f"{len(measured)} of {len(rows)} pairs measured, fewer than {MIN_PAIRS_FOR_Z}: "
            "nothing to judge a pair's speed against, and no --min-busbw; give --min-busbw "
            "GBPS (the expected busbw of a link) to judge them"
        )
    ranks = sorted({x for r in rows for x in (r["a"], r["b"])})
    if len(ranks) != 3 or len(measured) != 3:
        return None
    cut = math.exp(-outlier_z * max(floor, float(dist.get("scale") or 0.0)))
    for x in ranks:
        mine = [r["busbw_gbps"] for r in measured if x in (r["a"], r["b"])]
        (other,) = [r for r in measured if x not in (r["a"], r["b"])]
        if max(mine) < cut * other["busbw_gbps"]:
            a, b = label[other["a"]], label[other["b"]]
            return (
                f"both pairs of {label[x]} are below {cut:.2f} of the pair without it "
                f"({a} - {b}: best {max(mine):.3g} vs {other['busbw_gbps']:.3g} GB/s): "
                f"{label[x]} is slow, or {a} - {b} is fast; with 3 ranks nothing tells which: "
                "give --min-busbw GBPS, or run 4 ranks or more"
            )
    return None


def suspect(
    slow: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    rank_nodes: dict[int, str],
    label: dict[int, str],
    per_node: bool,
    slow_ranks: set[int] | None = None,
    slow_nodes: set[str] | None = None,
) -> dict[str, Any]:
    """What every slow pair has in common (`kind`: link, rank, node or None) and why; a rank in
    `slow_ranks` (every pair with it slow against the pairs without it) is named as such."""
    none: dict[str, Any] = {"kind": None, "ranks": [], "nodes": [], "text": None}
    if not slow:
        return none
    common = set.intersection(*({r["a"], r["b"]} for r in slow))
    what = "node" if per_node else "rank"
    if len(slow) == 1:
        a, b = slow[0]["a"], slow[0]["b"]
        others = [r for r in rows if not r["slow"] and r["busbw_gbps"] is not None]
        fine = [x for x in (a, b) if any(x in (r["a"], r["b"]) for r in others)]
        if len(fine) == 2:
            text = (
                f"the link between {label[a]} and {label[b]}: the only slow pair, and both "
                f"{what}s are normal with every other peer"
            )
        else:
            text = (
                f"{label[a]}, {label[b]} or the link between them: the only slow pair (too "
                "few other pairs to tell which end)"
            )
        return {
            "kind": "link",
            "ranks": [a, b],
            "nodes": sorted({rank_nodes.get(a), rank_nodes.get(b)} - {None}),
            "text": text,
        }
    if len(common) == 1:
        (x,) = common
        total = sum(1 for r in rows if x in (r["a"], r["b"]))
        text = f"{label[x]}: in every slow pair ({len(slow)} of its {total} pairs slow)"
        if x in (slow_ranks or set()):
            text = (
                f"{label[x]}: every pair with it slow ({len(slow)} of {total}) against the "
                f"pairs without it: suspect {label[x]}'s link/NIC"
            )
        return {
            "kind": "node" if per_node else "rank",
            "ranks": [x],
            "nodes": [rank_nodes[x]] if x in rank_nodes else [],
            "text": text,
        }
    # Ranks on different nodes can still share the node that every slow pair touches.
    node_sets = [{rank_nodes.get(r["a"]), rank_nodes.get(r["b"])} for r in slow]
    common_nodes = set.intersection(*node_sets) - {None}
    if not per_node and len(set(rank_nodes.values())) > 1 and len(common_nodes) == 1:
        (node,) = common_nodes
        text = f"{node}: every slow pair has a rank on this node"
        if node in (slow_nodes or set()):
            text = (
                f"{node}: every cross-node pair with it slow against the cross-node pairs "
                f"without it: suspect {node}'s link/NIC"
            )
        return {
            "kind": "node",
            "ranks": [],
            "nodes": [node],
            "text": text,
        }
    counts = {
        x: sum(1 for r in slow if x in (r["a"], r["b"])) for r in slow for x in (r["a"], r["b"])
    }
    most = max(counts.values())
    top = sorted(x for x, c in counts.items() if c == most)
    return {
        **none,
        "text": f"no single {what} is in every slow pair ({len(slow)} slow pairs; most often: "
        + ", ".join(f"{label[x]} ({most})" for x in top)
        + ")",
    }


def verdict(block: dict[str, Any], label: dict[int, str]) -> str:
    """One line: the slow and wrong pairs with why, and the suspect; or that all is well."""
    rows = block["pairs"]
    measured = [r for r in rows if r["busbw_gbps"] is not None]
    dist = block["distribution"]
    if not rows:
        return "pairwise: no pair was measured"
    parts = []
    slow = [r for r in rows if r["slow"]]
    wrong = [r for r in rows if r["wrong"]]
    bad = set(block.get("slow_ranks") or [])
    for x in sorted(bad):
        parts.append(slow_rank_text(x, block, label))
    bad_nodes = set(block.get("slow_nodes") or [])
    for n in sorted(bad_nodes):
        parts.append(slow_node_text(n, block))
    rest = [
        r
        for r in slow
        if not bad & {r["a"], r["b"]}
        and not (r["node_a"] != r["node_b"] and bad_nodes & {r["node_a"], r["node_b"]})
    ]
    if rest:
        named = "; ".join(f"{label[r['a']]} - {label[r['b']]}: {r['why_slow']}" for r in rest)
        parts.append(f"SLOW: {len(rest)} of {len(measured)} pairs ({named})")
    if slow and block["suspect"]["text"]:
        parts.append(f"suspect: {block['suspect']['text']}")
    if wrong:
        parts.append(
            "WRONG: "
            + "; ".join(f"{label[r['a']]} - {label[r['b']]}: {r['wrong']} elements" for r in wrong)
        )
    cleared = [r for r in rows if (r.get("recheck") or {}).get("status") == "cleared"]
    if cleared:
        parts.append(
            "cleared on re-measure: "
            + "; ".join(
                f"{label[r['a']]} - {label[r['b']]} (flagged by the passes; {r['recheck']['text']})"
                for r in cleared
            )
        )
    if block.get("not_judged"):
        # one or two pairs (or 3 ranks, one rank's both pairs slow): nothing to judge by
        parts.insert(
            len(parts) - (1 if cleared else 0),
            f"NOT JUDGED: speed: {block['not_judged']}" + ("" if wrong else "; none wrong"),
        )
    if slow or wrong or block.get("not_judged"):
        return "pairwise: " + "; ".join(parts)
    median = dist.get("median")
    where = f"median busbw {median:.3g} GB/s, " if median is not None else ""
    if block.get("ranks_not_judged") and not block["min_busbw_gbps"]:
        parts.append(block["ranks_not_judged"])
    return (
        f"pairwise: ok: {len(measured)} of {len(rows)} pairs measured, none slow or wrong "
        f"({where}slow: z < -{block['outlier_z']:g}"
        + (f" or busbw < {block['min_busbw_gbps']:g} GB/s" if block["min_busbw_gbps"] else "")
        + ")"
        + "".join(f"; {p}" for p in parts)
    )


def recheck(
    rows: list[dict[str, Any]],
    lines: list[dict[str, Any]],
    size: int,
    outlier_z: float,
    min_busbw: float | None,
    floor: float,
    rounds: int,
    slow_ranks: set[int] | None = None,
    node_flagged: set[tuple[int, int]] | None = None,
) -> None:
    """Judge each pair `judge` flagged slow again from its re-measure (`lines`: the ranks'
    `pair_recheck` records): set `flagged`, `recheck`, and clear `slow` when the pair was not
    slow beside the healthy pairs. Rows not flagged get `flagged` False and `recheck` None.
    A pair flagged as one of a slow rank's (`slow_ranks`) or a slow node's (`node_flagged`,
    `judge_nodes`) is judged by the z rule's cut: its busbw against a healthy pair's beside it."""
    bad = slow_ranks or set()
    of_nodes = node_flagged or set()
    dist = _spread([r for r in rows if r["busbw_gbps"] is not None], floor)
    # The side-by-side rounds cancel the host's load, so the spread the passes measured (a busy
    # host's widens it: one real slow link at 11% of its neighbours was judged against a cut
    # of 0.21) does not set the re-measure's cut: the floor does, the least spread the passes
    # ever assume (exp(-3.5 x 0.2) = 0.50); without a floor, the passes' own cut.
    scale = (floor if floor > 0 else dist.scale) if dist is not None else None
    cut = math.exp(-outlier_z * scale) if scale is not None else None
    healthy = any(not h["slow"] and h["busbw_gbps"] is not None for h in rows)
    for r in rows:
        r["flagged"] = bool(r["slow"])
        r["recheck"] = None
        if not r["slow"]:
            continue
        why = []
        by_unit = bool(bad & {r["a"], r["b"]}) or (r["a"], r["b"]) in of_nodes
        if (r["z"] is not None and r["z"] < -outlier_z) or by_unit:
            why.append("z")
        if min_busbw is not None and r["busbw_gbps"] < min_busbw:
            why.append("min_busbw")
        mine = [ln for ln in lines if (ln.get("fa"), ln.get("fb")) == (r["a"], r["b"])]
        r["recheck"] = _recheck_one(r, mine, size, cut, min_busbw, why, rounds, healthy)
        if r["recheck"]["status"] == "cleared":
            r["slow"] = False
            r["why_slow"] = None
        elif r["recheck"]["status"] == "slow":
            r["why_slow"] = f"{r['why_slow']}; {r['recheck']['text']}"


def _recheck_one(
    row: dict[str, Any],
    lines: list[dict[str, Any]],
    size: int,
    cut: float | None,
    min_busbw: float | None,
    why: list[str],
    rounds: int,
    healthy: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": "not_remeasured",
        "reason": None,
        "flagged_why": row["why_slow"],
        "references": [],
        "rounds": 0,
        "ratios": [],
        "busbw_gbps": [],
        "ratio_median": None,
        "ratio_upper": None,
        "busbw_upper_gbps": None,
        "confidence": None,
        "cut": cut,
        "still_slow_by": [],
        "text": None,
    }
    # per round and role: the pair measured and its time (max over directions of the max over
    # the two ranks' records: both hold the pair's max, the max covers a lost file)
    seen: dict[tuple[int, str], tuple[tuple[int, int], float]] = {}
    for ln in lines:
        if ln.get("status") != "measured" or not ln.get("time_us_ab_max"):
            continue
        t = max(float(ln["time_us_ab_max"]), float(ln["time_us_ba_max"]))
        key = (int(ln["round"]), str(ln["role"]))
        old = seen.get(key)
        seen[key] = ((int(ln["a"]), int(ln["b"])), max(t, old[1]) if old else t)
    done = sorted(k for k, role in seen if role == "flagged" and (k, "reference") in seen)
    if rounds == 0:
        out["reason"] = "collectives.recheck_rounds is 0: the passes decide alone"
    elif not done and not healthy:
        out["reason"] = "no healthy pair to measure beside it: every other pair was flagged too"
    elif not done:
        out["reason"] = (
            "the ranks recorded no re-measure of it (a run from before the re-measure, or its "
            "records were lost)"
        )
    if not done or size <= 0:
        return out
    refs = [list(seen[(k, "reference")][0]) for k in done]
    busbws = [algbw_gbps(size, seen[(k, "flagged")][1]) for k in done]
    ratios = [
        b / algbw_gbps(size, seen[(k, "reference")][1]) for k, b in zip(done, busbws, strict=True)
    ]
    decided = pair_recheck.decide(ratios, busbws, cut, min_busbw, why)
    out.update({k: v for k, v in decided.items() if k in out})
    out["references"] = [list(p) for p in dict.fromkeys(tuple(p) for p in refs)]
    out["status"] = "slow" if decided["still_slow"] else "cleared"
    pct = f"{100 * decided['confidence']:.1f}%"
    against = []
    if "z" in why and cut is not None:
        sign = "<" if "z" in decided["still_slow_by"] else ">="
        against.append(
            f"busbw / a healthy pair's beside it: median {decided['ratio_median']:.2f}, upper "
            f"{pct} bound {decided['ratio_upper']:.2f} {sign} cut {cut:.2f}"
        )
    if "min_busbw" in why and min_busbw is not None:
        sign = "<" if "min_busbw" in decided["still_slow_by"] else ">="
        against.append(
            f"busbw upper {pct} bound {decided['busbw_upper_gbps']:.3g} GB/s {sign} "
            f"--min-busbw {min_busbw:g}"
        )
    verdict = "still slow" if decided["still_slow"] else "cleared"
    out["text"] = (
        f"re-measured in {len(done)} rounds beside healthy pairs: {'; '.join(against)}: {verdict}"
    )
    return out


def slow_rank_text(x: int, block: dict[str, Any], label: dict[int, str]) -> str:
    """`SLOW RANK: rank 2: ...` (`SLOW NODE` with per: node): the rank rule's evidence and its
    pairs' re-measure, short."""
    ev = next(p for p in block["per_rank"] if p["rank"] == x)
    mine = [r for r in block["pairs"] if x in (r["a"], r["b"]) and r["busbw_gbps"] is not None]
    what = "NODE" if block.get("per") == "node" else "RANK"
    text = (
        f"SLOW {what}: {label[x]}: every pair with it slow ({len(mine)} of {ev['pairs']} "
        "measured): "
        f"its best pair {ev['best_busbw_gbps']:.3g} GB/s is "
        f"{ev['best_busbw_gbps'] / ev['others_median_gbps']:.2f} of the median of the "
        f"{ev['others_pairs']} pairs without it ({ev['others_median_gbps']:.3g} GB/s), z "
        f"{ev['z_best']:.1f} < -{block['outlier_z']:g}"
    )
    return text + _recheck_tail(mine)


def slow_node_text(node: str, block: dict[str, Any]) -> str:
    """`SLOW NODE: node-3: ...`: the slow-node rule's evidence and its pairs' re-measure."""
    ev = next(p for p in block["per_node"] if p["node"] == node)
    mine = [
        r
        for r in block["pairs"]
        if r["busbw_gbps"] is not None
        and r["node_a"] != r["node_b"]
        and node in (r["node_a"], r["node_b"])
    ]
    text = (
        f"SLOW NODE: {node}: every cross-node pair with it slow ({len(mine)} measured): its best "
        f"{ev['best_busbw_gbps']:.3g} GB/s is "
        f"{ev['best_busbw_gbps'] / ev['others_median_gbps']:.2f} of the median of the "
        f"{ev['others_pairs']} cross-node pairs without it ({ev['others_median_gbps']:.3g} "
        f"GB/s), z {ev['z_best']:.1f} < -{block['outlier_z']:g}"
    )
    return text + _recheck_tail(mine)


def _recheck_tail(mine: list[dict[str, Any]]) -> str:
    """What the re-measure said of the pairs of a slow rank or node (`mine`): each still slow
    beside healthy pairs (the ratios' medians, the upper bounds and the cut), or why they were
    not re-measured (the passes decide); empty when neither."""
    checks = [r["recheck"] for r in mine if (r.get("recheck") or {}).get("status") == "slow"]
    if checks and len(checks) == len(mine):
        medians = sorted(c["ratio_median"] for c in checks)
        upper = max(c["ratio_upper"] for c in checks)
        return (
            f"; each pair re-measured beside healthy pairs and still slow (busbw / the healthy "
            f"pair's: medians {medians[0]:.2f}-{medians[-1]:.2f}, upper bounds <= {upper:.2f} "
            f"< cut {checks[0]['cut']:.2f})"
        )
    why = next(
        (
            (r.get("recheck") or {}).get("reason")
            for r in mine
            if (r.get("recheck") or {}).get("reason")
        ),
        None,
    )
    return f"; not re-measured: the passes decide ({why})" if why else ""
