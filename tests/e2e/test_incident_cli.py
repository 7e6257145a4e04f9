"""The C4 incident class on a real hang that minicluster's fault injection did not make: a user's
model whose data loader blocks on one rank (a FIFO nobody writes), so that rank hangs outside
communication while its peer waits in the all-reduce. The injected faults' classes are checked
beside their detection (tests/e2e/test_faults_cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from minicluster.result.schema import validate_result

REPO = Path(__file__).resolve().parents[2]
RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_rank_stuck_in_its_data_loader_is_a_non_comm_hang_of_that_rank(
    run_cli: RunCli, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    fifo = tmp_path / "never_written"
    os.mkfifo(fifo)
    factory = REPO / "tests" / "fixtures" / "stuck_loader_model.py"
    cfg = tmp_path / "stuck.yaml"
    cfg.write_text(
        f"workload: {{name: custom, factory: {json.dumps(f'{factory}:build')}, "
        f"options: {{fifo: {json.dumps(str(fifo))}}}}}\n"
        "steps: {warmup: 1, measured: 6}\n"
        "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 5}\n"
    )
    proc = run_cli("run", "-c", str(cfg), "--out", "out", cwd=tmp_path, timeout=100)
    assert proc.returncode == 3, proc.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    validate_result(result)
    assert result["faults"]["injected"] == []
    inc = result["incident"]
    assert (inc["kind"], inc["ranks"]) == ("non_comm_hang", [1])
    # every rank dumped its Flight Recorder: rank 1 never entered the collective rank 0 is in
    assert inc["decided_from"] == "flight_recorder", inc
    assert "never entered by rank(s) 1" in inc["evidence"]
    failed = next(line for line in proc.stdout.splitlines() if line.startswith("FAILED"))
    assert failed.startswith("FAILED: rank 1:")
    assert "incident: non-comm hang on rank 1" in " ".join(proc.stdout.split())
