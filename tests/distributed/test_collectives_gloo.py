"""Three real gloo ranks (spawned) run the collectives job through worker.run; assert on their files.

Three ranks, so sizes are rounded to a multiple of 3 x element size and the busbw factors are
not the 2-rank special case.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.multiprocessing as mp  # noqa: E402

from minicluster.core import config  # noqa: E402

OPS = ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"]


def _rank_main(rank: int, world: int, port: int, out: str, queue: object, root: int = 2) -> None:
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
            "job": "collectives",
            "collectives": {
                "min_bytes": "1K",
                "max_bytes": "4K",
                "iters": 2,
                "warmup_iters": 1,
                "dtype": "float16",
                "root": root,
            },
            "run": {"collective_timeout_s": 60, "threads_per_rank": 1},
        }
    )
    gathered = worker.run(cfg, Path(out), run_id="coll-test")
    if rank == 0:
        queue.put(gathered)  # type: ignore[attr-defined]


@pytest.mark.timeout(120)
def test_three_gloo_ranks_check_and_time_every_op(tmp_path: Path) -> None:
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import from_gathered
    from minicluster.rank.dist import free_port
    from minicluster.result.schema import validate_result

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_rank_main, args=(3, free_port(), str(tmp_path), queue), nprocs=3, join=True)
    gathered = queue.get()
    assert [g.rank for g in gathered] == [0, 1, 2]
    sizes = [1020, 2046, 4092]  # 1K, 2K, 4K rounded down to a multiple of 3 x 2 B
    for rank in range(3):
        lines = (tmp_path / "ranks" / f"rank_{rank:05d}.jsonl").read_text().splitlines()
        head, *rest = (json.loads(line) for line in lines)
        recs = [r for r in rest if r["type"] == "collective"]
        assert [r["type"] for r in rest if r["type"] != "collective"] in ([], ["roster"])
        assert head["type"] == "header" and head["job"] == "collectives"
        assert head["run_id"] == "coll-test" and head["workload"]["per_rank_batch"] is None
        assert [(r["op"], r["size_bytes"]) for r in recs] == [(op, s) for op in OPS for s in sizes]
        for r in recs:
            assert r["status"] == "measured" and r["wrong"] == 0, r
            assert 0 < r["time_us"] <= r["time_us_max"]
        summary = json.loads((tmp_path / "ranks" / f"rank_{rank:05d}.summary.json").read_text())
        assert summary["status"] == "ok" and summary["collectives_recorded"] == 15
    # every rank recorded the same max across ranks
    maxes = {tuple(r.time_us_max for r in g.bench) for g in gathered}
    assert len(maxes) == 1

    result = aggregate(from_gathered(gathered))
    validate_result(result)
    assert result["status"] == "ok" and result["collectives"]["size_multiple_bytes"] == 6
    for row in result["collectives"]["results"]:
        factor = {"all_reduce": 2 * 2 / 3, "broadcast": 1.0}.get(row["op"], 2 / 3)
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"] * factor, rel=1e-12)
        n_elems = row["size_bytes"] // 2
        per_rank = n_elems // 3
        assert row["count"] == (n_elems if row["op"] in ("all_reduce", "broadcast") else per_rank)


@pytest.mark.timeout(120)
def test_one_gloo_rank_has_no_bandwidth(tmp_path: Path) -> None:
    """One rank sends nothing across a link: a row's time is measured (the op's local work),
    its algbw and busbw are null with the reason (not busbw 0.0 from (n-1)/n = 0, nor a
    broadcast 'moving' its buffer at memory speed)."""
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import from_gathered
    from minicluster.rank.dist import free_port
    from minicluster.result.schema import validate_result

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_rank_main, args=(1, free_port(), str(tmp_path), queue, 0), nprocs=1, join=True)
    result = aggregate(from_gathered(queue.get()))
    validate_result(result)
    rows = result["collectives"]["results"]
    measured = [r for r in rows if r["status"] == "measured"]
    assert {r["op"] for r in measured} >= {"all_reduce", "broadcast"}
    for row in measured:
        assert row["time_us"] > 0
        assert row["algbw_gbps"] is None and row["busbw_gbps"] is None, row
        assert "one rank: no inter-rank communication" in row["reason"]
    assert result["metrics"]["busbw_gbps"]["value"] is None
