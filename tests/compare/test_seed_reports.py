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
    # not one row judged: NOT JUDGED (exit 2), never a pass
    assert code == 2 and data["verdict"] == "not_judged"


def test_seed_001_latency_zero_is_not_a_win(tmp_path: Path) -> None:
    code, data, md = _run(tmp_path, "seed001_autoperfpy.json", "seed001_minicluster.json")
    rows = _rows(data)
    # Predecessor: 42.62 vs 0.00 ms "-100%, MiniCluster wins".
    assert rows["latency_p50_ms"]["verdict"] == "missing"
    assert rows["memory_utilization_percent"]["verdict"] == "missing"
    # Inference vs training: both values and the ratio, no verdict on any row.
    tp = rows["throughput_samples_per_sec"]
    assert tp["verdict"] == "not_comparable" and tp["ratio"] == pytest.approx(tp["b"] / tp["a"])
    assert all(r["verdict"] in ("missing", "not_comparable") for r in rows.values())
    assert data["comparisons"][0]["geomean"]["n"] == 0
    assert "workload types differ" in md
    assert "winner" not in md.lower()
    assert code == 2 and data["verdict"] == "not_judged"  # not one row judged


def test_seed_001_temperature_never_wins_across_workloads(tmp_path: Path) -> None:
    # The predecessor called higher temperature better; here a lower one is not even "better"
    # across workload types, however low the threshold.
    _, data, _ = _run(
        tmp_path, "seed001_autoperfpy.json", "seed001_minicluster.json", "--threshold", "1"
    )
    temp = _rows(data)["temperature_celsius"]
    assert temp["verdict"] == "not_comparable" and temp["b"] < temp["a"]


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
