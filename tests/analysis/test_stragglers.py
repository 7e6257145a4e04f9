"""The straggler rule's sign test on long runs (thousands of measured steps)."""

from __future__ import annotations

import numpy as np
import pytest

from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable
from minicluster.analysis.stragglers import find_stragglers


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
