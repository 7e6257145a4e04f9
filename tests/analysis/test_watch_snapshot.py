"""The watch snapshot's rules on hand-made rank files with known clocks: stalls, the shared
straggler rule, progress, nodes, the end of a run."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fixtures import rank_writer  # the one shared writer of rank files (tests/fixtures)

from minicluster.analysis import waited
from minicluster.analysis.steps import StepTable
from minicluster.analysis.stragglers import find_stragglers
from minicluster.analysis.tail import RunTail, Windows
from minicluster.analysis.watch import snapshot
from minicluster.analysis.watch_rules import START_WAIT_S
from minicluster.core.errors import InputError
from minicluster.result.model import RunResult

T0 = rank_writer.T0
STEP_S = rank_writer.STEP_S
_write = rank_writer.write_static


def _snap(run_dir: Path, now_s: float, stall_after_s: float = 5.0, **kw: Any) -> dict[str, Any]:
    tail = RunTail(run_dir, window=50)
    tail.look(now_s)
    if isinstance(kw.get("result"), dict):
        kw["result"] = _ended(kw["result"])
    return snapshot(tail, now_s, stall_after_s, **kw)


GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks.result.json"


def _ended(fields: dict[str, Any]) -> RunResult:
    """A real 2-rank result with the verdict `fields` of the test (status, ranks, faults...)."""
    result = {**json.loads(GOLDEN.read_text()), **fields}
    result["faults"] = {"injected": [], "detected": [], **fields.get("faults", {})}
    if "ranks" in fields:
        base = json.loads(GOLDEN.read_text())["ranks"]
        result["ranks"] = [{**base[r["rank"]], **r} for r in fields["ranks"]]
    return RunResult.from_json(result)


def _no_problem(snap: dict[str, Any]) -> bool:
    """Nothing found: healthy and exit 0 once the window is long enough to judge, else "not
    judged yet" (never healthy) and the policy's not_judged code, 2."""
    judged = snap["straggler_check"] is not None and snap["straggler_check"]["applied"]
    return (
        snap["problems"] == []
        and snap["healthy"] is judged
        and (snap["not_judged"] is None) is judged
        and snap["exit_code"] == (0 if judged else 2)
    )


def test_a_healthy_noisy_job_is_healthy(tmp_path: Path) -> None:
    _write(tmp_path, [60, 60, 60, 60])
    snap = _snap(tmp_path, T0 + 60 * STEP_S + 0.05)
    assert (snap["healthy"], snap["problems"], snap["exit_code"]) == (True, [], 0)
    assert snap["stragglers"] == [] and snap["stalled"] == [] and snap["job_stall"] is None
    assert [r["state"] for r in snap["ranks"]] == ["running"] * 4
    p = snap["progress"]
    assert (p["steps_done"], p["steps_total"], p["steps_per_sec"]) == (61, 100, 4.0)
    assert p["eta_s"] == pytest.approx(39 / 4)
    assert snap["ranks"][0]["idle_s"] == pytest.approx(0.05)
    # noise makes one rank the slowest; it is marked, with its excess, and not called a straggler
    assert snap["slowest"] is not None and not any(r["straggler"] for r in snap["ranks"])


def test_a_rank_left_behind_while_the_others_advance_is_named_with_its_last_step(
    tmp_path: Path,
) -> None:
    _write(tmp_path, [80, 80, 56, 80])  # rank 2's last step 6 s before the others'
    snap = _snap(tmp_path, T0 + 80 * STEP_S + 0.05)
    assert [(s["rank"], s["last_step"]) for s in snap["stalled"]] == [(2, 56)]
    assert snap["stalled"][0]["idle_s"] == pytest.approx(6.05)
    assert snap["job_stall"] is None
    assert (snap["problems"], snap["exit_code"]) == (["stalled"], 1)
    assert snap["progress"]["eta_s"] is None and snap["progress"]["steps_done"] == 57
    assert snap["worst"][0] == 2


def test_a_rank_a_little_behind_is_not_stalled(tmp_path: Path) -> None:
    _write(tmp_path, [80, 80, 68, 80])  # 3 s behind, stall window 5 s
    snap = _snap(tmp_path, T0 + 80 * STEP_S + 0.05)
    assert snap["stalled"] == [] and _no_problem(snap)


