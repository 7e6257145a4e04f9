"""`run --nproc N` past this host: a warning when ranks share cores (as `sweep` gives), exit 2
before anything starts when they cannot fit in its memory."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

pytest.importorskip("torch")


@pytest.mark.timeout(60)
def test_more_ranks_than_memory_holds_is_refused_before_anything_starts(
    run_cli: RunCli, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", "--nproc", "4000", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--nproc 4000 would start 4000 torch processes" in proc.stderr
    assert "ranks fit here" in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif((os.cpu_count() or 0) > 3, reason="needs a host with at most 3 cores")
def test_more_ranks_than_cores_warns_that_they_share_them(
    run_cli: RunCli, tmp_path: Path, tiny_config: Path
) -> None:
    n = (os.cpu_count() or 1) + 1
    proc = run_cli("run", "-c", str(tiny_config), "--nproc", str(n), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"warning: {n} ranks on {n - 1} CPU cores: ranks share cores" in proc.stderr
