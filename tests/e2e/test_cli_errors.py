"""Bad input: one line on stderr, exit 2 (3 for a failed run), never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def run_cli(
    python: str, env: dict[str, str], *args: str, cwd: Path | None = None, timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "minicluster", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("minicluster: error:")]
    assert len(lines) == 1, proc.stderr
    assert text in lines[0]


@pytest.mark.timeout(60)
def test_missing_config(python: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli(python, cli_env, "run", "-c", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert_one_line_error(proc, 2, "config file not found")


@pytest.mark.timeout(60)
def test_malformed_config_and_unknown_workload(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    assert_one_line_error(
        run_cli(python, cli_env, "run", "-c", str(bad), cwd=tmp_path), 2, "malformed YAML"
    )
    bad.write_text("workload: {name: resnet50}\n")
    assert_one_line_error(
        run_cli(python, cli_env, "run", "-c", str(bad), cwd=tmp_path),
        2,
        "unknown workload.name 'resnet50'",
    )


@pytest.mark.timeout(60)
def test_nproc_zero(python: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli(python, cli_env, "run", "--nproc", "0", cwd=tmp_path)
    assert_one_line_error(proc, 2, "--nproc must be >= 1, got 0")
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.timeout(60)
def test_unwritable_output_dir(python: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory cannot be created under a file (even as root)
    proc = run_cli(python, cli_env, "run", "--out", str(blocker / "out"), cwd=tmp_path)
    assert_one_line_error(proc, 2, "is not writable")


@pytest.mark.timeout(60)
def test_aggregate_of_a_dir_without_records(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc = run_cli(python, cli_env, "aggregate", str(tmp_path))
    assert_one_line_error(proc, 2, "holds no rank records")


@pytest.mark.timeout(60)
def test_no_command_prints_help(python: str, cli_env: dict[str, str]) -> None:
    proc = run_cli(python, cli_env)
    assert proc.returncode == 2
    assert "usage: minicluster" in proc.stdout
