"""The nodes section on hand-built rank records: grouping, per-node figures, scores, lost nodes.

Node figures are checked against values worked out by hand from the step records, so a
definition that drifts (a median over rank x step, a mean, a node score that ignores a slow
rank) fails here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.frame import Launch
from minicluster.analysis.nodes import NodeId, locate_ranks, lost_nodes, nodes_section
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable
from minicluster.result.schema import validate_result

MEASURED = 8


def _header(rank: int, world: int, node_rank: int | None, host: str, lws: int) -> dict[str, Any]:
    return {
        "type": "header",
        "format": "minicluster-rank/1.2",
        "run_id": "n1",
        "rank": rank,
        "local_rank": rank % lws,
        "world_size": world,
        "local_world_size": lws,
        "node_rank": node_rank,
        "hostname": host,
        "pid": 100 + rank,
        "created_at": "2026-01-01T00:00:00+00:00",
        "backend": "gloo",
        "device": "cpu",
        "launcher": "torchrun",
        "config": {
            "steps": {"warmup": 1, "measured": MEASURED},
            "run": {"straggler_threshold_pct": 20.0, "straggler_min_excess_ms": 2.0},
        },
        "workload": {"name": "mlp", "per_rank_batch": 8, "seq_len": None, "params": 10},
        "platform": {"cpu": "cpu", "host_memory_total_bytes": 1000, "torch": "x", "python": "y"},
    }


def _steps(
    compute: list[float], comm: float | list[float] = 3.0, last: int | None = None
) -> list[dict]:
    """Warm-up step 0, then one step per compute value (step time = compute + comm + 1; `comm`
    one value, or one per step)."""
    per = comm if isinstance(comm, list) else [comm] * len(compute)
    out = [_step(0, compute[0], per[0], warmup=True)]
    out += [_step(i + 1, c, m) for i, (c, m) in enumerate(zip(compute, per, strict=True))]
    return out if last is None else out[: last + 1]


def _step(i: int, compute: float, comm: float, warmup: bool = False) -> dict[str, Any]:
    return {
        "type": "step",
        "step": i,
        "warmup": warmup,
        "step_time_ms": compute + comm + 1.0,
        "compute_ms": compute,
        "comm_ms": comm,
        "exposed_comm_ms": comm / 2,
        "comm_bytes": 1000,
    }


def _summary(rank: int, status: str = "ok", error: str | None = None, last: int = MEASURED):
    return {
        "rank": rank,
        "status": status,
        "last_step": last,
        "error": error,
        "memory": {"rss_peak_bytes": 100, "host_total_bytes": 1000},
        "ddp_logging": None,
    }


ROSTER = {
    "type": "roster",
    "nodes": [
        {"node_rank": 0, "hostname": "host-a", "ranks": [0, 1]},
        {"node_rank": 1, "hostname": "host-b", "ranks": [2, 3]},
    ],
    "rank0": {"hostname": "host-a", "out_dir": "/runs/x"},
}


def _two_by_two(rank3_compute: list[float], waits: bool = False) -> list[RankRecords]:
    """2 nodes x 2 ranks, every rank ok; rank 3 computes `rank3_compute`, the others 10 ms
    (`waits`: and wait for it in the all-reduce, their comm_ms longer by its extra compute)."""
    recs = []
    for rank in range(4):
        node = rank // 2
        compute = rank3_compute if rank == 3 else [10.0] * MEASURED
        # the others wait in the all-reduce for rank 3's extra compute
        comm = [3.0 + (0.0 if rank == 3 or not waits else c - 10.0) for c in rank3_compute]
        recs.append(
            RankRecords(
                rank,
                _header(rank, 4, node, f"host-{'ab'[node]}", 2),
                _steps(compute, comm),
                _summary(rank),
                roster=ROSTER if rank % 2 == 0 else None,
            )
        )
    return recs


def test_node_figures_are_per_step_max_over_its_ranks_then_median() -> None:
    slow = [12.0, 30.0, 12.0, 30.0, 12.0, 30.0, 12.0, 30.0]  # median 21, max 30
    result = aggregate(_two_by_two(slow), aggregated_at="x")
    validate_result(result)
    n0, n1 = result["nodes"]
    assert (n0["node_rank"], n0["hostname"], n0["ranks"]) == (0, "host-a", [0, 1])
    assert (n1["node_rank"], n1["hostname"], n1["ranks"]) == (1, "host-b", [2, 3])
    # per step, max over ranks 2 and 3 = rank 3's value; median over the 8 steps = 21
    assert n1["compute_ms_median"] == pytest.approx(21.0)
    assert n1["step_time_ms_median"] == pytest.approx(21.0 + 3.0 + 1.0)
    assert n0["compute_ms_median"] == pytest.approx(10.0)
    assert n1["allreduce_ms_median"] == pytest.approx(3.0)
    assert n1["measured_steps"] == MEASURED
    assert (n1["slowest_rank"], n1["slowest_rank_compute_ms_median"]) == (3, 21.0)
    assert n0["slowest_rank"] in (0, 1)
    assert n0["status"] == n1["status"] == "ok"


def test_scores_are_fastest_over_this_one_per_rank_and_per_node() -> None:
    result = aggregate(_two_by_two([20.0] * MEASURED), aggregated_at="x")
    scores = {r["rank"]: r["performance_score"] for r in result["ranks"]}
    assert scores == {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.5}  # twice as slow scores 0.5
    assert [n["performance_score"] for n in result["nodes"]] == [1.0, 0.5]
    assert all(r["node_rank"] == r["rank"] // 2 for r in result["ranks"])


def test_straggler_is_named_with_its_node() -> None:
    result = aggregate(_two_by_two([25.0] * MEASURED, waits=True), aggregated_at="x")
    (s,) = result["stragglers"]
    assert (s["rank"], s["node_rank"], s["hostname"]) == (3, 1, "host-b")
    detected = [d for d in result["faults"]["detected"] if d["kind"] == "straggler"]
    assert [(d["rank"], d["node_rank"]) for d in detected] == [(3, 1)]
    assert result["nodes"][1]["stragglers"] == [3]
    assert result["nodes"][0]["stragglers"] == []


def test_two_agents_on_one_machine_are_two_nodes() -> None:
    recs = [
        RankRecords(r, _header(r, 2, r, "same-host", 1), _steps([10.0] * MEASURED), _summary(r))
        for r in range(2)
    ]
    result = aggregate(recs, aggregated_at="x")
    assert [(n["node_rank"], n["hostname"], n["ranks"]) for n in result["nodes"]] == [
        (0, "same-host", [0]),
        (1, "same-host", [1]),
    ]


def test_without_node_ranks_nodes_are_hosts() -> None:
    recs = [
        RankRecords(r, _header(r, 2, None, "h", 2), _steps([10.0] * MEASURED), _summary(r))
        for r in range(2)
    ]
    result = aggregate(recs, aggregated_at="x")
    assert [(n["node_rank"], n["hostname"], n["ranks"]) for n in result["nodes"]] == [
        (None, "h", [0, 1])
    ]


def _survivors_of_a_lost_node() -> list[RankRecords]:
    """Node 0's view after node 1 died at step 5: ranks 0, 1 failed in a collective; ranks 2, 3
    left nothing here (their files, if any, are on node 1)."""
    error = "RuntimeError: Connection closed by peer [127.0.0.1]:4242"
    return [
        RankRecords(
            r,
            _header(r, 4, 0, "host-a", 2),
            _steps([10.0] * MEASURED, last=4),
            _summary(r, "failed", error, last=4),
            roster=ROSTER if r == 0 else None,
        )
        for r in (0, 1)
    ]


def test_a_lost_node_is_named_with_its_ranks_and_step() -> None:
    result = aggregate(_survivors_of_a_lost_node(), Launch("ranks failed: rank 0 exit code 1"))
    validate_result(result)
    assert result["status"] == "failed"
    n0, n1 = result["nodes"]
    assert (n1["node_rank"], n1["hostname"], n1["status"]) == (1, "host-b", "missing")
    assert n1["missing_ranks"] == [2, 3] and n1["performance_score"] is None
    # node 0's ranks stopped because node 1 was lost: aborted, not failed (the culprit is node 1)
    assert n0["status"] == "aborted" and n0["aborted_ranks"] == [0, 1] and n0["failed_ranks"] == []
    (lost,) = [d for d in result["faults"]["detected"] if d["kind"] == "node_lost"]
    assert (lost["node_rank"], lost["hostname"], lost["ranks"], lost["step"]) == (
        1,
        "host-b",
        [2, 3],
        5,
    )
    assert "Connection closed by peer" in lost["evidence"]
    assert any(e.startswith("node lost: node 1 (host-b), ranks 2-3") for e in result["errors"])
    assert any(e.startswith("rank 2 on node 1 (host-b): no records") for e in result["errors"])
    ranks = {r["rank"]: r for r in result["ranks"]}
    assert (ranks[3]["status"], ranks[3]["hostname"], ranks[3]["node_rank"]) == (
        "missing",
        "host-b",
        1,
    )
    # the surviving node kept every step it recorded
    assert [r["steps_recorded"] for r in result["ranks"][:2]] == [5, 5]


def test_ranks_of_a_finished_job_on_another_node_are_not_a_lost_node() -> None:
    """Node 1's own directory after a good run: ranks 0, 1 are elsewhere, nobody failed."""
    recs = [
        RankRecords(
            r,
            _header(r, 4, 1, "host-b", 2),
            _steps([10.0] * MEASURED),
            _summary(r),
            roster=ROSTER if r == 2 else None,
        )
        for r in (2, 3)
    ]
    result = aggregate(recs, aggregated_at="x")
    assert not [d for d in result["faults"]["detected"] if d["kind"] == "node_lost"]
    assert result["nodes"][0]["status"] == "missing"  # still said: no records of it here


