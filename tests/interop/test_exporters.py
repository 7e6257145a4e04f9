"""`convert`: TrackIQ output passes TrackIQ's rules; round trips keep every canonical metric."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from minicluster.core.errors import InputError
from minicluster.interop import export, load
from minicluster.interop.trackiq import REQUIRED_NUMBER_METRICS, validate

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"


def test_trackiq_export_valid_and_round_trip(tmp_path: Path) -> None:
    original = load(FIX / "mc_run.json")
    tq = json.loads(export(original, "trackiq"))
    validate(tq)
    assert tq["schema_version"] == "1.1.0"
    for name in REQUIRED_NUMBER_METRICS:
        assert isinstance(tq["metrics"][name], float)
    assert (
        tq["tool_payload"]["minicluster"]["samples"]["latency_p50_ms"]
        == original.samples["latency_p50_ms"]
    )
    tq_path = tmp_path / "tq.json"
    tq_path.write_text(json.dumps(tq))
    mc_path = tmp_path / "mc.json"
    mc_path.write_text(export(load(tq_path), "minicluster"))
    back = load(mc_path)
    assert back.metrics == original.metrics  # value, unit, status, method, reason
    assert load(tq_path).samples == original.samples


def test_unmeasured_zero_in_trackiq_does_not_come_back_as_a_measurement(tmp_path: Path) -> None:
    rec = load(FIX / "vllm_zero.json")
    tq = json.loads(export(rec, "trackiq"))
    assert tq["metrics"]["latency_p50_ms"] == 0.0  # TrackIQ demands a number here
    assert "latency_p50_ms" in tq["tool_payload"]["minicluster"]["unmeasured"]
    p = tmp_path / "tq.json"
    p.write_text(json.dumps(tq))
    assert load(p).measured("latency_p50_ms") is None


def test_csv_one_row_per_metric() -> None:
    rec = load(FIX / "md_004.md")
    rows = list(csv.DictReader(io.StringIO(export(rec, "csv"))))
    assert len(rows) == len(rec.metrics)
    p99 = next(r for r in rows if r["metric"] == "latency_p99_ms")
    assert float(p99["value"]) == 2277.85 and p99["unit"] == "ms"


def test_minicluster_export_needs_a_batch_size() -> None:
    with pytest.raises(InputError, match="batch size unknown"):
        export(load(FIX / "vllm_ok.json"), "minicluster")


def test_markdown_to_minicluster_validates() -> None:
    data = json.loads(export(load(FIX / "md_002.md"), "minicluster"))
    assert data["workload"]["workload_type"] == "inference"
    assert data["metrics"]["latency_p99_ms"]["value"] == 535.05


def test_parquet_table(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet extra not installed")
    from minicluster.cli import main

    out = tmp_path / "m.parquet"
    assert main(["convert", str(FIX / "mc_run.json"), "--to", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out).to_pylist()
    p50 = next(r for r in table if r["metric"] == "latency_p50_ms")
    assert p50["value"] == pytest.approx(15.657266) and p50["n_samples"] == 50
    assert len(p50["samples"]) == 50
    power = next(r for r in table if r["metric"] == "power_consumption_watts")
    assert power["value"] is None and power["reason"]


def test_parquet_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyarrow")
    from minicluster.cli import main

    assert main(["convert", str(FIX / "mc_run.json"), "--to", "parquet"]) == 2
    assert "-o" in capsys.readouterr().err
