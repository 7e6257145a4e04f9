"""The same real run aggregated from its rank files and from the records gathered in-band agree,
also when the DDP-stats timer gives up mid-run and the ranks switch to the comm hook."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
import torch.multiprocessing as mp  # noqa: E402

from minicluster.core import config  # noqa: E402

GIVE_UP_FROM = 3  # DDP's runtime stats "fail" from this read on, on every rank


def _rank_main(rank: int, world: int, port: int, out: str, queue: Any) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        MINICLUSTER_PROGRESS="0",
    )
    from minicluster.rank import ddp_stats, worker

    # DDP's runtime stats are a private API: make them go stale mid-run, as a torch build whose
    # logger stops advancing would, so the worker switches to the comm hook.
    real_read = ddp_stats.DdpRuntimeStats.read
    reads = [0]

    def failing_read(self: ddp_stats.DdpRuntimeStats) -> ddp_stats.StatsRead:
        reads[0] += 1
        if reads[0] <= GIVE_UP_FROM:
            return real_read(self)
        self.failures_in_a_row += 1
        self.failures.append("stale (test)")
        return ddp_stats.StatsRead(reason="stale (test)")

    ddp_stats.DdpRuntimeStats.read = failing_read  # type: ignore[method-assign]
    cfg = config.from_dict(
        {
            "workload": {"name": "mlp", "per_rank_batch": 8, "input_dim": 32, "hidden_dim": 64},
            "steps": {"warmup": 2, "measured": 10},
            "run": {"collective_timeout_s": 60, "threads_per_rank": 1, "comm_timing": "ddp_stats"},
        }
    )
    gathered = worker.run(cfg, Path(out), run_id="inband-vs-files")
    if rank == 0:
        queue.put(gathered)


@pytest.mark.timeout(150)
def test_in_band_and_file_aggregation_agree_across_a_timer_switch(tmp_path: Path) -> None:
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import from_gathered, read_run_dir
    from minicluster.rank.dist import free_port

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_rank_main, args=(2, free_port(), str(tmp_path), queue), nprocs=2, join=True)
    gathered = queue.get()
    at = "2026-01-01T00:00:00+00:00"
    in_band = aggregate(from_gathered(gathered), aggregated_at=at)
    from_files = aggregate(read_run_dir(tmp_path), aggregated_at=at)
    assert from_files["timing_method"] == "mixed"
    assert in_band["timing_method"] == "mixed"
    assert in_band == from_files
