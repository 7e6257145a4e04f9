"""`minicluster diagnose`: the hung rank and the collective sequence number, from the Flight
Recorder dumps of a real hang run (written by minicluster's ranks) and of a plain torch job
(written by the job itself under TORCH_FR_DUMP_TEMP_FILE, no minicluster in it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

PLAIN_TORCH = Path(__file__).resolve().parents[1] / "fixtures" / "flight_recorder"


def _plain_torch_dumps(
    python: str, cli_env: dict[str, str], tmp_path: Path, mode: str
) -> list[str]:
    """Run the plain torch job (`plain_torch_job.py MODE`, no minicluster in it); the two
    Flight Recorder dumps it wrote."""
    env = {k: v for k, v in cli_env.items() if k != "PYTHONPATH"}  # no minicluster in the job
    (tmp_path / "dumps").mkdir()
    job = subprocess.run(
        [python, str(PLAIN_TORCH / "plain_torch_job.py"), mode, str(tmp_path / "dumps" / "trace_")],
        capture_output=True,
        text=True,
        env=env,
        timeout=150,
        cwd=tmp_path,
        check=False,
    )
    assert sorted(p.name for p in (tmp_path / "dumps").iterdir()) == ["trace_0", "trace_1"], (
        job.stderr[-2000:]
    )
    return [str(tmp_path / "dumps" / n) for n in ("trace_0", "trace_1")]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_hang_run_names_the_hung_rank_and_the_sequence_number(
    run_cli: Any, tmp_path: Path
) -> None:
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "workload: {name: mlp, per_rank_batch: 32, input_dim: 128, hidden_dim: 256, num_layers: 2}\n"
        "steps: {warmup: 2, measured: 8}\n"
        "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 5}\n"
    )
    run = run_cli(
        "run", "-c", str(cfg), "--fault", "hang:rank=1,step=3", "--out", "out", cwd=tmp_path
    )
    assert run.returncode == 3, run.stderr[-2000:]
    dumps = sorted(p.name for p in (tmp_path / "out" / "flight_recorder").iterdir())
    assert dumps == ["rank_00000", "rank_00001"]  # every rank: the timed-out one and the hung one
    proc = run_cli("diagnose", "out", "--json", "d.json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    found = json.loads((tmp_path / "d.json").read_text())
    (g,) = found["groups"]
    # (whether rank 0's entry is still in flight at its dump depends on when gloo retired it)
    assert (g["entered"], g["never_entered"]) == ([0], [1])
    assert g["op"].startswith("gloo:all_reduce")
    assert g["last_entered"]["1"] == g["seq"] - 1
    assert f"collective #{g['seq']}" in proc.stdout and "never entered by rank(s) 1" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_dumps_of_a_plain_torch_job_name_the_mismatched_collective(
    python: str, cli_env: dict[str, str], run_cli: Any, tmp_path: Path
) -> None:
    files = _plain_torch_dumps(python, cli_env, tmp_path, "desync")
    proc = run_cli("diagnose", *files, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "collective #4" in proc.stdout
    assert (
        "rank(s) 0: gloo:all_reduce" in proc.stdout and "rank(s) 1: gloo:broadcast" in proc.stdout
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_dumps_of_a_plain_torch_job_name_the_hung_rank_and_the_sequence_number(
    python: str, cli_env: dict[str, str], run_cli: Any, tmp_path: Path
) -> None:
    """A user's own job (no minicluster) where rank 1 hangs outside any collective while rank 0
    waits in the 4th: the dumps torch wrote name rank 1 as never entering #4."""
    files = _plain_torch_dumps(python, cli_env, tmp_path, "hang")
    proc = run_cli("diagnose", *files, "--json", "d.json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (g,) = json.loads((tmp_path / "d.json").read_text())["groups"]
    assert (g["seq"], g["entered"], g["never_entered"]) == (4, [0], [1])
    assert g["last_entered"]["1"] == 3
    assert "collective #4" in proc.stdout and "never entered by rank(s) 1" in proc.stdout


@pytest.mark.timeout(60)
def test_no_dumps_is_bad_input_in_one_line(run_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_cli("diagnose", "empty", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no Flight Recorder dumps" in proc.stderr
