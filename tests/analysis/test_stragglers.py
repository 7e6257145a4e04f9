"""The straggler rule's sign test on long runs (thousands of measured steps)."""

from __future__ import annotations

import numpy as np
import pytest

from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable
from minicluster.analysis.stragglers import find_stragglers, min_steps_to_judge, not_judged_reason


def _table(compute_by_rank: list[np.ndarray]) -> StepTable:
    records = []
    for rank, compute in enumerate(compute_by_rank):
        n = compute.size
        records.append(
            RankRecords(
                rank,
                columns={
                    "step": np.arange(n, dtype=np.int64),
                    "warmup": np.zeros(n, bool),
                    "step_time_ms": compute + 3.0,
                    "compute_ms": compute,
                    "comm_ms": np.full(n, 2.0),
                },
            )
        )
    return StepTable(records, len(compute_by_rank))


@pytest.mark.parametrize("steps", [1_200, 5_000])
def test_sign_test_of_a_rank_slowest_in_half_the_steps_does_not_overflow(steps: int) -> None:
    """Rank 1's median compute is 3x rank 0's, but it is the slowest in only 55% of the steps: the
    effect-size rule (80% of the steps) clears it. The binomial tail at n in the thousands used
    to overflow a float (math.comb(1200, 660) ~ 1e359): an internal error, no result."""
    rng = np.random.default_rng(0)
    slow = rng.random(steps) < 0.55
    compute1 = np.where(slow, 30.0, 5.0)
    assert find_stragglers(_table([np.full(steps, 10.0), compute1]), 20.0, 2.0, 80.0) == []


def test_sign_test_at_5000_steps_names_a_consistent_straggler() -> None:
    """Slowest in 90% of 5,000 steps: named, with a p-value that is a number (not 0 by underflow
    of a hand sum, not an overflow)."""
    rng = np.random.default_rng(1)
    steps = 5_000
    compute1 = np.where(rng.random(steps) < 0.9, 30.0, 5.0)
    found = find_stragglers(_table([np.full(steps, 10.0), compute1]), 20.0, 2.0, 80.0)
    assert [s["rank"] for s in found] == [1]
    assert found[0]["steps_compared"] == steps
    assert 0.0 <= found[0]["sign_test_p"] < 1e-100


@pytest.mark.parametrize(("ranks", "need"), [(2, 5), (3, 3), (4, 3), (8, 2), (20, 2), (21, 1)])
def test_min_steps_to_judge_follows_the_sign_test(ranks: int, need: int) -> None:
    """The fewest steps at which a rank slowest in every step reaches p < 0.05: (1/N)**n."""
    assert min_steps_to_judge(ranks) == need
    assert (1.0 / ranks) ** need < 0.05 <= (1.0 / ranks) ** (need - 1)


def test_not_judged_below_the_minimum_is_judged_at_it() -> None:
    """Below min_steps_to_judge no straggler can be named even slowest in every step (so the
    table is not judged); at it, it is named."""
    short = _table([np.full(4, 10.0), np.full(4, 210.0)])
    assert find_stragglers(short, 20.0, 2.0, 80.0) == []
    assert "needs 5 with 2 ranks" in str(not_judged_reason(short))
    enough = _table([np.full(5, 10.0), np.full(5, 210.0)])
    assert not_judged_reason(enough) is None
    assert [s["rank"] for s in find_stragglers(enough, 20.0, 2.0, 80.0)] == [1]
    three = _table([np.full(3, 10.0), np.full(3, 10.0), np.full(3, 210.0)])
    assert not_judged_reason(three) is None


def test_not_judged_without_scipy_where_the_steps_are_surely_enough() -> None:
    """`not_judged_reason` answers without scipy's binomial test when (1/ranks)**steps is under
    half its level: the same answer as the test's (`min_steps_to_judge`) at every count of
    ranks and steps around it."""
    for ranks in (2, 3, 4, 5, 8, 20, 21, 64):
        for steps in range(1, 9):
            table = _table([np.full(steps, 10.0 + r) for r in range(ranks)])
            judged = not_judged_reason(table) is None
            assert judged == (steps >= min_steps_to_judge(ranks)), (ranks, steps)
