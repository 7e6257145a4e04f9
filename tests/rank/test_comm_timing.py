"""One definition of comm_ms for every timing method: the time with at least one all-reduce in
flight, i.e. the union of bucket spans. Overlapping spans are built by hand for each method."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

pytest.importorskip("torch")

from minicluster.core import comm_methods  # noqa: E402
from minicluster.rank import ddp_stats  # noqa: E402
from minicluster.rank.comm_timing import (  # noqa: E402
    CudaEventCommTimer,
    DdpStatsCommTimer,
    HostClockCommTimer,
    union_ms,
)

MS = 1_000_000  # ns


def test_union_merges_overlapping_spans() -> None:
    assert union_ms([]) == 0.0
    assert union_ms([(0, 2)]) == 2.0
    assert union_ms([(0, 2), (1, 3)]) == 3.0  # overlap counted once
    assert union_ms([(5, 6), (0, 1)]) == 2.0  # disjoint, unsorted
    assert union_ms([(0, 4), (1, 2)]) == 4.0  # nested


def test_host_clock_hook_unions_overlapping_buckets() -> None:
    timer = HostClockCommTimer(world_size=2)
    # three buckets: A 0-3 ms, B 2-6 ms (queued behind A: overlaps), C 8-9 ms (after a gap)
    timer.spans = [(0, 3 * MS, 100), (2 * MS, 6 * MS, 50), (8 * MS, 9 * MS, 25)]
    step = timer.take_step()
    assert step.comm_ms == pytest.approx(7.0)  # 0-6 and 8-9: not 3 + 4 + 1 = 8
    assert step.exposed_comm_ms == pytest.approx(1.0)  # last ready (8) to last done (9)
    assert (step.buckets, step.bytes) == (3, 175)
    empty = timer.take_step()  # reset after each step; a step without all-reduce is not 0 ms
    assert empty.comm_ms is None and empty.reason is not None


class _Event:
    """A stand-in for torch.cuda.Event: its time on the device clock, in ms."""

    def __init__(self, t_ms: float) -> None:
        self.t_ms = t_ms

    def elapsed_time(self, other: _Event) -> float:
        return other.t_ms - self.t_ms


def test_cuda_events_are_taken_from_the_step_start_and_unioned() -> None:
    timer = CudaEventCommTimer(world_size=2)
    timer.step_start = _Event(100.0)
    timer.events = [
        [_Event(100.0), _Event(103.0), 100],
        [_Event(102.0), _Event(106.0), 50],  # queued on NCCL's stream: overlaps the first
        [_Event(108.0), _Event(109.0), 25],
    ]
    step = timer.take_step()
    assert step.comm_ms == pytest.approx(7.0)  # the sum of bucket times would say 8
    assert step.exposed_comm_ms == pytest.approx(1.0)
    assert (step.buckets, step.bytes) == (3, 175)


def _logging_data(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "iteration": 7,
        "backward_comm_time_start": 1_000 * MS,
        "backward_comm_time_end": 1_009 * MS,
        "backward_compute_time_end": 1_008 * MS,
        "num_buckets_reduced": 3,
        "bucket_sizes": "10539048",
        "has_rebuilt_buckets": 1,
        "rebuilt_bucket_sizes": "4239400, 4198400, 2101248",
    }
    data.update(over)
    return data


def _ddp(*reads: dict[str, Any]) -> Any:
    """An autospec'd DDP whose private logging API returns `reads` in turn."""
    from torch.nn.parallel import DistributedDataParallel

    ddp = mock.create_autospec(DistributedDataParallel, instance=True)
    ddp.logger = mock.Mock(spec=["set_runtime_stats_and_log"])
    ddp._get_ddp_logging_data.side_effect = list(reads)
    return ddp


def test_ddp_stats_give_a_span_and_say_it_is_not_the_union() -> None:
    timer = DdpStatsCommTimer(ddp_stats.DdpRuntimeStats(_ddp(_logging_data())))
    step = timer.take_step()
    # DDP gives the first start and last end only: 9 ms even if the buckets left a gap
    assert step.comm_ms == pytest.approx(9.0)
    assert step.exposed_comm_ms == pytest.approx(1.0)
    assert "only when the buckets' all-reduces leave no gap" in comm_methods.describe(
        comm_methods.DDP_STATS
    )


