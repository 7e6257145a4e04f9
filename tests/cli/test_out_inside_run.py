"""An `--out` inside an earlier run's directory, or one that holds other runs (a runs root with
`latest`), is refused with one line and exit 2 by every command that writes a run directory,
`--dry-run` included (the trial's `run --out runs/strag/ranks` wrote into an earlier run's ranks/,
and `run --out runs --dry-run` passed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from minicluster.cli import main
from minicluster.result import store

COMMANDS = [
    ["run", "--dry-run"],
    ["collectives", "--ops", "all_reduce", "--dry-run"],
    ["sweep", "--world-sizes", "1,2", "--dry-run"],
    ["isolate", "--nproc", "4", "--dry-run"],
    ["validate", "--layouts", "ddp,fsdp", "--dry-run"],
    ["node-check"],  # no --dry-run: refused before anything is measured
]


def _runs_root(tmp_path: Path) -> Path:
    """runs/ holding one finished run (result.json, config.json, ranks/ with a rank file) and
    `latest` pointing at it."""
    runs = tmp_path / "runs"
    (runs / "strag" / "ranks").mkdir(parents=True)
    (runs / "strag" / "ranks" / "rank_00000.jsonl").write_text("{}\n")
    (runs / "strag" / "result.json").write_text("{}")
    (runs / "strag" / "config.json").write_text("{}")
    (runs / "latest").symlink_to("strag")
    return runs


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2, argv
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minicluster: error:"), lines
    return lines[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize("where", ["ranks", "ranks/deeper", "newdir"])
def test_out_inside_an_earlier_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], where: str
) -> None:
    runs = _runs_root(tmp_path)
    before = _listing(tmp_path)
    line = _one_error(capsys, [*args, "--out", str(runs / "strag" / where)])
    assert f"is inside the earlier run {runs / 'strag'}" in line, line
    assert _listing(tmp_path) == before  # nothing written into the earlier run


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_out_holding_other_runs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    runs = _runs_root(tmp_path)
    before = _listing(tmp_path)
    line = _one_error(capsys, [*args, "--out", str(runs)])
    assert "holds other runs (the latest link)" in line, line
    (runs / "latest").unlink()  # without the link: a sub-directory that is a run says it
    line = _one_error(capsys, [*args, "--out", str(runs)])
    assert "holds other runs (the run strag/)" in line, line
    assert _listing(tmp_path) == [p for p in before if p != "runs/latest"]


def test_out_inside_a_relative_run_names_it_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _runs_root(tmp_path)
    monkeypatch.chdir(tmp_path)
    line = _one_error(capsys, ["run", "--dry-run", "--out", "runs/strag/ranks"])
    assert "output directory runs/strag/ranks is inside the earlier run runs/strag " in line


def test_a_commands_own_runs_inside_its_directory_are_allowed(tmp_path: Path) -> None:
    """A node check's collectives and a repeat's rI are runs inside the directory the command
    claimed itself (which holds its own record by then): not an earlier run."""
    _, top = store.new_output(tmp_path / "repeats", what="repeats")
    (top / "repeats.json").write_text("{}")
    _, r0 = store.new_output(top / "r0")
    (r0 / "result.json").write_text("{}")
    _, r1 = store.new_output(top / "r1")
    assert r1 == top / "r1"
    # another process: the same directories are earlier runs
    other = subprocess.run(
        [sys.executable, "-m", "minicluster", "run", "--dry-run", "--out", str(top / "r2")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        timeout=60,
    )
    assert other.returncode == 2 and "is inside the earlier run" in other.stderr, other.stderr


def test_a_lone_result_json_above_is_not_an_earlier_run(tmp_path: Path) -> None:
    """A project folder holding a converted result.json (no config, no ranks, no claim) is not a
    run: a new run under it, or beside a folder like it, is not refused."""
    (tmp_path / "result.json").write_text("{}")
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "result.json").write_text("{}")
    _, out = store.check_planned_output(tmp_path / "runs" / "new")
    assert out == tmp_path / "runs" / "new"
    store.check_planned_output(tmp_path / "x")  # beside `exported/`: no runs root either


def test_a_sweep_directory_with_a_stray_file_is_still_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("x")
    line = _one_error(
        capsys, ["sweep", "--world-sizes", "1,2", "--dry-run", "--out", str(tmp_path / "s")]
    )
    assert "is not empty" in line
