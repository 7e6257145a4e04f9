"""Terminal tables never cut a value at 80 or 100 columns (issue 26: "p50 71…"): columns that do
not fit are left out whole, and said so."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from minicluster.report.terminal import print_run_summary
from minicluster.result.model import RunResult

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "reports").glob("*.result.json")) + [
    ROOT
    / "tests"
    / "fixtures"
    / "cases"
    / "23-thermal-drift-excused-by-spread"
    / "clean.result.json"
]


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_no_value_is_cut(path: Path, width: int) -> None:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    print_run_summary(RunResult.from_json(json.loads(path.read_text())), console)
    text = out.getvalue()
    cut = [line for line in text.splitlines() if "…" in line]
    assert not cut, cut[:3]
    if width == 80 and "Ranks (ms)" in text:
        assert "left out for the terminal width" in text or all(
            len(x) <= 80 for x in text.splitlines()
        )