def test_bucket_count_and_bytes_are_the_rebuilt_buckets() -> None:
    """Case 13: DDP rebuilds its buckets after the first iteration; the constructor's single
    10,539,048-byte bucket is not what runs: 3 buckets of 4239400, 4198400, 2101248 bytes."""
    stats = ddp_stats.DdpRuntimeStats(_ddp(_logging_data()))
    got = stats.read()
    assert (got.buckets, got.bytes) == (3, 10_539_048)
    first = ddp_stats.DdpRuntimeStats(
        _ddp(_logging_data(has_rebuilt_buckets=0, num_buckets_reduced=1))
    ).read()
    assert (first.buckets, first.bytes) == (1, 10_539_048)


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        ({"iteration": 7}, "went 7 -> 7"),  # no forward since: stale
        ({"iteration": 9}, "went 7 -> 9"),  # an iteration skipped
        ({"backward_comm_time_start": 1_000 * MS, "iteration": 8}, "did not change"),  # no_sync
        (
            {
                "backward_comm_time_end": 999 * MS,
                "backward_comm_time_start": 1_500 * MS,
                "iteration": 8,
            },
            "out of order",
        ),
    ],
)
def test_a_stale_or_odd_read_is_null_with_a_reason_never_zero(
    second: dict[str, Any], reason: str
) -> None:
    timer = DdpStatsCommTimer(
        ddp_stats.DdpRuntimeStats(_ddp(_logging_data(), _logging_data(**second)))
    )
    assert timer.take_step().comm_ms == pytest.approx(9.0)
    step = timer.take_step()
    assert step.comm_ms is None and step.exposed_comm_ms is None and step.buckets is None
    assert reason in (step.reason or "")


def test_a_missing_key_is_null_not_zero() -> None:
    data = _logging_data()
    del data["backward_comm_time_end"]
    step = DdpStatsCommTimer(ddp_stats.DdpRuntimeStats(_ddp(data))).take_step()
    assert step.comm_ms is None
    assert "lacks backward_comm_time_end" in (step.reason or "")


def test_the_worker_gives_up_after_consecutive_failures() -> None:
    reads = [_logging_data(iteration=7)] * (ddp_stats.MAX_CONSECUTIVE_FAILURES + 1)
    stats = ddp_stats.DdpRuntimeStats(_ddp(*reads))
    stats.read()  # a good first read
    for _ in range(ddp_stats.MAX_CONSECUTIVE_FAILURES - 1):
        stats.read()
        assert not stats.given_up
    stats.read()
    assert stats.given_up and "went 7 -> 7" in stats.failures[-1]


def test_a_raising_private_api_is_a_reason() -> None:
    ddp = _ddp()
    ddp._get_ddp_logging_data.side_effect = RuntimeError("gone in this build")
    step = DdpStatsCommTimer(ddp_stats.DdpRuntimeStats(ddp)).take_step()
    assert step.comm_ms is None and "gone in this build" in (step.reason or "")


@pytest.mark.timeout(60)
def test_the_pinned_torch_provides_every_key_the_guard_reads() -> None:
    """Contract with the pinned torch: a real one-process DDP's logging data, after a step,
    has every key `ddp_stats` needs, rebuilt buckets after the second step, and the guard
    accepts consecutive steps."""
    import gc
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from minicluster.rank.dist import free_port

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.Linear(1024, 1024))
        ddp = DDP(model, bucket_cap_mb=1)
        stats = ddp_stats.DdpRuntimeStats.attach(ddp)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
        reads = []
        for _ in range(3):
            opt.zero_grad()
            ddp(torch.randn(4, 512)).sum().backward()
            opt.step()
            reads.append(stats.read())
        data = ddp._get_ddp_logging_data()
        assert [k for k in ddp_stats.REQUIRED_KEYS if k not in data] == []
        assert "rebuilt_bucket_sizes" in data and int(data["has_rebuilt_buckets"]) == 1
        assert all(r.reason is None for r in reads), [r.reason for r in reads]
        assert reads[-1].buckets == len(data["rebuilt_bucket_sizes"].split(","))
        del ddp, opt, model
        gc.collect()
    finally:
        dist.destroy_process_group()
