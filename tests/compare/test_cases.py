"""Each case in tests/fixtures/cases (real situations the comparator once got wrong; the folder's
README says where each comes from) gives the right output on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "cases"


def _compare(tmp_path: Path, case: str, *names: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "c.json"
    code = main(["compare", *(str(CASES / case / n) for n in names), "--json", str(out)])
    return code, json.loads(out.read_text()) if out.exists() else {}


def _rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["metric"]: r for r in data["comparisons"][0]["rows"]}


def test_01_lost_requests_are_a_regression_not_a_faster_server(tmp_path: Path) -> None:
    code, data = _compare(tmp_path, "01-vllm-partial-failures", "baseline.json", "candidate.json")
    rows = _rows(data)
    assert code == 1
    rate = rows["request_success_rate_percent"]
    assert (rate["a"], rate["b"], rate["verdict"], rate["regression"]) == (100, 40, "worse", True)
    for name in ("latency_p50_ms", "latency_p99_ms", "latency_mean_ms", "ttft_ms", "decode_tpt_ms"):
        assert rows[name]["verdict"] == "not_comparable", name
        assert "40 of 100 requests" in rows[name]["reason"]
    assert not any(r["verdict"] == "better" for r in rows.values())
    pair = data["comparisons"][0]
    assert pair["geomean"]["n"] == 1  # the success rate only: no mean over 40 survivors
    assert pair["regressions"] == ["request_success_rate_percent"]
    assert any("60 of 100 requests failed" in w for w in pair["warnings"])


@pytest.mark.parametrize(
    "order", [("report_ms.md", "report_s.md"), ("report_s.md", "report_ms.md")]
)
def test_04_seconds_and_gigabytes_are_read_in_their_units(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    code, data = _compare(tmp_path, "04-markdown-latency-seconds", *order)
    rows = _rows(data)
    assert code == 0
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms"):
        assert rows[name]["verdict"] == "no_change" and rows[name]["delta_abs"] == 0, name
    assert rows["latency_p50_ms"]["a"] == rows["latency_p50_ms"]["b"] == 1200.0
    mem = rows["memory_peak_mib"]
    assert mem["a"] == pytest.approx(1154.6e6 / 1024**2) and mem["verdict"] == "no_change"


def test_05_placeholder_cells_lose_only_their_metric(tmp_path: Path) -> None:
    code, data = _compare(tmp_path, "05-markdown-na-cell", "baseline.md", "candidate_na.md")
    rows = _rows(data)
    assert code == 0
    assert rows["latency_p99_ms"]["verdict"] == "missing"
    assert "not reported: '—' cell" in rows["latency_p99_ms"]["reason"]
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_mean_ms"):
        assert rows[name]["verdict"] == "no_change", name
    assert rows["throughput_samples_per_sec"]["verdict"] == "no_change"
    code, data = _compare(
        tmp_path, "05-markdown-na-cell", "baseline.md", "candidate_na_unused_row_only.md"
    )
    assert code == 0  # an N/A in the Std Dev row, which is not read, changes nothing
    assert all(r["verdict"] != "missing" for r in _rows(data).values())
    assert not any("N/A" in w for w in data["comparisons"][0]["warnings"])


def test_07_simulated_power_is_not_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "07-trackiq-simulated-power"
    out = tmp_path / "sim_as_mc.json"
    assert (
        main(
            [
                "convert",
                str(case / "trackiq_simulated_power.json"),
                "--to",
                "minicluster",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())["metrics"]
    for name in ("power_consumption_watts", "energy_per_step_joules", "temperature_celsius"):
        assert metrics[name]["status"] == "unavailable" and metrics[name]["value"] is None
        assert "simulated in the source" in metrics[name]["reason"]
    code, data = _compare(
        tmp_path,
        "07-trackiq-simulated-power",
        "trackiq_measured_power.json",
        "trackiq_simulated_power.json",
    )
    rows = _rows(data)
    assert code == 0
    for name in ("energy_per_step_joules", "performance_per_watt", "temperature_celsius"):
        assert rows[name]["verdict"] == "missing", name
        assert "simulated in the source" in rows[name]["reason"]
    assert not any(r["verdict"] in ("better", "worse") for r in rows.values())


def test_12_latency_json_is_not_a_serving_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "12-vllm-latency-json-percentiles"
    args = ["compare", str(case / "serving.json"), str(case / "latency.json")]
    assert main(args) == 2
    assert "unknown format" in capsys.readouterr().err
    assert main([*args, "--format", "vllm"]) == 2
    err = capsys.readouterr().err
    assert "no 'completed' field: not vLLM benchmark_serving output" in err
    assert "0 requests" not in err and err.count("\n") == 1


def test_21_nccl_tests_log_is_read_not_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real nccl-tests all_reduce_perf log (16 H100 ranks on 2 nodes): convert gives a
    collectives result with its busbw table; two logs compare busbw size by size; beside a CPU
    training run it is not comparable (different workload type), never misread as markdown;
    fleet reads per-node logs and names the slow node."""
    case = CASES / "21-nccl-tests-log-as-input"
    out = tmp_path / "nccl.json"
    assert (
        main(["convert", str(case / "all_reduce_perf.log"), "--to", "minicluster", "-o", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert result["workload"]["workload_type"] == "collectives"
    table = result["collectives"]["results"]
    assert len(table) == 31 and table[-1]["size_bytes"] == 8589934592
    assert table[-1]["busbw_gbps"] == 338.82 and table[-1]["algbw_gbps"] == 180.71
    assert result["metrics"]["busbw_gbps"]["value"] == 338.82
    assert result["world_size"] == 16 and result["nodes"] == 2
    assert result["fingerprint"]["fields"]["gpu_model"] == "NVIDIA H100 80GB HBM3"
    assert any("in-place" in f for f in result["imported_from"]["unread_fields"])
    # the published file (markdown preamble + the same stdout) reads the same: the same run, so
    # `compare` refuses the two as one run on both sides (one line, exit 2) ...
    capsys.readouterr()
    code, _ = _compare(tmp_path, case.name, "all_reduce_perf.log", "ztan-NCCL-test-result")
    err = capsys.readouterr().err
    assert code == 2 and "both sides are the same run" in err and err.count("\n") == 1
    # ... and the engine, given both, finds every size the same
    from minicluster.compare import compare
    from minicluster.interop import load

    pair = compare(
        [load(case / "all_reduce_perf.log"), load(case / "ztan-NCCL-test-result")]
    ).pairs[0]
    assert len(pair.sizes) == 31 and all(s["verdict"] == "no_change" for s in pair.sizes)
    assert {s["size"] for s in pair.sizes} >= {"8", "1M", "8G"}
    code, data = _compare(tmp_path, case.name, "minicluster_run.result.json", "all_reduce_perf.log")
    # not one row could be judged (another workload type): NOT JUDGED, never a pass
    assert code == 2 and data["verdict"] == "not_judged"
    assert all(r["verdict"] in ("not_comparable", "missing") for r in _rows(data).values())
    capsys.readouterr()
    fleet = sorted((case / "fleet").glob("node*.log"))
    assert main(["fleet", *map(str, fleet), "--json", str(tmp_path / "f.json")]) == 1
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["outliers"] == ["node4.log"]
    # one multi-node log alone: fleet says it spans 2 nodes (one log per node wanted), exit 2
    assert main(["fleet", str(case / "all_reduce_perf.log")]) == 2


def test_23_a_drifting_run_is_not_excused_by_its_own_spread(tmp_path: Path) -> None:
    """Two real 2-rank runs of the case's job, the second slowed 0.5 ms more each step by a torch
    optimizer hook (hooks/sitecustomize.py, not minicluster's fault injection): the drift is
    named, step time p50/p95 and mean are regressions, and throughput (global batch / mean step
    time) gets the same verdict as the mean step time."""
    code, data = _compare(
        tmp_path, "23-thermal-drift-excused-by-spread", "clean.result.json", "drift.result.json"
    )
    rows = _rows(data)
    pair = data["comparisons"][0]
    assert code == 1
    assert {"latency_p50_ms", "latency_p95_ms", "step_time_mean_ms"} <= set(pair["regressions"])
    assert "throughput_samples_per_sec" in pair["regressions"]
    assert rows["throughput_samples_per_sec"]["p_value"] == rows["step_time_mean_ms"]["p_value"]
    drift = pair["structure"]["drift.result.json"]
    assert drift["kind"] == "drift" and drift["change_pct"] > 50
    assert any("drift.result.json: step time drifts +0.6" in w for w in pair["warnings"])
    assert rows["latency_p95_ms"]["test"] == "quantile-exceedance-fisher"
    for name in ("latency_p50_ms", "step_time_mean_ms"):
        assert "beyond the run-to-run spread" in rows[name]["reason"], name


def test_throughput_and_mean_step_time_never_disagree() -> None:
    """Every pair of the recorded runs: the throughput row's verdict is the mean step time's
    (better/worse follow each metric's direction: one statistic, one verdict)."""
    from minicluster.compare import compare
    from minicluster.interop import load

    fix = CASES.parent / "compare"
    runs = [
        "mc11_clean_a.json",
        "mc11_clean_b.json",
        "mc11_straggler.json",
        "mc13_quiet_clean_1.json",
    ]
    for base in runs:
        for cand in runs:
            if base == cand:
                continue
            rows = {
                r.metric: r for r in compare([load(fix / base), load(fix / cand)]).pairs[0].rows
            }
            thr, mean = rows["throughput_samples_per_sec"], rows["step_time_mean_ms"]
            assert thr.verdict == mean.verdict, (base, cand)
            assert thr.regression == mean.regression, (base, cand)


def test_flops_rates_take_the_mean_step_time_verdict() -> None:
    """Two clean 2-rank runs (a new user's): achieved_tflops and tflops_per_rank are FLOPs per
    sample x throughput, so they take the step time's verdict; they were judged alone on too
    few samples and read 'worse (REGRESSION)' beside a throughput 'within the spread'."""
    from minicluster.compare import compare
    from minicluster.interop import load

    fix = CASES.parent / "compare"
    for base, cand in (("a", "b"), ("b", "a")):
        pair = compare(
            [
                load(fix / f"mc24_tflops_clean_{base}.json"),
                load(fix / f"mc24_tflops_clean_{cand}.json"),
            ]
        ).pairs[0]
        rows = {r.metric: r for r in pair.rows}
        mean = rows["step_time_mean_ms"]
        for name in ("throughput_samples_per_sec", "achieved_tflops", "tflops_per_rank"):
            assert rows[name].verdict == mean.verdict, (name, base)
            assert rows[name].regression == mean.regression, (name, base)


TRIAL = CASES / "31-trial-compare-defects"


def test_31_flops_rates_follow_a_step_time_that_was_not_tested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2-rank run against a 3-step run (its own verdict NOT JUDGED): step time, throughput and
    latency were `not tested` (3 samples), but achieved_tflops and tflops_per_rank, a constant
    times the throughput, were "worse (REGRESSION)" on the threshold alone and the command
    exited 1. They follow the step time they derive from (not tested, rule 9c), nothing is
    gated, and the comparison is NOT JUDGED (exit 2) for the input's own run."""
    code, data = _compare(tmp_path, TRIAL.name, "a1.result.json", "tiny.result.json")
    assert code == 2 and data["verdict"] == "not_judged" and not data["gate_failed"]
    rows = _rows(data)
    rows_tp = "throughput_samples_per_sec"
    for name in ("achieved_tflops", "tflops_per_rank", rows_tp):
        row = rows[name]
        assert row["verdict"] == "not_tested" and not row["regression"], (name, row["reason"])
        assert row["reason"].startswith("not tested, not gated: ")
        # the FLOPs rates say whose verdict they take (throughput has its own samples' reason)
        assert ("judged on step_time_mean_ms" in row["reason"]) == (name != rows_tp)
        assert row["delta_pct"] < -40  # the -40.6% that was gated
    pair = data["comparisons"][0]
    assert pair["regressions"] == [] and pair["geomean"]["n"] == 0
    assert pair["families"]["compute"]["worse"] == 0
    assert "regressions beyond 5%: none" in capsys.readouterr().out


def test_31_no_row_judged_is_not_judged_never_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 3-run repeats directory against one run: all 16 measured rows inconclusive, none
    judged, yet `compare` said ok (exit 0) and the JUnit had 24 of 24 skipped with
    "inconclusive: inconclusive:". Now NOT JUDGED (exit 2), said under the table and in
    --json (`nothing_judged`), one skipped `comparison` case, each reason said once."""
    out, xml = tmp_path / "c.json", tmp_path / "j.xml"
    argv = [str(TRIAL / "repA"), str(TRIAL / "a1.result.json"), "--json", str(out)]
    assert main(["compare", *argv, "--junit", str(xml)]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "NOT JUDGED: a1.result.json vs repA: no row could be judged (16 inconclusive" in said
    data = json.loads(out.read_text())
    assert data["verdict"] == "not_judged" and not data["gate_failed"]
    (pair,) = data["comparisons"]
    assert pair["nothing_judged"].startswith("a1.result.json vs repA: no row could be judged")
    assert pair["geomean"]["n"] == 0 and pair["own_not_judged"] == []
    text = xml.read_text()
    assert "inconclusive: inconclusive" not in text and "not_tested: not tested" not in text
    assert 'failures="0"' in text and "NOT JUDGED: a1.result.json vs repA" in text
    assert "inconclusive, not judged: judged on step_time_mean_ms" in text


def test_31_single_run_not_significant_is_inconclusive_not_no_change(tmp_path: Path) -> None:
    """Two 2-rank runs of 12 steps: latency p50 +42% with MWU p=0.54 and a smallest detectable
    change of hundreds of percent was "~ not significant" and counted "latency: 5 no change".
    As repeats and `history check` say it: inconclusive, not judged, never no change; with
    nothing else judged the comparison is NOT JUDGED (exit 2)."""
    code, data = _compare(tmp_path, TRIAL.name, "a1.result.json", "a2.result.json")
    rows = _rows(data)
    p50 = rows["latency_p50_ms"]
    assert p50["delta_pct"] > 40 and p50["p_value"] > 0.05 and p50["mde_pct"] > 100
    assert p50["verdict"] == "inconclusive" and not p50["regression"]
    assert p50["reason"].startswith("inconclusive, not judged: a +42.3% change")
    fam = data["comparisons"][0]["families"]["latency"]
    assert fam["no_change"] == 0 and fam["inconclusive"] == 5
    assert code == 2 and data["verdict"] == "not_judged"
    # memory: the peak below its 1 MiB floor, the utilisation (the same peak over the host's
    # total) below that floor relative to the peak
    assert rows["memory_peak_mib"]["below_floor"]
    util = rows["memory_utilization_percent"]
    assert util["verdict"] == "no_change" and util["below_floor"]
    assert "memory_peak_mib's 1 MiB floor" in util["reason"]
