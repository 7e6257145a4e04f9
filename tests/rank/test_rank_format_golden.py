"""What a one-rank worker writes, pinned: record types, keys and value types (rank_format.py).

The rank record format is the interface between the rank side and the analysis side; a key
added, dropped or renamed on either side without `rank_format` and this golden file changing
with it fails here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from minicluster.core import rank_format, rundir

# Regenerate after an intended format change: UPDATE_GOLDEN=1 pytest tests/rank/test_rank_format_golden.py
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "rank_format_shapes.json"


def _shape(value: Any, depth: int) -> Any:
    """Type names, with the keys of nested mappings down to `depth` levels."""
    if isinstance(value, dict) and depth > 0:
        return {k: _shape(v, depth - 1) for k, v in value.items()}
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_one_rank_worker_writes_the_pinned_format(
    run_cli: Any, tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = run_cli("worker", "-c", str(tiny_config), "--out", str(out), timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(x) for x in rundir.rank_jsonl(out, 0).read_text().splitlines()]
    summary = json.loads(rundir.rank_summary(out, 0).read_text())

    header, roster, timing, *steps = lines  # rank 0 is its node's local rank 0: it has a roster
    assert header["type"] == rank_format.HEADER
    assert header["format"] == rank_format.FORMAT_VERSION
    assert tuple(header) == rank_format.HEADER_KEYS
    assert tuple(roster) == rank_format.ROSTER_KEYS
    assert all(tuple(n) == rank_format.ROSTER_NODE_KEYS for n in roster["nodes"])
    assert roster["nodes"] == [{"node_rank": None, "hostname": header["hostname"], "ranks": [0]}]
    assert tuple(timing) == rank_format.COMM_TIMING_KEYS
    assert len(steps) == 10 and all(tuple(s) == rank_format.STEP_KEYS for s in steps)
    optional = rank_format.Summary.OMIT_NONE  # written when set (t_unix_s always is here)
    assert tuple(k for k in summary if k not in optional) == rank_format.SUMMARY_KEYS
    assert "t_unix_s" in summary

    shapes = {
        "header": _shape({k: v for k, v in header.items() if k != "config"}, 2),
        "roster": _shape(roster, 2),
        "comm_timing": _shape(timing, 1),
        "step": _shape(steps[-1], 1),
        "summary": _shape({k: v for k, v in summary.items() if k != "telemetry"}, 2),
        "summary.telemetry": sorted(summary["telemetry"]),
    }
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(shapes, indent=2) + "\n")
    assert shapes == json.loads(GOLDEN.read_text())
