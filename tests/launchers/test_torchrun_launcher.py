"""launch_local's outcome mapping: a user's interrupt vs a rank's failure vs success.

torch.distributed.run.run is replaced, so no rank starts; the exceptions are torch's own.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

pytest.importorskip("torch")
import torch.distributed.run as torch_run  # noqa: E402
from torch.distributed.elastic.multiprocessing.api import SignalException  # noqa: E402
from torch.distributed.elastic.multiprocessing.errors import (  # noqa: E402
    ChildFailedError,
    ProcessFailure,
)

from minicluster.core import rundir  # noqa: E402
from minicluster.launchers import torchrun  # noqa: E402


def _failure(rank: int, exitcode: int, tmp_path: Path) -> ProcessFailure:
    return ProcessFailure(
        local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file=str(tmp_path / "none")
    )


def _launch(tmp_path: Path) -> str | None:
    return torchrun.launch_local(tmp_path / "config.json", 2, tmp_path, "rid", 1)


def test_sigint_to_the_agent_is_an_interrupt_not_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(_args: object) -> None:
        raise SignalException("Process got signal: 2", signal.SIGINT)

    monkeypatch.setattr(torch_run, "run", run)
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        _launch(tmp_path)


def test_ranks_that_all_exit_interrupted_are_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(_args: object) -> None:
        failures = {0: _failure(0, 130, tmp_path), 1: _failure(1, -int(signal.SIGINT), tmp_path)}
        raise ChildFailedError("minicluster", failures)

    monkeypatch.setattr(torch_run, "run", run)
    with pytest.raises(KeyboardInterrupt):
        _launch(tmp_path)
    codes = json.loads(rundir.launcher_path(tmp_path).read_text())["exit_codes"]
    assert codes == {"0": 130, "1": -2}  # kept for aggregate all the same


def test_a_crashed_rank_is_a_failed_run_with_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(_args: object) -> None:
        failures = {1: _failure(1, 3, tmp_path), 0: _failure(0, 130, tmp_path)}
        raise ChildFailedError("minicluster", failures)

    monkeypatch.setattr(torch_run, "run", run)
    assert _launch(tmp_path) == "ranks failed: rank 0 exit code 130, rank 1 exit code 3"


def test_launch_sets_threads_per_launch_and_restores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torchrun, "_USER_OMP_THREADS", None)
    monkeypatch.setattr(torch_run, "run", lambda _args: seen.append(os.environ["OMP_NUM_THREADS"]))
    assert torchrun.launch_local(tmp_path / "c.json", 2, tmp_path, "a", 3) is None
    assert torchrun.launch_local(tmp_path / "c.json", 4, tmp_path, "b", 1) is None
    assert seen == ["3", "1"]  # each launch its own count (a sweep launches several)
    assert "OMP_NUM_THREADS" not in os.environ
    assert "MINICLUSTER_LAUNCHER" not in os.environ