def test_a_rank_waiting_for_a_slow_peer_is_not_stalled(tmp_path: Path) -> None:
    """Rank 1 took 4 s longer over its last step; rank 0, idle 6 s, waits for it in the next
    collective: the others did not advance past it by more than the stall window."""
    _write(tmp_path, [19, 19], late_s={1: 4.0})
    snap = _snap(tmp_path, T0 + 19 * STEP_S + 6.0)
    assert [r["idle_s"] for r in snap["ranks"]] == pytest.approx([6.0, 2.0])
    assert snap["stalled"] == [] and snap["job_stall"] is None and _no_problem(snap)


def test_a_job_stopped_at_one_step_names_every_rank_and_no_culprit(tmp_path: Path) -> None:
    """A hung rank stops the others at the same step (a collective waits for all): the snapshot
    must not pick one of them as the cause."""
    _write(tmp_path, [19, 19, 19])
    snap = _snap(tmp_path, T0 + 19 * STEP_S + 12.0)
    stall = snap["job_stall"]
    assert stall["ranks"] == [0, 1, 2] and stall["last_step"] == 19 and stall["behind"] == []
    assert "cannot tell which rank stopped first" in stall["reason"]
    assert [(s["rank"], s["last_step"]) for s in snap["stalled"]] == [(0, 19), (1, 19), (2, 19)]
    assert snap["exit_code"] == 1


def test_a_job_stall_names_the_rank_behind(tmp_path: Path) -> None:
    _write(tmp_path, [19, 18, 19])
    snap = _snap(tmp_path, T0 + 19 * STEP_S + 12.0)
    assert snap["job_stall"]["behind"] == [1] and "reason" not in snap["job_stall"]


def test_start_up_is_given_its_own_allowance(tmp_path: Path) -> None:
    """Before the first step (model, process group, DDP set-up) a rank has START_WAIT_S from its
    header, however short the stall window."""
    _write(tmp_path, [-1, -1])  # headers only, written at 2026-01-01T00:00:00Z
    started = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    snap = _snap(tmp_path, started + START_WAIT_S - 1, stall_after_s=3.0)
    assert snap["job_stall"] is None and _no_problem(snap)
    snap = _snap(tmp_path, started + START_WAIT_S + 1, stall_after_s=3.0)
    assert snap["job_stall"]["ranks"] == [0, 1] and snap["job_stall"]["last_step"] is None


def test_a_rank_that_timed_out_leaves_the_silent_one_named(tmp_path: Path) -> None:
    _write(tmp_path, [19, 19])
    summary = {"status": "failed", "error": "RuntimeError: Timed out waiting 60000ms for recv"}
    (tmp_path / "ranks" / "rank_00000.summary.json").write_text(json.dumps(summary))
    snap = _snap(tmp_path, T0 + 19 * STEP_S + 12.0)
    assert [f["rank"] for f in snap["failed"]] == [0]
    assert snap["job_stall"]["ranks"] == [1]
    assert snap["job_stall"]["reason"] == "rank 1 is the only rank still running"
    assert set(snap["problems"]) == {"stalled", "failed"}


def test_a_rank_that_recorded_every_step_is_finishing_not_stalled(tmp_path: Path) -> None:
    _write(tmp_path, [99, 99], total=100)  # rank 0 validates for a while after its last step
    (tmp_path / "ranks" / "rank_00001.summary.json").write_text(json.dumps({"status": "ok"}))
    snap = _snap(tmp_path, T0 + 99 * STEP_S + 60.0)
    assert [r["state"] for r in snap["ranks"]] == ["finishing", "finished"]
    assert snap["job_stall"] is None and _no_problem(snap)
    assert snap["progress"]["eta_s"] == 0.0


