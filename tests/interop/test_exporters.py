"""`convert`: TrackIQ output passes TrackIQ's rules; round trips keep every canonical metric."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from minicluster.interop import export, load
from minicluster.interop.trackiq import REQUIRED_NUMBER_METRICS, validate

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"


def test_trackiq_export_valid_and_round_trip(tmp_path: Path) -> None:
    original = load(FIX / "mc11_clean_a.json")
    tq = json.loads(export(original, "trackiq"))
    validate(tq)
    assert tq["schema_version"] == "1.1.0"
    for name in REQUIRED_NUMBER_METRICS:
        assert isinstance(tq["metrics"][name], float)
    assert tq["tool_payload"]["minicluster"]["series"] == original.series
    tq_path = tmp_path / "tq.json"
    tq_path.write_text(json.dumps(tq))
    mc_path = tmp_path / "mc.json"
    mc_path.write_text(export(load(tq_path), "minicluster"))
    back = load(mc_path)
    assert back.metrics == original.metrics  # value, unit, status, method, reason
    assert back.samples == original.samples  # per-step samples, from the series
    assert load(tq_path).samples == original.samples
    data = json.loads(mc_path.read_text())
    src = json.loads((FIX / "mc11_clean_a.json").read_text())
    assert data["world_size"] == src["world_size"] == 2
    assert data["workload"]["per_rank_batch"] == src["workload"]["per_rank_batch"]
    assert data["workload"]["global_batch"] == src["workload"]["global_batch"]
    assert data["backend"] == src["backend"] == "gloo"
    assert data["steps"]["series"] == src["steps"]["series"]
    assert data["imported_from"]["unknown_fields"] == {}


def test_trackiq_to_minicluster_invents_no_world_size(tmp_path: Path) -> None:
    data = json.loads(export(load(FIX / "seed001_autoperfpy.json"), "minicluster"))
    assert data["world_size"] is None
    assert "not in the TrackIQ result" in data["imported_from"]["unknown_fields"]["world_size"]
    assert data["workload"]["workload_type"] == "inference"
    assert data["workload"]["global_batch"] == 1  # AutoPerfPy's batch_size of an inference run
    p = tmp_path / "mc.json"
    p.write_text(json.dumps(data))
    back = load(p)
    assert back.workload_type == "inference"  # kept, never read back as training
    assert back.details["world_size"] is None


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
    assert p99["status"] == "measured" and p99["n_samples"] == "0"


def test_vllm_to_minicluster_is_an_inference_result_with_nulls_and_reasons() -> None:
    data = json.loads(export(load(FIX / "vllm_ok.json"), "minicluster"))
    wl = data["workload"]
    assert wl["workload_type"] == "inference"
    assert wl["global_batch"] is None and wl["per_rank_batch"] is None
    unknown = data["imported_from"]["unknown_fields"]
    assert "no batch size" in unknown["global_batch"] and "parallelism" in unknown["world_size"]
    assert data["created_at"] == "2026-01-01T12:00:00"  # vLLM's date, as ISO-8601
    assert data["metrics"]["latency_p50_ms"]["value"] == 2031.0
    assert data["metrics"]["latency_p50_ms"]["coverage"]["covered"] == 8


def test_markdown_to_minicluster_validates() -> None:
    data = json.loads(export(load(FIX / "md_002.md"), "minicluster"))
    assert data["workload"]["workload_type"] == "inference"
    assert data["metrics"]["latency_p99_ms"]["value"] == 535.05


def test_parquet_table(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet extra not installed")
    from minicluster.cli import main

    out = tmp_path / "m.parquet"
    assert main(["convert", str(FIX / "mc11_clean_a.json"), "--to", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out).to_pylist()
    p50 = next(r for r in table if r["metric"] == "latency_p50_ms")
    assert p50["value"] == pytest.approx(40.864818) and p50["n_samples"] == 50
    series = json.loads((FIX / "mc11_clean_a.json").read_text())["steps"]["series"]
    assert p50["samples"] == series["step_time_ms"]
    power = next(r for r in table if r["metric"] == "power_consumption_watts")
    assert power["value"] is None and power["reason"]


def test_parquet_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyarrow")
    from minicluster.cli import main

    assert main(["convert", str(FIX / "mc_run.json"), "--to", "parquet"]) == 2
    assert "-o" in capsys.readouterr().err
