"""Two real gloo ranks (spawned) run worker.run; assert on what they wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.multiprocessing as mp  # noqa: E402

from minicluster.core import config  # noqa: E402


def _rank_main(rank: int, world: int, port: int, out: str, queue: object, timing: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        MINICLUSTER_PROGRESS="0",
    )
    from minicluster.rank import worker

    cfg = config.from_dict(
        {
            "workload": {
                "name": "mlp",
                "per_rank_batch": 8,
                "input_dim": 32,
                "hidden_dim": 64,
                "num_layers": 2,
            },
            "steps": {"warmup": 2, "measured": 6},
            "run": {"collective_timeout_s": 60, "threads_per_rank": 1, "comm_timing": timing},
        }
    )
    gathered = worker.run(cfg, Path(out), run_id="test-run")
    if rank == 0:
        queue.put(gathered)  # type: ignore[attr-defined]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("timing", "method"), [("ddp_stats", "ddp_runtime_stats"), ("hook", "comm_hook_host_clock")]
)
def test_two_gloo_ranks_record_every_step(tmp_path: Path, timing: str, method: str) -> None:
    from minicluster.rank.dist import free_port

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_rank_main, args=(2, free_port(), str(tmp_path), queue, timing), nprocs=2, join=True)
    gathered = queue.get()
    assert [g.rank for g in gathered] == [0, 1]
    for rank in (0, 1):
        lines = (tmp_path / "ranks" / f"rank_{rank:05d}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert records[0]["type"] == "header"
        assert records[0]["run_id"] == "test-run"
        if rank == 0:  # local rank 0 of its node: the job's roster follows the header
            roster = records.pop(1)
            assert roster["type"] == "roster" and roster["nodes"][0]["ranks"] == [0, 1]
        assert records[1] == {
            "type": "comm_timing",
            "method": method,
            "fallback": None,
            "from_step": 0,
        }
        steps = records[2:]
        assert [s["step"] for s in steps] == list(range(8))
        assert [s["warmup"] for s in steps] == [True] * 2 + [False] * 6
        for s in steps[2:]:
            assert 0 < s["comm_ms"] < s["step_time_ms"]
            assert 0 <= s["exposed_comm_ms"] <= s["comm_ms"] + 1e-6
            assert s["buckets"] >= 1 and s["comm_bytes"] > 0
        summary = json.loads((tmp_path / "ranks" / f"rank_{rank:05d}.summary.json").read_text())
        assert summary["status"] == "ok"
        assert summary["last_step"] == 7
        assert summary["memory"]["rss_peak_bytes"] > 0
    # same global batch size per step on every rank and identical losses are not expected
    # (each rank has its own data), but the gradient bytes all-reduced must match
    b0 = [s.comm_bytes for s in gathered[0].steps()]
    b1 = [s.comm_bytes for s in gathered[1].steps()]
    assert b0 == b1


def _rank_main_no_gather(rank: int, world: int, port: int, out: str, queue: object) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        MINICLUSTER_PROGRESS="0",
    )
    from minicluster.rank import session, worker

    calls = []
    real = session.tdist.gather_object

    def spy(*args: object, **kwargs: object) -> None:
        calls.append(1)
        real(*args, **kwargs)  # type: ignore[arg-type]

    session.tdist.gather_object = spy  # type: ignore[assignment]
    cfg = config.from_dict(
        {
            "workload": {"name": "mlp", "per_rank_batch": 8, "input_dim": 32, "hidden_dim": 64},
            "steps": {"warmup": 1, "measured": 3},
            "run": {"collective_timeout_s": 60, "threads_per_rank": 1},
        }
    )
    returned = worker.run(cfg, Path(out), run_id="no-gather", gather=False)
    queue.put((rank, returned, len(calls)))  # type: ignore[attr-defined]


@pytest.mark.timeout(120)
def test_no_step_gather_when_the_launcher_reads_the_files(tmp_path: Path) -> None:
    """`minicluster worker --no-aggregate` (what the local torchrun launcher passes): the ranks
    write their files and send nothing in-band; every rank returns None."""
    from minicluster.rank.dist import free_port

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_rank_main_no_gather, args=(2, free_port(), str(tmp_path), queue), nprocs=2)
    got = sorted(queue.get() for _ in range(2))
    assert got == [(0, None, 0), (1, None, 0)]
    for rank in (0, 1):
        summary = json.loads((tmp_path / "ranks" / f"rank_{rank:05d}.summary.json").read_text())
        assert summary["status"] == "ok" and summary["last_step"] == 3
