"""The in-band gather by node (`rank.session.gather_by_node`) on four real gloo processes laid
out as two nodes of two ranks: every node's leader sends rank 0 its node's reduction; when one
node cannot reduce, every node sends its ranks' logs instead, with the reason, and no log is
lost."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from minicluster.core import in_band  # noqa: E402
from minicluster.core.rank_format import RankLog, Summary  # noqa: E402

WORLD = 4


def reduce_ok(logs: list[RankLog]) -> bytes:
    return ",".join(str(log.rank) for log in logs).encode()


def reduce_fails_on_node_1(logs: list[RankLog]) -> bytes:
    if any(log.rank == 2 for log in logs):
        raise RuntimeError("no steps to reduce")
    return reduce_ok(logs)


def _rank(rank: int, store: str, out: str, reducer_name: str, per_node: int) -> None:
    import torch.distributed as tdist

    from minicluster.rank import dist, session
    from minicluster.rank.roster import roster_record

    tdist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        info = dist.RankInfo(rank, rank % per_node, WORLD, per_node, "host", rank // per_node)
        roster = roster_record([(r, "host", r // per_node, out) for r in range(WORLD)])
        mine = RankLog(summary=Summary(rank=rank, status="ok"))
        mine.step_rows = [
            {"type": "step", "step": s, "step_time_ms": 10.0 + rank} for s in range(50)
        ]
        reducer = {"ok": reduce_ok, "fails": reduce_fails_on_node_1}[reducer_name]
        got = session.gather_by_node(mine, info, roster, reducer)
        if rank == 0:
            Path(out, "in_band.pickle").write_bytes(pickle.dumps(got))
        else:
            assert got is None
    finally:
        tdist.destroy_process_group()


def _gather(tmp_path: Path, reducer_name: str, per_node: int = 2) -> in_band.InBand:
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=_rank, args=(r, str(tmp_path / "store"), str(tmp_path), reducer_name, per_node)
        )
        for r in range(WORLD)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORLD
    got: Any = pickle.loads((tmp_path / "in_band.pickle").read_bytes())
    assert isinstance(got, in_band.InBand)
    return got


@pytest.mark.timeout(180)
def test_only_the_node_leaders_send_rank0_their_reduction(tmp_path: Path) -> None:
    got = _gather(tmp_path, "ok")
    assert got.method == in_band.NODE_REDUCTIONS and got.reason is None
    assert got.reductions() == [b"0,1", b"2,3"]
    traffic = got.traffic()
    assert [(n["node_rank"], n["ranks"], n["leader"]) for n in traffic["nodes"]] == [
        (0, [0, 1], 0),
        (1, [2, 3], 2),
    ]
    for node, share in zip(traffic["nodes"], got.shares, strict=True):
        assert node["sent"] == "node reduction"
        assert node["bytes_to_rank0"] == len(pickle.dumps(share))
        # each rank's log of 50 steps, as the per-rank gather would have sent it
        assert node["rank_log_bytes"] > 2 * 50 * 20
        assert node["bytes_to_rank0"] < node["rank_log_bytes"]
    assert traffic["bytes_to_rank0"] == sum(n["bytes_to_rank0"] for n in traffic["nodes"])


@pytest.mark.timeout(180)
def test_a_node_that_cannot_reduce_makes_every_node_send_its_logs(tmp_path: Path) -> None:
    got = _gather(tmp_path, "fails")
    assert got.method == in_band.RANK_LOGS
    assert got.reason is not None
    assert "node 1 (host) could not reduce: RuntimeError: no steps to reduce" in got.reason
    assert got.reductions() == []
    logs = got.logs()
    assert [log.rank for log in logs] == [0, 1, 2, 3]
    assert all(len(log.step_rows) == 50 for log in logs)
    nodes = got.traffic()["nodes"]
    assert [n["sent"] for n in nodes] == ["rank logs", "rank logs"]
    assert [n["reduce_error"] for n in nodes] == [None, "RuntimeError: no steps to reduce"]


@pytest.mark.timeout(180)
def test_one_node_sends_its_reduction_with_no_leaders_group(tmp_path: Path) -> None:
    got = _gather(tmp_path, "ok", per_node=WORLD)
    assert got.method == in_band.NODE_REDUCTIONS
    assert got.reductions() == [b"0,1,2,3"]
    assert [n["leader"] for n in got.traffic()["nodes"]] == [0]
