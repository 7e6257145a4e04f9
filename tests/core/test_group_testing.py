"""The group-testing decision (core.group_testing) on busbw it did not measure: a seeded model
of healthy and bad units, and a recorded run replayed."""

from __future__ import annotations

import math
import random

import pytest

from minicluster.core import group_testing as gt


def search(
    n: int, bad: dict[int, float], sigma: float = 0.05, seed: int = 0, **kw: int
) -> gt.State:
    """The whole search on a model: a group's busbw is its slowest unit's speed x lognormal
    noise."""
    rng = random.Random(seed)
    state = gt.start(gt.Params(n_units=n, **kw))
    while (groups := gt.plan(state)) is not None:
        for g in groups:
            slowest = min(bad.get(u, 1.0) for u in g.units)
            g.busbw_gbps = 10.0 * slowest * math.exp(rng.gauss(0, sigma))
        gt.record(state, groups)
    return state


def test_four_ranks_one_bad_named_in_fewer_rounds_than_pairs() -> None:
    state = search(4, {2: 0.1})
    assert state.bad == [2]
    assert len(state.rounds) < 4 * 3 // 2
    assert state.stop_reason == "nothing left to test"


def test_clean_fleets_name_nobody() -> None:
    for seed in range(20):
        for n in (4, 8, 64):
            assert search(n, {}, seed=seed).bad == []


@pytest.mark.parametrize("bad", [[5], [5, 900], [1, 2, 700]])
def test_1024_units_up_to_three_bad_found_in_few_rounds(bad: list[int]) -> None:
    state = search(1024, {u: 0.4 for u in bad})
    assert state.bad == bad
    assert len(state.rounds) <= 44
    assert not state.more_than_max_bad


def test_more_than_k_bad_are_named_and_said() -> None:
    state = search(1024, {u: 0.3 for u in (1, 9, 17, 25)}, max_bad=3)
    assert state.more_than_max_bad
    assert state.bad == [1, 9, 17, 25]


def test_replay_gives_the_same_verdict_and_refuses_other_groups() -> None:
    live = search(16, {3: 0.2})
    recorded = [[(g.units, g.busbw_gbps, g.wrong) for g in r] for r in live.rounds]
    again = gt.replay(live.params, recorded)
    assert again.bad == live.bad == [3]
    assert [[g.slow for g in r] for r in again.rounds] == [[g.slow for g in r] for r in live.rounds]
    recorded[1][0] = ((5, 6), 1.0, 0)
    with pytest.raises(ValueError, match="round 2"):
        gt.replay(live.params, recorded)


def test_wrong_elements_make_a_group_slow_and_its_unit_bad() -> None:
    state = gt.start(gt.Params(n_units=4))
    while (groups := gt.plan(state)) is not None:
        for g in groups:
            g.busbw_gbps, g.wrong = 1.0, (5 if 1 in g.units else 0)
        gt.record(state, groups)
    assert state.bad == [1]


def test_bad_params_are_value_errors() -> None:
    with pytest.raises(ValueError, match="2 units or more"):
        gt.Params(n_units=1)
    with pytest.raises(ValueError, match="group_size"):
        gt.Params(n_units=4, group_size=5)
