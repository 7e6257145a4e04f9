"""The round-robin schedule of the pairwise link test, and the node a rank belongs to."""

from __future__ import annotations

import itertools

import pytest

from minicluster.core import pairs


@pytest.mark.parametrize("n", range(2, 12))
def test_every_pair_meets_once_in_rounds_of_disjoint_pairs(n: int) -> None:
    rounds = pairs.round_robin(list(range(n)))
    met = [p for r in rounds for p in r]
    assert sorted(met) == list(itertools.combinations(range(n), 2))
    for r in rounds:
        ranks = [x for p in r for x in p]
        assert len(ranks) == len(set(ranks))  # nobody is in two pairs of one round
    # n even: n - 1 rounds of n/2 pairs; n odd: n rounds of (n-1)/2 (one sits out each)
    assert len(rounds) == (n - 1 if n % 2 == 0 else n)
    assert {len(r) for r in rounds} == {n // 2}


def test_the_schedule_is_over_the_participants_given() -> None:
    rounds = pairs.round_robin([0, 4, 8])
    assert sorted(p for r in rounds for p in r) == [(0, 4), (0, 8), (4, 8)]
    serial = pairs.serial(rounds)
    assert [len(r) for r in serial] == [1, 1, 1]
    assert [r[0] for r in serial] == [p for r in rounds for p in r]


@pytest.mark.parametrize("bad", [[], [3], [1, 1]])
def test_too_few_or_repeated_participants_are_refused(bad: list[int]) -> None:
    with pytest.raises(ValueError):
        pairs.round_robin(bad)


def test_the_node_of_a_rank_prefers_the_launchers_node_rank() -> None:
    assert pairs.node_of({"hostname": "gpu-17"}) == "gpu-17"
    assert pairs.node_of({"hostname": "vm", "node_rank": 1}) == "node 1 (vm)"
    assert pairs.node_of({"node_rank": 0, "hostname": None}) == "node 0"
    assert pairs.node_of({}) == "unknown host"
