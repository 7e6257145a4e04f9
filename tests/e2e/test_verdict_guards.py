"""Issue 13, parts 4 and 5: no run is lost or replaced, and every bad input or failure gets the
right exit code and one line. Real processes throughout."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from minicluster.core import rundir

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]
REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
FIX = REPO / "tests" / "fixtures" / "compare"


def one_line(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("minicluster: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert text in lines[0], lines[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_collective_timeout_is_bad_input(
    run_cli: RunCli, tmp_path: Path, value: str
) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", f"--collective-timeout={value}", "--out", str(out), cwd=tmp_path)
    one_line(proc, 2, "run.collective_timeout_s")
    assert "finite" in proc.stderr
    assert not out.exists()  # refused before the output directory was made


@pytest.mark.timeout(60)
def test_yaml_infinity_in_a_float_field_is_bad_input(run_cli: RunCli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  bucket_cap_mb: .inf\n")
    one_line(run_cli("run", "-c", str(cfg), cwd=tmp_path), 2, "run.bucket_cap_mb is inf")


@pytest.mark.timeout(60)
def test_a_fault_delay_the_clock_cannot_hold_is_bad_input(run_cli: RunCli, tmp_path: Path) -> None:
    proc = run_cli("run", "--fault", "straggler:rank=1,delay_ms=99999999999999999999", cwd=tmp_path)
    one_line(proc, 2, "delay_ms is 99999999999999999999; must be <= 3600000")


@pytest.mark.timeout(60)
def test_duplicate_keys_are_errors_not_last_wins(run_cli: RunCli, tmp_path: Path) -> None:
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("steps:\n  warmup: 1\n  measured: 5\n  warmup: 2\n")
    one_line(run_cli("run", "-c", str(cfg), cwd=tmp_path), 2, "key 'warmup' is given twice")
    proc = run_cli("run", "--fault", "straggler:rank=1,delay_ms=5,delay_ms=50", cwd=tmp_path)
    one_line(proc, 2, "delay_ms is given twice")


@pytest.mark.timeout(60)
def test_a_stale_rank_variable_is_exit_2_at_once(
    python: str, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    env = {**cli_env, "RANK": "1"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [python, "-m", "minicluster", "worker", "-c", str(tiny_config), "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert time.monotonic() - t0 < 30  # not the collective timeout
    one_line(proc, 2, "incomplete launcher environment: RANK set but")
    assert "WORLD_SIZE, MASTER_ADDR, MASTER_PORT" in proc.stderr
    assert "C++" not in proc.stderr and "frame #" not in proc.stderr
    proc = subprocess.run(
        [python, "-m", "minicluster", "worker", "-c", str(tiny_config), "--out", str(tmp_path)],
        env={**cli_env, "RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=50,
    )
    one_line(proc, 2, "RANK=2 is outside WORLD_SIZE=2")


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_workload_too_large_to_allocate_is_a_failed_run(run_cli: RunCli, tmp_path: Path) -> None:
    cfg = tmp_path / "huge.yaml"
    cfg.write_text(
        "workload: {name: mlp, hidden_dim: 1000000, input_dim: 64, num_layers: 3}\n"
        "steps: {warmup: 1, measured: 2}\nrun: {collective_timeout_s: 60}\n"
    )
    out = tmp_path / "run"
    proc = run_cli("run", "-c", str(cfg), "--out", str(out), cwd=tmp_path, timeout=140)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["failed_ranks"]  # the ranks that could not build the model are named
    first = result["errors"][0]
    # every rank fails allocating the same model: the line says so, naming no one rank
    assert first.startswith(("rank ", "every rank (2 of 2) raised the same error"))
    assert "before its first step" in first
    assert "alloc" in first.lower() or "memory" in first.lower(), first


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_two_runs_into_one_directory_one_is_refused(
    python: str, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    out = tmp_path / "same"
    cmd = [python, "-m", "minicluster", "run", "-c", str(tiny_config), "--out", str(out)]
    procs = [
        subprocess.Popen(
            cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=140) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refused = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 2)
    assert "is taken by run" in refused or "holds" in refused
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and all(r["steps_recorded"] == 10 for r in result["ranks"])


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_worker_refuses_a_directory_holding_an_earlier_run(
    run_cli: RunCli, tmp_path: Path, tiny_config: Path
) -> None:
    out = tmp_path / "w"
    assert run_cli("worker", "-c", str(tiny_config), "--out", str(out)).returncode == 0
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.json*")}
    proc = run_cli("worker", "-c", str(tiny_config), "--out", str(out))
    one_line(proc, 2, "holds an earlier run")
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.json*")}
    assert after == before  # nothing of the first run was touched


@pytest.mark.timeout(60)
def test_aggregate_of_some_ranks_never_replaces_a_fuller_result(
    run_cli: RunCli, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "run_2ranks", run)
    assert run_cli("aggregate", str(run)).returncode == 0
    full = (run / "result.json").read_bytes()
    for p in rundir.ranks_dir(run).glob("rank_00001.*"):
        p.unlink()  # the node of rank 0 holds only its own files (no shared filesystem)
    proc = run_cli("aggregate", str(run))
    assert proc.returncode == 0  # the complete result stays the answer (its exit code) ...
    assert (run / "result.json").read_bytes() == full
    partial = list(run.glob("result.partial-*.json"))
    # ... and what the files here say (rank 1 missing) is written beside it
    assert len(partial) == 1 and json.loads(partial[0].read_text())["failed_ranks"] == [1]
    assert "covers more of the run" in proc.stderr


@pytest.mark.timeout(60)
def test_compare_writes_its_files_when_stdout_is_a_closed_pipe(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    a, b = FIX / "mc_run.json", FIX / "mc_run_slow.json"
    out_json, out_md = tmp_path / "x.json", tmp_path / "x.md"
    script = (
        f"{sys.executable} -m minicluster compare {a} {b} --json {out_json} --md {out_md} "
        "| head -c 1 >/dev/null; echo ${PIPESTATUS[0]}"
    )
    expected = subprocess.run(
        [sys.executable, "-m", "minicluster", "compare", str(a), str(b)],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    ).returncode
    proc = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=50
    )
    assert proc.stdout.strip() == str(expected), proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert json.loads(out_json.read_text())["comparisons"]
    assert out_md.read_text().strip()


@pytest.mark.timeout(60)
def test_watch_once_keeps_its_exit_code_when_stdout_closes_early() -> None:
    """`watch DIR --once | head -c1` (a new user's): an internal error, exit 70, before; now the
    snapshot's own exit code, with nothing on stderr about the pipe."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = REPO / "tests" / "golden" / "run_2ranks"
    expected = subprocess.run(
        [sys.executable, "-m", "minicluster", "watch", str(run), "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    ).returncode
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first byte: every write fails with EPIPE
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "watch", str(run), "--once"],
        env=env,
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
        timeout=50,
    )
    os.close(w)
    assert proc.returncode == expected != 70, proc.stderr
    assert "internal error" not in proc.stderr and "BrokenPipe" not in proc.stderr
