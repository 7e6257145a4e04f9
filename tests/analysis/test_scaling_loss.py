"""Where a sweep's lost step time went: synthetic runs whose answer is known by construction, and
recorded real runs whose parts must add up to the loss (no torch, no ranks started)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minicluster.analysis import scaling, scaling_loss
from minicluster.analysis.sweep import PlannedRun, RunOutcome

RECORDED = Path(__file__).resolve().parents[1] / "golden" / "sweep_tiny"
BATCH = 16


def result(
    n: int,
    step: list[float],
    compute: list[float],
    rank_means: list[float] | None = None,
    exposed: list[float] | None = None,
    wait: list[float] | None = None,
    transfer: list[float] | None = None,
    cores: int = 64,
    run_id: str = "r",
) -> dict[str, Any]:
    """A run result holding what the breakdown reads: the per-step series (max over ranks), the
    ranks' mean compute, and throughput / p50 consistent with the step series."""
    zeros = [0.0] * len(step)
    series = {
        "step": list(range(len(step))),
        "step_time_ms": step,
        "compute_ms": compute,
        "exposed_comm_ms": exposed or zeros,
        "allreduce_wait_ms": wait or zeros,
        "allreduce_transfer_ms": transfer or zeros,
        "comm_bytes": [1e6] * len(step),
        "buckets": [2.0] * len(step),
    }
    means = rank_means or [float(np.mean(compute))] * n
    return {
        "run_id": run_id,
        "status": "ok",
        "world_size": n,
        "backend": "gloo",
        "metrics": {
            "throughput_samples_per_sec": {"value": BATCH * n * 1000.0 / float(np.mean(step))},
            "latency_p50_ms": {"value": float(np.median(step))},
        },
        "steps": {"series": series},
        "ranks": [
            {"rank": i, "hostname": "h", "device": "cpu", "compute_ms_mean": means[i]}
            for i in range(n)
        ],
        "platform": {"nodes": [{"hostname": "h", "cpu_count": cores}]},
        "config": {"run": {"threads_per_rank": 1}},
        "stragglers": [],
        "failed_ranks": [],
        "errors": [],
    }


def outcome(n: int, res: dict[str, Any], round_: int = 1) -> RunOutcome:
    return RunOutcome(PlannedRun(round_, n), res)


BASE = result(1, step=[12.0, 12.0], compute=[10.0, 10.0])  # compute 10, other 2, no comm


def loss_at(
    outcomes: list[RunOutcome], n: int, mode: str = "weak", repeats: int = 1
) -> dict[str, Any]:
    sizes = sorted({o.planned.world_size for o in outcomes})
    batches = (BATCH, None) if mode == "weak" else (None, BATCH * max(sizes))
    block = scaling.build_scaling(outcomes, mode, sizes, repeats, *batches)  # type: ignore[arg-type]
    point = next(p for p in block["points"] if p["world_size"] == n)
    assert point["breakdown"]["status"] == "derived", point["breakdown"]
    got: dict[str, Any] = point["breakdown"]["loss"]
    got["efficiency_pct"] = point["efficiency_pct"]
    return got


def test_compute_doubled_at_2_ranks_is_all_compute_growth() -> None:
    doubled = result(2, step=[22.0, 22.0], compute=[20.0, 20.0])
    loss = loss_at([outcome(1, BASE), outcome(2, doubled)], 2)
    assert loss["lost_ms"] == pytest.approx(10.0)  # 22 - 12
    assert loss["parts_ms"] == pytest.approx(
        {
            "exposed_comm": 0.0,
            "straggler_wait": 0.0,
            "jitter_wait": 0.0,
            "compute_growth": 10.0,
            "remainder": 0.0,
        }
    )
    assert loss["lost_pct"] == pytest.approx(100 * 10 / 22)
    # Weak scaling: the lost share of the step is exactly what the efficiency misses.
    assert loss["lost_pct"] == pytest.approx(100.0 - loss["efficiency_pct"])
    assert loss["parts_pts"]["compute_growth"] == pytest.approx(loss["lost_pct"])


def test_a_slow_rank_is_straggler_wait_not_compute_growth() -> None:
    # Rank 1 computes 30 ms, rank 0 10 ms and waits 20 ms in the all-reduce, whose transfer is
    # 5 ms: both finish the step at 30 + 5 + 2 (other) = 37 ms.
    straggler = result(
        2,
        step=[37.0, 37.0],
        compute=[30.0, 30.0],
        rank_means=[10.0, 30.0],
        exposed=[25.0, 25.0],
        wait=[20.0, 20.0],
        transfer=[5.0, 5.0],
    )
    loss = loss_at([outcome(1, BASE), outcome(2, straggler)], 2)
    assert loss["lost_ms"] == pytest.approx(25.0)
    assert loss["parts_ms"] == pytest.approx(
        {
            "exposed_comm": 5.0,
            "straggler_wait": 20.0,
            "jitter_wait": 0.0,
            "compute_growth": 0.0,
            "remainder": 0.0,
        }
    )


