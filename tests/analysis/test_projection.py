"""The projection past the measured world sizes: hand-computed values for given alpha and beta,
the leave-one-out check, and what it refuses to estimate (no torch, no ranks started)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis import projection, scaling
from minicluster.analysis.alphabeta import Link, LinkModel, link_from_collectives
from minicluster.analysis.sweep import PlannedRun, RunOutcome
from minicluster.result.model import RunResult

RECORDED = Path(__file__).resolve().parents[1] / "golden" / "sweep_tiny"
MODEL = LinkModel(Link(10.0, 1.0, "given"))  # alpha 10 us, beta 1 GB/s = 1e3 B/us


def point(
    n: int,
    step: float,
    compute: float,
    wait: float,
    exposed: float,
    other: float,
    transfer: float,
    over: bool = False,
) -> dict[str, Any]:
    assert step == pytest.approx(compute + wait + exposed + other)
    return {
        "world_size": n,
        "breakdown": {
            "status": "derived",
            "components_ms": {
                "step_time": step,
                "per_rank_compute": compute,
                "straggler_wait": wait,
                "exposed_comm": exposed,
                "other": other,
                "transfer": transfer,
            },
            "comm_bytes": 1e6,
            "buckets": 2.0,
            "oversubscribed": over,
        },
    }


def block(mode: str = "weak", sizes: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    pts = {
        1: point(1, 40.0, 36.0, 0.0, 0.0, 4.0, 0.0),
        2: point(2, 50.0, 36.0, 2.0, 9.0, 3.0, 10.0),
        4: point(4, 70.0, 40.0, 4.0, 18.0, 8.0, 20.0, over=True),
    }
    return {
        "mode": mode,
        "baseline": {"world_size": 1},
        "per_rank_batch": 16 if mode == "weak" else None,
        "global_batch": 64 if mode == "strong" else None,
        "points": [pts[n] for n in sizes],
    }


def test_weak_projection_matches_the_hand_computed_step() -> None:
    got = projection.project(block(), [8, 128, 1024], MODEL)
    assert got["status"] == "estimated" and got["reason"] is None
    inputs = got["inputs"]
    # Reference: 2 ranks (4 shared cores). Exposed fraction f = 9 / 10.
    assert inputs["reference_world_size"] == 2 and inputs["exposed_fraction"] == pytest.approx(0.9)
    p8 = got["points"][0]
    # A(8) = 2 buckets x 2*7*10 us + 2*7/8 * 1e6 B / 1e3 B/us = 280 + 1750 us = 2.03 ms
    assert p8["allreduce_ms"] == pytest.approx(2.03)
    assert p8["step_time_ms"] == pytest.approx(36.0 + 2.0 + 0.9 * 2.03 + 3.0)  # 42.827
    assert p8["efficiency_pct"] == pytest.approx(100 * 40.0 / 42.827)
    assert p8["throughput_samples_per_sec"] == pytest.approx(16 * 8 * 1000 / 42.827)
    assert (p8["per_rank_batch"], p8["global_batch"], p8["status"]) == (16, 128, "estimated")
    # A(128) = 2 * 2*127*10 + 2*127/128 * 1e6 / 1e3 us
    a128 = (5080.0 + 1984.375) / 1000
    assert got["points"][1]["step_time_ms"] == pytest.approx(41.0 + 0.9 * a128)
    # 1024 = 256x the largest measured size (4): past 32x the check's error bounds nothing.
    p1024 = got["points"][2]
    assert p1024["status"] == "unavailable" and p1024["efficiency_pct"] is None
    assert "256x the largest measured world size (4)" in p1024["reason"]
    # Every projected figure carries the fit error and what the fit was made on.
    assert got["fit_error_pct"] == got["check"]["max_abs_error_pct_own_cores"]
    for p in got["points"]:
        assert p["fit_error_pct"] == got["fit_error_pct"]
        assert (
            "given" in p["fit_on"]
            and "from world size 2 of the measured sizes 1, 2, 4" in (p["fit_on"])
        )


def test_a_projection_whose_error_is_too_large_is_refused_with_the_reason() -> None:
    b = block(sizes=(1, 2))
    # A measured 2-rank step far above what the 1-rank parts predict: the error is > 50%.
    b["points"][1] = point(2, 200.0, 36.0, 2.0, 9.0, 153.0, 10.0)
    got = projection.project(b, [4, 8], MODEL)
    assert got["status"] == "unavailable" and got["fit_error_pct"] > 50
    assert "more than 50%" in got["reason"] and "world size 2" in got["reason"]
    assert all(p["status"] == "unavailable" and p["reason"] == got["reason"] for p in got["points"])
    assert all(p["efficiency_pct"] is None for p in got["points"])


def test_a_projection_that_could_not_be_checked_is_refused() -> None:
    b = block(sizes=(2,))
    b["baseline"] = {"world_size": 2}
    got = projection.project(b, [8], MODEL)
    assert got["status"] == "unavailable" and got["fit_error_pct"] is None
    assert "its error is unknown" in got["reason"]


def test_a_measured_link_carries_ddps_own_all_reduce_overhead_at_the_reference() -> None:
    fitted = LinkModel(Link(10.0, 1.0, "fitted", fit={"world_size": 2}))
    got = projection.project(block(), [8], fitted)
    # A(2) = 2 buckets x 2*1*10 us + 1 * 1e6 / 1e3 us = 1.04 ms; R measured 10 ms of transfer.
    d = 10.0 - 1.04
    assert got["inputs"]["allreduce_offset_ms"] == pytest.approx(d)
    p8 = got["points"][0]
    assert p8["allreduce_ms"] == pytest.approx(2.03 + d)
    assert p8["step_time_ms"] == pytest.approx(36.0 + 2.0 + 0.9 * (2.03 + d) + 3.0)
    # At R itself the model gives back R's measured step; one rank has no all-reduce at all.
    p2, p1 = projection.project(block(), [2, 1], fitted)["points"][::-1]
    assert p2["step_time_ms"] == pytest.approx(50.0)
    assert p1["allreduce_ms"] == 0.0
    given = projection.project(block(), [8], MODEL)["inputs"]
    assert given["allreduce_offset_ms"] == 0.0
    assert any("the link was given" in n for n in given["notes"])


def test_strong_projection_shrinks_compute_with_the_per_rank_batch() -> None:
    b = block("strong")
    b["points"][0] = point(1, 76.0, 72.0, 0.0, 0.0, 4.0, 0.0)  # all of the global batch on one
    got = projection.project(b, [8, 128], MODEL)
    assert got["status"] == "estimated", got["reason"]
    p8 = got["points"][0]
    assert p8["compute_ms"] == pytest.approx(36.0 * 2 / 8)  # R = 2, batch 64 / 8 per rank
    step = 9.0 + 2.0 + 0.9 * 2.03 + 3.0
    assert p8["step_time_ms"] == pytest.approx(step)
    assert p8["efficiency_pct"] == pytest.approx(100 * 1 * 76.0 / (8 * step))
    assert p8["throughput_samples_per_sec"] == pytest.approx(64 * 1000 / step)
    p128 = got["points"][1]
    assert p128["status"] == "unavailable" and p128["efficiency_pct"] is None
    assert p128["reason"] == "the global batch 64 does not split evenly over 128 ranks"


def test_leave_one_out_errors_are_computed_as_stated() -> None:
    check = projection.project(block(), [8], MODEL)["check"]
    assert check["kind"] == "leave-one-out"
    e = {x["world_size"]: x for x in check["entries"]}
    # 1 from {2, 4}: reference 2, no all-reduce at 1 rank, no wait: 36 + 3 = 39 vs 40.
    assert e[1]["predicted_step_time_ms"] == pytest.approx(39.0)
    assert e[1]["error_pct"] == pytest.approx(-2.5)
    # 2 from {1, 4}: 4 shared cores, so the reference is 1: no overlap measured (f = 1), no
    # wait; A(2) = 2 * 2*1*10 + 1 * 1e6 / 1e3 = 1040 us.
    assert e[2]["reference_world_size"] == 1
    assert e[2]["predicted_step_time_ms"] == pytest.approx(36.0 + 1.04 + 4.0)
    assert e[2]["error_pct"] == pytest.approx(100 * (41.04 - 50.0) / 50.0)
    assert any("overlap assumed none (f = 1)" in n for n in e[2]["notes"])
    # 4 from {1, 2}: A(4) = 2 * 2*3*10 + 2*3/4 * 1e6 / 1e3 = 1620 us; 4 shared cores (flagged).
    pred4 = 36.0 + 2.0 + 0.9 * 1.62 + 3.0
    assert e[4]["predicted_step_time_ms"] == pytest.approx(pred4)
    assert e[4]["error_pct"] == pytest.approx(100 * (pred4 - 70.0) / 70.0)
    assert e[4]["oversubscribed"] and any("shared CPU cores" in n for n in e[4]["notes"])
    assert check["largest_error_pct"] == e[4]["error_pct"]
    assert check["max_abs_error_pct"] == pytest.approx(abs(e[4]["error_pct"]))
    assert check["max_abs_error_pct_own_cores"] == pytest.approx(abs(e[2]["error_pct"]))


def test_with_two_sizes_only_the_largest_is_predicted() -> None:
    check = projection.project(block(sizes=(1, 2)), [8], MODEL)["check"]
    assert check["kind"] == "largest from the smaller sizes"
    assert [x["world_size"] for x in check["entries"]] == [2]
    assert check["entries"][0]["fit_sizes"] == [1]


def test_a_two_level_model_projects_whole_nodes_only() -> None:
    model = LinkModel(Link(5.0, 10.0, "inter"), Link(2.0, 100.0, "intra"), ranks_per_node=8)
    got = projection.project(block(), [8, 12, 64], model)
    p = {x["world_size"]: x for x in got["points"]}
    assert p[12]["status"] == "unavailable" and "whole nodes of 8" in p[12]["reason"]
    # 64 = 8 nodes of 8, 2 buckets: 2 x (2*7*2 + 2*7*5) + 2*7/8 * 1e6/1e5 + 2*7/8 * 1.25e5/1e4
    a64 = (2 * (28.0 + 70.0) + 17.5 + 21.875) / 1000
    assert p[64]["allreduce_ms"] == pytest.approx(a64)
    assert got["link"]["levels"] == "two-level ring" and got["link"]["ranks_per_node"] == 8


def test_nothing_is_estimated_without_link_parameters_or_gradient_bytes() -> None:
    got = projection.project(block(), [8], None, "the probe failed")
    assert got["status"] == "unavailable" and got["reason"] == "the probe failed"
    assert got["points"] == [] and got["check"] is None
    old = block()
    for p in old["points"]:
        p["breakdown"]["comm_bytes"] = None
    got = projection.project(old, [8], MODEL)
    assert got["status"] == "unavailable" and "minicluster aggregate DIR" in got["reason"]


def test_recorded_sweep_projects_from_its_scaling_block_alone() -> None:
    outcomes = [
        RunOutcome(PlannedRun(1, n), json.loads((RECORDED / f"n{n}-r1.result.json").read_text()))
        for n in (1, 2, 4)
    ]
    block_ = scaling.build_scaling(outcomes, "weak", [1, 2, 4], 1, 32, None)
    probe = json.loads((RECORDED / "allreduce-n2.result.json").read_text())
    model = LinkModel(link_from_collectives(RunResult.from_json(probe), "probe"))
    got = projection.project(copy.deepcopy(block_), [8, 64], model)
    assert got["status"] == "estimated" and got["inputs"]["reference_world_size"] == 2
    pts = projection.measured_points(block_)
    fit = projection.fit(pts, [1, 2], model)
    assert not isinstance(fit, str)
    for e in got["check"]["entries"]:
        assert e["error_pct"] == pytest.approx(
            100
            * (e["predicted_step_time_ms"] - e["measured_step_time_ms"])
            / e["measured_step_time_ms"]
        )
    largest = got["check"]["entries"][-1]
    assert largest["world_size"] == 4 and largest["fit_sizes"] == [1, 2]
    assert largest["predicted_step_time_ms"] == pytest.approx(
        projection.predict(fit, 4, model, "weak")["step_time_ms"]
    )
    assert got["points"][0]["step_time_ms"] == pytest.approx(
        projection.predict(fit, 8, model, "weak")["step_time_ms"]
    )
