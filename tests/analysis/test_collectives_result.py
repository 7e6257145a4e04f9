"""Aggregation of hand-made collective rank records into a result (no torch needed)."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.frame import Launch
from minicluster.analysis.records import RankRecords, read_run_dir
from minicluster.analysis.verdicts import exit_code
from minicluster.core import metrics as metrics_registry
from minicluster.core.errors import InputError
from minicluster.result.model import RunResult
from minicluster.result.schema import validate_result

MakeRecords = Callable[..., list[RankRecords]]  # the collective_records fixture (conftest)


def test_rows_take_the_max_across_ranks_and_nccl_tests_bandwidths(
    collective_records: MakeRecords,
) -> None:
    result = aggregate(collective_records(), aggregated_at="2026-01-01T00:00:01+00:00")
    validate_result(result)
    assert result["status"] == "ok"
    coll = result["collectives"]
    assert coll["rule"] == "time = mean over iters after warm-up, max across ranks"
    assert coll["formulas"]["busbw_factor"]["all_reduce"] == "2(n-1)/n"
    assert (coll["dtype"], coll["iters"], coll["warmup_iters"], coll["world_size"]) == (
        "float32",
        20,
        5,
        2,
    )
    rows = coll["results"]
    assert [(r["op"], r["size_bytes"]) for r in rows] == [
        ("all_reduce", 1024),
        ("all_reduce", 2048),
        ("reduce_scatter", 1024),
        ("reduce_scatter", 2048),
    ]
    small, large = rows[0], rows[1]
    assert small["time_us"] == 100.0  # the slower rank, not rank 0's 90 us
    assert small["count"] == 256
    assert small["algbw_gbps"] == pytest.approx(1024 / 100e-6 / 1e9)
    assert small["busbw_gbps"] == small["algbw_gbps"] * 2 * (2 - 1) / 2
    assert large["time_us"] == 150.0
    assert (small["wrong"], small["status"], small["reason"]) == (0, "measured", None)
    assert coll["wrong_total"] == 0
    assert exit_code(RunResult.from_json(result)) == 0


def test_an_unavailable_op_keeps_its_reason_and_no_number(collective_records: MakeRecords) -> None:
    rows = aggregate(collective_records())["collectives"]["results"]
    for r in rows[2:]:
        assert r["status"] == "unavailable"
        assert r["reason"] == "gloo does not run it: RuntimeError: no reduce_scatter"
        assert r["time_us"] is None and r["algbw_gbps"] is None and r["busbw_gbps"] is None
        assert r["wrong"] is None


def test_metrics_cover_the_registry_and_say_why_most_are_empty(
    collective_records: MakeRecords,
) -> None:
    result = aggregate(collective_records())
    m = result["metrics"]
    assert list(m) == [x.name for x in metrics_registry.for_workload("training")]
    busbw = m["busbw_gbps"]
    # the peak over sizes: 2048 B in 150 us beats 1024 B in 100 us
    assert busbw["value"] == pytest.approx(2048 / 150e-6 / 1e9)
    assert busbw["status"] == "derived" and "2K (2048 B)" in busbw["method"]
    assert m["allreduce_ms"]["value"] == pytest.approx(0.15)
    assert "largest size" in m["allreduce_ms"]["method"]
    assert m["memory_peak_mib"]["value"] == 100.0
    for name in ("throughput_samples_per_sec", "latency_p50_ms", "scaling_efficiency_pct"):
        assert m[name]["value"] is None
        assert m[name]["reason"] == "a collectives run has no training steps"
    assert m["power_consumption_watts"]["value"] is None
    assert result["workload"] == {
        "name": "collectives",
        "workload_type": "collectives",
        "per_rank_batch": None,
        "global_batch": None,
        "seq_len": None,
        "params": None,
    }


def test_wrong_elements_are_an_error_and_exit_1(collective_records: MakeRecords) -> None:
    result = aggregate(collective_records(wrong_on_rank1=7))
    validate_result(result)
    row = result["collectives"]["results"][1]
    assert (row["wrong"], row["wrong_ranks"]) == (7, [1])
    assert result["collectives"]["wrong_total"] == 7
    assert "all_reduce at 2048 B: 7 wrong elements (rank 1)" in result["errors"]
    assert result["status"] == "ok"  # the run ran; its check failed
    assert exit_code(RunResult.from_json(result)) == 1


def test_a_dead_rank_fails_the_run_and_is_named(collective_records: MakeRecords) -> None:
    recs = collective_records()
    recs[1].summary = None  # died: no summary
    recs[1].collectives = recs[1].collectives[:1]
    result = aggregate(recs, Launch(exit_codes={1: -9}))
    validate_result(result)
    assert result["status"] == "failed"
    assert result["failed_ranks"] == [1]
    assert (
        "rank 1: died after all_reduce at 1024 B (1 records), without a summary "
        "(exit code -9)" in result["errors"]
    )
    assert [r["status"] for r in result["ranks"]] == ["ok", "failed"]
    assert result["ranks"][1]["collectives_recorded"] == 1
    large = result["collectives"]["results"][1]
    assert large["ranks_reported"] == 1 and "#wrong is partial" in large["reason"]
    assert exit_code(RunResult.from_json(result)) == 3


def test_a_rank_that_never_started_is_named(collective_records: MakeRecords) -> None:
    recs = collective_records()[:1]
    result = aggregate(recs, Launch("ranks failed: rank 1 exit code 1"))
    assert result["status"] == "failed"
    assert result["ranks"][1]["status"] == "missing"
    assert any(e.startswith("rank 1: no records") for e in result["errors"])
    assert "launcher: ranks failed: rank 1 exit code 1" in result["errors"]


def test_aggregation_dispatches_on_the_header_job(collective_records: MakeRecords) -> None:
    result = aggregate(collective_records())
    assert result["workload"]["workload_type"] == "collectives"
    assert len(result["collectives"]["results"]) == 4
    with pytest.raises(InputError, match="no rank wrote a header"):
        aggregate([RankRecords(0)])


def test_rank_files_round_trip_through_read_run_dir(tmp_path: Path) -> None:
    from fixtures import recorded

    recorded.collectives_run(tmp_path)
    for rank in (0, 1):
        path = tmp_path / "ranks" / f"rank_{rank:05d}.jsonl"
        path.write_bytes(path.read_bytes()[:-25])  # a crash cut the last line mid-way
    back = read_run_dir(tmp_path)
    assert [len(r.collectives) for r in back] == [3, 3]  # the cut line is skipped
    result = aggregate(back)
    assert len(result["collectives"]["results"]) == 3
    assert any("truncated last line skipped" in e for e in result["errors"])


def test_schema_keeps_batches_for_training_and_nulls_for_collectives(
    collective_records: MakeRecords,
) -> None:
    result = aggregate(collective_records())
    bad = copy.deepcopy(result)
    bad["workload"]["global_batch"] = 128
    with pytest.raises(InputError, match="workload/global_batch"):
        validate_result(bad)
    bad = copy.deepcopy(result)
    bad["collectives"]["results"][2]["busbw_gbps"] = 0.0  # a number for an unavailable op
    with pytest.raises(InputError, match="collectives/results/2"):
        validate_result(bad)
    training = json.loads(
        (Path(__file__).resolve().parents[1] / "golden" / "run_2ranks.result.json").read_text()
    )
    training["workload"]["global_batch"] = None
    with pytest.raises(InputError, match="workload/global_batch"):
        validate_result(training)


def test_reports_show_the_table_and_no_training_nonsense(collective_records: MakeRecords) -> None:
    from minicluster.report.html import render_html
    from minicluster.report.markdown import render_markdown
    from minicluster.report.terminal import print_run_summary

    result = aggregate(collective_records(wrong_on_rank1=7))
    md = render_markdown(RunResult.from_json(result))
    assert (
        "| op | size (B) | count (elements) | time (us) | algbw (GB/s) | busbw (GB/s) | #wrong "
        "| status |" in md
    )
    assert "| all_reduce | 1024 | 256 | 100.0 | 0.01 | 0.01 | 0 | ok |" in md
    assert "| **all_reduce** | **2048** | **512** | **150.0** |" in md  # 7 wrong: emphasised
    assert "| reduce_scatter | 1024 | 128 | n/a | n/a | n/a | n/a | unavailable: gloo does" in md
    assert "time = mean over iters after warm-up, max across ranks" in md
    assert "2(n-1)/n for all_reduce; (n-1)/n for all_gather, reduce_scatter, all_to_all" in md
    assert "| batch | n/a (a collectives run has no batch) |" in md
    assert "None" not in md.split("## Metrics")[0]
    assert "| rank | host | status | records | peak RSS MiB | note |" in md
    html = render_html(RunResult.from_json(result))
    assert 'data-table="Collectives"' in html and 'data-plot="busbw"' in html
    out = io.StringIO()
    print_run_summary(RunResult.from_json(result), Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "workload collectives\n" in text  # no "(global batch None)"
    assert "busbw (GB/s)" in text and "unavailable: gloo does not run it" in text


def test_the_importer_reads_it_as_a_collectives_record(
    tmp_path: Path, collective_records: MakeRecords
) -> None:
    from minicluster.compare import compare
    from minicluster.interop import load

    path = tmp_path / "result.json"
    path.write_text(json.dumps(aggregate(collective_records())))
    rec = load(path, None)
    assert rec.workload_type == "collectives"
    assert rec.workload_name == "collectives 1K..2K float32"
    assert rec.measured("busbw_gbps") is not None
    assert rec.samples == {}
    training = load(Path(__file__).resolve().parents[1] / "fixtures" / "compare" / "mc_run.json")
    pair = compare([training, rec], 0, 5.0, 0.05).pairs[0]
    assert not pair.regressions  # only cross-applicable metrics between training and this
    busbw = next(r for r in pair.rows if r.metric == "busbw_gbps")
    assert busbw.verdict == "not_comparable"


def _window(source: dict[str, object]) -> dict[str, object]:
    return {
        "sample_interval_ms": 100.0,
        "window": {"t_begin_unix_s": 0.0, "t_end_unix_s": 4.0, "duration_s": 4.0,
                   "measured_steps": 4},
        "series_columns": ["t_unix_s", "power_w", "temp_c"],
        "sources": [source],
    }  # fmt: skip


def _reading(value: float | None, unit: str, reason: str | None = None) -> dict[str, object]:
    status = "measured" if value is not None else "unavailable"
    return {"value": value, "unit": unit, "status": status, "scope": "gpu", "method": "counter",
            "reason": reason}  # fmt: skip


def test_power_and_temperature_come_from_the_benchmark_window(
    collective_records: MakeRecords,
) -> None:
    records = collective_records()
    gpu = {
        "source": "nvml", "scope": "gpu", "id": "GPU-a", "available": True, "reason": None,
        "readings": {"energy_j": _reading(1200.0, "J"), "temperature_max_c": _reading(71.0, "°C")},
        "series": [[0.0, 300.0, 70.0], [1.0, 300.0, 71.0]],
    }  # fmt: skip
    assert records[0].summary is not None
    records[0].summary["telemetry"] = _window(gpu)
    result = aggregate(records)
    validate_result(result)
    m = result["metrics"]
    assert m["power_consumption_watts"]["value"] == pytest.approx(300.0)  # 1200 J over 4 s
    assert "whole benchmark window" in m["power_consumption_watts"]["method"]
    assert m["temperature_celsius"]["value"] == 71.0
    for name in ("energy_per_step_joules", "energy_per_sample_joules", "performance_per_watt"):
        assert (
            m[name]["value"] is None
            and m[name]["reason"] == "a collectives run has no training steps"
        )
    assert result["telemetry"]["series"]  # the power/temperature plot draws from these


def test_unreadable_telemetry_says_why_not_that_it_was_skipped(
    collective_records: MakeRecords,
) -> None:
    records = collective_records()
    none = {"source": "nvml", "scope": "gpu", "id": None, "available": False,
            "reason": "the ranks run on CPU: no GPU to read", "readings": {}, "series": []}  # fmt: skip
    assert records[0].summary is not None
    records[0].summary["telemetry"] = _window(none)
    m = aggregate(records)["metrics"]
    assert m["power_consumption_watts"]["value"] is None
    assert "no GPU to read" in m["power_consumption_watts"]["reason"]


def test_ctrl_c_in_the_teardown_of_a_benchmark_whose_ranks_all_finished_ok_is_ok(
    collective_records: Callable[..., list[RankRecords]],
) -> None:
    result = aggregate(collective_records(), Launch("interrupted", interrupted=True))
    assert result["status"] == "ok" and result["interrupted"] is False
    assert any("after every rank finished" in e for e in result["errors"])


def test_a_run_no_rank_finished_says_so_of_its_telemetry_not_that_it_predates_it(
    collective_records: MakeRecords,
) -> None:
    """A failed or interrupted rank records no telemetry window: the reason says the run ended
    first; only ranks that finished without one make a result from before such telemetry."""
    recs = collective_records()
    assert recs[0].summary is not None
    recs[0].summary = {**recs[0].summary, "status": "failed", "error": "RuntimeError: x"}
    recs[1].summary = None  # killed: no summary
    m = aggregate(recs, Launch(exit_codes={0: 1, 1: -9}))["metrics"]
    for name in ("power_consumption_watts", "temperature_celsius"):
        assert m[name]["value"] is None
        assert m[name]["reason"].startswith("not recorded: the run failed before any rank")
        assert "predates" not in m[name]["reason"]
    for status, launch in (("interrupted", Launch()), ("failed", Launch(interrupted=True))):
        recs[0].summary["status"] = status
        m = aggregate(recs, launch)["metrics"]
        assert "the run was interrupted before any rank" in m["power_consumption_watts"]["reason"]
    finished = aggregate(collective_records())["metrics"]  # ok summaries, no telemetry key
    assert "predates telemetry" in finished["power_consumption_watts"]["reason"]
