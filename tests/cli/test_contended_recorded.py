"""Clean runs made beside real busy loops (recorded, tests/fixtures/recorded_runs/contended_*,
2026-12-07): no rank of theirs is named. Their late rank's lateness was mostly its threads
waiting for a CPU the busy loops held, so `aggregate` says NOT JUDGED (host CPU contention) and
exits 2; before, the rest of the lateness the run-queue delay did not explain (2-4 ms a step)
passed the culprit floors and named a healthy rank (exit 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs"


@pytest.mark.parametrize("name", ["contended_pin1", "contended_cont6"])
def test_a_clean_run_beside_busy_loops_names_no_rank(
    run_cli: Any, tmp_path: Path, name: str
) -> None:
    run_dir = tmp_path / name
    shutil.copytree(RECORDED / name, run_dir)
    agg = run_cli("aggregate", str(run_dir))
    assert agg.returncode == 2, agg.stdout + agg.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert not result.get("culprits")
    assert not result.get("stragglers")
    assert result["host_contention"], result.get("host_contention")
    assert "NOT JUDGED" in agg.stdout
