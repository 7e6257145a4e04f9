"""The rules that turn pair bandwidths into slow pairs and a suspect (`analysis.pair_verdict`).

Hand-made bandwidths exercise each rule's cases (a rank in every slow pair, a node, nobody, the
absolute floor, too few pairs); whether a real slow link is found is tested on live ranks with
the fault in the transport (tests/distributed/test_pairwise_gloo.py).
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from minicluster.analysis.pair_verdict import judge, not_judged, ranks_not_judged, suspect


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


def test_one_pair_without_a_minimum_is_not_judged_not_ok() -> None:
    from minicluster.analysis.pair_verdict import distribution, verdict

    rows = _rows(2, {(0, 1): 0.01})  # a 100x slow link, alone: nothing to hold it against
    judge(rows, 3.5, None, 0.2)
    rows[0]["wrong"] = 0
    label = {0: "rank 0", 1: "rank 1"}
    dist = distribution(rows, 0.2)
    block = {"pairs": rows, "distribution": dist, "outlier_z": 3.5, "min_busbw_gbps": None,
             "not_judged": not_judged(rows, dist, None, 3.5, 0.2, label)}  # fmt: skip
    line = verdict(block, label)
    assert (
        line.startswith("pairwise: NOT JUDGED: speed: 1 of 1 pairs measured") and "ok" not in line
    )
    assert "give --min-busbw" in line and line.endswith("none wrong")
    # wrong elements are still judged, and come first
    rows[0]["wrong"] = 7
    line = verdict(block, label)
    assert line.startswith("pairwise: WRONG: rank 0 - rank 1: 7 elements; NOT JUDGED: speed")
    # with a floor the one pair is judged, against it
    assert not_judged(rows, dist, 0.5, 3.5, 0.2, label) is None


SIZE = 10**9  # busbw (GB/s) = 1e6 / time_us


def _remeasure(
    flagged: tuple[int, int], bw: list[float], ref_bw: list[float]
) -> list[dict[str, Any]]:
    """The `pair_recheck` records of both ranks of each pair: round k measured `flagged` at
    bw[k] and a healthy reference at ref_bw[k]."""
    refs = [(0, 3), (0, 1), (2, 3)]
    out = []
    for k, (f, h) in enumerate(zip(bw, ref_bw, strict=True)):
        for role, pair, b in (("flagged", flagged, f), ("reference", refs[k % 3], h)):
            t = 1e6 / b
            out += [
                {"type": "pair_recheck", "fa": flagged[0], "fb": flagged[1], "round": k,
                 "role": role, "a": pair[0], "b": pair[1], "status": "measured",
                 "time_us_ab_max": t, "time_us_ba_max": t * 0.99}
                for _ in range(2)
            ]  # fmt: skip
    return out


def test_a_flagged_pair_slow_again_beside_healthy_pairs_stays_slow() -> None:
    from minicluster.analysis.pair_verdict import recheck

    rows = _rows(4, {(1, 2): 0.3})
    judge(rows, 3.5, None, 0.2)
    assert [(r["a"], r["b"]) for r in rows if r["slow"]] == [(1, 2)]
    # one round the reference was slowed too (ratio 0.9): the bound still clears the cut
    lines = _remeasure((1, 2), [0.3] * 8, [1.0, 0.95, 1.05, 0.33, 1.0, 1.0, 0.98, 1.02])
    recheck(rows, lines, SIZE, 3.5, None, 0.2, 8)
    (row,) = [r for r in rows if (r["a"], r["b"]) == (1, 2)]
    rc = row["recheck"]
    assert row["slow"] and row["flagged"] and rc["status"] == "slow"
    assert rc["rounds"] == 8 and rc["still_slow_by"] == ["z"]
    assert math.isclose(rc["cut"], math.exp(-3.5 * 0.2))
    assert rc["ratio_upper"] < rc["cut"] and math.isclose(rc["confidence"], 1 - 9 / 256)
    assert rc["references"] == [[0, 3], [0, 1], [2, 3]]
    assert "re-measured in 8 rounds" in row["why_slow"] and "still slow" in row["why_slow"]
    assert all(not r["flagged"] and r["recheck"] is None for r in rows if r is not row)


def test_a_flagged_pair_not_slow_beside_healthy_pairs_is_cleared() -> None:
    from minicluster.analysis.pair_verdict import recheck, verdict

    rows = _rows(4, {(1, 2): 0.37})  # a busy host in both passes: 37% of the median
    judge(rows, 3.5, None, 0.2)
    assert [(r["a"], r["b"]) for r in rows if r["slow"]] == [(1, 2)]
    # re-measured, the pair is as fast as the healthy pairs, but for two unlucky rounds
    lines = _remeasure((1, 2), [1.0, 0.98, 0.3, 1.01, 0.97, 0.35, 1.0, 0.99], [1.0] * 8)
    recheck(rows, lines, SIZE, 3.5, None, 0.2, 8)
    (row,) = [r for r in rows if (r["a"], r["b"]) == (1, 2)]
    rc = row["recheck"]
    assert not row["slow"] and row["flagged"] and row["why_slow"] is None
    assert rc["status"] == "cleared" and rc["still_slow_by"] == []
    assert rc["ratio_upper"] >= rc["cut"] and "z -" in rc["flagged_why"]
    assert rc["text"].endswith("cleared")
    for r in rows:
        r["wrong"] = 0
    block = {"pairs": rows, "distribution": {"median": 1.0}, "outlier_z": 3.5,
             "min_busbw_gbps": None}  # fmt: skip
    line = verdict(block, {r: f"rank {r}" for r in range(4)})
    assert line.startswith("pairwise: ok: 6 of 6 pairs measured, none slow")
    assert "cleared on re-measure: rank 1 - rank 2 (flagged by the passes" in line


def test_a_slow_pair_with_half_its_rounds_slow_is_not_proven_slow() -> None:
    """The median's upper bound, not the median, must clear the cut: four slow rounds of eight
    leave the median low but the bound above it (cleared, not named on a coin toss)."""
    from minicluster.analysis.pair_verdict import recheck

    rows = _rows(4, {(1, 2): 0.3})
    judge(rows, 3.5, None, 0.2)
    lines = _remeasure((1, 2), [0.3, 1.0] * 4, [1.0] * 8)
    recheck(rows, lines, SIZE, 3.5, None, 0.2, 8)
    (row,) = [r for r in rows if (r["a"], r["b"]) == (1, 2)]
    assert row["recheck"]["status"] == "cleared" and not row["slow"]


def test_without_a_re_measure_the_passes_verdict_stands_and_says_why() -> None:
    from minicluster.analysis.pair_verdict import recheck

    rows = _rows(4, {(1, 2): 0.3})
    judge(rows, 3.5, None, 0.2)
    recheck(rows, [], SIZE, 3.5, None, 0.2, 8)
    (row,) = [r for r in rows if r["flagged"]]
    assert row["slow"] and row["recheck"]["status"] == "not_remeasured"
    assert "the ranks recorded no re-measure of it" in row["recheck"]["reason"]
    rows = _rows(4, {(1, 2): 0.3})
    judge(rows, 3.5, None, 0.2)
    recheck(rows, [], SIZE, 3.5, None, 0.2, 0)
    (row,) = [r for r in rows if r["flagged"]]
    assert row["slow"] and "recheck_rounds is 0" in row["recheck"]["reason"]


def test_a_pair_below_min_busbw_stays_only_while_its_re_measure_is_below_it() -> None:
    from minicluster.analysis.pair_verdict import recheck

    rows = _rows(2, {(0, 1): 0.4})  # too few pairs for a z: only --min-busbw judges
    judge(rows, 3.5, 0.5, 0.2)
    lines = _remeasure((0, 1), [0.45] * 8, [1.0] * 8)
    recheck(rows, lines, SIZE, 3.5, 0.5, 0.2, 8)
    assert rows[0]["slow"] and rows[0]["recheck"]["still_slow_by"] == ["min_busbw"]
    rows = _rows(2, {(0, 1): 0.4})
    judge(rows, 3.5, 0.5, 0.2)
    recheck(rows, _remeasure((0, 1), [0.6] * 8, [1.0] * 8), SIZE, 3.5, 0.5, 0.2, 8)
    assert not rows[0]["slow"] and rows[0]["recheck"]["status"] == "cleared"


def test_with_every_pair_flagged_there_is_no_healthy_pair_to_stand_beside() -> None:
    from minicluster.analysis.pair_verdict import recheck

    rows = _rows(2, {(0, 1): 0.4})
    judge(rows, 3.5, 0.5, 0.2)
    recheck(rows, [], SIZE, 3.5, 0.5, 0.2, 8)
    assert rows[0]["slow"] and rows[0]["recheck"]["status"] == "not_remeasured"
    assert rows[0]["recheck"]["reason"].startswith("no healthy pair to measure beside it")


def test_a_noisy_pass_spread_does_not_lower_the_re_measures_cut() -> None:
    """Measured: a real slow link at 0.11 of its neighbours (upper bound 0.23) in a run whose
    passes spread out to a cut of 0.21; the re-measure judges by the floor's cut (0.50)."""
    from minicluster.analysis.pair_verdict import recheck

    rows = _rows(4, {})
    for r, bw in zip(rows, [1.0, 0.03, 1.7, 0.55, 1.0, 1.45], strict=True):
        r["busbw_gbps"] = bw  # (0, 1), (0, 2), ...: pair (0, 2) slow in a wide spread
    judge(rows, 3.5, None, 0.2)
    (row,) = [r for r in rows if r["slow"]]
    assert (row["a"], row["b"]) == (0, 2)
    ratios = [0.1, 0.12, 0.08, 0.23, 0.11, 0.09, 0.3, 0.1]
    recheck(rows, _remeasure((0, 2), ratios, [1.0] * 8), SIZE, 3.5, None, 0.2, 8)
    rc = row["recheck"]
    assert math.isclose(rc["cut"], math.exp(-0.7)) and math.isclose(rc["ratio_upper"], 0.23)
    assert rc["status"] == "slow" and row["slow"]


