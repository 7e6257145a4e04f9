"""Importers keep what the source measured and say what it did not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicluster.core.errors import InputError
from minicluster.interop import load
from minicluster.interop.detect import sniff

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("mc_run.json", "minicluster"),
        ("seed001_autoperfpy.json", "trackiq"),
        ("vllm_ok.json", "vllm"),
        ("md_002.md", "markdown"),
    ],
)
def test_format_detected_from_content(name: str, fmt: str) -> None:
    assert sniff((FIX / name).read_text(), FIX / name)[0] == fmt


def test_markdown_seed_002() -> None:
    r = load(FIX / "md_002.md")
    v = {k: m.value for k, m in r.metrics.items()}
    assert v["latency_mean_ms"] == 526.70 and v["latency_p50_ms"] == 526.42
    assert v["latency_p90_ms"] == 532.51 and v["latency_p95_ms"] == 533.40
    assert v["latency_p99_ms"] == 535.05
    assert v["throughput_samples_per_sec"] == 60.68
    assert r.details["throughput_percentiles"] == {
        "p50": 60.79,
        "p90": 61.39,
        "p95": 61.64,
        "p99": 62.04,
    }
    assert (r.details["batch_size"], r.details["concurrency"]) == (32, 1)
    assert r.workload_name == "cross-encoder/ms-marco-MiniLM-L-6-v2" and r.hardware == "mps"
    assert v["memory_peak_mib"] == 1154.6 and r.metrics["memory_peak_mib"].status == "estimated"
    assert v["device_utilization_percent"] == 6.6
    assert r.workload_type == "inference"


def test_markdown_seed_004() -> None:
    r = load(FIX / "md_004.md")
    v = {k: m.value for k, m in r.metrics.items()}
    assert (v["latency_mean_ms"], v["latency_p99_ms"]) == (194.02, 2277.85)
    assert v["throughput_samples_per_sec"] == 164.92
    assert r.details["throughput_percentiles"]["p95"] == 274.36
    assert v["device_utilization_percent"] == 93.5 and v["memory_peak_mib"] == 1271.6


def test_minicluster_result_samples_are_per_step_max_over_ranks() -> None:
    data = json.loads((FIX / "mc_run.json").read_text())
    emb = data["steps"]["embedded"]
    measured = [i for i, w in enumerate(emb["0"]["warmup"]) if not w]
    expected = [max(emb[r]["step_time_ms"][i] for r in emb) for i in measured]
    r = load(FIX / "mc_run.json")
    assert r.samples["latency_p50_ms"] == expected
    gb = data["workload"]["global_batch"]
    assert r.samples["throughput_samples_per_sec"][0] == pytest.approx(gb * 1000 / expected[0])
    assert r.measured("power_consumption_watts") is None
    assert r.workload_type == "training"


def test_trackiq_all_zero_latency_is_not_measured() -> None:
    r = load(FIX / "seed000_autoperfpy.json")
    for name in (
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "throughput_samples_per_sec",
        "memory_utilization_percent",
    ):
        assert r.measured(name) is None, name
        assert r.metrics[name].status == "unavailable"
    assert r.measured("tokens_per_sec") is not None
    assert any("latency fields are all 0" in w for w in r.warnings)


def test_trackiq_real_values_kept() -> None:
    r = load(FIX / "seed001_autoperfpy.json")
    assert r.metrics["latency_p50_ms"].value == 42.6238
    assert r.metrics["temperature_celsius"].value == 38.14
    assert r.warnings == []


def test_vllm_ok() -> None:
    r = load(FIX / "vllm_ok.json")
    assert r.metrics["ttft_ms"].value == 40.1
    assert r.metrics["tokens_per_sec"].value == 487.6
    assert r.metrics["latency_p50_ms"].value == 2031.0
    assert r.samples["ttft_ms"][0] == pytest.approx(39.1)
    assert len(r.samples["ttft_ms"]) == 8


def test_vllm_zero_completed_is_not_measured() -> None:
    r = load(FIX / "vllm_zero.json")
    assert all(m.value is None and m.status == "unavailable" for m in r.metrics.values())
    assert r.samples == {}
    assert any("completed 0" in w for w in r.warnings)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _tq_with(tmp_path: Path, **changes: object) -> Path:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    for dotted, value in changes.items():
        obj = data
        *path, last = dotted.split("__")
        for k in path:
            obj = obj[k]
        obj[last] = value
    return _write(tmp_path, "tq.json", json.dumps(data))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"metrics__latency_p50_ms": "fast"}, "expected a number"),
        ({"metrics__latency_p50_ms": None}, "must be a number"),
        ({"workload__batch_size": -3}, "non-negative"),
        ({"workload__workload_type": "serving"}, "workload_type"),
        ({"platform": "x"}, "platform"),
        ({"regression__status": "ok"}, "regression.status"),
    ],
)
def test_trackiq_wrong_types_raise(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        load(_tq_with(tmp_path, **changes))


def test_nan_is_rejected(tmp_path: Path) -> None:
    text = (FIX / "seed001_autoperfpy.json").read_text().replace("42.6238", "NaN")
    with pytest.raises(InputError, match="NaN"):
        load(_write(tmp_path, "nan.json", text))


def test_vllm_negative_count_rejected(tmp_path: Path) -> None:
    data = json.loads((FIX / "vllm_ok.json").read_text())
    data["completed"] = -1
    with pytest.raises(InputError, match="non-negative"):
        load(_write(tmp_path, "v.json", json.dumps(data)))


def test_markdown_without_tables_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Latency or Throughput"):
        load(_write(tmp_path, "r.md", "# a report\n\nnothing measured\n"))


def test_markdown_bad_number_rejected(tmp_path: Path) -> None:
    text = (FIX / "md_002.md").read_text().replace("| P50 | 526.42 |", "| P50 | fast |")
    with pytest.raises(InputError, match="not a number"):
        load(_write(tmp_path, "r.md", text))


def _run_dir_with_rank_files(tmp_path: Path, step_lines: dict[int, list[str]]) -> Path:
    data = json.loads((FIX / "mc_run.json").read_text())
    data["world_size"] = len(step_lines)
    data["steps"] = {
        "rank_files": "ranks/rank_{rank:05d}.jsonl",
        "embedded": None,
        "reason": "too many rank-steps",
    }
    (tmp_path / "ranks").mkdir()
    for rank, lines in step_lines.items():
        (tmp_path / "ranks" / f"rank_{rank:05d}.jsonl").write_text("\n".join(lines))
    (tmp_path / "result.json").write_text(json.dumps(data))
    return tmp_path


def _step(step: int, ms: float, warmup: bool = False) -> str:
    return json.dumps({"type": "step", "step": step, "warmup": warmup, "step_time_ms": ms})


def test_samples_read_from_rank_files_when_not_embedded(tmp_path: Path) -> None:
    header = json.dumps({"type": "header", "rank": 0})
    run = _run_dir_with_rank_files(
        tmp_path,
        {
            0: [
                header,
                _step(0, 99.0, warmup=True),
                _step(1, 10.0),
                _step(2, 12.0),
                '{"type": "st',
            ],
            1: [header, _step(0, 98.0, warmup=True), _step(1, 11.0), _step(2, 9.0)],
        },
    )
    r = load(run)  # a directory: its result.json
    assert r.samples["latency_p50_ms"] == [11.0, 12.0]  # warm-up dropped, truncated line skipped


def test_missing_rank_file_means_no_samples_with_warning(tmp_path: Path) -> None:
    run = _run_dir_with_rank_files(tmp_path, {0: [_step(1, 10.0)]})
    (run / "ranks" / "rank_00000.jsonl").unlink()
    r = load(run)
    assert r.samples == {}
    assert any("no significance test" in w for w in r.warnings)
