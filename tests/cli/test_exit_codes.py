"""Exit codes a gate can trust: an internal error is 70 in every command (never 1, a finding's
code); a full disk is one line naming the file, exit 2 before any rank started and 3 after; a
result.json that cannot be read is never replaced."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import handlers, main
from minicluster.cli.parser import command_names
from minicluster.core import io as core_io
from minicluster.core.errors import EXIT_INTERNAL
from minicluster.launchers.base import LaunchPlan

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RECORDED = GOLDEN / "run_2ranks" / "ranks"

# Arguments each command accepts up to its handler (which the test replaces).
_ARGS = {
    "aggregate": ["DIR"],
    "collectives": [],
    "compare": ["A", "B"],
    "convert": ["IN", "--to", "csv"],
    "diagnose": ["DIR"],
    "doctor": [],
    "fleet": ["R"],
    "history": ["check", "R"],
    "isolate": [],
    "node-check": [],
    "reference": ["record", "R", "--out", "F"],
    "report": ["R"],
    "run": [],
    "sweep": [],
    "validate": [],
    "watch": ["DIR"],
    "worker": ["--out", "DIR"],
}


def test_every_command_is_covered() -> None:
    assert sorted(_ARGS) == command_names()


@pytest.mark.parametrize("command", sorted(_ARGS))
def test_an_internal_error_exits_70_in_every_command(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bug(_args: object) -> int:
        raise KeyError("a bug")

    name = {
        "history": "history_check",
        "node-check": "node_check",
        "reference": "reference_record",
    }.get(command, command)
    monkeypatch.setattr(handlers, name, bug)
    monkeypatch.delenv("MINICLUSTER_DEBUG", raising=False)
    assert main([command, *_ARGS[command]]) == EXIT_INTERNAL == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "minicluster: internal error: KeyError: 'a bug' (set MINICLUSTER_DEBUG=1 for the traceback)"
    ]


def test_the_readme_lists_every_exit_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("Exit codes:") :][:6000]  # the table, whose rows grew
    for code in ("0 ok", "1 ", "2 bad usage", "3 the run itself failed", "70 ", "130 "):
        assert code in section, code


def _disk_full_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, every atomic write finds the disk full (the write raises ENOSPC)."""
    real_fdopen = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, fd: int) -> None:
            self.f = real_fdopen(fd, "wb")

        def writable(self) -> bool:
            return True

        def write(self, _data: Any) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            self.f.close()
            super().close()

    monkeypatch.setattr(core_io.os, "fdopen", lambda fd, *_a, **_k: Full(fd))


def test_a_disk_that_fills_after_the_ranks_started_is_a_failed_run_in_one_line(
    tmp_path: Path,
    fake_launch: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def ranks_ran(plan: LaunchPlan) -> None:
        shutil.copytree(RECORDED, plan.out_dir / "ranks")
        _disk_full_after(monkeypatch)  # the ranks filled the disk

    fake_launch(ranks_ran)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"minicluster: error: cannot write {out / 'result.json'}: no space left on device "
        f"(the ranks had started; what they recorded is under {out})"
    )
    assert not any("internal error" in line for line in err)
    assert not list(out.glob(".result.json.*"))  # no temporary file left behind


def test_a_disk_full_before_any_rank_started_is_bad_input(
    tmp_path: Path,
    fake_launch: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_launch(lambda plan: pytest.fail("no rank may start"))
    _disk_full_after(monkeypatch)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minicluster: error: ")
    assert "no space left on device" in err[0].lower() and str(out) in err[0]


def _tiny_tmpfs(path: Path) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_real_run_on_a_40k_tmpfs_fails_in_one_line_exit_3(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """The new user's case: `--out` on a 40 KB tmpfs (root only: mount)."""
    mnt = tmp_path / "tiny"
    if not _tiny_tmpfs(mnt):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("run: {device: cpu}\nsteps: {warmup: 1, measured: 200}\n")
        proc = subprocess.run(
            [sys.executable, "-m", "minicluster", "run", "-c", str(cfg), "--out", str(mnt / "r")],
            capture_output=True,
            text=True,
            timeout=150,
            env=cli_env,
        )
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    assert proc.returncode == 3, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("minicluster: error: cannot write ") and str(mnt) in last
    assert "no space left on device" in last


def _finished_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(RECORDED, out / "ranks")
    return out


@pytest.mark.parametrize(
    ("old", "why"),
    [
        (b'{"schema_version": "minicluster/1.3", "run_id": "x", "ranks": [', "cannot be read"),
        (
            json.dumps({"schema_version": "minicluster/9.0", "run_id": "from-the-future"}).encode(),
            "written by a newer minicluster (minicluster/9.0",
        ),
    ],
)
def test_aggregate_never_replaces_a_result_it_cannot_read(
    tmp_path: Path, old: bytes, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _finished_run(tmp_path)
    (out / "result.json").write_bytes(old)
    assert main(["aggregate", str(out)]) == 0  # the files' result, judged
    assert (out / "result.json").read_bytes() == old  # kept, byte for byte
    (partial,) = out.glob("result.partial-*.json")
    assert json.loads(partial.read_text())["status"] == "ok"
    captured = capsys.readouterr()
    warning = [ln for ln in captured.err.splitlines() if ln.startswith("minicluster: warning:")]
    assert len(warning) == 1 and why in warning[0] and str(partial) in warning[0]
    assert f"result: {partial}" in captured.out
    # Again: a second partial beside the first, nothing replaced.
    assert main(["aggregate", str(out)]) == 0
    assert len(list(out.glob("result.partial-*.json"))) == 2
    assert (out / "result.json").read_bytes() == old


def test_a_full_disk_under_a_command_that_starts_no_rank_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = Path(__file__).resolve().parents[1] / "fixtures" / "compare"
    md = tmp_path / "cmp.md"
    _disk_full_after(monkeypatch)
    code = main(
        ["compare", str(runs / "mc_run.json"), str(runs / "mc_run_slow.json"), "--md", str(md)]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"minicluster: error: cannot write {md}: no space left on device"]


def test_an_interpreter_without_torch_is_an_environment_error_not_a_bug(tmp_path: Path) -> None:
    """`python -m minicluster run` from an interpreter lacking torch said "internal error:
    ModuleNotFoundError" and exit 70 (a bug in minicluster): it is the environment, exit 2,
    one line naming the package and the README's set-up command."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # `import torch` raises ModuleNotFoundError
        "from minicluster.cli import main\n"
        f"sys.exit(main(['run', '--nproc', '1', '--out', {str(tmp_path / 'r')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and "internal error" not in out.stderr, lines
    assert "'torch'" in lines[0] and "bash scripts/setup.sh train" in lines[0], lines


def test_a_missing_module_of_minicluster_itself_is_still_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bug(_args: object) -> int:
        raise ModuleNotFoundError("No module named 'minicluster.gone'", name="minicluster.gone")

    monkeypatch.setattr(handlers, "report", bug)
    monkeypatch.delenv("MINICLUSTER_DEBUG", raising=False)
    assert main(["report", *_ARGS["report"]]) == EXIT_INTERNAL
    assert "internal error: ModuleNotFoundError" in capsys.readouterr().err