def test_the_straggler_is_the_shared_rule_with_the_runs_thresholds(tmp_path: Path) -> None:
    slow = {1: 9.0}
    _write(tmp_path / "a", [60, 60, 60, 60], compute_ms=slow)
    snap = _snap(tmp_path / "a", T0 + 60 * STEP_S)
    assert [s["rank"] for s in snap["stragglers"]] == [1]
    assert snap["ranks"][1]["straggler"] and snap["exit_code"] == 1
    # the very rule the coordinator applies, on the same window
    tail = RunTail(tmp_path / "a", window=50)
    tail.look(T0)
    table = StepTable(Windows(list(tail.ranks.values())).records(), 4)
    waits = waited.measure_table(table, table.series(4)["step_time_ms"])
    expected = find_stragglers(table, 20.0, 2.0, waited=waits, min_waited_pct=5.0)
    assert [{k: v for k, v in s.items() if k != "node"} for s in snap["stragglers"]] == expected
    # the thresholds come from the run's config in the header: a higher one names nobody
    _write(
        tmp_path / "b",
        [60, 60, 60, 60],
        compute_ms=slow,
        run_section={"straggler_threshold_pct": 200.0},
    )
    assert _snap(tmp_path / "b", T0 + 60 * STEP_S)["stragglers"] == []


def test_a_rank_nobody_waited_for_is_no_straggler_live_as_in_the_result(tmp_path: Path) -> None:
    """Rank 1's compute reads twice the others' but their all-reduces never waited for it (its
    clock ran on a busy core while its collective was entered in time): the result names no
    straggler or culprit (`analysis.waited`), and neither does the live watch."""
    _write(tmp_path, [60, 60, 60, 60], compute_ms={1: 9.0}, waits=False)
    snap = _snap(tmp_path, T0 + 60 * STEP_S)
    assert snap["straggler_check"]["applied"]
    assert (snap["stragglers"], snap["culprits"], snap["exit_code"]) == ([], [], 0)
    assert snap["slowest"] is not None  # still shown as the slowest, not named


def test_a_straggler_is_still_named_beside_a_rank_left_behind(tmp_path: Path) -> None:
    """The left-behind rank shares no recent step with the others; the sign test compares
    ranks step by step, so it runs on the ranks still in step."""
    _write(tmp_path, [80, 80, 20, 80], compute_ms={1: 9.0})
    snap = _snap(tmp_path, T0 + 80 * STEP_S)
    assert [s["rank"] for s in snap["stalled"]] == [2]
    assert [s["rank"] for s in snap["stragglers"]] == [1]
    assert snap["problems"] == ["stalled", "straggling"]


def test_no_straggler_is_named_on_a_window_shorter_than_the_minimum_span(tmp_path: Path) -> None:
    """The same slow rank, but the compared steps span 2.25 s: a passing slowdown of that length
    would look the same, so nobody is named and the snapshot says why."""
    _write(tmp_path, [60, 60, 60, 60], compute_ms={1: 9.0})
    tail = RunTail(tmp_path, window=10)
    tail.look(T0 + 60 * STEP_S)
    snap = snapshot(tail, T0 + 60 * STEP_S, 5.0)
    check = snap["straggler_check"]
    assert (check["span_s"], check["applied"]) == (2.25, False)
    # not judged is no verdict of health: never `healthy`, never the 0 a CI gate reads as a pass
    assert snap["stragglers"] == [] and snap["problems"] == []
    assert (snap["healthy"], snap["exit_code"]) == (False, 2)
    assert snap["not_judged"] == check["reason"]
    assert "2.2 s < 5 s" in check["reason"]
    assert snap["slowest"]["rank"] == 1  # still marked the slowest, with its excess


