"""Bad input: one line on stderr, exit 2 (3 for a failed run), never a traceback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("minicluster: error:")]
    assert len(lines) == 1, proc.stderr
    assert text in lines[0]


@pytest.mark.timeout(60)
def test_missing_config(run_cli: RunCli, tmp_path: Path) -> None:
    proc = run_cli("run", "-c", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert_one_line_error(proc, 2, "config file not found")


@pytest.mark.timeout(60)
def test_malformed_config_and_unknown_workload(run_cli: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    assert_one_line_error(run_cli("run", "-c", str(bad), cwd=tmp_path), 2, "malformed YAML")
    bad.write_text("workload: {name: resnet50}\n")
    assert_one_line_error(
        run_cli("run", "-c", str(bad), cwd=tmp_path),
        2,
        "unknown workload.name 'resnet50'",
    )


@pytest.mark.timeout(60)
def test_nproc_zero(run_cli: RunCli, tmp_path: Path) -> None:
    proc = run_cli("run", "--nproc", "0", cwd=tmp_path)
    assert_one_line_error(proc, 2, "--nproc must be >= 1, got 0")
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.timeout(60)
def test_unwritable_output_dir(run_cli: RunCli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory cannot be created under a file (even as root)
    proc = run_cli("run", "--out", str(blocker / "out"), cwd=tmp_path)
    assert_one_line_error(proc, 2, "is not writable")


@pytest.mark.timeout(60)
def test_aggregate_of_a_dir_without_records(run_cli: RunCli, tmp_path: Path) -> None:
    proc = run_cli("aggregate", str(tmp_path))
    assert_one_line_error(proc, 2, "holds no rank records")


@pytest.mark.timeout(60)
def test_no_command_prints_help(run_cli: RunCli) -> None:
    proc = run_cli()
    assert proc.returncode == 2
    assert "usage: minicluster" in proc.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--nproc", "abc"], "invalid int value: 'abc'"),
        (["run", "--require", "bogus"], "invalid choice: 'bogus'"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_a_usage_error_is_one_line_not_the_usage_block(
    run_cli: RunCli, argv: list[str], message: str
) -> None:
    proc = run_cli(*argv)
    assert_one_line_error(proc, 2, message)
    assert "usage:" not in proc.stderr and "--help" in proc.stderr


@pytest.mark.timeout(60)
def test_an_output_directory_that_is_a_file_is_said_to_be_one(
    run_cli: RunCli, tmp_path: Path
) -> None:
    taken = tmp_path / "a.yaml"
    taken.write_text("x")
    proc = run_cli("run", "--out", str(taken))
    assert_one_line_error(proc, 2, "is a file")
    assert taken.read_text() == "x"
    proc = run_cli("aggregate", str(tmp_path / "nope"))
    assert_one_line_error(proc, 2, "no such directory")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("launcher", "code", "text"),
    [
        (  # SIGTERM 2 s after the start, before any step (a new user's trial): not a failed run
            {
                "launcher": "torchrun",
                "exit_codes": {},
                "interrupted": True,
                "error": "interrupted by the user before the ranks finished (torchrun received "
                "SIGTERM)",
            },
            1,
            "INCOMPLETE: the run was interrupted before any rank recorded anything",
        ),
        (
            {"launcher": "torchrun", "exit_codes": {}, "error": "torchrun exited with code 1"},
            3,
            "the launch failed before any rank recorded anything",
        ),
    ],
)
def test_aggregate_of_a_launch_that_recorded_nothing(
    run_cli: RunCli, tmp_path: Path, launcher: dict[str, object], code: int, text: str
) -> None:
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "launcher.json").write_text(json.dumps(launcher))
    assert_one_line_error(run_cli("aggregate", str(run)), code, text)
    # watch says the same, at once (it said "no rank files with a header yet", exit 2)
    assert_one_line_error(run_cli("watch", str(run), "--once"), code, text)
    assert_one_line_error(run_cli("watch", str(run), "--interval", "0.1"), code, text)


@pytest.mark.timeout(60)
def test_a_closed_stdout_is_like_dev_null(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """`aggregate DIR >&-` (Python sets sys.stdout to None) failed with 'internal error', exit
    70, after writing its result (a new user's trial); now as with >/dev/null."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures/recorded_runs/healthy", run)
    for args in (["aggregate", str(run)], ["aggregate", str(run), "--straggler-threshold", "30"]):
        proc = subprocess.run(
            [python, "-m", "minicluster", *args],
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env,
            timeout=50,
            preexec_fn=lambda: os.close(1),  # noqa: PLW1509 (no threads in this test process)
        )
        assert proc.returncode == 0, proc.stderr[-1000:]
        assert "internal error" not in proc.stderr
    assert (run / "result.json").is_file()