def test_per_step_jitter_at_2_ranks_is_jitter_wait_not_straggler_wait() -> None:
    # Each rank is the slow one every other step (10 or 14 ms): both average 12 ms, and the
    # per-step max is 14 ms. No rank is slower on average: the 2 ms are jitter, not a straggler.
    jitter = result(2, step=[16.0] * 4, compute=[14.0] * 4, rank_means=[12.0, 12.0])
    loss = loss_at([outcome(1, BASE), outcome(2, jitter)], 2)
    assert loss["parts_ms"] == pytest.approx(
        {
            "exposed_comm": 0.0,
            "straggler_wait": 0.0,
            "jitter_wait": 2.0,
            "compute_growth": 2.0,
            "remainder": 0.0,
        }
    )


def test_exposed_all_reduce_and_the_remainder_are_their_own_parts() -> None:
    comm = result(
        2, step=[20.0, 20.0], compute=[10.0, 10.0], exposed=[6.0, 6.0], transfer=[8.0, 8.0]
    )
    loss = loss_at([outcome(1, BASE), outcome(2, comm)], 2)
    # 20 - 12 = 8 lost: 6 exposed all-reduce; other grew from 2 to 4 (20 - 10 - 6).
    assert loss["parts_ms"] == pytest.approx(
        {
            "exposed_comm": 6.0,
            "straggler_wait": 0.0,
            "jitter_wait": 0.0,
            "compute_growth": 0.0,
            "remainder": 2.0,
        }
    )
    assert loss["parts_pts"]["exposed_comm"] == pytest.approx(30.0)  # 100 * 6 / 20
    assert loss["parts_pts"]["remainder"] == pytest.approx(10.0)


def test_strong_scaling_compares_with_the_baseline_split_n_ways() -> None:
    base = result(1, step=[40.0], compute=[36.0])  # other 4
    two = result(2, step=[25.0], compute=[18.0], exposed=[5.0], transfer=[5.0])  # other 2
    loss = loss_at([outcome(1, base), outcome(2, two)], 2, mode="strong")
    # Ideal: 40 / 2 = 20 ms (compute 18, other 2): the 5 ms lost are the exposed all-reduce.
    assert loss["ideal_step_time_ms"] == pytest.approx(20.0)
    assert loss["lost_ms"] == pytest.approx(5.0)
    assert loss["parts_ms"] == pytest.approx(
        {
            "exposed_comm": 5.0,
            "straggler_wait": 0.0,
            "jitter_wait": 0.0,
            "compute_growth": 0.0,
            "remainder": 0.0,
        }
    )
    assert loss["efficiency_pct"] == pytest.approx(80.0)  # 40 / (2 * 25)
    assert loss["lost_pct"] == pytest.approx(20.0)


def test_the_median_round_is_split_and_two_middle_rounds_are_averaged() -> None:
    def pair(round_: int, step_2: float) -> list[RunOutcome]:
        two = result(2, step=[step_2], compute=[10.0], exposed=[step_2 - 12.0])
        return [outcome(1, result(1, [12.0], [10.0]), round_), outcome(2, two, round_)]

    three = pair(1, 20.0) + pair(2, 30.0) + pair(3, 15.0)  # E = 60, 40, 80%: median round 1
    loss = loss_at(three, 2, repeats=3)
    assert loss["lost_ms"] == pytest.approx(8.0)
    assert loss["efficiency_pct"] == pytest.approx(60.0)
    two = pair(1, 20.0) + pair(2, 30.0)  # E = 60 and 40: median 50, both rounds averaged
    loss = loss_at(two, 2, repeats=2)
    assert loss["lost_ms"] == pytest.approx((8.0 + 18.0) / 2)
    assert loss["lost_pct"] == pytest.approx((40.0 + 60.0) / 2)
    assert loss["lost_pct"] == pytest.approx(100.0 - loss["efficiency_pct"])
    assert sum(loss["parts_pts"].values()) == pytest.approx(loss["lost_pct"])


def test_without_a_baseline_the_parts_stay_and_no_loss_is_invented() -> None:
    two = result(2, step=[20.0], compute=[10.0], exposed=[6.0], transfer=[8.0])
    block = scaling.build_scaling([outcome(2, two)], "weak", [1, 2], 1, BATCH, None)
    b = {p["world_size"]: p["breakdown"] for p in block["points"]}
    assert b[1]["status"] == "unavailable" and "no round has an ok run" in b[1]["reason"]
    assert b[2]["status"] == "derived" and b[2]["loss"] is None
    assert "(the baseline) and 2" in b[2]["reason"]
    assert b[2]["components_ms"]["exposed_comm"] == pytest.approx(6.0)


