"""Ctrl-C during `minicluster run`: exit 130, and the steps the ranks recorded become result.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main, orchestrate
from minicluster.core.config import RunConfig
from minicluster.launchers.base import LaunchOutcome, LaunchPlan, RecordsAt
from minicluster.launchers.torchrun import LocalTorchrun
from minicluster.result.schema import validate_result

RECORDED = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks" / "ranks"


def test_interrupted_run_keeps_the_recorded_steps(
    tmp_path: Path, fake_launch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(plan: LaunchPlan) -> None:
        # What the ranks wrote before Ctrl-C stopped them: their steps, no summaries yet.
        ignore = shutil.ignore_patterns("*.summary.*")
        shutil.copytree(RECORDED, plan.out_dir / "ranks", ignore=ignore)
        raise KeyboardInterrupt

    fake_launch(interrupted)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 130
    said = capsys.readouterr()
    err = said.err
    assert f"interrupted; keeping what the ranks recorded in {out}" in err
    # trial 2 item 4: it said only "minicluster: interrupted", no verdict word: now the kept
    # result's header (the summary's first line) says INCOMPLETE, and the command still exits 130
    header = next(line for line in said.out.splitlines() if line.startswith("minicluster run "))
    assert "  INCOMPLETE  (run incomplete: interrupted)" in header, said.out
    assert "ok" not in header.split("(")[0].split()
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "incomplete" and result["interrupted"] is True  # not failed
    assert not result["failed_ranks"]
    assert any("interrupted by the user before the ranks finished" in e for e in result["errors"])
    launcher = json.loads((out / "launcher.json").read_text())
    assert launcher["interrupted"] is True
    assert launcher["error"].startswith("interrupted by the user before the ranks finished")
    assert not [d for d in result["faults"]["detected"] if d["kind"] in ("crash", "hang")]
    golden = json.loads((RECORDED.parents[1] / "run_2ranks.result.json").read_text())
    kept = [r["steps_recorded"] for r in result["ranks"]]
    assert kept == [r["steps_recorded"] for r in golden["ranks"]] and min(kept) > 0


def test_ctrl_c_during_teardown_after_every_rank_finished_keeps_an_ok_result(
    tmp_path: Path, fake_launch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ranks all wrote their ok summaries, then Ctrl-C hit while they tore down: the run is
    ok (nothing is missing; a sweep keeps that world size), and the message says so, not
    "keeping what the ranks recorded" beside a status ok; the command exits 130 (interrupted,
    the exit policy's code), `aggregate` by the result."""

    def interrupted(plan: LaunchPlan) -> None:
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        raise KeyboardInterrupt

    fake_launch(interrupted)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 130  # the interrupt still goes on up
    said = capsys.readouterr()
    err = said.err
    header = next(line for line in said.out.splitlines() if line.startswith("minicluster run "))
    assert "(run finished)" in header and "INCOMPLETE" not in header, said.out
    assert "interrupted after every rank finished: all" in err and "status ok" in err
    assert "exit 130" in err and "keeping what the ranks recorded" not in err
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok" and result["interrupted"] is False
    assert [r["status"] for r in result["ranks"]] == ["ok", "ok"]
    # launcher.json says it too (it said "before the ranks finished"), and so does the result
    launcher = json.loads((out / "launcher.json").read_text())
    assert launcher["interrupted"] is True
    assert launcher["error"] == orchestrate.INTERRUPTED_AFTER
    assert "during the launch's teardown" in launcher["error"]
    assert not any("before the ranks finished" in e for e in result["errors"])


def test_aggregate_of_an_interrupted_run_exits_by_its_verdict_not_130(
    tmp_path: Path, fake_launch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run was interrupted, `aggregate` was not: not 130 (the code of a command that was
    interrupted), but the one policy's `incomplete`, 1: the planned steps did not all run, so
    the run did not pass (it exited 0 here, which a CI gate read as a pass), as `watch` of it
    exits."""

    def interrupted(plan: LaunchPlan) -> None:
        # Ctrl-C while the ranks ran: their steps so far, no summaries
        ignore = shutil.ignore_patterns("*.summary.*")
        shutil.copytree(RECORDED, plan.out_dir / "ranks", ignore=ignore)
        raise KeyboardInterrupt

    fake_launch(interrupted)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 130
    (out / "result.json").unlink()
    assert main(["aggregate", str(out)]) == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "incomplete" and result["interrupted"] is True  # still said
    capsys.readouterr()
    assert main(["watch", str(out), "--once", "--json"]) == 1
    snap = json.loads(capsys.readouterr().out)
    assert snap["problems"] == ["incomplete"] and snap["ended"]["run_exit_code"] == 130


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("summaries", "exit_codes", "finished"),
    [
        (True, {0: 130, 1: 130}, True),  # torchrun: the ranks saw the Ctrl-C in their teardown
        (True, {}, True),  # torchrun's agent got the SIGINT after the ranks had exited
        (False, {0: 130, 1: 130}, False),  # no summaries yet: stopped mid-run
        (True, {0: 130, 1: 1}, False),  # rank 1 exited with a code of its own
    ],
)
def test_launcher_json_says_whether_the_ranks_had_finished(
    tmp_path: Path, summaries: bool, exit_codes: dict[int, int], finished: bool
) -> None:
    """`launch` records an interrupted outcome as torchrun's launcher returns it; the message
    says the ranks had finished only when every rank wrote its ok summary and none exited with
    a code of its own."""

    class Interrupted(LocalTorchrun):
        def run(self, plan: LaunchPlan) -> LaunchOutcome:
            ignore = None if summaries else shutil.ignore_patterns("*.summary.*")
            shutil.copytree(RECORDED, plan.out_dir / "ranks", ignore=ignore)
            error = "the ranks were interrupted" if exit_codes else "torchrun received SIGINT"
            return LaunchOutcome(RecordsAt(plan.out_dir), error, exit_codes, interrupted=True)

    launcher = Interrupted()
    plan = launcher.plan(RunConfig(), tmp_path / "run", "r1")
    assert plan.world_size == 2
    outcome = orchestrate.launch(launcher, plan, 10, "rank 0 steps")
    assert outcome.interrupted
    recorded = json.loads((plan.out_dir / "launcher.json").read_text())
    first = orchestrate.INTERRUPTED_AFTER if finished else orchestrate.INTERRUPTED
    assert recorded["error"] == f"{first} ({outcome.error})"
    assert recorded["interrupted"] is True


@pytest.mark.parametrize("phase", ["the aggregation", "the reports"])
def test_ctrl_c_after_the_launch_says_during_what_and_records_no_interrupt(
    tmp_path: Path,
    fake_launch: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    phase: str,
) -> None:
    """Every rank finished and the launcher returned; Ctrl-C came while minicluster aggregated
    or wrote the reports: exit 130, one line saying so, and no launcher.json claiming the run
    was interrupted (`aggregate DIR` finds it ok)."""

    def finished(plan: LaunchPlan) -> None:
        shutil.copytree(RECORDED, plan.out_dir / "ranks")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    fake_launch(finished)
    target = "collect" if phase == "the aggregation" else "write_reports"
    monkeypatch.setattr(orchestrate, target, interrupt)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted during {phase}, after every rank finished" in err
    if phase == "the aggregation":
        assert f"`minicluster aggregate {out}` builds the result" in err
    else:
        assert f"the result is in {out / 'result.json'}" in err
    assert "before the ranks finished" not in err
    assert not (out / "launcher.json").exists()
    monkeypatch.undo()
    assert main(["aggregate", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and result["interrupted"] is False
