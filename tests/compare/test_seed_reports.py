"""Re-create the predecessor's comparisons (seeds 000/001) from the same values: no defect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from minicluster.cli import main

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"


def _run(tmp_path: Path, a: str, b: str, *extra: str) -> tuple[int, dict, str]:
    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    code = main(
        [
            "compare",
            str(FIX / a),
            str(FIX / b),
            "--json",
            str(out_json),
            "--md",
            str(out_md),
            *extra,
        ]
    )
    return code, json.loads(out_json.read_text()), out_md.read_text()


def _rows(data: dict) -> dict[str, dict]:
    return {r["metric"]: r for r in data["comparisons"][0]["rows"]}


def test_seed_000_no_inf_no_winner_from_zeros(tmp_path: Path) -> None:
    code, data, md = _run(tmp_path, "seed000_autoperfpy.json", "seed000_minicluster.json")
    rows = _rows(data)
    # The predecessor: latency 0.00 vs 0.00 "tie"; throughput 0 vs 202.76 "+inf%, MiniCluster wins".
    for name in (
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "throughput_samples_per_sec",
        "memory_utilization_percent",
    ):
        assert rows[name]["verdict"] == "missing", name
        assert rows[name]["delta_pct"] is None
    assert re.search(r"\binf\b", md.lower()) is None and "winner" not in md.lower()
    assert all(r["verdict"] in ("missing", "not_comparable") for r in rows.values())
    assert data["comparisons"][0]["geomean"]["n"] == 0
    assert code == 0


def test_seed_001_latency_zero_is_not_a_win(tmp_path: Path) -> None:
    code, data, md = _run(tmp_path, "seed001_autoperfpy.json", "seed001_minicluster.json")
    rows = _rows(data)
    # Predecessor: 42.62 vs 0.00 ms "-100%, MiniCluster wins".
    assert rows["latency_p50_ms"]["verdict"] == "missing"
    assert rows["memory_utilization_percent"]["verdict"] == "missing"
    # Cross-workload: only cross-applicable metrics get a verdict.
    assert rows["throughput_samples_per_sec"]["verdict"] == "better"
    assert rows["energy_per_step_joules"]["verdict"] == "not_comparable"
    assert rows["power_consumption_watts"]["verdict"] == "not_comparable"  # no direction
    # Temperature 38.14 -> 37.46 (-1.79 %) is within 5 %: no change, and never "higher wins".
    assert rows["temperature_celsius"]["verdict"] == "no_change"
    assert "workload types differ" in md
    assert "winner" not in md.lower()
    assert code == 0


def test_seed_001_temperature_direction_with_low_threshold(tmp_path: Path) -> None:
    _, data, _ = _run(
        tmp_path, "seed001_autoperfpy.json", "seed001_minicluster.json", "--threshold", "1"
    )
    assert _rows(data)["temperature_celsius"]["verdict"] == "better"  # lower is better


@pytest.mark.parametrize(
    "pair",
    [
        ("seed000_autoperfpy.json", "seed000_minicluster.json"),
        ("seed001_autoperfpy.json", "seed001_minicluster.json"),
    ],
)
def test_json_rows_have_required_fields(tmp_path: Path, pair: tuple[str, str]) -> None:
    _, data, _ = _run(tmp_path, *pair)
    for r in data["comparisons"][0]["rows"]:
        assert {"metric", "unit", "a", "b", "delta_abs", "delta_pct", "verdict", "reason"} <= set(r)
        assert r["reason"]
