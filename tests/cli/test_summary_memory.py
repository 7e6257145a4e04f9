"""A rank summary whose `memory` lacks its figures (a hand-edited or foreign file) is input
`aggregate` reads without a traceback: the job's memory metrics are unavailable with the rank
named, the rest of the result as usual. Rank files: tests/fixtures/rank_writer.py (test inputs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures import rank_writer


@pytest.mark.parametrize("memory", [{}, {"rss_peak_bytes": 1 << 20}])
def test_a_summary_without_memory_figures_leaves_the_memory_metrics_unavailable(
    run_cli: Any, tmp_path: Path, memory: dict[str, Any]
) -> None:
    run_dir = tmp_path / "run"
    rank_writer.write_static(run_dir, [19, 19], total=20, finished=True)
    path = run_dir / "ranks" / "rank_00001.summary.json"
    summary = json.loads(path.read_text())
    summary["memory"] = memory
    path.write_text(json.dumps(summary))
    agg = run_cli("aggregate", str(run_dir))
    assert "Traceback" not in agg.stderr + agg.stdout, agg.stderr
    assert agg.returncode in (0, 1, 2), agg.stderr
    result = json.loads((run_dir / "result.json").read_text())
    peak = result["metrics"]["memory_peak_mib"]
    assert peak["value"] is None
    assert "rank 1's summary has no memory figures" in json.dumps(peak)
