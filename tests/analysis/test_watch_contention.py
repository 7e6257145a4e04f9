"""Host CPU contention (issue 25) gives one answer whatever the path: `watch` of a finished run's
rank files (its live rules on the last window, no result.json yet) says what `aggregate` of them
says: a rank slow because its threads waited for a CPU other processes held is NOT JUDGED (exit
2), not a straggler or culprit; one whose own threads used the CPU (a busy thread) stays named.

Inputs: rank files written by the shared writer (tests/fixtures/rank_writer.py) and real runs
recorded under load (tests/fixtures/recorded_runs/under_load) with a lateness and CPU figures
added to their step lines, as tests/analysis/test_contention.py adds them to the records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fixtures import rank_writer

from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.records import read_run_dir
from minicluster.analysis.tail import RunTail
from minicluster.analysis.verdicts import exit_code
from minicluster.analysis.watch import snapshot
from minicluster.report.watch import problem_lines, status_line
from minicluster.result.model import RunResult

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs" / "under_load"
UNDER_LOAD = sorted(p.name for p in RUNS.iterdir() if p.is_dir())
STEPS = 40  # 10 s of steps (rank_writer.STEP_S): one window holds them all, and spans > 5 s


def _watch(run_dir: Path, now_s: float, window: int = 100) -> dict[str, Any]:
    tail = RunTail(run_dir, window=window)
    tail.look(now_s)
    return snapshot(tail, now_s, 5.0)


def _both(run_dir: Path, now_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(aggregate's result of the rank files, watch's snapshot of them)."""
    result = aggregate(read_run_dir(run_dir, workers=1))
    return result, _watch(run_dir, now_s)


def _findings(entries: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(h["finding"], h["rank"], h["text"]) for h in entries]


END_S = rank_writer.T0 + STEPS * rank_writer.STEP_S + 0.5


def test_a_straggler_that_waited_for_a_cpu_is_not_judged_live_as_by_aggregate(
    tmp_path: Path,
) -> None:
    """Rank 1's 5 ms a step more compute is its threads waiting 5 ms on the run queue; its CPU
    time is the others' (4 ms): host CPU contention in both, the same line, exit 2."""
    run = rank_writer.write_slow_rank_1(tmp_path, STEPS, {1: (4.0, 5.2)})
    result, snap = _both(run, END_S)
    assert result["stragglers"] == [] and snap["stragglers"] == []
    assert snap["straggler_check"]["applied"]  # judged, not too short a window
    agg = _findings(result["host_contention"])
    assert [(f, r) for f, r, _ in agg] == [("straggler", 1)]
    assert _findings(snap["host_contention"]) == agg  # the same evidence, the same words
    live = snap["host_contention"][0]
    assert live["over"] == "window" and live["cpu_wait_excess_ms_per_step"] >= 2.5
    code = exit_code(RunResult.from_json(result))
    assert (code, snap["exit_code"]) == (2, 2)
    assert (snap["healthy"], snap["problems"]) == (False, [])
    assert agg[0][2] in snap["not_judged"]
    assert not snap["ranks"][1]["straggler"]
    # the live view says so, with the evidence numbers
    lines = [line for line, _ in problem_lines(snap)]
    assert lines == [f"NOT JUDGED: {agg[0][2]} (over the last 9.25 s)"]
    ev = snap["host_contention"][0]
    wait = f"{ev['cpu_wait_excess_ms_per_step']:.1f}"
    assert f"{wait} of them waiting for a CPU" in lines[0] or (
        f"and it waited {wait} ms a step more than the others for a CPU" in lines[0]
    )
    assert lines[0] in status_line(snap)


@pytest.mark.parametrize(
    "cpu",
    [
        {1: (None, 5.2)},  # a busy thread: its CPU time rises with its compute (and it waits)
        None,  # records without the fields (before rank format 1.7): no judgement
    ],
    ids=["busy-thread", "no-cpu-fields"],
)
def test_a_straggler_of_its_own_doing_is_named_live_as_by_aggregate(
    tmp_path: Path, cpu: dict[int, tuple[float | None, float]] | None
) -> None:
    """The control (so the test above can fail): the same slow rank stays a straggler, exit 1."""
    run = rank_writer.write_slow_rank_1(tmp_path, STEPS, cpu)
    result, snap = _both(run, END_S)
    assert [s["rank"] for s in result["stragglers"]] == [1]
    assert [s["rank"] for s in snap["stragglers"]] == [1]
    assert "host_contention" not in result and snap["host_contention"] == []
    assert (exit_code(RunResult.from_json(result)), snap["exit_code"]) == (1, 1)
    assert snap["not_judged"] is None


