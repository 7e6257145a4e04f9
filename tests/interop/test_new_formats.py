"""SGLang bench_serving JSONL and nccl-tests stdout as first-class inputs (issue 26, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicluster.cli import main
from minicluster.core.errors import InputError
from minicluster.interop import load
from minicluster.interop.detect import load_runs

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SERVING = FIX / "serving"
NCCL = FIX / "cases" / "21-nccl-tests-log-as-input"


def test_sglang_jsonl_of_appended_runs() -> None:
    runs = load_runs(SERVING / "sglang_rates_2_4.jsonl")
    assert [r.label for r in runs] == ["sglang_rates_2_4.jsonl#1", "sglang_rates_2_4.jsonl#2"]
    r = runs[0]
    assert r.source_format == "sglang"
    # its end-to-end latency is read (vLLM calls it e2el, SGLang e2e_latency)
    assert r.metrics["latency_p50_ms"].value == 606.86
    assert r.metrics["latency_mean_ms"].value == 2098.07
    assert r.fingerprint["fields"]["request_rate"] == 2  # type: ignore[index]
    assert r.fingerprint["fields"]["model"] is None  # type: ignore[index]
    assert "std_e2e_latency_ms" in r.unread_fields and "accept_length" in r.unread_fields
    with pytest.raises(InputError, match="holds 2 runs"):
        load(SERVING / "sglang_rates_2_4.jsonl")
    assert (
        load(Path(f"{SERVING / 'sglang_rates_2_4.jsonl'}#2")).fingerprint["fields"]["request_rate"]
        == 4
    )  # type: ignore[index]


def test_infinity_is_a_request_rate_not_a_metric(tmp_path: Path) -> None:
    r = load(SERVING / "sglang_rate_inf.jsonl")
    assert r.fingerprint["fields"]["request_rate"] == "inf"  # type: ignore[index]
    assert r.details["request_rate"] == "inf"
    bad = tmp_path / "bad.jsonl"
    line = (
        (SERVING / "sglang_rate_inf.jsonl")
        .read_text()
        .replace('"median_e2e_latency_ms": 1187.2', '"median_e2e_latency_ms": Infinity')
    )
    bad.write_text(line)
    with pytest.raises(InputError, match="median_e2e_latency_ms"):
        load(bad)


def test_sglang_output_details_give_failures_and_samples(tmp_path: Path) -> None:
    d = json.loads((SERVING / "sglang_rate_inf.jsonl").read_text().replace("Infinity", "null"))
    d["completed"] = 3
    d["ttfts"] = [0.08, 0.09, 0.0, 0.1]
    d["errors"] = ["", "", "timeout", ""]
    p = tmp_path / "details.jsonl"
    p.write_text(json.dumps(d) + "\n")
    r = load(p)
    assert r.metrics["requests_failed"].value == 1
    assert r.metrics["request_success_rate_percent"].value == 75.0
    assert r.samples["ttft_ms"] == pytest.approx([80.0, 90.0, 100.0])
    assert any("1 of 4 requests failed" in w for w in r.warnings)


def test_convert_sglang_to_minicluster_keeps_unread_fields(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert (
        main(
            [
                "convert",
                str(SERVING / "sglang_rate_inf.jsonl"),
                "--to",
                "minicluster",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["imported_from"]["format"] == "sglang"
    assert "input_throughput" in result["imported_from"]["unread_fields"]
    assert result["fingerprint"]["fields"]["request_rate"] == "inf"
    assert (
        main(
            [
                "convert",
                str(SERVING / "sglang_rates_2_4.jsonl"),
                "--to",
                "minicluster",
                "-o",
                str(out),
            ]
        )
        == 2
    )


def test_nccl_tests_op_and_columns() -> None:
    r = load(NCCL / "all_reduce_perf.log")
    rows = r.details["collective_sizes"]
    assert rows[0] == {
        "op": "all_reduce",
        "size_bytes": 8,
        "nominal_bytes": 8,
        "count": 2,
        "time_us": 135.8,
        "algbw_gbps": 0.0,
        "busbw_gbps": 0.0,
        "wrong": 0,
        "status": "measured",
        "reason": None,
    }
    assert r.details["iters"] == 20 and r.details["warmup_iters"] == 5
    assert r.fingerprint["fields"]["world_size"] == 16  # type: ignore[index]
    assert r.fingerprint["fields"]["nodes"] == 2  # type: ignore[index]


def test_nccl_tests_without_a_name_uses_the_columns(tmp_path: Path) -> None:
    """A bare log named x.log: redop sum, root -1, count x 4 = size: all_reduce; an allgather log
    (redop none, root -1) cannot be told from alltoall: refused, saying how to name it."""
    text = (NCCL / "all_reduce_perf.log").read_text()
    p = tmp_path / "x.log"
    p.write_text(text)
    assert load(p).details["collective_sizes"][0]["op"] == "all_reduce"
    p.write_text(text.replace("     sum      -1", "    none      -1"))
    with pytest.raises(InputError, match="all_gather_perf.log"):
        load(p)
    q = tmp_path / "all_gather_perf.log"
    q.write_text(text.replace("     sum      -1", "    none      -1"))
    assert load(q).details["collective_sizes"][0]["op"] == "all_gather"
