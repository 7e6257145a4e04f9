"""Importers keep what the source measured and say what it did not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    # "GPU Memory (MB)": 1154.6 decimal megabytes = 1101.1 MiB, estimated (MB may mean MiB)
    assert v["memory_peak_mib"] == pytest.approx(1154.6e6 / 1024**2)
    assert r.metrics["memory_peak_mib"].status == "estimated"
    assert v["device_utilization_percent"] == 6.6
    assert r.workload_type == "inference"
    # The latency table has no unit; the summary's "Lat Avg 526.7ms" says ms, and
    # "3648 pairs in 60.12 s" says the throughput is per second.
    assert "526.7ms" in (r.metrics["latency_p50_ms"].method or "")
    assert "60.12" in (r.metrics["throughput_samples_per_sec"].method or "")


def _unpiped(text: str) -> str:
    """`text` with every table written without its outer pipes, as GitHub also renders them."""
    return "\n".join(
        line.strip().strip("|").strip() if line.lstrip().startswith("|") else line
        for line in text.splitlines()
    )


@pytest.mark.parametrize("name", ["md_002.md", "md_004.md"])
def test_markdown_tables_without_outer_pipes_read_the_same(name: str, tmp_path: Path) -> None:
    piped = load(FIX / name)
    path = tmp_path / name
    path.write_text(_unpiped((FIX / name).read_text()))
    assert not any(line.startswith("|") for line in path.read_text().splitlines())
    bare = load(path)
    assert sniff(path.read_text().split("\n", 1)[1], path)[0] == "markdown"  # no heading
    assert {k: m.value for k, m in bare.metrics.items()} == {
        k: m.value for k, m in piped.metrics.items()
    }
    assert bare.details == piped.details and bare.warnings == piped.warnings


def test_an_escaped_pipe_stays_inside_its_cell(tmp_path: Path) -> None:
    """`\\|` in a row label is text (GitHub renders it as `|`): the row keeps its columns, so
    the dashboard's memory peak is read from the Max column, not one cell to the right."""
    text = (FIX / "md_002.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("| GPU Memory (MB)"))
    edited = text.replace(line, line.replace("GPU Memory (MB)", "GPU Memory \\| all GPUs (MB)"))
    path = tmp_path / "escaped.md"
    path.write_text(edited)
    assert "\\| all GPUs" in path.read_text()
    r = load(path)
    assert r.metrics["memory_peak_mib"].value == pytest.approx(1154.6e6 / 1024**2)
    assert "row label 'GPU Memory | all GPUs (MB)'" in (r.metrics["memory_peak_mib"].method or "")


def test_markdown_seed_004() -> None:
    r = load(FIX / "md_004.md")
    v = {k: m.value for k, m in r.metrics.items()}
    assert (v["latency_mean_ms"], v["latency_p99_ms"]) == (194.02, 2277.85)
    assert v["throughput_samples_per_sec"] == 164.92
    assert r.details["throughput_percentiles"]["p95"] == 274.36
    assert v["device_utilization_percent"] == 93.5
    assert v["memory_peak_mib"] == pytest.approx(1271.6e6 / 1024**2)


def test_minicluster_samples_are_the_series_the_metrics_came_from() -> None:
    data = json.loads((FIX / "mc11_clean_a.json").read_text())
    series = data["steps"]["series"]
    r = load(FIX / "mc11_clean_a.json")
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "step_time_mean_ms"):
        assert r.samples[name] == series["step_time_ms"]
    for name in (
        "compute_ms",
        "allreduce_ms",
        "allreduce_wait_ms",
        "allreduce_transfer_ms",
        "exposed_comm_ms",
        "busbw_gbps",
    ):
        assert r.samples[name] == series[name], name
    gb = data["workload"]["global_batch"]
    expected = [gb * 1000 / t for t in series["step_time_ms"]]
    assert r.samples["throughput_samples_per_sec"] == pytest.approx(expected)
    # each metric is its statistic of those samples (what compare resamples)
    assert np.median(r.samples["compute_ms"]) == pytest.approx(
        data["metrics"]["compute_ms"]["value"], abs=1e-4
    )
    assert "communication_overhead_percent" not in r.samples  # a ratio of sums: no series
    assert r.measured("power_consumption_watts") is None
    assert r.workload_type == "training" and r.warnings == []


