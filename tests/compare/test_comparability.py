"""The comparability contract (issue 26, item 1): each situation of the issue, on the command line.

A defining field that differs makes the pair not comparable (both values shown, no verdict, no
gate) unless allowed; unknown on both sides is said, never taken as equal; across world sizes
only per-rank metrics are compared and `sweep --from` is suggested.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main

TESTS = Path(__file__).resolve().parents[1]
FIX = TESTS / "fixtures"


def _compare(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "c.json"
    code = main(["compare", *args, "--json", str(out)])
    return code, json.loads(out.read_text()) if out.exists() else {}


def _rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["metric"]: r for r in data["comparisons"][0]["rows"]}


def test_one_rank_vs_two_gates_no_memory_regression(tmp_path: Path) -> None:
    """Real 1-rank and 2-rank runs (a sweep's): memory utilisation doubles with two processes;
    that is no regression. Only the per-rank metrics are judged, and sweep --from is named."""
    sweep = TESTS / "golden" / "sweep_tiny"
    code, data = _compare(
        tmp_path, str(sweep / "n1-r1.result.json"), str(sweep / "n2-r1.result.json")
    )
    rows = _rows(data)
    # compute_ms, the one per-rank row with samples, is +135% inside a spread that cannot tell:
    # inconclusive; memory below its floor: not one row judged, so NOT JUDGED (exit 2)
    assert code == 2 and data["verdict"] == "not_judged"
    pair = data["comparisons"][0]
    assert not pair["regressions"]
    mem = rows["memory_utilization_percent"]
    assert mem["verdict"] == "not_comparable" and not mem["regression"]
    assert mem["b"] > 1.5 * mem["a"]  # two processes on the host: the situation of the issue
    assert "world_size: 1 vs 2" in mem["reason"]
    for name in ("throughput_samples_per_sec", "latency_p50_ms", "step_time_mean_ms"):
        assert rows[name]["verdict"] == "not_comparable", name
    # per rank: tested (its own verdict), where the other rows are not comparable
    assert rows["compute_ms"]["test"] == "mann-whitney-u"
    assert rows["compute_ms"]["verdict"] == "inconclusive"
    assert any("sweep --from" in w for w in pair["warnings"])
    comp = pair["comparability"]
    assert comp["across_world_sizes"] and not comp["comparable"]
    states = {f["field"]: f["state"] for f in comp["fields"]}
    assert states["world_size"] == states["global_batch"] == "different"
    assert states["workload"] == "same"


def test_vllm_concurrency_30_vs_40_is_not_comparable(tmp_path: Path) -> None:
    code, data = _compare(
        tmp_path,
        str(FIX / "serving" / "vllm_conc30.json"),
        str(FIX / "serving" / "vllm_conc40.json"),
    )
    rows = _rows(data)
    assert code == 2 and data["verdict"] == "not_judged"  # no row judged: never a pass
    ttft = rows["ttft_ms"]
    assert ttft["delta_pct"] == pytest.approx(33.0)  # the +33% the issue saw gated
    assert ttft["verdict"] == "not_comparable" and not ttft["regression"]
    assert "max_concurrency: 30 vs 40" in ttft["reason"]
    assert ttft["a"] is not None and ttft["b"] is not None  # both values shown
    assert not data["comparisons"][0]["regressions"]


def test_sglang_rates_2_vs_4_without_a_model(tmp_path: Path) -> None:
    """Two appended runs of one SGLang JSONL file (rates 2 and 4, no model recorded): the rate
    differs (not comparable), and the model is said to be unknown on both sides."""
    runs = FIX / "serving" / "sglang_rates_2_4.jsonl"
    code, data = _compare(tmp_path, f"{runs}#1", f"{runs}#2")
    rows = _rows(data)
    pair = data["comparisons"][0]
    assert code == 2 and data["verdict"] == "not_judged"  # no row judged: never a pass
    assert rows["throughput_samples_per_sec"]["verdict"] == "not_comparable"
    assert rows["ttft_ms"]["verdict"] == "not_comparable" and not rows["ttft_ms"]["regression"]
    assert "request_rate: 2 vs 4" in rows["ttft_ms"]["reason"]
    assert any(
        "unknown on both sides: not shown to be the same: model" in w for w in pair["warnings"]
    )
    states = {f["field"]: f["state"] for f in pair["comparability"]["fields"]}
    assert states["model"] == "unknown_both"


def test_allow_different_compares_and_says_so(tmp_path: Path) -> None:
    runs = FIX / "serving" / "sglang_rates_2_4.jsonl"
    code, data = _compare(tmp_path, f"{runs}#1", f"{runs}#2", "--allow-different", "request_rate")
    rows = _rows(data)
    assert rows["throughput_samples_per_sec"]["verdict"] != "not_comparable"
    assert any("compared although they differ" in w for w in data["comparisons"][0]["warnings"])
    assert main(["compare", f"{runs}#1", f"{runs}#2", "--allow-different", "nonsense"]) == 2


def test_unknown_on_one_side_is_said_not_taken_as_equal(tmp_path: Path) -> None:
    """A markdown report names no model; a vLLM result does: not shown to be the same."""
    code, data = _compare(
        tmp_path,
        str(FIX / "serving" / "vllm_conc30.json"),
        str(FIX / "serving" / "sglang_rate_inf.jsonl"),
    )
    pair = data["comparisons"][0]
    assert any("known on one side only" in w and "model" in w for w in pair["warnings"])


def test_a_few_failed_requests_do_not_switch_the_gate_off(tmp_path: Path) -> None:
    """A: 97 completed, 3 failed; B: 23% fewer requests/s, e2e p50 +19%: judged (coverage
    differs by 3%, said), a regression, exit 1. Case 01 (60 of 100 lost) stays not comparable."""
    code, data = _compare(
        tmp_path,
        str(FIX / "serving" / "vllm_97_of_100.json"),
        str(FIX / "serving" / "vllm_slower.json"),
    )
    rows = _rows(data)
    assert code == 1
    for name in ("throughput_samples_per_sec", "latency_p50_ms"):
        assert rows[name]["regression"], name
        assert "coverage differs by 3.0%" in rows[name]["reason"]


def test_estimated_timings_from_psutil_collector_are_not_gated(tmp_path: Path) -> None:
    """TrackIQ (AutoPerfPy) results whose latency and throughput come from PsutilCollector (CPU
    utilisation plus noise): estimated, shown, never gated; the power reader is simulated."""
    a, b = (
        FIX / "trackiq" / "autoperfpy_psutil_a.json",
        FIX / "trackiq" / "autoperfpy_psutil_b.json",
    )
    code, data = _compare(tmp_path, str(a), str(b))
    rows = _rows(data)
    assert code == 0
    for name in (
        "throughput_samples_per_sec",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
    ):
        assert (
            not rows[name]["regression"]
            and "estimated on both sides by one format" in rows[name]["reason"]
        )
    assert not data["comparisons"][0]["regressions"]
    out = tmp_path / "a.json"
    assert main(["convert", str(a), "--to", "minicluster", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["latency_p50_ms"]["status"] == "estimated"
    assert "PsutilCollector" in result["metrics"]["latency_p50_ms"]["method"]
    assert result["metrics"]["power_consumption_watts"]["status"] == "unavailable"
    unread = result["imported_from"]["unread_fields"]
    assert "tool_payload.samples" in unread and "tool_payload.inference_config" in unread


def test_a_collector_name_is_not_a_word_list() -> None:
    """A collector called "synthetic_dataset_loader" is unknown (said), not taken as simulated;
    a TrackIQ config declaring the estimation model marks the timings estimated by itself."""
    from minicluster.interop.trackiq import to_record

    data = json.loads((FIX / "trackiq" / "autoperfpy_psutil_a.json").read_text())
    data["tool_payload"]["collector_name"] = "synthetic_dataset_loader"
    del data["tool_payload"]["config"]
    del data["tool_payload"]["power_profile"]
    rec = to_record(data, "x")
    assert rec.metrics["latency_p50_ms"].status == "measured"
    assert any("a collector minicluster does not know" in w for w in rec.warnings)
    data = json.loads((FIX / "trackiq" / "autoperfpy_psutil_a.json").read_text())
    data["tool_payload"]["collector_name"] = "MyCollector"
    rec = to_record(data, "y")
    assert rec.metrics["latency_p50_ms"].status == "estimated"  # from base_latency_ms + noise


def test_vllm_fields_not_read_are_listed(tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    assert (
        main(
            [
                "convert",
                str(FIX / "compare" / "vllm_ok.json"),
                "--to",
                "minicluster",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert "total_token_throughput" in result["imported_from"]["unread_fields"]
    assert result["fingerprint"]["fields"]["max_concurrency"] == 4
    assert result["fingerprint"]["fields"]["request_rate"] == "inf"