def test_ranks_group_by_node_rank_else_hostname(tmp_path: Path) -> None:
    extra = {r: {"node_rank": r // 2, "hostname": f"h{r // 2}"} for r in range(4)}
    _write(tmp_path / "a", [30] * 4, header_extra=extra)
    nodes = _snap(tmp_path / "a", T0 + 3.0)["nodes"]
    assert [(n["node"], n["node_rank"], n["ranks"]) for n in nodes] == [
        ("node 0 (h0)", 0, 2),
        ("node 1 (h1)", 1, 2),
    ]
    extra = {r: {"hostname": ["b-host", "a-host"][r % 2]} for r in range(4)}
    _write(tmp_path / "b", [30] * 4, header_extra=extra)
    snap = _snap(tmp_path / "b", T0 + 3.0)
    assert sorted(n["node"] for n in snap["nodes"]) == ["a-host", "b-host"]
    assert [r["node"] for r in snap["ranks"]] == ["b-host", "a-host", "b-host", "a-host"]


def test_after_the_end_the_result_decides(tmp_path: Path) -> None:
    _write(tmp_path, [19, 19])
    result = {
        "status": "failed",
        "failed_ranks": [0, 1],
        "stragglers": [],
        "faults": {"detected": [{"kind": "hang", "rank": 1, "step": 20, "evidence": "x"}]},
        "errors": ["rank 0: failed"],
    }
    snap = _snap(tmp_path, T0 + 60.0, result=result)
    assert snap["state"] == "ended" and snap["exit_code"] == 3
    assert snap["job_stall"] is None and snap["stalled"] == []
    assert [r["state"] for r in snap["ranks"]] == ["failed", "failed"]
    assert snap["ended"]["faults_detected"][0]["rank"] == 1


def test_a_missing_rank_waits_and_holds_the_progress(tmp_path: Path) -> None:
    _write(tmp_path, [10, 10])
    (tmp_path / "ranks" / "rank_00001.jsonl").unlink()
    for r in (0,):
        path = tmp_path / "ranks" / f"rank_{r:05d}.jsonl"
        lines = path.read_text().splitlines()
        head = json.loads(lines[0])
        head["world_size"] = 3
        path.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    snap = _snap(tmp_path, T0 + 1.0)
    assert [r["state"] for r in snap["ranks"]] == ["running", "waiting", "waiting"]
    assert snap["progress"]["steps_done"] == 0


def test_before_any_header_every_planned_rank_waits(tmp_path: Path) -> None:
    (tmp_path / "ranks").mkdir()
    (tmp_path / "ranks" / "rank_00000.jsonl").write_text("")
    snap = _snap(tmp_path, T0, planned_ranks=2)
    assert snap["state"] == "waiting" and [r["state"] for r in snap["ranks"]] == ["waiting"] * 2


def test_a_collectives_job_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, [3, 3], header_extra={0: {"job": "collectives"}})
    with pytest.raises(InputError, match="collectives"):
        _snap(tmp_path, T0)


def test_an_ended_run_whose_result_names_a_straggler_is_not_healthy(tmp_path: Path) -> None:
    """The last window of a finished run can look even; the result's straggler still stands:
    `healthy`, `problems` and the exit code say the same, and `run` gave the same code (one
    exit-code policy: a straggler is a finding)."""
    _write(tmp_path, [99, 99])
    result = {
        "status": "ok",
        "failed_ranks": [],
        "stragglers": [{"rank": 1, "excess_pct": 440.0}],
        "faults": {"detected": []},
        "errors": [],
    }
    snap = _snap(tmp_path, T0 + 60.0, result=result)
    assert snap["exit_code"] == 1 and snap["ended"]["run_exit_code"] == 1
    assert snap["healthy"] is False and snap["problems"] == ["straggling"]
    assert snap["ended"]["stragglers"] == [1]


def test_after_a_crash_the_victim_is_aborted_not_failed(tmp_path: Path) -> None:
    """Rank 1 crashed at step 19; rank 0's all-reduce broke because of it. Only the culprit is
    failed, as in the run's own result."""
    _write(tmp_path, [19, 19])
    result = {
        "status": "failed",
        "failed_ranks": [1],
        "ranks": [{"rank": 0, "status": "aborted"}, {"rank": 1, "status": "failed"}],
        "stragglers": [],
        "faults": {"detected": []},
        "errors": ["rank 1: exit code 86"],
    }
    snap = _snap(tmp_path, T0 + 60.0, result=result)
    assert [r["state"] for r in snap["ranks"]] == ["aborted", "failed"]
    assert [f["rank"] for f in snap["failed"]] == [1]
    assert snap["exit_code"] == 3 and snap["problems"] == ["failed"]


def test_the_result_straggler_is_listed_and_marked_on_its_row(tmp_path: Path) -> None:
    _write(tmp_path, [99, 99])
    named = {"rank": 1, "compute_ms_median": 53.2, "others_compute_ms_median": 11.3}
    result = {
        "status": "ok",
        "failed_ranks": [],
        "stragglers": [{**named, "excess_pct": 372.4}],
        "faults": {"detected": []},
        "errors": [],
    }
    snap = _snap(tmp_path, T0 + 60.0, result=result)
    (s,) = snap["stragglers"]
    assert s["rank"] == 1 and s["over"] == "run" and s["node"]
    assert [r["straggler"] for r in snap["ranks"]] == [False, True]


_CORRUPT = "replica checksums differ at step 5 across ranks [0, 1]"
_SLOW = "gradient all-reduce busbw 0.176 GB/s (p75 of the steps) is 25% of the expected 0.7 GB/s"


@pytest.mark.parametrize(
    ("fields", "problems"),
    [
        (  # run --fault corrupt_grad:rank=1,step=5 (a new user's trial: healthy, problems [])
            {
                "validation": {
                    "passed": False,
                    "reason": f"replicas diverged at step 5, rank(s) 1: {_CORRUPT}",
                    "checks": [],
                },
                "faults": {
                    "detected": [
                        {"kind": "corrupt_grad", "rank": 1, "step": 5, "evidence": _CORRUPT}
                    ]
                },
            },
            ["wrong_numbers", "validation_failed"],
        ),
        (  # run --fault slow_link:rank=1,delay_ms=40 --expect-busbw 0.7: no rank named
            {
                "faults": {
                    "detected": [
                        {"kind": "slow_link", "rank": None, "step": None, "evidence": _SLOW}
                    ]
                }
            },
            ["slow_link"],
        ),
    ],
)
def test_an_ended_run_with_findings_is_not_healthy(
    tmp_path: Path, fields: dict[str, Any], problems: list[str]
) -> None:
    """Every finding that makes the run exit 1 (a failed validation, wrong numbers, a slow
    link) makes the watch of it not healthy and is listed in `problems`: `healthy`, `problems`
    and the exit code say the same (docs/watch.md: healthy is "no problem")."""
    _write(tmp_path, [99, 99])
    result = {"status": "ok", "failed_ranks": [], "stragglers": [], "errors": [], **fields}
    snap = _snap(tmp_path, T0 + 60.0, result=result)
    assert snap["exit_code"] == 1 and snap["ended"]["run_exit_code"] == 1
    assert snap["healthy"] is False and snap["problems"] == problems


def test_an_interrupted_run_exits_as_aggregate_says_not_130(tmp_path: Path) -> None:
    """Ctrl-C stopped the run (status incomplete): 130 is the code of the command that was
    interrupted (`run`), not of a watch that reads it later; the watch exits as `aggregate` of
    it does, by the one policy (`incomplete`: 1), and is not healthy."""
    from minicluster.cli.orchestrate import verdict_after_the_fact

    _write(tmp_path, [22, 22], total=55)
    fields = {
        "status": "incomplete",
        "interrupted": True,
        "failed_ranks": [],
        "stragglers": [],
        "faults": {"detected": []},
        "errors": ["interrupted before the planned steps ran: every recorded step is kept"],
    }
    snap = _snap(tmp_path, T0 + 60.0, result=fields)
    assert snap["ended"]["run_exit_code"] == 130  # what `run` itself exited with
    assert snap["exit_code"] == verdict_after_the_fact(_ended(fields)) == 1
    assert snap["healthy"] is False and snap["problems"] == ["incomplete"]


def test_every_rank_done_but_no_result_yet_on_a_short_window_is_not_judged(tmp_path: Path) -> None:
    """A new user's trial: a 4x straggler whose 33 steps spanned 3.5 s, every rank finished,
    no result.json yet: the window is too short to judge, so the watch says "not judged yet"
    and why, not healthy, and exits with the policy's not_judged code (2), not the 0 of a pass
    (here 13 steps of STEP_S, 3 s)."""
    _write(tmp_path, [12, 12], compute_ms={0: 9.0}, total=13)
    for r in (0, 1):
        (tmp_path / "ranks" / f"rank_{r:05d}.summary.json").write_text('{"status": "ok"}')
    snap = _snap(tmp_path, T0 + 13 * STEP_S + 1.0)
    assert [r["state"] for r in snap["ranks"]] == ["finished", "finished"]
    assert not snap["straggler_check"]["applied"]
    assert (snap["healthy"], snap["problems"], snap["exit_code"]) == (False, [], 2)
    assert "every rank is done" in snap["not_judged"]
    assert "result.json" in snap["not_judged"]
