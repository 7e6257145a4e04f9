"""Shared fixtures: how to start the package in a subprocess from this checkout; hand-made records."""

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


# A hand-made collectives run: 2 ranks, all_reduce measured at 1K and 2K, reduce_scatter
# unavailable. Rank 0 measured 90 us, rank 1 100 us: the all_reduce MAX both recorded is 100 us.
_COLL_CONFIG = {
    "name": "collectives",
    "job": "collectives",
    "run": {"nproc": 2},
    "collectives": {
        "ops": ["all_reduce", "reduce_scatter"],
        "min_bytes": 1024,
        "max_bytes": 2048,
        "step_factor": 2,
        "iters": 20,
        "warmup_iters": 5,
        "dtype": "float32",
        "root": 0,
    },
}


def _coll_header(rank: int, world: int = 2) -> dict[str, Any]:
    return {
        "type": "header",
        "run_id": "c1",
        "rank": rank,
        "local_rank": rank,
        "world_size": world,
        "local_world_size": world,
        "hostname": "node-a",
        "created_at": "2026-01-01T00:00:00+00:00",
        "backend": "gloo",
        "device": "cpu",
        "launcher": "torchrun",
        "job": "collectives",
        "config": _COLL_CONFIG,
        "workload": {"name": "collectives", "per_rank_batch": None, "params": None},
        "platform": {"cpu": "test cpu", "host_memory_total_bytes": 1000, "torch": "x"},
    }


def _coll_line(
    op: str, size: int, mine_us: float | None, max_us: float | None, wrong: int | None = 0
) -> dict[str, Any]:
    count = size // 4 if op == "all_reduce" else size // 8
    measured = max_us is not None
    return {
        "type": "collective",
        "op": op,
        "size_bytes": size,
        "nominal_bytes": size,
        "count": count,
        "dtype": "float32",
        "iters": 20,
        "warmup_iters": 5,
        "status": "measured" if measured else "unavailable",
        "reason": None if measured else "gloo does not run it: RuntimeError: no reduce_scatter",
        "time_us": mine_us,
        "time_us_max": max_us,
        "wrong": wrong if measured else None,
        "check_reason": None,
    }


def _coll_summary(rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "status": "ok",
        "last_step": -1,
        "error": None,
        "memory": {"rss_peak_bytes": 100 * 2**20, "host_total_bytes": 10_000 * 2**20},
        "collectives_recorded": 4,
    }


def _coll_records(wrong_on_rank1: int = 0) -> list[RankRecords]:
    """Rank 0 measured 90 us, rank 1 100 us: the all_reduce MAX both recorded is 100 us."""
    out = []
    for rank, mine in ((0, 90.0), (1, 100.0)):
        lines = [
            _coll_line("all_reduce", 1024, mine, 100.0),
            _coll_line("all_reduce", 2048, mine * 1.5, 150.0, wrong_on_rank1 if rank == 1 else 0),
            _coll_line("reduce_scatter", 1024, None, None),
            _coll_line("reduce_scatter", 2048, None, None),
        ]
        out.append(
            RankRecords(rank, _coll_header(rank), [], _coll_summary(rank), collectives=lines)
        )
    return out


@pytest.fixture
def collective_records() -> Callable[..., list[RankRecords]]:
    """`collective_records(wrong_on_rank1=0)`: the hand-made collectives run's rank records."""
    return _coll_records


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
