"""Aggregation rules on rank records written by the recorder (no torch needed)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fixtures import recorded

from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.frame import Launch
from minicluster.analysis.records import RankRecords, read_run_dir
from minicluster.core.errors import InputError
from minicluster.result.schema import validate_result


def header(rank: int, world: int = 2, **extra: Any) -> dict[str, Any]:
    h = {
        "type": "header",
        "run_id": "r1",
        "rank": rank,
        "local_rank": rank,
        "world_size": world,
        "local_world_size": world,
        "hostname": "node-a",
        "pid": 100 + rank,
        "created_at": "2026-01-01T00:00:00+00:00",
        "backend": "gloo",
        "device": "cpu",
        "launcher": "torchrun",
        "config": {"steps": {"warmup": 1, "measured": 6}, "run": {"straggler_threshold_pct": 20.0}},
        "workload": {
            "name": "mlp",
            "per_rank_batch": 10,
            "seq_len": None,
            "tokens_per_rank": None,
            "params": 1000,
        },
        "platform": {
            "cpu": "test cpu",
            "host_memory_total_bytes": 1000,
            "torch": "x",
            "python": "y",
        },
        "telemetry": {
            "nvml": {"available": False, "reason": "no NVML library"},
            "rapl": {"available": False, "reason": "no RAPL zones"},
        },
    }
    h.update(extra)
    return h


def step(
    i: int, step_ms: float, compute_ms: float, comm_ms: float, warmup: bool = False
) -> dict[str, Any]:
    return {
        "type": "step",
        "step": i,
        "warmup": warmup,
        "step_time_ms": step_ms,
        "compute_ms": compute_ms,
        "comm_ms": comm_ms,
        "exposed_comm_ms": comm_ms / 2,
        "comm_bytes": 4_000_000,
        "fwd_ms": 1.0,
        "bwd_ms": 1.0,
        "opt_ms": 1.0,
    }


def summary(rank: int, status: str = "ok") -> dict[str, Any]:
    return {
        "rank": rank,
        "status": status,
        "last_step": 4,
        "error": None if status == "ok" else "boom",
        "memory": {"rss_peak_bytes": 100, "host_total_bytes": 1000},
        "ddp_logging": None,
    }


def two_ranks(slow_compute: float = 10.0) -> list[RankRecords]:
    """Rank 1 computes `slow_compute` ms per step; rank 0 10 ms and waits for rank 1 (1 warm-up
    + 6 measured steps each), written by the recorder and read back."""
    with tempfile.TemporaryDirectory() as run_dir:
        recorded.training_run(Path(run_dir), [[10.0] * 6, [slow_compute] * 6])
        return read_run_dir(Path(run_dir))


def test_clean_run_is_ok_and_schema_valid() -> None:
    result = aggregate(two_ranks())
    validate_result(result)
    assert result["status"] == "ok"
    assert result["world_size"] == 2
    assert result["stragglers"] == []
    assert [r["measured_steps"] for r in result["ranks"]] == [6, 6]
    m = result["metrics"]
    # global batch 20 per 12 ms step -> 1666.7 samples/s; warm-up (50 ms) excluded
    assert m["throughput_samples_per_sec"]["value"] == pytest.approx(20 / 0.012)
    assert m["latency_p50_ms"]["value"] == pytest.approx(12.0)
    assert m["communication_overhead_percent"]["value"] == pytest.approx(100 * 1.0 / 12.0)


def test_straggler_is_named_by_compute_and_wait_lands_on_the_healthy_rank() -> None:
    result = aggregate(two_ranks(slow_compute=40.0))
    assert [s["rank"] for s in result["stragglers"]] == [1]
    assert result["stragglers"][0]["attributed_to"] == "compute"
    r0, r1 = result["ranks"]
    # rank 0's all-reduce is long only because it waits for rank 1
    assert r0["comm_ms_median"] == pytest.approx(32.0)
    assert r0["wait_ms_median"] == pytest.approx(30.0)
    assert r1["wait_ms_median"] == pytest.approx(0.0)
    assert r0["transfer_ms_median"] == r1["transfer_ms_median"] == pytest.approx(2.0)


def test_straggler_needs_to_be_slowest_step_after_step() -> None:
    recs = two_ranks()
    # rank 1: 40 ms in half of the steps, 5 ms in the other half: its median (22.5 ms) is far
    # above rank 0's 10 ms, but it is the slowest rank in only 3 of 6 steps (chance: p = 0.66)
    noisy = [40.0, 5.0, 40.0, 5.0, 40.0, 5.0]
    recs[1].steps = [recs[1].steps[0]] + [
        step(i, c + 2.0, c, 2.0) for i, c in enumerate(noisy, start=1)
    ]
    result = aggregate(recs)
    assert result["ranks"][1]["compute_ms_median"] == pytest.approx(22.5)
    assert result["stragglers"] == []


def test_straggler_records_its_sign_test() -> None:
    (s,) = aggregate(two_ranks(slow_compute=40.0))["stragglers"]
    assert (s["slowest_in_steps"], s["steps_compared"]) == (6, 6)
    assert s["sign_test_p"] == pytest.approx(0.5**6, rel=1e-2)


def test_unavailable_energy_is_null_with_reason_never_zero() -> None:
    m = aggregate(two_ranks())["metrics"]
    for name in ("power_consumption_watts", "energy_per_step_joules", "temperature_celsius"):
        assert m[name]["value"] is None
        assert m[name]["status"] == "unavailable"
        assert m[name]["reason"] == "no rank reported telemetry"
    assert m["tokens_per_sec"]["value"] is None


def test_dead_rank_fails_the_run_and_keeps_its_steps() -> None:
    recs = two_ranks()
    recs[1].summary = None
    recs[1].steps = recs[1].steps[:3]  # died after step 2
    result = aggregate(recs, Launch("ranks failed: rank 1 exit code 1"))
    validate_result(result)
    assert result["status"] == "failed"
    assert result["failed_ranks"] == [1]
    assert (
        "rank 1: died during step 3 (last finished step 2), without a summary" in result["errors"]
    )
    assert result["ranks"][1]["steps_recorded"] == 3
    assert result["steps"]["embedded"]["1"]["step"] == [0, 1, 2]


def test_memory_is_not_taken_from_the_ranks_that_survived() -> None:
    """Both ranks peak at 100 of a host's 1000 bytes: the host holds 20%. When rank 1 dies
    without a summary, 10% (rank 0 alone) is a number the job never had: no value, a reason."""
    clean = aggregate(two_ranks())["metrics"]
    assert clean["memory_utilization_percent"]["value"] == pytest.approx(20.0)
    recs = two_ranks()
    recs[1].summary = None
    m = aggregate(recs, Launch("ranks failed: rank 1 exit code 1"))["metrics"]
    for name in ("memory_utilization_percent", "memory_peak_mib"):
        assert m[name]["value"] is None and m[name]["status"] == "unavailable"
        assert m[name]["reason"].startswith("only 1 of 2 ranks wrote a summary (not rank 1)")


def test_rank_with_no_files_is_named_missing() -> None:
    recs = two_ranks()[:1]
    result = aggregate(recs)
    assert result["status"] == "failed"
    assert result["ranks"][1]["status"] == "missing"
    assert "rank 1: no records" in result["errors"][0]


def test_single_rank_has_no_comm_metrics() -> None:
    rec = two_ranks()[0]
    rec.header = header(0, world=1)
    m = aggregate([rec])["metrics"]
    assert m["allreduce_ms"]["value"] is None
    assert m["allreduce_ms"]["reason"] == "one rank: no inter-rank communication"
    assert m["throughput_samples_per_sec"]["value"] is not None


def test_single_rank_series_has_no_bus_bandwidth_not_zero() -> None:
    """2(n-1)/n is 0 at one rank: the per-step busbw is null (not measured), never 0 GB/s."""
    rec = two_ranks()[0]
    rec.header = header(0, world=1)
    series = aggregate([rec])["steps"]["series"]
    assert series["busbw_gbps"] and all(v is None for v in series["busbw_gbps"])


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    recorded.training_run(tmp_path, [[10.0] * 6, [10.0] * 6])  # 1 warm-up + 6 steps each
    f = tmp_path / "ranks" / "rank_00001.jsonl"
    f.write_text(f.read_text() + '{"type":"step","step":7,"step_ti')  # crash mid-write
    recs = read_run_dir(tmp_path)
    assert len(recs[1].steps) == 7
    assert recs[1].warnings == ["rank_00001.jsonl: truncated last line skipped"]
    result = aggregate(recs)
    assert "rank_00001.jsonl: truncated last line skipped" in result["errors"]


def test_reading_a_dir_without_ranks_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no rank records"):
        read_run_dir(tmp_path)
    (tmp_path / "ranks").mkdir()
    with pytest.raises(InputError, match="no rank_NNNNN.jsonl"):
        read_run_dir(tmp_path)


def test_dead_rank_error_names_its_exit_code_as_in_a_collectives_run() -> None:
    recs = two_ranks()
    recs[1].summary = None
    result = aggregate(recs, Launch(exit_codes={0: -15, 1: 86}))
    assert any(
        e.startswith("rank 1: died during step") and e.endswith("(exit code 86)")
        for e in result["errors"]
    )


def test_run_level_components_are_values_a_rank_had_under_skew() -> None:
    """Under a 30 ms straggler the run's compute is the straggler's (the critical path), and the
    run's wait is what the healthy rank waited: never a median over rank x step that mixes them
    (the pooled median gave compute 35.5 ms when the ranks had 9.5 and 42.6)."""
    recs = two_ranks(slow_compute=40.0)
    m = aggregate(recs)["metrics"]
    assert m["compute_ms"]["value"] == pytest.approx(40.0)  # rank 1's compute, not a mix
    assert m["allreduce_transfer_ms"]["value"] == pytest.approx(2.0)  # rank 1 did not wait
    assert m["allreduce_wait_ms"]["value"] == pytest.approx(30.0)  # rank 0 waited 30 ms
    assert m["allreduce_ms"]["value"] == pytest.approx(32.0)  # transfer + the longest wait
    assert "per-step max over ranks" in m["compute_ms"]["method"]
    assert "per-step min over ranks" in m["allreduce_transfer_ms"]["method"]


def test_result_holds_the_per_step_series_each_metric_is_the_median_of() -> None:
    result = aggregate(two_ranks(slow_compute=40.0))
    series = result["steps"]["series"]
    assert series["step"] == [1, 2, 3, 4, 5, 6]  # measured steps only
    assert series["step_time_ms"] == [42.0] * 6
    for name in ("compute_ms", "allreduce_ms", "allreduce_wait_ms", "allreduce_transfer_ms"):
        assert result["metrics"][name]["value"] == pytest.approx(sorted(series[name])[3])
    assert result["metrics"]["latency_p50_ms"]["value"] == pytest.approx(42.0)


def test_the_culprit_is_named_and_its_victim_is_aborted_not_failed() -> None:
    """Rank 1 died in step 4; rank 0's all-reduce then failed with a peer error: rank 0 is a
    victim (aborted), rank 1 the failure, and the first error line names rank 1."""
    recs = two_ranks()
    recs[1].summary = None
    recs[1].steps = recs[1].steps[:4]  # finished steps 0..3, died in step 4
    recs[0].summary = {
        **summary(0, "failed"),
        "last_step": 3,
        "error": "RuntimeError: [gloo/transport/tcp/pair.cc:534] Connection closed by peer",
    }
    result = aggregate(recs, Launch(exit_codes={0: 1, 1: 86}))
    assert result["status"] == "failed"
    assert result["failed_ranks"] == [1] and result["aborted_ranks"] == [0]
    assert [r["status"] for r in result["ranks"]] == ["aborted", "failed"]
    assert result["errors"][0].startswith("rank 1: died during step 4 (last finished step 3)")
    assert result["errors"][1].startswith("rank 0: aborted during step 4")
    assert "after rank(s) 1 failed" in result["errors"][1]


def test_a_rank_failing_on_its_own_names_the_step_it_was_in() -> None:
    recs = two_ranks()
    recs[1].summary = {**summary(1, "failed"), "last_step": 4, "error": "ValueError: bad batch"}
    result = aggregate(recs)
    assert result["failed_ranks"] == [1] and result["aborted_ranks"] == []
    assert (
        "rank 1: failed during step 5 (last finished step 4): ValueError: bad batch"
        in (result["errors"])
    )


def test_an_interrupted_run_is_incomplete_not_failed() -> None:
    recs = two_ranks()
    for r in (0, 1):
        recs[r].summary = {**summary(r, "interrupted"), "error": "KeyboardInterrupt: SIGTERM"}
    result = aggregate(recs)
    validate_result(result)
    assert result["status"] == "incomplete" and result["interrupted"] is True
    assert result["failed_ranks"] == []
    assert [r["status"] for r in result["ranks"]] == ["interrupted", "interrupted"]


def test_ctrl_c_in_the_teardown_of_a_run_whose_ranks_all_finished_ok_is_ok() -> None:
    """Every rank wrote its `ok` summary; the launcher was interrupted while they tore down:
    nothing is missing, so the run is ok (a sweep keeps that world size), with a note."""
    result = aggregate(two_ranks(), Launch("interrupted", interrupted=True))
    validate_result(result)
    assert result["status"] == "ok" and result["interrupted"] is False
    assert [r["status"] for r in result["ranks"]] == ["ok", "ok"]
    assert any("after every rank finished" in e for e in result["errors"])


def _ranks_with_compute(
    rank0: list[float], rank1: list[float], waits: bool = False
) -> list[RankRecords]:
    """Two ranks' steps with these compute times; `waits`: each rank's all-reduce lasts until
    the other arrived (its comm_ms grows by the other's extra compute), as DDP's does."""
    recs = []
    for rank, compute, other in ((0, rank0, rank1), (1, rank1, rank0)):
        comm = [
            2.0 + (max(0.0, o - c) if waits else 0.0) for c, o in zip(compute, other, strict=True)
        ]
        steps = [step(0, 50.0, 10.0, 2.0, warmup=True)]
        steps += [
            step(i + 1, c + m, c, m) for i, (c, m) in enumerate(zip(compute, comm, strict=True))
        ]
        h = header(rank)
        h["config"] = {"steps": {"warmup": 1, "measured": len(compute)}}
        recs.append(RankRecords(rank=rank, header=h, steps=steps, summary=summary(rank)))
    return recs


def test_a_rank_slow_in_streaks_is_not_a_straggler() -> None:
    """As measured in a healthy run on a loaded 2-core host: rank 1 had a +37% median compute
    and was the slowest in 38 of 50 steps (p=0.0002): slow while it shared a core, not a node
    to pull. The effect size rule (slowest in >= 80% of steps) keeps it from being named."""
    rank0 = [24.0 + (i % 5) * 0.3 for i in range(50)]
    rank1 = [33.0 + (i % 3) * 0.4 if i % 4 else 18.0 for i in range(50)]  # slower in 38 of 50
    result = aggregate(_ranks_with_compute(rank0, rank1))
    assert result["stragglers"] == []
    assert result["faults"]["detected"] == []


def test_a_20_ms_straggler_is_named_with_its_consistency() -> None:
    rank0 = [12.0 + (i % 7) * 0.5 for i in range(50)]
    rank1 = [c + 20.0 if i != 17 else c - 1.0 for i, c in enumerate(rank0)]  # 49 of 50 steps
    (s,) = aggregate(_ranks_with_compute(rank0, rank1, waits=True))["stragglers"]
    assert s["rank"] == 1 and s["slowest_in_steps"] == 49 and s["steps_compared"] == 50
    assert s["min_steps_pct"] == 80.0
    # rank 0 waited 20 ms for it in 49 of 50 steps
    assert 19.0 < s["waited_for_ms"] < 20.0 and s["waited_for_steps"] == 49
    assert s["waited_for_ms_interval"][0] > s["waited_for_floor_ms"]


def test_a_rank_slower_in_compute_that_nobody_waited_for_is_not_a_straggler() -> None:
    """Issue 25: under CPU load a rank's compute timer runs long (descheduled inside it) while
    its all-reduce starts with the others': the others' comm_ms shows no wait for it."""
    rank0 = [12.0 + (i % 7) * 0.5 for i in range(50)]
    rank1 = [c + 20.0 if i != 17 else c - 1.0 for i, c in enumerate(rank0)]
    result = aggregate(_ranks_with_compute(rank0, rank1, waits=False))
    assert result["stragglers"] == [] and result["faults"]["detected"] == []


@pytest.mark.parametrize("measured", [3, 4])
def test_too_few_steps_for_the_sign_test_is_not_judged_never_ok(measured: int) -> None:
    """A 200 ms straggler over 3 or 4 measured steps of 2 ranks: the sign test cannot reach
    p < 0.05 below 5 steps, so nobody can be named. The result says so and exits by the
    policy's `not_judged` row (2), never ok (0) as it did."""
    from minicluster.analysis.verdicts import exit_code, verdicts
    from minicluster.core.errors import EXIT_BAD_INPUT
    from minicluster.result.model import RunResult

    with tempfile.TemporaryDirectory() as run_dir:
        recorded.training_run(Path(run_dir), [[10.0] * measured, [210.0] * measured])
        result = aggregate(read_run_dir(Path(run_dir)))
    validate_result(result)
    assert result["stragglers"] == []
    assert f"{measured} measured step(s)" in result["not_judged"]
    assert "needs 5 with 2 ranks" in result["not_judged"]
    run = RunResult.from_json(result)
    assert verdicts(run) == ["not_judged"]
    assert exit_code(run) == EXIT_BAD_INPUT


def test_enough_steps_is_judged_healthy_or_straggler() -> None:
    """5 measured steps (and the fixture's 6) are enough: judged as before."""
    with tempfile.TemporaryDirectory() as run_dir:
        recorded.training_run(Path(run_dir), [[10.0] * 5, [210.0] * 5])
        result = aggregate(read_run_dir(Path(run_dir)))
    assert "not_judged" not in result
    assert [s["rank"] for s in result["stragglers"]] == [1]
    assert "not_judged" not in aggregate(two_ranks())


def test_aggregate_and_watch_of_a_4_step_straggler_run_are_not_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """trial2's t4: a 200 ms straggler over 4 measured steps of 2 ranks. `aggregate` said ok
    (exit 0) and `watch --once` of the ended run agreed; both now say NOT JUDGED and why, exit 2
    (the policy's `not_judged`)."""
    from minicluster.cli import main

    recorded.training_run(tmp_path, [[10.0] * 4, [210.0] * 4])
    assert main(["aggregate", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "NOT JUDGED" in out and "the straggler sign test needs 5" in out
    assert main(["watch", str(tmp_path), "--once", "--json"]) == 2
    snap = json.loads(capsys.readouterr().out)
    assert snap["ended"]["verdicts"] == ["not_judged"] and not snap["healthy"]
    assert "needs 5 with 2 ranks" in snap["not_judged"] and snap["problems"] == []
