"""The README says what the code does: the columns `minicluster.load(...).metrics` has, and the
default job's figures as BENCHMARKS.md measured them (one measurement, stated in both places)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BENCHMARKS = (REPO / "BENCHMARKS.md").read_text()


def test_the_metrics_frame_columns_are_the_ones_the_readme_lists() -> None:
    from minicluster.interop.frames import METRIC_COLUMNS

    listed = re.search(r"`\.metrics` \(one row per metric:\s*([^)]*)\)", README)
    assert listed is not None
    assert [c.strip() for c in listed.group(1).split(",")] == list(METRIC_COLUMNS)


def _figure(pattern: str, text: str) -> str:
    found = re.search(pattern, text, re.DOTALL)
    assert found is not None, pattern
    return found.group(1)


def test_the_default_job_figures_are_the_ones_benchmarks_measured() -> None:
    wall = _figure(r"`bash scripts/run.sh` takes\s+([\d.]+) s wall", README)
    step = _figure(r"Median step ~([\d.]+) ms", README)
    assert (
        _figure(
            r"\| 4 \| `bash scripts/run.sh` after set-up <= 30 s \| \*\*([\d.]+) s\*\*", BENCHMARKS
        )
        == wall
    )
    assert _figure(
        r"`bash scripts/run.sh` \(set-up already done\): ([\d.]+) s wall", BENCHMARKS
    ).startswith(wall)
    assert _figure(r"median step ([\d.]+) ms", BENCHMARKS) == step
