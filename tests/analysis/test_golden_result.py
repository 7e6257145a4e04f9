"""Golden file: the bytes of result.json for fixed rank records (a real 2-rank gloo run).

Regenerate after an intended format change with:
    UPDATE_GOLDEN=1 python -m pytest tests/unit/test_golden_result.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.records import read_run_dir
from minicluster.result.model import SCHEMA_VERSION
from minicluster.result.schema import validate_result

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _render() -> str:
    records = read_run_dir(GOLDEN / "run_2ranks")
    result = aggregate(records, aggregated_at="2026-01-01T00:00:00+00:00")
    result["tool"]["version"] = "GOLDEN"  # the pin is the format, not the release number
    validate_result(result)
    return json.dumps(result, indent=2, allow_nan=False) + "\n"


def test_result_bytes_match_golden() -> None:
    expected_path = GOLDEN / "run_2ranks.result.json"
    got = _render()
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(got)
    assert got == expected_path.read_text(), "result.json format changed; see module docstring"


def test_golden_is_a_valid_versioned_result() -> None:
    data = json.loads((GOLDEN / "run_2ranks.result.json").read_text())
    validate_result(data)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["status"] == "ok"
    assert data["world_size"] == 2
