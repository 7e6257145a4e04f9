"""Bad input found by a new-user trial: one line that names the input and says what is wrong
with it, never a parser's internals (`Expecting value: line 1 column 1`, `invalid literal for
int()`, `format is None`, `taken by run ?`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicluster.cli import main


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2, argv
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minicluster: error:"), lines
    return lines[0]


def test_garbage_is_not_a_flight_recorder_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "rank_00000"
    dump.write_text("garbage\n")
    line = _error(capsys, ["diagnose", str(dump)])
    assert line == f"minicluster: error: not a Flight Recorder dump: {dump}"


@pytest.mark.parametrize(
    "command",
    [["report"], ["fleet"], ["sweep", "--from"]],
)
def test_a_file_that_is_not_json_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    bad = tmp_path / "g.json"
    bad.write_text("garbage\n")
    extra = [str(bad)] * (3 if command == ["fleet"] else 1)
    line = _error(capsys, [*command, *extra])
    assert f"{bad} is not JSON" in line and "Expecting value" not in line


def test_fleet_names_the_file_that_fails_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run_id": 3}))
    line = _error(capsys, ["fleet", str(bad), str(bad), str(bad)])
    assert f"error: {bad}: " in line


def test_a_result_json_that_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "result.json").mkdir()
    line = _error(capsys, ["report", str(tmp_path)])
    assert line.endswith(f"{tmp_path / 'result.json'} is a directory, not a result file")


def test_an_empty_claim_says_it_names_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".claim").write_text("")
    line = _error(capsys, ["run", "--dry-run", "--out", str(tmp_path)])
    assert "taken by another run (its .claim file names none" in line and "?" not in line


def test_a_sweep_too_big_for_the_host_names_world_sizes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _error(capsys, ["sweep", "--world-sizes", "1,4000", "--dry-run"])
    assert "--world-sizes 1,4000 (world size 4000) would start" in line
    assert "--nproc" not in line


def test_rejudging_a_run_without_result_json_does_not_claim_one_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    golden = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks" / "ranks"
    shutil.copytree(golden, tmp_path / "ranks")
    main(["aggregate", str(tmp_path), "--straggler-threshold", "50"])
    out = capsys.readouterr().out
    assert "the recorded result.json is kept" not in out
    assert "it has no result.json: judged from its rank files" in out


def test_watch_on_a_node_check_result_says_so_and_points_at_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    # the trial's finished node-check directory (its result.json, copied)
    nc = Path(__file__).resolve().parents[1] / "fixtures" / "nodecheck" / "trial_nc1.result.json"
    shutil.copy(nc, tmp_path / "result.json")
    line = _error(capsys, ["watch", str(tmp_path), "--once"])
    assert f"{tmp_path} is a node-check result" in line
    assert f"minicluster report {tmp_path}" in line


def test_reference_record_out_a_directory_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node1 = Path(__file__).resolve().parents[1] / "fixtures" / "fleet" / "node1"
    line = _error(capsys, ["reference", "record", str(node1), "--out", str(tmp_path), "--force"])
    assert f"--out {tmp_path} is a directory" in line and "Is a directory" not in line


def test_a_config_that_is_a_directory_names_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _error(capsys, ["run", "-c", str(tmp_path), "--out", str(tmp_path / "run")])
    assert line == f"minicluster: error: config {tmp_path} is a directory, not a YAML config file"
    assert "Errno" not in line


def test_parallel_degrees_that_need_more_ranks_hint_the_nproc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _error(
        capsys,
        ["run", "--nproc", "2", "--parallel", "tp=2,dp_shard=2", "--out", str(tmp_path / "r")],
    )
    assert "--nproc 4" in line and not (tmp_path / "r" / "ranks").exists()


def test_an_empty_config_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "job.yaml"
    empty.write_text("")
    line = _error(capsys, ["run", "-c", str(empty), "--out", str(tmp_path / "run")])
    assert f"config {empty} is empty" in line and not (tmp_path / "run" / "ranks").exists()


HEALTHY = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs" / "healthy"


@pytest.mark.parametrize("command", [["watch", "--once"], ["watch"], ["report"], ["aggregate"]])
def test_a_runs_ranks_folder_names_the_run_directory_to_give(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`watch RUN/ranks` said it "holds no rank files" though it holds them: the error names
    the run directory to give instead (report and aggregate likewise)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(HEALTHY, run)
    line = _error(capsys, [command[0], str(run / "ranks"), *command[1:]])
    assert "holds no rank" not in line
    assert f"give the run directory (`minicluster {command[0]} {run}`)" in line, line


@pytest.mark.parametrize("command", ["report", "aggregate", "watch"])
def test_a_folder_of_runs_names_the_runs_and_a_command_that_works(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report DIR` on a folder of runs suggested `aggregate DIR`, which then failed: it says it
    is a folder of runs, names them, and suggests the command on one of them (which works)."""
    import shutil

    for name in ("a", "b"):
        shutil.copytree(HEALTHY, tmp_path / name)
    line = _error(capsys, [command, str(tmp_path)])
    assert "folder of 2 run(s)" in line and "a, b" in line, line
    assert f"`minicluster {command} {tmp_path / 'a'}`" in line
    assert "try `minicluster aggregate" not in line
    if command == "aggregate":  # the suggestion works
        assert main(["aggregate", str(tmp_path / "a")]) in (0, 1, 2)
        assert (tmp_path / "a" / "result.json").is_file()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["aggregate", "{run}", "--straggler-threshold", "-5"],
            "--straggler-threshold is -5.0; must be >= 0 (config checks.straggler_threshold_pct)",
        ),
        (
            ["collectives", "--pattern", "pairwise", "--nproc", "2", "--min-busbw", "-1"],
            "--min-busbw is -1.0; must be > 0 (config collectives.min_busbw_gbps)",
        ),
        (
            ["collectives", "--pattern", "pairwise", "--nproc", "2", "--min-busbw=-1"],
            "--min-busbw is -1.0; must be > 0 (config collectives.min_busbw_gbps)",
        ),
    ],
)
def test_a_flag_out_of_range_names_the_flag_typed(
    argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--min-busbw -1` and `--straggler-threshold -5` named the config keys
    (`collectives.min_busbw_gbps is -1.0; must be >= 1e-09`), not the flag the user typed."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(HEALTHY, run)
    argv = [a.replace("{run}", str(run)) for a in argv]
    if argv[0] == "collectives":
        argv += ["--out", str(tmp_path / "out")]
    line = _error(capsys, argv)
    assert line == f"minicluster: error: {said}", line
