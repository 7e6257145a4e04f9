"""`minicluster report`: writes the requested files; bad input is one line and exit 2."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import build_parser

REPORTS = Path(__file__).resolve().parents[1] / "golden" / "reports"
PKG_REPORT = Path(__file__).resolve().parents[2] / "minicluster" / "report"


@pytest.mark.timeout(60)
def test_report_writes_md_and_html(run_cli: Any, tmp_path: Path) -> None:
    md, html = tmp_path / "out" / "r.md", tmp_path / "r.html"
    md.parent.mkdir()  # a missing folder is refused, not made (tests/cli/test_output_files.py)
    src = REPORTS / "run_ok.result.json"
    proc = run_cli("report", str(src), "--md", str(md), "--html", str(html), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "20261123-083822-d207cd" in proc.stdout
    assert f"report: {md}" in proc.stdout and f"report: {html}" in proc.stdout
    assert md.read_text().startswith("# minicluster run 20261123-083822-d207cd")
    assert html.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "is not JSON (line 1 column 2)"),
        ('{"schema_version": "minicluster/1"}', "result does not match minicluster/1.6"),
    ],
)
def test_report_bad_input_is_one_line_exit_2(
    run_cli: Any, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    proc = run_cli("report", str(path), "--html", str(tmp_path / "r.html"), timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("minicluster: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "r.html").exists()


def test_run_and_report_take_md_and_html_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "--md", "a.md", "--html", "a.html"])
    assert (args.md, args.html) == (Path("a.md"), Path("a.html"))
    args = parser.parse_args(["report", "r.json"])
    assert (args.result, args.md, args.html) == (Path("r.json"), None, None)


def test_report_package_computes_no_statistics() -> None:
    """Renderers format numbers the coordinator computed: no numpy, scipy or statistics here."""
    banned = {"numpy", "scipy", "statistics", "torch", "pandas"}
    for path in PKG_REPORT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module.split(".")[0]}
            else:
                continue
            assert not names & banned, f"{path.name} imports {names & banned}"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_run_writes_reports_of_its_result(
    python: str, cli_env: dict[str, str], tiny_config: Path, tmp_path: Path
) -> None:
    out, md, html = tmp_path / "run", tmp_path / "run.md", tmp_path / "run.html"
    proc = subprocess.run(
        [python, "-m", "minicluster", "run", "-c", str(tiny_config), "--out", str(out)]
        + ["--md", str(md), "--html", str(html)],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=170,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert md.read_text().startswith(f"# minicluster run {result['run_id']}")
    page = html.read_text()
    assert 'data-plot="step_time"' in page and 'data-plot="rank_breakdown"' in page


def test_report_takes_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from minicluster.cli import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert main(["report", str(run_dir)]) == 2
    assert "without result.json" in capsys.readouterr().err
    (run_dir / "result.json").write_text((REPORTS / "sweep_ok.result.json").read_text())
    assert main(["report", str(run_dir), "--md", str(tmp_path / "r.md")]) == 0
    assert (tmp_path / "r.md").read_text().startswith("# minicluster sweep ")