# --- the rank rule: a rank slow in every pair (its NIC), issue 25 --------------------------


def _noisy_rows(
    n: int, seed: int, spread: float = 0.25, dips: float = 0.05
) -> list[dict[str, Any]]:
    """Every pair of n ranks at ~1 GB/s with a log-normal spread (sigma `spread`) and, with
    probability `dips`, a busy-host dip to 40-60% of it: a clean run on a loaded host."""
    rng = random.Random(seed)
    rows = _rows(n, {})
    for r in rows:
        r["busbw_gbps"] = math.exp(rng.gauss(0.0, spread))
        if rng.random() < dips:
            r["busbw_gbps"] *= rng.uniform(0.4, 0.6)
    return rows


def _slow_rank_rows(n: int, x: int, factor: float, seed: int = 1) -> list[dict[str, Any]]:
    rows = _noisy_rows(n, seed, spread=0.1, dips=0.0)
    for r in rows:
        if x in (r["a"], r["b"]):
            r["busbw_gbps"] *= factor
    return rows


@pytest.mark.parametrize("n", [4, 8])
def test_a_rank_slow_in_every_pair_is_named_as_the_rank(n: int) -> None:
    """Rank 2's NIC at a tenth: at 4 ranks 3 of 6 pairs are slow and the median over all
    pairs breaks down (no pair's z is below -3.5), the pairs without rank 2 do not."""
    rows = _slow_rank_rows(n, 2, 0.1)
    evidence = judge(rows, 3.5, None, 0.2)
    assert sorted(x for x, ev in evidence.items() if ev["slow"]) == [2]
    assert sorted((r["a"], r["b"]) for r in rows if r["slow"]) == [
        (min(2, x), max(2, x)) for x in range(n) if x != 2
    ]
    assert all("every pair with rank 2 is slow" in r["why_slow"] for r in rows if r["slow"])
    ev = evidence[2]
    assert ev["pairs"] == n - 1 and ev["others_pairs"] == (n - 1) * (n - 2) // 2
    assert ev["ratio"] < 0.2 and ev["z"] < -3.5
    named = suspect([r for r in rows if r["slow"]], rows, dict.fromkeys(range(n), "h"),
                    {r: f"rank {r}" for r in range(n)}, False, {2})  # fmt: skip
    assert named["kind"] == "rank" and named["ranks"] == [2]
    assert "every pair with it slow" in named["text"] and "rank 2's link/NIC" in named["text"]


