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
    """The README's default-job figures (they went stale once: 16 ms and 5.5 s stood after the
    job had become 30 ms and 11 s) are the ones BENCHMARKS.md states with their conditions."""
    wall = _figure(r"`bash scripts/run.sh` takes\s+([\d.]+) s wall", README)
    step = _figure(r"Median step ~([\d.]+) ms", README)
    row = _figure(r"(\| 4 \| `bash scripts/run.sh` after set-up[^\n]*)", BENCHMARKS)
    assert f"**{wall} s** wall" in row and f"median step {step} ms" in row
    detail = _figure(r"`bash scripts/run.sh` \(set-up already done\): ([^\n]*\n[^\n]*)", BENCHMARKS)
    assert f"{wall} s wall" in detail and f"{step} ms" in detail
