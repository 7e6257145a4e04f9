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
        assert [leader for _, leader in syncs[rank]] == [0, 0, 0]
        assert all(ms >= 0 for ms, _ in syncs[rank])
    # rank 0 waited at the first sync point for rank 1; rank 1, the last arrival, did not
    assert syncs[0][0][0] > 0.6 * LATE_S * 1e3
    assert syncs[1][0][0] < syncs[0][0][0] - 0.4 * LATE_S * 1e3
