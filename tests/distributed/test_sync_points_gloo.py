"""Two real gloo ranks: the collective tracker (rank.comm_kinds) records each call of a step as a
sync point, in issue order, with the time this rank was blocked in it and its group's lowest
rank: a synchronous all-reduce, an async all-gather waited on, a functional all-reduce."""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")
import torch.multiprocessing as mp  # noqa: E402

from minicluster.rank.dist import free_port  # noqa: E402

LATE_S = 0.08


def _rank_main(rank: int, world: int, port: int, queue: object) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch.distributed as dist
    import torch.distributed._functional_collectives as funcol

    from minicluster.rank.comm_kinds import KindTracker

    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        tracker = KindTracker()
        tracker.install()
        try:
            t = torch.ones(1024)
            if rank == 1:
                time.sleep(LATE_S)  # rank 1 arrives late at the first sync point only
            dist.all_reduce(t)
            out = torch.empty(2 * 1024)
            dist.all_gather_into_tensor(out, t, async_op=True).wait()
            funcol.all_reduce(t, "sum", dist.group.WORLD)
            tracker.take_step()
            queue.put((rank, tracker.last_syncs))  # type: ignore[attr-defined]
        finally:
            tracker.uninstall()
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_each_collective_is_a_sync_point_with_its_blocked_time() -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.spawn(_rank_main, args=(2, free_port(), queue), nprocs=2, join=True)
    syncs = dict(queue.get(timeout=10) for _ in range(2))
    for rank in (0, 1):
        assert len(syncs[rank]) == 3, syncs
        assert [leader for _, leader, _, _ in syncs[rank]] == [0, 0, 0]
        assert [kind for _, _, kind, _ in syncs[rank]] == ["all_reduce", "all_gather", "all_reduce"]
        # bytes x busbw factor: all-reduce 2(n-1)/n = 1, all-gather (n-1)/n of the output
        assert [bus for _, _, _, bus in syncs[rank]] == [4096, 4096, 4096]
        assert all(ms >= 0 for ms, _, _, _ in syncs[rank])
    # rank 0 waited at the first sync point for rank 1; rank 1, the last arrival, did not
    assert syncs[0][0][0] > 0.6 * LATE_S * 1e3
    assert syncs[1][0][0] < syncs[0][0][0] - 0.4 * LATE_S * 1e3


DELAY_S = 0.05


def _slow_main(rank: int, world: int, port: int, queue: object) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch.distributed as dist
    import torch.distributed._functional_collectives as funcol

    from minicluster.core.fault_spec import parse
    from minicluster.rank.comm_kinds import KindTracker
    from minicluster.rank.faults import FaultInjector

    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        # the first functional collective takes seconds to set up (under load, 8 s seen): once
        # before the clock, as a run's warm-up step does
        funcol.wait_tensor(funcol.all_reduce(torch.ones(4), "sum", dist.group.WORLD))
        injector = FaultInjector((parse(f"slow_link:rank=1,delay_ms={DELAY_S * 1e3:g}"),), rank)
        injector.begin_step(0)
        injector.install_transport()  # first, as a layout run does: the tracker wraps it
        tracker = KindTracker()
        tracker.install()
        try:
            dist.barrier()  # both ranks start together (the warm-up's end differs by seconds)
            t = torch.arange(1024.0) * (rank + 1)
            out = torch.empty(2 * 1024)
            dist.all_gather_single(out, t)  # FSDP2's calls
            rs = torch.empty(512)
            dist.reduce_scatter_single(rs, t.clone())
            work = dist.all_gather_single(out, t, async_op=True)
            work.wait()
            red = funcol.all_reduce(t, "sum", dist.group.WORLD)  # DTensor's
            red = funcol.wait_tensor(red)
            tracker.take_step()
            values = (out.tolist(), rs.tolist(), red.tolist())
            queue.put((rank, tracker.last_syncs, values))  # type: ignore[attr-defined]
        finally:
            tracker.uninstall()
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_a_slow_link_holds_both_ranks_in_every_call_and_delivers_the_right_data() -> None:
    """FSDP2's all-gather and reduce-scatter (sync and async) and DTensor's functional
    all-reduce leave rank 1 late through the slow transport: both ranks are blocked for the
    delay in each call (the wait-free time, the least of the two, grows by it), and the data
    are what a healthy link delivers."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.spawn(_slow_main, args=(2, free_port(), queue), nprocs=2, join=True)
    got = {
        rank: (syncs, values) for rank, syncs, values in (queue.get(timeout=10) for _ in range(2))
    }
    for rank in (0, 1):
        syncs, (gathered, scattered, reduced) = got[rank]
        kinds = [kind for _, _, kind, _ in syncs]
        assert kinds == ["all_gather", "reduce_scatter", "all_gather", "all_reduce"], syncs
        assert all(ms < 20 * DELAY_S * 1e3 for ms, _, _, _ in syncs), syncs  # nothing piles up
        base = list(range(1024))
        assert gathered == [float(v) for v in base] + [2.0 * v for v in base]
        assert scattered == [3.0 * v for v in base[rank * 512 : (rank + 1) * 512]]
        assert reduced == [3.0 * v for v in base]
    # each call's wait-free time (the least either rank was blocked in it) is the delay: the
    # rank that arrived last waited for the late data all the same
    wait_free = [min(a[0], b[0]) for a, b in zip(got[0][0], got[1][0], strict=True)]
    assert all(ms > 0.8 * DELAY_S * 1e3 for ms in wait_free), got
