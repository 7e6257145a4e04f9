"""Ctrl-C during `minicluster run`: exit 130, and the steps the ranks recorded become result.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main
from minicluster.launchers.base import LaunchPlan
from minicluster.result.schema import validate_result

RECORDED = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks" / "ranks"


def test_interrupted_run_keeps_the_recorded_steps(
    tmp_path: Path, fake_launch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(plan: LaunchPlan) -> None:
        shutil.copytree(RECORDED, plan.out_dir / "ranks")  # what the ranks wrote before Ctrl-C
        raise KeyboardInterrupt

    fake_launch(interrupted)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted; keeping what the ranks recorded in {out}" in err
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "incomplete" and result["interrupted"] is True  # not failed
    assert not result["failed_ranks"]
    assert any("interrupted by the user" in e for e in result["errors"])
    assert not [d for d in result["faults"]["detected"] if d["kind"] in ("crash", "hang")]
    golden = json.loads((RECORDED.parents[1] / "run_2ranks.result.json").read_text())
    kept = [r["steps_recorded"] for r in result["ranks"]]
    assert kept == [r["steps_recorded"] for r in golden["ranks"]] and min(kept) > 0


def test_aggregate_of_an_interrupted_run_exits_by_its_verdict_not_130(
    tmp_path: Path, fake_launch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run was interrupted, `aggregate` was not: it exits by what the result found."""

    def interrupted(plan: LaunchPlan) -> None:
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        raise KeyboardInterrupt

    fake_launch(interrupted)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 130
    (out / "result.json").unlink()
    assert main(["aggregate", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "incomplete" and result["interrupted"] is True  # still said