def _recorded_late(tmp_path: Path, name: str, wait_ms: float, cpu_ms: float) -> Path:
    """A recorded 2-rank run whose rank 1 computes LATE_MS more from step ONSET on (rank 0
    waiting for it in the all-reduce), written into its step lines; every step gets CPU figures:
    its compute as CPU time and 0.2 ms of run-queue delay, rank 1 from the onset `wait_ms` more
    delay and `cpu_ms` more CPU time (tests/analysis/test_contention.py's `_late_from_onset`)."""
    onset, late_ms = 18, 60.0
    run = tmp_path / name
    shutil.copytree(RUNS / name, run)
    for rank in (0, 1):
        path = run / "ranks" / f"rank_{rank:05d}.jsonl"
        out = []
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") == "step":
                late = rec["step"] >= onset and not rec["warmup"]
                rec["cpu_ms"] = rec["compute_ms"] + (cpu_ms if late and rank == 1 else 0.0)
                rec["cpu_wait_ms"] = 0.2 + (wait_ms if late and rank == 1 else 0.0)
                if late:
                    moved = (
                        ("compute_ms", "bwd_ms", "step_time_ms")
                        if rank == 1
                        else ("comm_ms", "exposed_comm_ms", "bwd_ms", "step_time_ms")
                    )
                    for key in moved:
                        rec[key] += late_ms
            out.append(json.dumps(rec))
        path.write_text("\n".join(out) + "\n")
    return run


def _end_of(run: Path) -> float:
    last = [
        json.loads(line)["t_unix_s"]
        for line in (run / "ranks" / "rank_00000.jsonl").read_text().splitlines()
        if '"type":"step"' in line.replace(" ", "")
    ]
    return float(max(last)) + 1.0


@pytest.mark.parametrize("name", UNDER_LOAD)
def test_an_onset_spent_waiting_for_a_cpu_is_not_judged_live_as_by_aggregate(
    tmp_path: Path, name: str
) -> None:
    run = _recorded_late(tmp_path, name, wait_ms=55.0, cpu_ms=0.5)
    result, snap = _both(run, _end_of(run))
    assert snap["straggler_check"]["applied"]
    assert result["culprits"] == [] and snap["culprits"] == []
    assert result["stragglers"] == [] and snap["stragglers"] == []
    agg = {(f, r) for f, r, _ in _findings(result["host_contention"])}
    assert ("culprit", 1) in agg
    assert {(f, r) for f, r, _ in _findings(snap["host_contention"])} == agg
    assert (exit_code(RunResult.from_json(result)), snap["exit_code"]) == (2, 2)
    assert snap["healthy"] is False and "rank 1 not judged (culprit" in snap["not_judged"]


@pytest.mark.parametrize("name", UNDER_LOAD)
def test_an_onset_of_its_own_cpu_use_stays_a_culprit_live_as_by_aggregate(
    tmp_path: Path, name: str
) -> None:
    run = _recorded_late(tmp_path, name, wait_ms=55.0, cpu_ms=60.0)
    result, snap = _both(run, _end_of(run))
    assert [c["rank"] for c in result["culprits"]] == [1]
    assert [c["rank"] for c in snap["culprits"]] == [1]
    assert "host_contention" not in result and snap["host_contention"] == []
    assert (exit_code(RunResult.from_json(result)), snap["exit_code"]) == (1, 1)


def _main_thread_run(tmp_path: Path, main_wait: dict[int, float]) -> Path:
    """Rank 1 about 5 ms a step slower in compute, its threads together waiting 5.2 ms a step on
    the run queue (gloo's and the intra-op pool's, say), its CPU time the others'; its loop
    thread waiting `main_wait[1]` (rank format 1.8's `main_cpu_wait_ms`)."""
    rank_writer.write_static(
        tmp_path,
        [STEPS - 1] * 4,
        compute_ms={1: 9.0},
        total=STEPS,
        cpu={1: (4.0, 5.2)},
        finished=True,
        main_wait=main_wait,
    )
    return tmp_path


def test_a_straggler_whose_loop_thread_did_not_wait_is_named_live_as_by_aggregate(
    tmp_path: Path,
) -> None:
    """Every thread's wait would excuse it (the 1.7 rule: the first test above), its loop
    thread's does not: the loop thread is what arrives late. Named in both, exit 1, with its CPU
    figures on the straggler entry."""
    run = _main_thread_run(tmp_path, {1: 0.1})
    result, snap = _both(run, END_S)
    assert [s["rank"] for s in result["stragglers"]] == [1]
    assert [s["rank"] for s in snap["stragglers"]] == [1]
    assert "host_contention" not in result and snap["host_contention"] == []
    assert (exit_code(RunResult.from_json(result)), snap["exit_code"]) == (1, 1)
    for s in (result["stragglers"][0], snap["stragglers"][0]):
        ev = s["cpu"]
        assert ev["wait_of"] == "loop_thread"
        assert abs(ev["cpu_wait_excess_ms_per_step"]) < 1.0
        assert ev["all_threads_cpu_wait_excess_ms_per_step"] >= 2.5
        assert ev["late_ms_per_step"] >= 2.5
    assert RunResult.from_json(result).stragglers[0].cpu is not None


def test_a_straggler_whose_loop_thread_waited_is_not_judged_live_as_by_aggregate(
    tmp_path: Path,
) -> None:
    run = _main_thread_run(tmp_path, {1: 5.2})
    result, snap = _both(run, END_S)
    assert result["stragglers"] == [] and snap["stragglers"] == []
    agg = _findings(result["host_contention"])
    assert [(f, r) for f, r, _ in agg] == [("straggler", 1)]
    assert _findings(snap["host_contention"]) == agg
    assert "training thread's run-queue delay" in agg[0][2]
    assert result["host_contention"][0]["wait_of"] == "loop_thread"
    assert (exit_code(RunResult.from_json(result)), snap["exit_code"]) == (2, 2)
