"""Shared fixtures: how to start the package in a subprocess from this checkout; recorded runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis.records import RankRecords

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for `python -m minicluster` subprocesses that import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("MINICLUSTER_DEBUG", None)
    for var in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        env.pop(var, None)
    return env


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A fast job: small MLP, 2 warm-up + 8 measured steps."""
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\n"
        "workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 128, num_layers: 2}\n"
        "steps: {warmup: 2, measured: 8}\n"
        "run: {nproc: 2, collective_timeout_s: 60}\n"
    )
    return path


RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_cli(python: str, cli_env: dict[str, str]) -> RunCli:
    """`run_cli(*args, cwd=None, timeout=150)`: `python -m minicluster ARGS`, output captured."""

    def run(
        *args: str, cwd: Path | None = None, timeout: int = 150
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-m", "minicluster", *args],
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=timeout,
            cwd=cwd,
        )

    return run


@pytest.fixture
def collective_records(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., list[RankRecords]]:
    """`collective_records(wrong_on_rank1=0)`: a 2-rank collectives run written by the recorder
    (`fixtures.recorded.collectives_run`), read back: all_reduce at 1K and 2K (rank 0 90 us,
    rank 1 100 us; the MAX both recorded is 100 us), reduce_scatter unavailable."""
    from fixtures import recorded

    from minicluster.analysis.records import read_run_dir

    def make(wrong_on_rank1: int = 0) -> list[RankRecords]:
        run_dir = tmp_path_factory.mktemp("collectives")
        recorded.collectives_run(run_dir, wrong_on_rank1)
        return read_run_dir(run_dir)

    return make


@pytest.fixture
def fake_launch(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[Any], str | None]], None]:
    """Replace the local torchrun launcher's `run`: `fake_launch(start)` makes every local launch
    call `start(plan)` instead of starting ranks. `start` may copy recorded rank files into
    `plan.out_dir`, return an error (the ranks failed) or None, or raise KeyboardInterrupt
    (Ctrl-C while the ranks run)."""
    from minicluster.launchers import torchrun
    from minicluster.launchers.base import LaunchOutcome, RecordsAt

    def install(start: Callable[[Any], str | None]) -> None:
        def run(self: object, plan: Any) -> LaunchOutcome:
            return LaunchOutcome(RecordsAt(plan.out_dir), start(plan))

        monkeypatch.setattr(torchrun.LocalTorchrun, "run", run)

    return install