def test_without_a_roster_missing_ranks_are_on_an_unknown_node() -> None:
    recs = _survivors_of_a_lost_node()
    for r in recs:
        r.roster = None
    where = locate_ranks(recs, 4)
    assert where[2] == where[3] == NodeId(None, None)
    assert where[0] == NodeId(0, "host-a")


def test_node_figures_vectorised_match_a_plain_loop() -> None:
    """512 nodes x 8 ranks with NaN holes: the reduceat path equals a per-node loop."""
    rng = np.random.default_rng(0)
    world, lws, steps = 4096, 8, 20
    recs = []
    for rank in range(world):
        compute = list(rng.lognormal(2.0, 0.3, steps))
        last = None if rank % 97 else steps // 2  # some ranks stop half way
        recs.append(
            RankRecords(
                rank, _header(rank, world, rank // lws, "h", lws), _steps(compute, last=last)
            )
        )
    where = locate_ranks(recs, world)
    table = StepTable(recs, world)
    got = nodes_section(where, table, {}, [], [])
    for node in (0, 12, 511):
        rows = [table.row[r] for r in range(node * lws, (node + 1) * lws)]
        per_step = np.nanmax(table.m["compute_ms"][rows], axis=0)
        assert got[node]["compute_ms_median"] == pytest.approx(np.median(per_step), abs=1e-4)


def test_lost_nodes_needs_more_than_one_node() -> None:
    recs = _survivors_of_a_lost_node()
    section = nodes_section(locate_ranks(recs, 4), None, {}, [2, 3], [0, 1, 2, 3])
    assert lost_nodes(section, recs, multi_node=False) == []
    assert [d["node_rank"] for d in lost_nodes(section, recs, multi_node=True)] == [1]


def test_the_store_hosts_loss_is_not_blamed_on_the_survivor_its_agent_stopped() -> None:
    """Node 1's view after node 0 (rank 0, the rendezvous store) died: node 1's agent lost the
    store and stopped its rank, which wrote no summary. Node 0 is lost; rank 2 is not blamed."""
    recs = [
        RankRecords(
            r,
            _header(r, 4, 1, "host-b", 2),
            _steps([10.0] * MEASURED, last=3),
            None,
            roster=ROSTER if r == 2 else None,
        )
        for r in (2, 3)
    ]
    error = (
        "torchrun failed: RendezvousConnectionError: The connection to the C10d store has failed"
    )
    result = aggregate(recs, Launch(error), aggregated_at="x")
    validate_result(result)
    detected = result["faults"]["detected"]
    assert [(d["kind"], d["node_rank"]) for d in detected] == [("node_lost", 0)]
    (lost,) = detected
    assert lost["ranks"] == [0, 1] and lost["step"] == 4
    assert "C10d store" in lost["evidence"] and "ranks 2-3 on the other nodes" in lost["evidence"]