def test_at_four_ranks_the_pair_rule_alone_misses_the_slow_rank() -> None:
    """The wrong verdict this rule fixes: the z over all 6 pairs names nothing."""
    rows = _slow_rank_rows(4, 2, 0.1)
    judge(rows, 3.5, None, 0.2)
    assert all(r["z"] > -3.5 for r in rows)


def test_one_slow_link_is_named_as_the_pair_not_as_a_rank() -> None:
    for n in (4, 8):
        rows = _noisy_rows(n, 3, spread=0.1, dips=0.0)
        (row,) = [r for r in rows if (r["a"], r["b"]) == (1, 2)]
        row["busbw_gbps"] *= 0.05
        evidence = judge(rows, 3.5, None, 0.2)
        assert not any(ev["slow"] for ev in evidence.values())
        assert [(r["a"], r["b"]) for r in rows if r["slow"]] == [(1, 2)]
        assert _named(rows)["kind"] == "link"


def test_clean_noisy_rows_name_no_rank_and_no_pair() -> None:
    """200 clean runs each of 4 and 8 ranks with a 25% spread and 5% busy-host dips to 40-60%:
    the rank rule names nothing (its cut is a whole rank's best pair)."""
    for n in (4, 8):
        for seed in range(200):
            rows = _noisy_rows(n, seed)
            evidence = judge(rows, 3.5, None, 0.2)
            assert not any(ev["slow"] for ev in evidence.values()), (n, seed, evidence)


