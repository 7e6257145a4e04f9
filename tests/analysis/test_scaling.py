"""Scaling efficiency of a sweep from hand-made run results (no torch, no ranks started)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis import scaling, sweep
from minicluster.analysis.sweep import PlannedRun, RunOutcome
from minicluster.core.errors import InputError
from minicluster.result.schema import validate_result

REAL_RUN = Path(__file__).resolve().parents[1] / "golden" / "reports" / "run_ok.result.json"


def run(
    n: int,
    throughput: float | None = None,
    p50_ms: float | None = None,
    round_: int = 1,
    status: str = "ok",
    stragglers: tuple[int, ...] = (),
) -> RunOutcome:
    """An outcome whose result holds just what the scaling analysis reads."""
    metrics = {
        "throughput_samples_per_sec": {"value": throughput},
        "latency_p50_ms": {"value": p50_ms},
        "compute_ms": {"value": 1.0},
        "allreduce_ms": {"value": None if n == 1 else 0.5},
    }
    result = {
        "run_id": f"s-n{n}-r{round_}",
        "status": status,
        "backend": "gloo",
        "metrics": metrics,
        "stragglers": [{"rank": r} for r in stragglers],
        "failed_ranks": [1] if status == "failed" else [],
        "errors": ["rank 1: no summary; the process died after step 3"] if status != "ok" else [],
    }
    return RunOutcome(PlannedRun(round_, n), result)


def failed(n: int, round_: int = 1) -> RunOutcome:
    return RunOutcome(PlannedRun(round_, n), None, "no rank wrote a header record")


def points(block: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["world_size"]: p for p in block["points"]}


def weak(outcomes: list[RunOutcome], sizes: list[int], repeats: int = 1) -> dict[str, Any]:
    return scaling.build_scaling(outcomes, "weak", sizes, repeats, 16, None)


def test_weak_efficiency_is_throughput_over_n_times_the_baseline() -> None:
    block = weak([run(1, 100.0), run(2, 180.0), run(4, 320.0)], [1, 2, 4])
    p = points(block)
    assert p[1]["efficiency_pct"] == 100.0
    assert p[2]["efficiency_pct"] == pytest.approx(90.0)  # 180 / (2 * 100)
    assert p[4]["efficiency_pct"] == pytest.approx(80.0)  # 320 / (4 * 100)
    assert all(pt["status"] == "derived" for pt in p.values())
    assert block["formula"] == "E = X_N / (N * X_1)"
    assert block["metric"] == "throughput_samples_per_sec"
    assert block["baseline"]["value"] == 100.0 and block["baseline"]["unit"] == "samples/s"
    assert block["baseline"]["kind"].startswith("1 rank with DDP (a world-size-1 gloo")
    assert [pt["global_batch"] for pt in block["points"]] == [16, 32, 64]
    assert [pt["per_rank_batch"] for pt in block["points"]] == [16, 16, 16]
    assert p[2]["allreduce_ms"] == 0.5 and p[1]["allreduce_ms"] is None


def test_strong_efficiency_is_baseline_step_time_over_n_times_step_time() -> None:
    outcomes = [run(1, 1.0, 40.0), run(2, 1.0, 25.0), run(4, 1.0, 16.0)]
    block = scaling.build_scaling(outcomes, "strong", [1, 2, 4], 1, None, 64)
    p = points(block)
    assert p[2]["efficiency_pct"] == pytest.approx(80.0)  # 40 / (2 * 25)
    assert p[4]["efficiency_pct"] == pytest.approx(62.5)  # 40 / (4 * 16)
    assert block["formula"] == "E = t_1 / (N * t_N)"
    assert block["metric"] == "latency_p50_ms" and block["baseline"]["unit"] == "ms"
    assert [pt["per_rank_batch"] for pt in block["points"]] == [64, 32, 16]
    assert {pt["global_batch"] for pt in block["points"]} == {64}


def test_baseline_other_than_one_rank_generalizes_the_formula() -> None:
    block = weak([run(2, 100.0), run(4, 150.0), run(8, 360.0)], [2, 4, 8])
    p = points(block)
    assert p[2]["efficiency_pct"] == 100.0
    assert p[4]["efficiency_pct"] == pytest.approx(75.0)  # 150 * 2 / (4 * 100)
    assert p[8]["efficiency_pct"] == pytest.approx(90.0)  # 360 * 2 / (8 * 100)
    assert block["baseline"]["world_size"] == 2
    assert "N0 = 2" in block["formula"]
    assert "2 ranks" in block["baseline"]["kind"] and "no 1-rank run" in block["baseline"]["kind"]
    strong = scaling.build_scaling(
        [run(2, 1.0, 30.0), run(4, 1.0, 20.0)], "strong", [2, 4], 1, None, 8
    )
    assert points(strong)[4]["efficiency_pct"] == pytest.approx(75.0)  # 2 * 30 / (4 * 20)


def test_superlinear_efficiency_is_reported_not_clamped() -> None:
    p = points(weak([run(1, 100.0), run(2, 230.0)], [1, 2]))
    assert p[2]["efficiency_pct"] == pytest.approx(115.0)
    assert p[2]["efficiency_pct_max"] == pytest.approx(115.0)


def test_a_failed_world_size_has_no_value_and_says_why() -> None:
    block = weak([run(1, 100.0), failed(2), run(4, 320.0, status="failed")], [1, 2, 4])
    p = points(block)
    for n in (2, 4):
        assert p[n]["efficiency_pct"] is None and p[n]["status"] == "unavailable"
        assert p[n]["efficiency_pct_min"] is None and p[n]["throughput_samples_per_sec"] is None
        assert p[n]["reason"].startswith(f"no ok run at world size {n}")
    assert "no rank wrote a header record" in p[2]["reason"]
    assert "process died after step 3" in p[4]["reason"]
    assert p[4]["runs"][0]["status"] == "failed" and p[4]["runs"][0]["failed_ranks"] == [1]
    assert p[1]["efficiency_pct"] == 100.0


def test_without_a_baseline_nothing_is_invented() -> None:
    block = weak([failed(1), run(2, 180.0)], [1, 2])
    p = points(block)
    assert block["baseline"]["value"] is None and block["baseline"]["runs_ok"] == 0
    assert p[2]["efficiency_pct"] is None
    assert p[2]["reason"] == (
        "no round has an ok run with throughput_samples_per_sec at both world size 1 "
        "(the baseline) and 2"
    )
    assert p[2]["throughput_samples_per_sec"] == 180.0  # measured values stay


def test_ok_runs_that_lack_the_metric_say_so() -> None:
    block = weak([run(1, 100.0), run(2, None)], [1, 2])
    p = points(block)
    assert p[2]["efficiency_pct"] is None and p[2]["status"] == "unavailable"
    assert p[2]["reason"] == (
        "the ok runs at world size 2 did not measure throughput_samples_per_sec"
    )


def test_repeats_pair_runs_within_a_round_then_take_the_median() -> None:
    # Round 2 ran on a faster host: pairing within rounds cancels that; pooling would not
    # (median X_2 200 / (2 * median X_1 100) would say 100%).
    outcomes = [
        run(1, 100.0, round_=1),
        run(2, 180.0, round_=1),
        run(1, 200.0, round_=2),
        run(2, 280.0, round_=2),
        run(1, 100.0, round_=3),
        run(2, 200.0, round_=3),
    ]
    block = weak(outcomes, [1, 2], repeats=3)
    p2 = points(block)[2]
    assert p2["efficiency_pct_rounds"] == pytest.approx([90.0, 70.0, 100.0])
    assert p2["efficiency_pct"] == pytest.approx(90.0)
    assert (p2["efficiency_pct_min"], p2["efficiency_pct_max"]) == pytest.approx((70.0, 100.0))
    assert p2["throughput_samples_per_sec"] == 200.0  # median over the three runs
    assert [r["dir"] for r in p2["runs"]] == ["n2-r1", "n2-r2", "n2-r3"]
    assert block["baseline"]["value"] == 100.0 and block["baseline"]["runs_ok"] == 3


def test_a_failed_round_drops_only_that_rounds_pair() -> None:
    outcomes = [run(1, 100.0), run(2, 180.0), failed(1, round_=2), run(2, 150.0, round_=2)]
    p2 = points(weak(outcomes, [1, 2], repeats=2))[2]
    assert p2["efficiency_pct_rounds"][0] == pytest.approx(90.0)
    assert p2["efficiency_pct_rounds"][1] is None
    assert p2["efficiency_pct"] == pytest.approx(90.0) and p2["runs_ok"] == 2


def test_stragglers_are_named_per_world_size() -> None:
    outcomes = [run(1, 100.0), run(2, 150.0, stragglers=(1,)), run(2, 160.0, round_=2)]
    p2 = points(weak(outcomes + [run(1, 100.0, round_=2)], [1, 2], repeats=2))[2]
    assert p2["stragglers"] == [1]
    assert [r["stragglers"] for r in p2["runs"]] == [[1], []]


@pytest.mark.parametrize(
    ("text", "sizes"),
    [("1,2,4", [1, 2, 4]), ("4, 1 ,2", [1, 2, 4]), ("2,3", [2, 3])],
)
def test_world_sizes_parse(text: str, sizes: list[int]) -> None:
    assert sweep.parse_world_sizes(text) == sizes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1,2", "1 is given twice"),
        ("0,2", "0 is not a positive number of ranks"),
        ("-1,2", "-1 is not a positive"),
        ("1,two", "'two' is not a whole number"),
        ("1,,2", "'' is not a whole number"),
        ("1.5,2", "'1.5' is not a whole number"),
        ("", "'' is not a whole number"),
        ("4", "at least two sizes"),
    ],
)
def test_bad_world_sizes_are_input_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match="--world-sizes") as e:
        sweep.parse_world_sizes(text)
    assert message in str(e.value)


def test_strong_global_batch_must_split_evenly() -> None:
    assert sweep.strong_global_batch(None, 16, [1, 2, 4]) == 64
    assert sweep.strong_global_batch(12, 16, [1, 2, 3, 4]) == 12
    with pytest.raises(InputError, match=r"--global-batch 10 does not split evenly .* size 3, 4"):
        sweep.strong_global_batch(10, 16, [1, 2, 3, 4])
    with pytest.raises(InputError, match=r"default global batch 64 .* 16 x 4 ranks.* size 3;"):
        sweep.strong_global_batch(None, 16, [2, 3, 4])
    with pytest.raises(InputError, match="must be >= 1"):
        sweep.strong_global_batch(0, 16, [1, 2])


def test_plan_interleaves_rounds() -> None:
    names = [r.name for r in sweep.plan([1, 2, 4], 2)]
    assert names == ["n1-r1", "n2-r1", "n4-r1", "n1-r2", "n2-r2", "n4-r2"]


def test_oversubscription_warning_only_on_cpu_beyond_the_cores() -> None:
    assert sweep.oversubscription_warning(4, 2, on_gpu=False) is not None
    assert "4 > 2 CPU cores" in (sweep.oversubscription_warning(4, 2, False) or "")
    assert sweep.oversubscription_warning(2, 2, on_gpu=False) is None
    assert sweep.oversubscription_warning(8, 2, on_gpu=True) is None


def test_headline_is_the_median_throughput_run_of_the_largest_size() -> None:
    three = [run(1, 50.0), run(4, 300.0), run(4, 100.0, round_=2), run(4, 200.0, round_=3)]
    head = sweep.pick_headline(three)
    assert head is not None and head.planned.name == "n4-r3"
    two = [run(4, 300.0), run(4, 100.0, round_=2)]
    head = sweep.pick_headline(two)
    assert head is not None and head.planned.name == "n4-r2"  # lower median of an even count
    assert sweep.pick_headline([failed(1), failed(2)]) is None


def _real(n: int, throughput: float, round_: int = 1, status: str = "ok") -> RunOutcome:
    """A full, schema-valid result (a real 2-rank run) with its throughput replaced."""
    result = json.loads(REAL_RUN.read_text())
    result["run_id"] = f"s-n{n}-r{round_}"
    result["status"] = status
    result["metrics"]["throughput_samples_per_sec"]["value"] = throughput
    return RunOutcome(PlannedRun(round_, n), result)


def test_sweep_result_is_a_valid_result_of_the_headline_run() -> None:
    outcomes = [_real(1, 100.0), _real(2, 150.0)]
    block = weak(outcomes, [1, 2])
    made = sweep.sweep_result(outcomes, block, "sweep-1", "t0", "t1")
    assert made is not None
    result = made.to_json()
    validate_result(result)
    assert result["run_id"] == "sweep-1" and result["status"] == "ok"
    assert result["scaling"]["headline_run"]["dir"] == "n2-r1"
    assert result["scaling"]["headline_run"]["run_id"] == "s-n2-r1"
    eff = result["metrics"]["scaling_efficiency_pct"]
    assert eff["status"] == "derived" and eff["value"] == pytest.approx(75.0)
    assert eff["unit"] == "%" and "E = X_N / (N * X_1)" in eff["method"]
    assert result["steps"]["rank_files"].startswith("n2-r1/ranks/")
    assert outcomes[1].result is not None and outcomes[1].result["run_id"] == "s-n2-r1"  # copied
    # The headline run's own result stays as it was: the sweep's fields are its own.
    assert made.headline.run_id == "s-n2-r1" and made.headline.scaling is None
    assert made.to_result().run_id == "sweep-1"


def test_sweep_result_of_a_failed_sweep_names_the_failed_runs() -> None:
    outcomes = [_real(1, 100.0), _real(2, 150.0), failed(4)]
    block = weak(outcomes, [1, 2, 4])
    made = sweep.sweep_result(outcomes, block, "sweep-2", "t0", "t1")
    assert made is not None
    result = made.to_json()
    validate_result(result)
    assert result["status"] == "failed"
    assert result["scaling"]["headline_run"]["world_size"] == 2  # n4 left no result
    assert any(
        e.startswith("sweep run n4-r1 (world size 4, round 1) failed") for e in result["errors"]
    )
    bad = copy.deepcopy(result)
    bad["scaling"]["points"][2]["reason"] = None  # unavailable without a reason
    with pytest.raises(InputError, match="scaling/points/2"):
        validate_result(bad)


def test_efficiency_at_a_failed_largest_size_is_unavailable_with_the_reason() -> None:
    outcomes = [_real(1, 100.0), _real(2, 150.0, status="failed")]
    block = weak(outcomes, [1, 2])
    made = sweep.sweep_result(outcomes, block, "sweep-3", "t0", "t1")
    assert made is not None
    result = made.to_json()
    validate_result(result)
    # the failed run's partial figures are not the sweep's headline: the ok run at 1 is
    head = result["scaling"]["headline_run"]
    assert head["dir"] == "n1-r1" and head["left_out"] == [2]
    assert "left out: n2-r1 (world size 2) failed" in head["why"]
    eff = result["metrics"]["scaling_efficiency_pct"]
    assert eff["value"] is None and eff["status"] == "unavailable"
    assert eff["reason"] == "no run above the baseline world size 1 finished ok"
    assert result["scaling"]["points"][1]["reason"].startswith("no ok run at world size 2")


def test_headline_skips_a_failed_largest_size_for_the_largest_ok_one() -> None:
    """Case 24: n1 and n2 ok, n4 failed with a (partial) result: the headline is n2, n4 is
    named as left out; with no ok run at all the failed run still shows why."""
    outcomes = [run(1, 100.0), run(2, 150.0), run(4, 300.0, status="failed")]
    head = sweep.pick_headline(outcomes)
    assert head is not None and head.planned.name == "n2-r1"
    assert [o.planned.name for o in sweep.left_out(outcomes, head)] == ["n4-r1"]
    only_failed = [run(2, 150.0, status="failed"), run(4, 300.0, status="failed")]
    head = sweep.pick_headline(only_failed)
    assert head is not None and head.planned.name == "n4-r1"
    assert sweep.pick_headline([failed(1), failed(4)]) is None


def test_the_baseline_names_its_own_layout() -> None:
    """`sweep --parallel tp=2 --world-sizes 2,4`: the 2-rank baseline is tensor parallel, not
    DDP (it was called DDP)."""
    outcomes = [run(2, 50.0), run(4, 80.0)]
    for o in outcomes:
        assert o.result is not None
        o.result["layout"] = {"name": "TP", "label": "tp=2"}
    block = weak(outcomes, [2, 4])
    assert block["baseline"]["kind"].startswith("2 ranks with TP (tp=2) (gloo)")