def test_results_before_schema_1_2_say_how_to_rebuild() -> None:
    old = result(2, step=[20.0], compute=[10.0])
    for r in old["ranks"]:
        del r["compute_ms_mean"]
    parts, why = scaling_loss.run_parts(old)
    assert parts is None and why is not None and "minicluster aggregate DIR" in why
    no_series = {**BASE, "steps": {"rank_files": "ranks/x"}}
    assert scaling_loss.run_parts(no_series) == (
        None,
        "its result keeps no per-step series (steps.series)",
    )


@pytest.mark.parametrize(
    ("n", "cores", "device", "over"),
    [(4, 2, "cpu", True), (2, 2, "cpu", False), (8, 2, "cuda:0", None)],
)
def test_placement_says_whether_ranks_shared_cores(
    n: int, cores: int, device: str, over: bool | None
) -> None:
    res = result(n, [1.0], [1.0], cores=cores)
    for r in res["ranks"]:
        r["device"] = device
    got, where = scaling_loss.placement(res)
    assert got is over
    if device == "cpu":
        assert where == f"{n} rank(s) x 1 thread(s) on {cores} CPU cores of host h"


def _recorded() -> list[RunOutcome]:
    return [
        outcome(n, json.loads((RECORDED / f"n{n}-r1.result.json").read_text())) for n in (1, 2, 4)
    ]


def _mean(res: dict[str, Any], key: str) -> float:
    return float(np.mean(res["steps"]["series"][key]))


def test_recorded_runs_parts_add_up_to_the_loss() -> None:
    """A real 1-2-4 sweep (tests/golden/sweep_tiny): each part recomputed from the series."""
    outcomes = _recorded()
    block = scaling.build_scaling(outcomes, "weak", [1, 2, 4], 1, 32, None)
    base = outcomes[0].result
    assert base is not None
    for p, o in zip(block["points"][1:], outcomes[1:], strict=True):
        res = o.result
        assert res is not None
        loss = p["breakdown"]["loss"]
        assert sum(loss["parts_ms"].values()) == pytest.approx(loss["lost_ms"], abs=1e-9)
        assert sum(loss["parts_pts"].values()) == pytest.approx(loss["lost_pct"], abs=1e-9)
        assert loss["lost_ms"] == pytest.approx(
            _mean(res, "step_time_ms") - _mean(base, "step_time_ms")
        )
        # Weak efficiency is a ratio of mean step times: 100 - E is the lost share (the series
        # are rounded to 4 decimals, the throughput was not).
        assert loss["lost_pct"] == pytest.approx(100.0 - p["efficiency_pct"], abs=1e-3)
        typical = statistics.median_low(r["compute_ms_mean"] for r in res["ranks"])
        assert loss["parts_ms"]["compute_growth"] == pytest.approx(
            typical - _mean(base, "compute_ms")
        )
        slowest = max(r["compute_ms_mean"] for r in res["ranks"])
        assert loss["parts_ms"]["straggler_wait"] == pytest.approx(slowest - typical)
        assert loss["parts_ms"]["jitter_wait"] == pytest.approx(_mean(res, "compute_ms") - slowest)
        exposed = _mean(res, "exposed_comm_ms") - _mean(res, "allreduce_wait_ms")
        base_exposed = _mean(base, "exposed_comm_ms") - _mean(base, "allreduce_wait_ms")
        assert loss["parts_ms"]["exposed_comm"] == pytest.approx(exposed - base_exposed)
    assert block["points"][2]["breakdown"]["oversubscribed"] is True  # 4 ranks on 2 cores
    assert block["points"][1]["breakdown"]["oversubscribed"] is False


def test_threads_come_from_what_the_ranks_recorded(tmp_path: Path) -> None:
    """Two agents (node ranks 0 and 1) on one 4-core host, 2 ranks each, each rank using the 2
    threads its agent's share gave it (recorded in its header). Re-derived from the result's
    config and host name they would be 4 cores // 4 ranks = 1 and the host not oversubscribed;
    recorded, they are 2 and the host is (8 threads on 4 cores)."""
    from fixtures import recorded

    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import read_run_dir

    cfg = recorded.config(warmup=1, measured=3)
    for rank in range(4):
        head = recorded.header(
            rank, 4, cfg, local_rank=rank % 2, local_world_size=2, node_rank=rank // 2, threads=2
        )
        head.platform = {**(head.platform or {}), "cpu_count": 4}
        steps = [recorded.step(i, 12.0, 10.0, 2.0, warmup=i == 0) for i in range(4)]
        recorded.write_rank(tmp_path, head, [recorded.timing(), *steps], recorded.summary(rank))
    result = aggregate(read_run_dir(tmp_path))
    assert [r["threads"] for r in result["ranks"]] == [2, 2, 2, 2]
    assert scaling_loss.effective_threads(result) == 2
    over, where = scaling_loss.placement(result)
    assert over is True and where == "4 rank(s) x 2 thread(s) on 4 CPU cores of host node-a"