def test_the_ranks_flag_a_slow_ranks_pairs_for_the_re_measure() -> None:
    """The ranks' rule (core.pair_recheck.flagged) flags what the analysis judges slow."""
    from minicluster.core import pair_recheck

    rows = _slow_rank_rows(4, 2, 0.1)
    busbw = {(r["a"], r["b"]): r["busbw_gbps"] for r in rows}
    assert pair_recheck.slow_ranks(busbw, 3.5, 0.2) == [2]
    assert pair_recheck.flagged(busbw, 3.5, None, 0.2) == [(0, 2), (1, 2), (2, 3)]
    # the healthy pairs it is re-measured beside share no rank with it first
    assert pair_recheck.references((0, 2), [(0, 1), (0, 3), (1, 3)])[0] == (1, 3)


def test_a_slow_ranks_pairs_stay_slow_on_re_measure_and_the_rank_is_named() -> None:
    from minicluster.analysis.pair_verdict import recheck

    rows = _slow_rank_rows(4, 2, 0.1)
    evidence = judge(rows, 3.5, None, 0.2)
    bad = {x for x, ev in evidence.items() if ev["slow"]}
    lines = []
    for p in [(0, 2), (1, 2), (2, 3)]:
        lines += _remeasure(p, [0.1, 0.12, 0.09, 0.11, 0.1, 0.1, 0.13, 0.1], [1.0] * 8)
    recheck(rows, lines, SIZE, 3.5, None, 0.2, 8, bad)
    slow = [r for r in rows if r["slow"]]
    assert len(slow) == 3 and all(r["recheck"]["status"] == "slow" for r in slow)
    # a rank that was only slow while the host was busy: its pairs are cleared
    rows = _slow_rank_rows(4, 2, 0.1)
    judge(rows, 3.5, None, 0.2)
    lines = []
    for p in [(0, 2), (1, 2), (2, 3)]:
        lines += _remeasure(p, [1.0, 0.98, 1.02, 0.97, 1.0, 1.01, 0.99, 1.0], [1.0] * 8)
    recheck(rows, lines, SIZE, 3.5, None, 0.2, 8, bad)
    assert not any(r["slow"] for r in rows)


def test_three_ranks_a_slow_rank_is_not_judged_but_said() -> None:
    """3 ranks: a rank's 2 pairs are 2 of 3; against 1 pair no z, and a slow rank 2 reads the
    same as a fast pair 0-1. Not named, not ok: NOT JUDGED (exit 2) without --min-busbw."""
    from minicluster.analysis.pair_verdict import distribution

    label = {r: f"rank {r}" for r in range(3)}
    rows = _rows(3, {(0, 2): 0.1, (1, 2): 0.11})
    evidence = judge(rows, 3.5, None, 0.2)
    assert evidence == {} and not any(r["slow"] for r in rows)
    assert "not judged with 3 ranks" in (ranks_not_judged([0, 1, 2], rows) or "")
    dist = distribution(rows, 0.2)
    why = not_judged(rows, dist, None, 3.5, 0.2, label)
    assert why is not None and "both pairs of rank 2" in why and "rank 0 - rank 1 is fast" in why
    # with a floor the pairs are judged against it: rank 2 in both slow pairs
    judge(rows, 3.5, 0.5, 0.2)
    assert not_judged(rows, dist, 0.5, 3.5, 0.2, label) is None
    assert _named(rows)["ranks"] == [2]
    # a clean 3-rank run: judged (one slow link would be named), the rank rule not
    clean = _rows(3, {})
    judge(clean, 3.5, None, 0.2)
    assert not_judged(clean, distribution(clean, 0.2), None, 3.5, 0.2, label) is None
    one = _rows(3, {(0, 1): 0.1})
    judge(one, 3.5, None, 0.2)
    assert [(r["a"], r["b"]) for r in one if r["slow"]] == [(0, 1)]


