"""The re-measure of the pairwise link test's flagged pairs: which pairs the passes flag slow (on
the ranks, while they run, by the rule `analysis.pair_verdict.judge` applies afterwards), which
healthy pairs they are re-measured beside, and the decision from the side-by-side rounds. Pure
Python: the ranks import it (they import only core) and so does the analysis.

Why: a busy host slows a healthy pair now and then, and now and then in every pass (measured: 1
of 10 clean 4-rank runs at load 7 had a pair at 37% of the median in both of 2 passes, z -4.6).
A pair that is slow only because the host was busy while it ran is not slow beside a healthy
pair measured right before or after it; a slow link is slow whatever runs next to it.

Rules (README "Finding the slow link"):
- flagged: robust z of ln(busbw) over the measured pairs below -outlier_z (median and MAD x
  1.4826 of the logs, the MAD counted as at least the floor; 3 measured pairs or more), or
  busbw below min_busbw: `analysis.pair_verdict.judge`'s rule;
- a slow rank (`slow_ranks`): a rank whose best (fastest) pair is below -outlier_z by the same
  robust z taken over the pairs WITHOUT it (3 or more: 4 ranks or more) flags every pair with it.
  One slow rank makes n - 1 of the n(n-1)/2 pairs slow, half of them at 4 ranks, where the
  median and MAD over all pairs break down; the pairs without it hold none of them. Its best
  pair below the cut means every pair with it is (the best of n - 1 is the sign test's upper
  bound of their median, at 1 - 2^-(n-1): 87.5% at 4 ranks, 99.2% at 8); a single slow link
  leaves the rank's other pairs normal, so its best pair is, and the rank is not flagged;
- a slow node (`node_evidence`, a per-rank run with 2 or more ranks on a node and 3 nodes or
  more): the same rule on cross-node pairs, its best one against those without it;
- each flagged pair is re-measured in `rounds` rounds, each round the flagged pair and one
  healthy (not flagged) pair one after the other, alone (serial, every rank at a barrier
  between them), the order alternating round by round (flagged first in even rounds), the
  healthy pairs taken in turn (those sharing no rank with the flagged pair first);
- per round, ratio = the flagged pair's busbw / the healthy pair's; the upper confidence bound
  of the median ratio is an order statistic of the ratios (a sign test: distribution-free; at
  least 95% one-sided where the rounds allow it, `median_upper_bound`);
- the pair stays slow (z rule) when that upper bound is below the cut exp(-outlier_z x floor)
  (0.50 at z 3.5 and the floor 0.2; the passes' own scale when the floor is 0): the rounds
  cancel the host's load, so a spread the load widened in the passes does not lower the cut;
  (min-busbw rule) when the same bound on its re-measured busbw is below min_busbw. Otherwise
  it is cleared.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

Pair = tuple[int, int]

MIN_PAIRS_FOR_Z = 3  # below this, no distribution: only min_busbw judges
# scipy.stats.median_abs_deviation(scale="normal") divides by the normal quantile at 0.75
MAD_NORMAL = 1.0 / 0.6744897501960817
CONFIDENCE = 0.95  # one-sided, of the median ratio's upper bound


def flagged(
    busbw: Mapping[Pair, float],
    outlier_z: float,
    min_busbw: float | None,
    floor: float,
    nodes: Mapping[int, str] | None = None,
) -> list[Pair]:
    """The pairs the passes flag slow (busbw: each measured pair's best-pass busbw, GB/s), in
    the order given: by the pair rule, as a pair of a slow rank (`slow_ranks`), or, given the
    ranks' `nodes`, as a cross-node pair of a slow node (`node_evidence`)."""
    pairs = [p for p, b in busbw.items() if b > 0 and math.isfinite(b)]
    cut = None
    if len(pairs) >= MIN_PAIRS_FOR_Z:
        cut = _log_spread([busbw[p] for p in pairs], floor)
    bad = set(slow_ranks({p: busbw[p] for p in pairs}, outlier_z, floor, nodes))
    of_nodes: set[Pair] = set()
    if nodes:
        for n, ev in node_evidence({p: busbw[p] for p in pairs}, nodes, outlier_z, floor).items():
            if ev["slow"]:
                of_nodes |= set(node_pairs(pairs, nodes, n))
    out = []
    for p in pairs:
        slow = (min_busbw is not None and busbw[p] < min_busbw) or bool(bad & set(p))
        slow = slow or p in of_nodes
        if cut is not None and cut[1] > 0:
            slow = slow or (math.log(busbw[p]) - cut[0]) / cut[1] < -outlier_z
        if slow:
            out.append(p)
    return out


def _log_spread(values: Sequence[float], floor: float) -> tuple[float, float]:
    """Median and floored scale (MAD x 1.4826, at least `floor`) of ln(values)."""
    logs = [math.log(v) for v in values]
    center = statistics.median(logs)
    return center, max(statistics.median(abs(x - center) for x in logs) * MAD_NORMAL, floor)


def rank_evidence(
    busbw: Mapping[Pair, float],
    outlier_z: float,
    floor: float,
    nodes: Mapping[int, str] | None = None,
) -> dict[int, dict[str, Any]]:
    """Per rank with 2 or more measured pairs and MIN_PAIRS_FOR_Z or more measured pairs without
    it: its best pair's busbw, the median of the pairs without it, their ratio, the best pair's
    robust z against the pairs without it, and `slow` (z < -outlier_z). Ranks it cannot judge
    (3 ranks or fewer: 1 pair without a rank) are left out. Given the ranks' `nodes` and ranks
    on two nodes or more, only cross-node pairs count on both sides: pairs inside a node cross
    no NIC (NVLink, shared memory) and are faster by design, so a rank alone on its node, all
    of whose pairs cross, would be judged against them and called slow."""
    pairs = rule_pairs(busbw, nodes)
    ranks = sorted({x for p in pairs for x in p})
    out: dict[int, dict[str, Any]] = {}
    for x in ranks:
        mine = [b for p, b in pairs.items() if x in p]
        others = [b for p, b in pairs.items() if x not in p]
        if len(mine) >= 2 and len(others) >= MIN_PAIRS_FOR_Z:
            out[x] = _best_against_others(mine, others, outlier_z, floor)
    return out


def rule_pairs(
    busbw: Mapping[Pair, float], nodes: Mapping[int, str] | None = None
) -> dict[Pair, float]:
    """The measured pairs the rank rule (`rank_evidence`) counts: every one, or with the ranks on
    two nodes or more (`nodes`), the cross-node ones only."""
    pairs = {p: b for p, b in busbw.items() if b > 0 and math.isfinite(b)}
    if nodes and len({nodes.get(x) for p in pairs for x in p}) > 1:
        pairs = {
            p: b
            for p, b in pairs.items()
            if p[0] in nodes and p[1] in nodes and nodes[p[0]] != nodes[p[1]]
        }
    return pairs


def _best_against_others(
    mine: Sequence[float], others: Sequence[float], outlier_z: float, floor: float
) -> dict[str, Any]:
    center, scale = _log_spread(others, floor)
    best = max(mine)
    z = (math.log(best) - center) / scale if scale > 0 else 0.0
    return {
        "pairs": len(mine),
        "best_busbw_gbps": best,
        "others_pairs": len(others),
        "others_median_gbps": statistics.median(others),
        "ratio": best / statistics.median(others),
        "z": z,
        "slow": z < -outlier_z,
    }


def slow_ranks(
    busbw: Mapping[Pair, float],
    outlier_z: float,
    floor: float,
    nodes: Mapping[int, str] | None = None,
) -> list[int]:
    """The ranks every pair of which is slow against the pairs without them (`rank_evidence`)."""
    return [x for x, ev in rank_evidence(busbw, outlier_z, floor, nodes).items() if ev["slow"]]


def node_evidence(
    busbw: Mapping[Pair, float], nodes: Mapping[int, str], outlier_z: float, floor: float
) -> dict[str, dict[str, Any]]:
    """The rank rule for nodes in a per-rank run where a node holds 2 or more of the ranks (with
    one rank per node it is the rank rule): per node, its best cross-node pair (one end on it)
    against the cross-node pairs with no end on it (pairs inside a node are left out on both
    sides: they do not cross a NIC). Needs 3 nodes or more (2 nodes: every cross pair touches
    both) and MIN_PAIRS_FOR_Z cross pairs without the node."""
    pairs = {
        p: b
        for p, b in busbw.items()
        if b > 0 and math.isfinite(b) and p[0] in nodes and p[1] in nodes
    }
    names = sorted({nodes[x] for p in pairs for x in p})
    per_node = {n: {x for p in pairs for x in p if nodes[x] == n} for n in names}
    if len(names) < 3 or max(len(v) for v in per_node.values()) < 2:
        return {}
    cross = {p: b for p, b in pairs.items() if nodes[p[0]] != nodes[p[1]]}
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        mine = [b for p, b in cross.items() if n in (nodes[p[0]], nodes[p[1]])]
        others = [b for p, b in cross.items() if n not in (nodes[p[0]], nodes[p[1]])]
        if len(mine) >= 2 and len(others) >= MIN_PAIRS_FOR_Z:
            out[n] = _best_against_others(mine, others, outlier_z, floor)
    return out


def node_pairs(pairs: Sequence[Pair], nodes: Mapping[int, str], node: str) -> list[Pair]:
    """The cross-node pairs with one end on `node`."""
    return [
        p
        for p in pairs
        if p[0] in nodes
        and p[1] in nodes
        and nodes[p[0]] != nodes[p[1]]
        and node in (nodes[p[0]], nodes[p[1]])
    ]


def references(pair: Pair, healthy: Sequence[Pair]) -> list[Pair]:
    """The healthy pairs `pair` is re-measured beside, in turn: those sharing no rank with it
    first (a rank's own trouble cannot then slow both sides of a round), then the rest, each
    group in the order given."""
    apart = [h for h in healthy if not set(h) & set(pair)]
    return apart + [h for h in healthy if h not in apart]


def schedule(pair: Pair, healthy: Sequence[Pair], rounds: int) -> list[tuple[int, str, Pair]]:
    """(round, role, pair) in the order measured: `rounds` rounds of the flagged pair and one
    reference (role `flagged` / `reference`), flagged first in even rounds; empty without a
    healthy pair."""
    refs = references(pair, healthy)
    if not refs:
        return []
    out: list[tuple[int, str, Pair]] = []
    for k in range(rounds):
        ref = refs[k % len(refs)]
        both = [(k, "flagged", pair), (k, "reference", ref)]
        out.extend(both if k % 2 == 0 else both[::-1])
    return out


def plan_text(rounds: int, n_pairs: int) -> str:
    """What the re-measure will do, for the plan and the report's notes: `rounds` rounds beside
    healthy pairs; off at 0 rounds; nothing to stand beside with one pair (2 ranks), so there
    the passes decide."""
    if not rounds:
        return "re-measure off (--recheck-rounds 0: the passes decide)"
    if n_pairs < 2:
        return (
            "no re-measure: a flagged pair is re-measured beside healthy pairs and the only "
            "pair has none (the passes decide)"
        )
    return f"a flagged pair is re-measured in {rounds} rounds beside healthy pairs"


def min_rounds(confidence: float = CONFIDENCE) -> int:
    """The fewest rounds whose sign-test bound (`median_upper_bound`) reaches `confidence`: the
    largest of n values bounds the median at 1 - 2^-n, so n with 2^-n <= 1 - confidence (5 at
    95%). Fewer rounds cannot say "still slow" at the confidence the rule states."""
    n = 1
    while 0.5**n > 1.0 - confidence + 1e-12:
        n += 1
    return n


def median_upper_bound(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """A distribution-free one-sided upper confidence bound of the median of `values` (a sign
    test) and its confidence: the j-th smallest value, j the smallest with P(Bin(n, 1/2) >= j)
    <= 1 - confidence (at least `confidence` that the median is at or below it); with too few
    values for that (n < 5 at 95%), the largest, at confidence 1 - 2^-n. ValueError when empty."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    alpha = 1.0 - confidence
    for j in range(1, n + 1):
        tail = sum(math.comb(n, i) for i in range(j, n + 1)) / 2**n  # P(B >= j)
        if tail <= alpha:
            return xs[j - 1], 1.0 - tail
    return xs[-1], 1.0 - 0.5**n


def decide(
    ratios: Sequence[float],
    busbws: Sequence[float],
    cut: float | None,
    min_busbw: float | None,
    why: Sequence[str],
) -> dict[str, Any]:
    """The re-measure's verdict on one flagged pair.

    ratios: per round, the flagged pair's busbw / its reference's; busbws: the flagged pair's
    re-measured busbw per round; cut: the ratio to the median below which the passes call a pair
    slow (exp(-outlier_z x floor)), None when no z was judged; why: the rules that flagged it
    (`z`, `min_busbw`). Returns `still_slow` and the evidence."""
    ratio_hi, conf = median_upper_bound(ratios)
    bw_hi, _ = median_upper_bound(busbws)
    still = []
    if "z" in why and cut is not None and ratio_hi < cut:
        still.append("z")
    if "min_busbw" in why and min_busbw is not None and bw_hi < min_busbw:
        still.append("min_busbw")
    return {
        "still_slow": bool(still),
        "still_slow_by": still,
        "rounds": len(ratios),
        "ratios": list(ratios),
        "ratio_median": statistics.median(ratios),
        "ratio_upper": ratio_hi,
        "busbw_gbps": list(busbws),
        "busbw_upper_gbps": bw_hi,
        "confidence": conf,
        "cut": cut,
    }
