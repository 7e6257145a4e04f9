"""The rules that turn pair bandwidths into slow pairs and a suspect (`analysis.pair_verdict`).

Hand-made bandwidths exercise each rule's cases (a rank in every slow pair, a node, nobody, the
absolute floor, too few pairs); whether a real slow link is found is tested on live ranks with
the fault in the transport (tests/distributed/test_pairwise_gloo.py).
"""

from __future__ import annotations

import itertools
from typing import Any

from minicluster.analysis.pair_verdict import judge, suspect


def _rows(n: int, slow: dict[tuple[int, int], float]) -> list[dict[str, Any]]:
    """Every pair of n ranks at ~1 GB/s (a 2% spread), the ones in `slow` at their value."""
    rows = []
    for k, (a, b) in enumerate(itertools.combinations(range(n), 2)):
        bw = slow.get((a, b), 1.0 + 0.02 * ((k % 5) - 2))
        rows.append({"a": a, "b": b, "busbw_gbps": bw, "z": None, "slow": False, "why_slow": None})
    return rows


def _named(rows: list[dict[str, Any]], nodes: dict[int, str] | None = None) -> dict[str, Any]:
    slow = [r for r in rows if r["slow"]]
    rank_nodes = nodes or dict.fromkeys(range(8), "host")
    label = {r: f"rank {r}" for r in rank_nodes}
    return suspect(slow, rows, rank_nodes, label, per_node=False)


def test_a_rank_in_every_slow_pair_is_the_suspect() -> None:
    """Rank 3's NIC: every pair with rank 3 at a third (7 of 28 pairs, below half)."""
    rows = _rows(8, {(min(3, x), max(3, x)): 0.3 for x in range(8) if x != 3})
    judge(rows, 3.5, None, 0.2)
    assert sorted((r["a"], r["b"]) for r in rows if r["slow"]) == [
        (0, 3), (1, 3), (2, 3), (3, 4), (3, 5), (3, 6), (3, 7)
    ]  # fmt: skip
    named = _named(rows)
    assert named["kind"] == "rank" and named["ranks"] == [3]
    assert named["text"] == "rank 3: in every slow pair (7 of its 7 pairs slow)"


def test_one_slow_pair_is_the_link_not_either_rank() -> None:
    rows = _rows(6, {(1, 2): 0.1})
    judge(rows, 3.5, None, 0.2)
    named = _named(rows)
    assert named["kind"] == "link" and named["ranks"] == [1, 2]
    assert named["text"].startswith("the link between rank 1 and rank 2: the only slow pair")


def test_slow_pairs_sharing_no_rank_name_no_rank_but_their_node() -> None:
    """(0, 4) and (2, 5) share no rank; ranks 4 and 5 are on host-c, the one node both touch."""
    nodes = {r: f"host-{'abcd'[r // 2]}" for r in range(8)}
    rows = _rows(8, {(0, 4): 0.2, (2, 5): 0.2})
    judge(rows, 3.5, None, 0.2)
    named = _named(rows, nodes)
    assert named["kind"] == "node" and named["nodes"] == ["host-c"] and named["ranks"] == []
    assert named["text"] == "host-c: every slow pair has a rank on this node"
    on_one_host = _named(rows)  # the same pairs on one host: nothing in common
    assert on_one_host["kind"] is None and on_one_host["ranks"] == []
    assert on_one_host["text"].startswith("no single rank is in every slow pair (2 slow pairs")


def test_the_floor_and_the_absolute_minimum() -> None:
    rows = _rows(6, {(0, 1): 0.6})  # 40% below a group that agrees within 2%
    judge(rows, 3.5, None, 0.0)
    assert [(r["a"], r["b"]) for r in rows if r["slow"]] == [(0, 1)]
    rows = _rows(6, {(0, 1): 0.6})
    judge(rows, 3.5, None, 0.2)  # the floor: 0.6 is above exp(-3.5 x 0.2) = 0.50 of the median
    assert not any(r["slow"] for r in rows)
    judge(rows, 3.5, 0.8, 0.2)  # ... but below the absolute minimum
    (row,) = [r for r in rows if r["slow"]]
    assert (row["a"], row["b"]) == (0, 1) and "< --min-busbw 0.8" in row["why_slow"]


def test_with_fewer_than_three_pairs_only_the_minimum_judges() -> None:
    rows = _rows(2, {(0, 1): 0.01})
    judge(rows, 3.5, None, 0.2)
    assert rows[0]["z"] is None and not rows[0]["slow"]
    judge(rows, 3.5, 0.5, 0.2)
    assert rows[0]["slow"]
