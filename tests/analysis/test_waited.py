"""`analysis.waited`: how long the other ranks waited in the all-reduce for one rank, on
synthetic step records where they did and did not wait; and the straggler rule that needs it."""

from __future__ import annotations

import numpy as np

from minicluster.analysis import waited
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable
from minicluster.analysis.stragglers import find_stragglers

STEPS = 30


def _records(compute: list[np.ndarray], comm: list[np.ndarray]) -> list[RankRecords]:
    return [
        RankRecords(
            rank,
            columns={
                "step": np.arange(STEPS, dtype=np.int64),
                "warmup": np.zeros(STEPS, bool),
                "step_time_ms": np.full(STEPS, 40.0),
                "compute_ms": c,
                "comm_ms": m,
            },
        )
        for rank, (c, m) in enumerate(zip(compute, comm, strict=True))
    ]


def _noise(seed: int, scale: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, STEPS)


def _slow_rank_1(others_wait: bool) -> tuple[StepTable, waited.WaitedFor]:
    """Rank 1 computes 20 ms more than rank 0 in every step; rank 0 waits for it in the
    all-reduce (its comm_ms 20 ms longer) or does not (both all-reduces equally short)."""
    compute = [10.0 + _noise(1), 30.0 + _noise(2)]
    comm = [2.0 + (20.0 if others_wait else 0.0) + _noise(3).clip(0), 2.0 + _noise(4).clip(0)]
    records = _records(compute, comm)
    table = StepTable(records, 2)
    return table, waited.measure(records, table.indices, 40.0)


def test_the_others_waited_for_the_slow_rank() -> None:
    table, w = _slow_rank_1(others_wait=True)
    ev = w.evidence(1, 5.0)
    assert 19.0 < ev["waited_for_ms"] < 21.5
    low, high = ev["waited_for_ms_interval"]
    assert low <= ev["waited_for_ms"] <= high and low > ev["waited_for_floor_ms"] == 2.0
    assert ev["waited"] is True and ev["waited_for_steps"] == STEPS
    assert w.evidence(0, 5.0)["waited"] is False  # nobody waited for rank 0
    (s,) = find_stragglers(table, 20.0, 2.0, 80.0, waited=w, min_waited_pct=5.0)
    assert s["rank"] == 1 and s["waited_for_ms"] == ev["waited_for_ms"]
    assert s["min_waited_pct"] == 5.0 and "waited" not in s


def test_a_rank_slow_on_its_own_clock_that_nobody_waited_for_is_not_named() -> None:
    """The compute rule alone names rank 1; the others did not wait for it: not a straggler."""
    table, w = _slow_rank_1(others_wait=False)
    assert [s["rank"] for s in find_stragglers(table, 20.0, 2.0, 80.0)] == [1]
    ev = w.evidence(1, 5.0)
    assert ev["waited"] is False and ev["waited_for_ms_interval"][0] < 2.0
    assert find_stragglers(table, 20.0, 2.0, 80.0, waited=w, min_waited_pct=5.0) == []


def test_a_wait_in_a_few_steps_only_is_below_the_floor() -> None:
    """Rank 0 waited 10 ms for rank 1 in 2 steps of 30 (0.7 ms per step): below 5% of 40 ms."""
    comm0 = np.full(STEPS, 2.0)
    comm0[[5, 17]] += 10.0
    records = _records([np.full(STEPS, 10.0)] * 2, [comm0, np.full(STEPS, 1.9)])
    table = StepTable(records, 2)
    ev = waited.measure(records, table.indices, 40.0).evidence(1, 5.0)
    assert ev["waited_for_ms_interval"][0] < ev["waited_for_floor_ms"]
    assert ev["waited"] is False


def test_without_comm_times_the_wait_is_not_measured_and_says_why() -> None:
    records = _records([np.full(STEPS, 10.0)] * 2, [np.full(STEPS, 2.0)] * 2)
    for r in records:
        del r.columns["comm_ms"]
    w = waited.measure(records, np.arange(STEPS), 40.0)
    ev = w.evidence(1, 5.0)
    assert ev["waited"] is None and ev["waited_for_ms"] is None
    assert "comm_ms" in ev["waited_for_reason"]
