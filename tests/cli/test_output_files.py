"""A report file that cannot be written is refused before any work starts (exit 2, one line)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from minicluster.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--nproc", "2", "--md", "/proc/no/such/r.md"], "cannot make directory"),
        (["validate", "--html", "{tmp}"], "is a directory"),
        (["collectives", "--md", "{tmp}/file/c.md"], "cannot make directory"),
        (["sweep", "--world-sizes", "1,2", "--html", "{tmp}/file/s.html"], "cannot make directory"),
    ],
)
def test_a_bad_report_path_is_refused_before_the_job_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    out = tmp_path / "out"
    started = time.monotonic()
    code = main([a.format(tmp=tmp_path) for a in argv] + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing launched, no output directory claimed
    assert time.monotonic() - started < 5.0
