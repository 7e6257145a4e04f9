"""Rank files that are not the run's: another run's file copied in (say every node's `ranks/`
gathered into a folder that held an earlier run's), or a rank's file under another rank's name.
Merged, their steps made numbers no rank had (latency p50 20.1 -> 163.7 ms, exit 0, in a new
user's trial). `aggregate` and `watch` refuse them in one line, exit 2; the inputs are recorded
real runs (tests/fixtures/recorded_runs), which this check did not make."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs"


def _copy(name: str, to: Path) -> Path:
    shutil.copytree(RUNS / name, to)
    return to


@pytest.mark.timeout(120)
def test_another_runs_rank_file_is_refused_by_aggregate_and_watch(
    run_cli: RunCli, tmp_path: Path
) -> None:
    run = _copy("healthy", tmp_path / "run")
    other = RUNS / "loaded_clean" / "ranks" / "rank_00001.jsonl"
    shutil.copy(other, run / "ranks" / "rank_00001.jsonl")  # rank 1 of another run
    (run / "ranks" / "rank_00001.summary.json").unlink()
    for args in (("aggregate", str(run)), ("watch", str(run), "--once")):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout[-1000:], proc.stderr[-1000:])
        assert "Traceback" not in proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert "holds rank files of 2 runs" in line and "rank 1" in line, line
    assert not (run / "result.json").exists()  # nothing written from the mix


@pytest.mark.timeout(120)
def test_a_rank_file_under_another_ranks_name_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    run = _copy("healthy", tmp_path / "run")
    for suffix in (".jsonl", ".summary.json"):
        shutil.copy(run / "ranks" / f"rank_00001{suffix}", run / "ranks" / f"rank_00002{suffix}")
    for args in (("aggregate", str(run)), ("watch", str(run), "--once")):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout[-1000:], proc.stderr[-1000:])
        line = proc.stderr.strip().splitlines()[-1]
        assert "rank_00002.jsonl is rank 1's file" in line, line


@pytest.mark.timeout(120)
def test_a_fifo_in_place_of_a_rank_file_is_skipped_not_waited_on(
    run_cli: RunCli, tmp_path: Path
) -> None:
    run = _copy("healthy", tmp_path / "run")
    clean = run_cli("aggregate", str(run))
    assert clean.returncode == 0, clean.stderr[-1000:]
    (run / "result.json").unlink()
    os.mkfifo(run / "ranks" / "rank_00001.steps.arrow")  # no writer: an open would block
    os.mkfifo(run / "ranks" / "rank_00007.jsonl")
    proc = run_cli("aggregate", str(run), timeout=60)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout == clean.stdout  # the same result: the FIFOs were not read


@pytest.mark.timeout(120)
def test_a_journal_written_to_after_the_run_is_said(run_cli: RunCli, tmp_path: Path) -> None:
    """A step line appended to a finished run's journal (past the plan, or a step again) moved
    p99 25 -> 405 ms with nothing said (new-user trial): the result's errors say it now."""
    import json

    run = _copy("healthy", tmp_path / "run")
    journal = run / "ranks" / "rank_00001.jsonl"
    lines = journal.read_text().splitlines()
    last = json.loads(next(ln for ln in reversed(lines) if '"type":"step"' in ln))
    again = dict(last, step_time_ms=500.0)
    beyond = dict(last, step=last["step"] + 1, step_time_ms=500.0)
    journal.write_text("\n".join([*lines, json.dumps(again), json.dumps(beyond)]) + "\n")
    proc = run_cli("aggregate", str(run))
    assert "Traceback" not in proc.stderr
    errors = json.loads((run / "result.json").read_text())["errors"]
    assert any(f"step {last['step']} recorded again" in e for e in errors), errors
    assert any("rank 1 recorded more measured steps than planned" in e for e in errors), errors