def test_result_without_series_has_no_samples() -> None:
    r = load(FIX / "mc_run.json")  # minicluster/1.0: steps embedded, no series
    assert r.samples == {} and r.series is None


def test_series_that_does_not_give_the_value_back_is_not_used(tmp_path: Path) -> None:
    data = json.loads((FIX / "mc11_clean_a.json").read_text())
    data["steps"]["series"]["compute_ms"] = [x * 2 for x in data["steps"]["series"]["compute_ms"]]
    r = load(_write(tmp_path, "r.json", json.dumps(data)))
    assert "compute_ms" not in r.samples and "latency_p50_ms" in r.samples
    assert any("compute_ms: the median of its per-step series" in w for w in r.warnings)


def test_result_moved_without_its_rank_files_keeps_its_samples(tmp_path: Path) -> None:
    data = json.loads((FIX / "mc11_clean_a.json").read_text())
    assert data["steps"]["rank_files"]  # the result points at rank files that are not there
    moved = tmp_path / "elsewhere" / "result.json"
    moved.parent.mkdir()
    moved.write_text(json.dumps(data))
    assert load(moved.parent).samples == load(FIX / "mc11_clean_a.json").samples


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
        assert "with work done" in (r.metrics[name].reason or "")
    assert r.measured("tokens_per_sec") is not None
    assert any("latency_p50_ms = 0 ms" in w for w in r.warnings)


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
    requests = {"requests_completed", "requests_failed", "request_success_rate_percent"}
    assert r.metrics["requests_completed"].value == 0
    assert all(
        m.value is None and m.status == "unavailable"
        for name, m in r.metrics.items()
        if name not in requests
    )
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


def test_tokens_per_second_samples_of_a_language_model_run() -> None:
    # a real 2-rank transformer run (seq_len 32, 2 + 12 steps) on the project's CPU VM
    data = json.loads((FIX / "mc11_transformer.json").read_text())
    r = load(FIX / "mc11_transformer.json")
    seq_len = data["workload"]["seq_len"]
    assert r.samples["tokens_per_sec"] == pytest.approx(
        [x * seq_len for x in r.samples["throughput_samples_per_sec"]]
    )
    n = len(r.samples["tokens_per_sec"])
    harmonic = n / sum(1 / x for x in r.samples["tokens_per_sec"])
    assert harmonic == pytest.approx(data["metrics"]["tokens_per_sec"]["value"], rel=1e-4)
    assert r.warnings == []


def test_every_metric_with_a_series_names_its_statistic() -> None:
    from minicluster.core import metrics
    from minicluster.interop.series import SERIES_OF_METRIC

    for name in (*SERIES_OF_METRIC, "throughput_samples_per_sec", "tokens_per_sec"):
        m = metrics.get(name)
        assert m is not None and m.per_step and m.statistic is not None, name


def test_a_run_is_named_by_its_directory_and_through_a_link_by_its_target(tmp_path: Path) -> None:
    """`compare runs/latest runs/X` must say which run `latest` was, not "latest"."""
    run = tmp_path / "20261130-000000-abcdef"
    run.mkdir()
    (run / "result.json").write_text((FIX / "mc11_clean_a.json").read_text())
    (tmp_path / "latest").symlink_to(run.name)
    assert load(run).label == "20261130-000000-abcdef"
    assert load(tmp_path / "latest").label == "20261130-000000-abcdef"
    assert load(tmp_path / "latest" / "result.json").label == "20261130-000000-abcdef"
    assert load(FIX / "mc11_clean_a.json").label == "mc11_clean_a.json"