def test_a_node_slow_in_every_cross_node_pair_is_named_as_the_node() -> None:
    """3 nodes of 2 ranks (per rank), node c's NIC at a tenth: its 8 cross-node pairs are 8 of
    the 15, more than half, and each rank on it has a fast pair inside the node (so the rank
    rule cannot see it); the node rule judges c's best cross pair against the 4 cross pairs of
    a and b. Pairs inside a node run 4x faster (shared memory), and are left out."""
    from minicluster.analysis.pair_verdict import judge_nodes

    nodes = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    rows = _noisy_rows(6, 5, spread=0.1, dips=0.0)
    for r in rows:
        if nodes[r["a"]] == nodes[r["b"]]:
            r["busbw_gbps"] *= 4
        elif "c" in (nodes[r["a"]], nodes[r["b"]]):
            r["busbw_gbps"] *= 0.1
    evidence = judge(rows, 3.5, None, 0.2)
    assert not any(ev["slow"] for ev in evidence.values())
    ev = judge_nodes(rows, nodes, 3.5, 0.2)
    assert [n for n, e in ev.items() if e["slow"]] == ["c"] and ev["c"]["others_pairs"] == 4
    slow = sorted((r["a"], r["b"]) for r in rows if r["slow"])
    assert slow == [(0, 4), (0, 5), (1, 4), (1, 5), (2, 4), (2, 5), (3, 4), (3, 5)]
    label = {r: f"rank {r}" for r in range(6)}
    named = suspect([r for r in rows if r["slow"]], rows, nodes, label, False, set(), {"c"})
    assert named["kind"] == "node" and named["nodes"] == ["c"]
    assert "c's link/NIC" in named["text"]
    # the ranks flag the same pairs for the re-measure
    from minicluster.core import pair_recheck

    busbw = {(r["a"], r["b"]): r["busbw_gbps"] for r in rows}
    assert sorted(pair_recheck.flagged(busbw, 3.5, None, 0.2, nodes)) == slow


