from __future__ import annotations

import pytest

pytest.importorskip("torch")

from minicluster.rank.comm_timing import HostClockCommTimer, union_ms  # noqa: E402


def test_union_merges_overlapping_spans() -> None:
    ms = 1_000_000
    assert union_ms([]) == 0.0
    assert union_ms([(0, 2 * ms)]) == 2.0
    assert union_ms([(0, 2 * ms), (1 * ms, 3 * ms)]) == 3.0  # overlap counted once
    assert union_ms([(5 * ms, 6 * ms), (0, 1 * ms)]) == 2.0  # disjoint, unsorted
    assert union_ms([(0, 4 * ms), (1 * ms, 2 * ms)]) == 4.0  # nested


def test_exposed_comm_is_last_ready_to_last_done() -> None:
    timer = HostClockCommTimer(world_size=2)
    ms = 1_000_000
    # bucket A ready at 0, done at 3 ms; bucket B (last) ready at 5 ms, done at 9 ms
    timer.spans = [(0, 3 * ms, 100), (5 * ms, 9 * ms, 50)]
    step = timer.take_step()
    assert step.comm_ms == 7.0
    assert step.exposed_comm_ms == 4.0
    assert step.buckets == 2
    assert step.bytes == 150
    assert timer.take_step().buckets == 0  # reset after each step