def test_clean_multi_node_rows_name_no_node() -> None:
    from minicluster.analysis.pair_verdict import judge_nodes

    nodes = {r: "abcd"[r // 2] for r in range(8)}
    for seed in range(100):
        rows = _noisy_rows(8, seed)
        for r in rows:
            if nodes[r["a"]] == nodes[r["b"]]:
                r["busbw_gbps"] *= 4
        assert not any(e["slow"] for e in judge_nodes(rows, nodes, 3.5, 0.2).values()), seed
    # one rank per node, or 2 nodes: the rule does not apply (the rank rule is the one)
    assert judge_nodes(_rows(4, {}), {r: str(r) for r in range(4)}, 3.5, 0.2) == {}
    assert judge_nodes(_rows(4, {}), {0: "a", 1: "a", 2: "b", 3: "b"}, 3.5, 0.2) == {}


def test_the_slow_unit_is_called_a_node_when_the_test_runs_per_node() -> None:
    from minicluster.analysis.pair_verdict import slow_rank_text

    rows = _slow_rank_rows(4, 2, 0.1)
    evidence = judge(rows, 3.5, None, 0.2)
    per_rank = [
        {"rank": x, "pairs": 3, "best_busbw_gbps": ev["best_busbw_gbps"],
         "others_median_gbps": ev["others_median_gbps"], "others_pairs": ev["others_pairs"],
         "z_best": ev["z"]}
        for x, ev in evidence.items()
    ]  # fmt: skip
    for r in rows:
        r["recheck"] = None
    block = {"pairs": rows, "per_rank": per_rank, "outlier_z": 3.5, "per": "node"}
    label = {x: f"node-{x}" for x in range(4)}
    text = slow_rank_text(2, block, label)
    assert text.startswith("SLOW NODE: node-2: every pair with it slow (3 of 3 measured)")
    block["per"] = "rank"
    assert slow_rank_text(2, block, label).startswith("SLOW RANK: node-2")


def test_a_rank_alone_on_its_node_is_not_slow_beside_pairs_inside_a_node() -> None:
    """Ranks 0-2 on one node (pairs inside it at 50 GB/s, NVLink-like), rank 3 alone on another
    (every pair of it crosses a NIC at 10 GB/s): judged against the pairs inside a node, rank 3
    was SLOW RANK (z -8). Across nodes only cross-node pairs count: not judged, not slow."""
    from minicluster.core import pair_recheck

    nodes = {0: "n0", 1: "n0", 2: "n0", 3: "n1"}
    rows = _rows(4, {})
    for r in rows:
        r["busbw_gbps"] = 10.0 if 3 in (r["a"], r["b"]) else 50.0
    evidence = judge(rows, 3.5, None, 0.2, nodes=nodes)
    assert not any(ev["slow"] for ev in evidence.values())
    busbw = {(r["a"], r["b"]): r["busbw_gbps"] for r in rows}
    assert pair_recheck.slow_ranks(busbw, 3.5, 0.2, nodes) == []
    assert pair_recheck.slow_ranks(busbw, 3.5, 0.2) == [3]  # what placement-blind judging said


def test_no_pair_measured_is_not_judged_not_ok() -> None:
    from minicluster.analysis.pair_verdict import distribution, verdict

    rows = _rows(4, {})
    for r in rows:
        r["busbw_gbps"] = None
        r["wrong"] = 0
    label = {r: f"rank {r}" for r in range(4)}
    dist = distribution(rows, 0.2)
    block = {"pairs": rows, "distribution": dist, "outlier_z": 3.5, "min_busbw_gbps": None,
             "not_judged": not_judged(rows, dist, None, 3.5, 0.2, label)}  # fmt: skip
    line = verdict(block, label)
    assert "NOT JUDGED" in line and "no pair of 6 was measured" in line and "ok" not in line


def test_across_two_nodes_of_two_ranks_the_rank_rule_says_why_it_cannot_judge() -> None:
    """2 nodes x 2 ranks: the rank rule counts cross-node pairs only (4), a rank has 2 of them
    and leaves 2, too few to judge it against. Counting all 6 pairs it looked judgeable and the
    result gave no reason for judging no rank."""
    nodes = {0: "a", 1: "a", 2: "b", 3: "b"}
    rows = _rows(4, {})
    evidence = judge(rows, 3.5, None, 0.2, None, nodes)
    assert evidence == {}  # the rule judged no rank
    why = ranks_not_judged([0, 1, 2, 3], rows, nodes)
    assert why is not None and why.startswith("a slow rank is not judged with 2 nodes x 2 ranks")
    assert "only cross-node pairs count" in why and "at most 2 without any one rank" in why
    assert ranks_not_judged([0, 1, 2, 3], rows) is None  # on one node, all 6 pairs: judged
    # 2 nodes x 3 ranks: 9 cross-node pairs, 6 without a rank: judged
    six = {x: "a" if x < 3 else "b" for x in range(6)}
    assert judge(_rows(6, {}), 3.5, None, 0.2, None, six) != {}
    assert ranks_not_judged(list(range(6)), _rows(6, {}), six) is None


def test_a_slow_node_and_a_slow_rank_tell_their_re_measure_alike() -> None:
    """One tail for both (`_recheck_tail`): a slow node's pairs that could not be re-measured
    say why (the slow rank's line did; the node's said nothing), and re-measured ones give the
    ratios' medians as the rank's do."""
    from minicluster.analysis.pair_verdict import slow_node_text, slow_rank_text

    ev = {"best_busbw_gbps": 0.1, "others_median_gbps": 1.0, "others_pairs": 4, "z_best": -9.0}
    pairs = [
        {"a": 0, "b": 2, "node_a": "a", "node_b": "c", "busbw_gbps": 0.1},
        {"a": 1, "b": 2, "node_a": "b", "node_b": "c", "busbw_gbps": 0.1},
    ]
    block: dict[str, Any] = {
        "pairs": pairs,
        "per_node": [{"node": "c", "pairs": 2} | ev],
        "per_rank": [{"rank": 2, "pairs": 2} | ev],
        "outlier_z": 3.5,
    }
    label = {x: f"rank {x}" for x in range(3)}
    for r in pairs:
        r["recheck"] = {"status": "not_remeasured", "reason": "no healthy pair to stand beside"}
    for text in (slow_node_text("c", block), slow_rank_text(2, block, label)):
        assert text.endswith(
            "; not re-measured: the passes decide (no healthy pair to stand beside)"
        )
    for r, median in zip(pairs, (0.1, 0.12), strict=True):
        r["recheck"] = {"status": "slow", "ratio_median": median, "ratio_upper": 0.14, "cut": 0.5}
    tails = {
        t[t.index("; each pair") :]
        for t in (slow_node_text("c", block), slow_rank_text(2, block, label))
    }
    assert tails == {
        "; each pair re-measured beside healthy pairs and still slow (busbw / the healthy "
        "pair's: medians 0.10-0.12, upper bounds <= 0.14 < cut 0.50)"
    }
