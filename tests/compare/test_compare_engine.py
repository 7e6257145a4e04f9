"""The comparator's rules (DESIGN.md section 7), one test each, on hand-made records."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

import pytest

from minicluster.compare import compare
from minicluster.compare.engine import Row, fmt_p
from minicluster.core.coverage import Coverage
from minicluster.core.errors import InputError
from minicluster.interop.record import BenchmarkRecord, registry_metric
from minicluster.report.comparison import to_markdown
from minicluster.result.model import RunResult


def rec(
    label: str,
    values: dict[str, float | None],
    samples: dict[str, list[float]] | None = None,
    workload_type: str = "training",
    hardware: str | None = "cpu-x",
) -> BenchmarkRecord:
    return BenchmarkRecord(
        label=label,
        source_format="minicluster",
        tool="t",
        tool_version="1",
        workload_type=workload_type,  # type: ignore[arg-type]
        workload_name="w",
        hardware=hardware,
        metrics={
            k: registry_metric(k, v, "measured", "test", "not measured here")
            for k, v in values.items()
        },
        samples=samples or {},
    )


def row(a: BenchmarkRecord, b: BenchmarkRecord, metric: str, **kw: float) -> Row:
    c = compare([a, b], **kw)  # type: ignore[arg-type]
    return next(r for r in c.pairs[0].rows if r.metric == metric)


def test_null_is_never_compared() -> None:
    r = row(
        rec("a", {"latency_p50_ms": None}), rec("b", {"latency_p50_ms": 18.0}), "latency_p50_ms"
    )
    assert r.verdict == "missing"
    assert r.delta_abs is None and r.delta_pct is None
    assert "a: not measured (not measured here)" in r.reason


def test_zero_baseline_gives_question_mark_not_inf() -> None:
    a = rec("a", {"throughput_samples_per_sec": 0.0})
    b = rec("b", {"throughput_samples_per_sec": 202.76})
    c = compare([a, b])
    r = c.pairs[0].rows[0]
    assert r.delta_abs == pytest.approx(202.76)
    assert r.delta_pct is None
    assert not r.regression
    md = to_markdown(c)
    assert "| ? |" in md and "inf" not in md


def test_temperature_lower_is_better() -> None:
    r = row(
        rec("a", {"temperature_celsius": 80.0}),
        rec("b", {"temperature_celsius": 60.0}),
        "temperature_celsius",
    )
    assert r.verdict == "better"
    r = row(
        rec("a", {"temperature_celsius": 60.0}),
        rec("b", {"temperature_celsius": 80.0}),
        "temperature_celsius",
    )
    assert r.verdict == "worse" and r.regression


def test_metric_without_direction_has_no_winner() -> None:
    r = row(
        rec("a", {"power_consumption_watts": 100.0}),
        rec("b", {"power_consumption_watts": 300.0}),
        "power_consumption_watts",
    )
    assert r.verdict == "not_comparable"
    assert r.delta_pct == pytest.approx(200.0)


def test_not_significant_difference_is_never_a_regression_nor_no_change_when_unresolved() -> None:
    """A single run a side, +100 % that the test cannot tell from noise: not gated, and not
    "no change" either (the old verdict): inconclusive, not judged, as with repeats and
    `history check` (rule 9b)."""
    sa = [10.0, 30.0, 12.0, 28.0, 11.0, 29.0]
    sb = [13.0, 31.0, 9.0, 40.0, 12.5, 27.0]
    a = rec("a", {"latency_p50_ms": 10.0}, {"latency_p50_ms": sa})
    b = rec("b", {"latency_p50_ms": 20.0}, {"latency_p50_ms": sb})  # +100 %, but noise
    r = row(a, b, "latency_p50_ms")
    assert r.test == "mann-whitney-u" and r.p_value is not None and r.p_value > 0.05
    assert r.verdict == "inconclusive" and not r.regression
    assert r.reason.startswith("inconclusive, not judged: a +100% change"), r.reason
    assert "not significant" in r.reason and "record more runs" in r.reason
    assert (r.n_a, r.n_b) == (6, 6)
    c = compare([a, b])
    assert "| inconclusive |" in to_markdown(c) and not c.has_regression
    assert c.pairs[0].families["latency"]["inconclusive"] == 1
    assert c.pairs[0].families["latency"]["no_change"] == 0


def test_not_significant_small_change_on_a_steady_run_is_no_change() -> None:
    """Not significant, +0.5 %, and a smallest detectable change under 3x the threshold: the
    comparison could have seen a regression, so `~` (no change) stands."""
    g = random.Random(0)
    sa = [100 + g.gauss(0, 2) for _ in range(40)]
    sb = [100.3 + g.gauss(0, 2) for _ in range(40)]
    a = rec("a", {"latency_p50_ms": statistics.median(sa)}, {"latency_p50_ms": sa})
    b = rec("b", {"latency_p50_ms": statistics.median(sb)}, {"latency_p50_ms": sb})
    r = row(a, b, "latency_p50_ms")
    assert r.mde_pct is not None and r.mde_pct < 15, r.reason
    assert r.p_value is not None and r.p_value > 0.05
    assert r.verdict == "no_change" and r.reason.startswith("~ not significant"), r.reason


def test_regression_needs_significance_and_threshold() -> None:
    sa = [10.0, 10.1, 10.2, 10.05, 10.15, 10.12]
    small = [x * 1.02 for x in sa]  # every step slower: significant, but only +2 %
    big = [x * 1.5 for x in sa]
    a = rec("a", {"latency_p50_ms": 10.1}, {"latency_p50_ms": sa})
    b_small = rec("b", {"latency_p50_ms": 10.1 * 1.02}, {"latency_p50_ms": small})
    r = row(a, b_small, "latency_p50_ms")
    assert r.p_value is not None and r.p_value < 0.05
    assert r.verdict == "no_change" and not r.regression and "threshold" in r.reason
    b_big = rec("b", {"latency_p50_ms": 15.15}, {"latency_p50_ms": big})
    r = row(a, b_big, "latency_p50_ms")
    assert r.verdict == "worse" and r.regression
    assert compare([a, b_big]).has_regression
    assert not compare([a, b_small]).has_regression


def test_fewer_than_four_samples_gives_no_test() -> None:
    a = rec("a", {"latency_p50_ms": 10.0}, {"latency_p50_ms": [10.0, 10.0, 10.0]}, "inference")
    b = rec("b", {"latency_p50_ms": 20.0}, {"latency_p50_ms": [20.0] * 4}, "inference")
    r = row(a, b, "latency_p50_ms")
    assert r.test is None and r.p_value is None
    assert "no test" in r.reason and r.verdict == "worse"


def test_per_step_metric_of_a_training_run_without_samples_is_not_tested() -> None:
    a = rec("a", {"compute_ms": 10.0, "memory_peak_mib": 100.0})
    b = rec("b", {"compute_ms": 20.0, "memory_peak_mib": 100.0})  # +100 %, but one number each
    c = compare([a, b])
    r = next(x for x in c.pairs[0].rows if x.metric == "compute_ms")
    assert r.verdict == "not_tested" and not r.regression
    assert "not tested, not gated" in r.reason and "steps.series" in r.reason
    assert not c.has_regression
    assert c.pairs[0].geomean_n == 1 and c.pairs[0].geomean_excluded["not_tested"] == 1
    few = rec("c", {"compute_ms": 20.0}, {"compute_ms": [20.0, 21.0, 19.0]})
    r = row(rec("a", {"compute_ms": 10.0}, {"compute_ms": [10.0] * 50}), few, "compute_ms")
    assert r.verdict == "not_tested" and "3 per-step samples, fewer than 4" in r.reason


def test_difference_below_the_noise_floor_is_no_change() -> None:
    # issue 13: allreduce_wait_ms 0.0058 -> 0.02 ms was "+163% worse (REGRESSION)"
    sa = [0.005, 0.006, 0.0058, 0.0061, 0.0057, 0.0059] * 5
    sb = [x + 0.0142 for x in sa]  # every step slower: significant, +245 %
    a = rec("a", {"allreduce_wait_ms": 0.0058}, {"allreduce_wait_ms": sa})
    b = rec("b", {"allreduce_wait_ms": 0.02}, {"allreduce_wait_ms": sb})
    c = compare([a, b])
    r = c.pairs[0].rows[0]
    assert r.verdict == "no_change" and r.below_floor and not r.regression
    assert "below the noise floor" in r.reason and r.noise_floor == 0.05
    assert c.pairs[0].geomean_ratio is None and c.pairs[0].geomean_excluded["below_noise_floor"]
    above = rec("b", {"allreduce_wait_ms": 0.2}, {"allreduce_wait_ms": [x * 34 for x in sa]})
    assert row(a, above, "allreduce_wait_ms").verdict == "worse"


def test_difference_within_the_run_to_run_spread_is_no_change() -> None:
    # Steps come in phases: each run has a slow phase (a shared host), at different times.
    # Step by step B is slower more often (Mann-Whitney: p < 0.05, +10 %), but A's own
    # blocks of 10 steps move by far more than the difference between the runs.
    a_steps = [10.0 + 0.01 * i for i in range(10)] * 3 + [16.0 + 0.01 * i for i in range(10)] * 2
    b_steps = [11.0 + 0.01 * i for i in range(10)] * 3 + [17.6 + 0.01 * i for i in range(10)] * 2
    a = rec("a", {"compute_ms": 12.0}, {"compute_ms": a_steps})
    b = rec("b", {"compute_ms": 13.2}, {"compute_ms": b_steps})
    r = row(a, b, "compute_ms")
    assert r.p_value is not None and r.p_value < 0.05 and r.delta_pct == pytest.approx(10.0)
    # +10 % worse inside the spread: neither confirmed nor ruled out (rule 9b), never "~"
    assert r.verdict == "inconclusive" and not r.regression
    assert r.reason.startswith("inconclusive, not judged: a +10% change"), r.reason
    assert "the run-to-run spread can neither confirm nor rule out" in r.reason
    assert r.ci_low is not None and r.ci_high is not None and r.ci_low < 0 < r.ci_high
    # A run without phases, and B 10 % slower in every step: beyond the spread.
    flat = [10.0 + 0.05 * (i % 7) for i in range(50)]
    a = rec("a", {"compute_ms": 10.15}, {"compute_ms": flat})
    b = rec("b", {"compute_ms": 11.165}, {"compute_ms": [x * 1.1 for x in flat]})
    r = row(a, b, "compute_ms")
    assert r.verdict == "worse" and r.regression and "beyond the run-to-run spread" in r.reason


def test_covering_fewer_requests_is_not_comparable_never_better() -> None:
    a = rec("a", {"latency_p50_ms": 4700.0}, workload_type="inference")
    b = rec("b", {"latency_p50_ms": 2800.0}, workload_type="inference")
    a.metrics["latency_p50_ms"] = dataclasses.replace(
        a.metrics["latency_p50_ms"], coverage=Coverage("requests", 100, 100)
    )
    b.metrics["latency_p50_ms"] = dataclasses.replace(
        b.metrics["latency_p50_ms"], coverage=Coverage("requests", 40, 100)
    )
    r = row(a, b, "latency_p50_ms")
    assert r.verdict == "not_comparable" and "b covers less" in r.reason
    assert "40 of 100 requests" in r.reason
    r = row(b, a, "latency_p50_ms")  # the other way round too: never "worse" either
    assert r.verdict == "not_comparable"


def test_fmt_p_keeps_p_on_its_side_of_alpha() -> None:
    assert fmt_p(0.0693, 0.05) == "0.0693"
    assert fmt_p(0.049996, 0.05) == "0.049996"
    assert fmt_p(0.050004, 0.05) == "0.05"  # shown as 0.05, still read as >= alpha


def test_no_overall_winner_counts_per_family_and_geomean() -> None:
    values_a = {
        "throughput_samples_per_sec": 100.0,
        "latency_p50_ms": 10.0,
        "memory_peak_mib": 100.0,
    }
    values_b = {
        "throughput_samples_per_sec": 200.0,
        "latency_p50_ms": 20.0,
        "memory_peak_mib": 100.0,
    }
    a = rec("a", values_a, workload_type="inference")
    b = rec("b", values_b, workload_type="inference")
    p = compare([a, b]).pairs[0]
    assert p.families["throughput"]["better"] == 1
    assert p.families["latency"]["worse"] == 1
    assert p.families["memory"]["no_change"] == 1
    assert p.geomean_n == 3
    assert p.geomean_ratio == pytest.approx(math.exp((math.log(2) + math.log(0.5) + 0) / 3))
    assert "winner" not in to_markdown(compare([a, b])).lower()


def test_across_workload_types_values_and_ratio_only() -> None:
    a = rec(
        "a",
        {
            "latency_p50_ms": 40.0,
            "throughput_samples_per_sec": 17.0,
            "communication_overhead_percent": None,
        },
        workload_type="inference",
    )
    b = rec(
        "b",
        {"latency_p50_ms": 15.0, "throughput_samples_per_sec": 105.0, "step_time_mean_ms": 15.0},
    )
    p = compare([a, b]).pairs[0]
    by = {r.metric: r for r in p.rows}
    assert by["latency_p50_ms"].verdict == "not_comparable"
    assert "training step latency vs inference request latency" in by["latency_p50_ms"].reason
    tp = by["throughput_samples_per_sec"]
    assert tp.verdict == "not_comparable" and tp.ratio == pytest.approx(105 / 17)
    assert (tp.a, tp.b) == (17.0, 105.0)
    assert any("workload types differ" in w for w in p.warnings)
    assert p.geomean_ratio is None and p.geomean_n == 0
    assert not compare([b, a]).has_regression  # different tools: never a gated regression


def test_different_models_values_and_ratio_only() -> None:
    a = rec("a", {"throughput_samples_per_sec": 100.0}, workload_type="inference")
    b = rec("b", {"throughput_samples_per_sec": 50.0}, workload_type="inference")
    b.workload_name = "another-model"
    p = compare([a, b]).pairs[0]
    r = p.rows[0]
    assert r.verdict == "not_comparable" and "workloads differ" in r.reason
    assert r.ratio == 0.5 and not r.regression and p.geomean_n == 0


def test_hardware_difference_is_warned() -> None:
    p = compare([rec("a", {}, hardware="A100"), rec("b", {}, hardware="H100")]).pairs[0]
    assert any("hardware differs" in w for w in p.warnings)


def test_different_world_size_backend_or_batch_is_warned() -> None:
    a, b = rec("a", {}), rec("b", {})
    a.details.update(world_size=2, backend="gloo", global_batch=128)
    b.details.update(world_size=4, backend="gloo", global_batch=512)
    warnings = compare([a, b]).pairs[0].warnings
    assert "world sizes (ranks) differ (2 vs 4)" in warnings
    assert "global batches differ (128 vs 512)" in warnings
    assert not any("backends" in w for w in warnings)  # the same on both sides
    c = rec("c", {})  # a tool that does not record it: nothing to say
    assert not any("world sizes" in w for w in compare([a, c]).pairs[0].warnings)


def test_several_candidates_against_baseline() -> None:
    a, b, c = (rec(x, {"latency_p50_ms": v}) for x, v in (("a", 10.0), ("b", 11.0), ("c", 9.0)))
    comp = compare([a, b, c], baseline_index=2)
    assert comp.baseline.label == "c"
    assert [p.b.label for p in comp.pairs] == ["a", "b"]


@pytest.mark.parametrize(
    "kw", [{"threshold_pct": -1.0}, {"threshold_pct": math.nan}, {"alpha": 0.0}, {"alpha": 1.5}]
)
def test_bad_options_raise_input_error(kw: dict[str, float]) -> None:
    with pytest.raises(InputError):
        compare([rec("a", {}), rec("b", {})], **kw)  # type: ignore[arg-type]


def test_values_out_of_range_are_not_compared() -> None:
    r = row(
        rec("a", {"latency_p50_ms": -1e308}), rec("b", {"latency_p50_ms": 1e308}), "latency_p50_ms"
    )
    assert r.verdict == "not_comparable" and r.delta_abs is None and r.delta_pct is None
    r = row(
        rec("a", {"latency_p50_ms": 1e-310}), rec("b", {"latency_p50_ms": 1e308}), "latency_p50_ms"
    )
    assert r.verdict == "not_comparable"


def test_results_timed_by_different_methods_are_not_comparable() -> None:
    import copy
    import json
    from pathlib import Path

    from minicluster.interop.minicluster import to_record

    golden = Path(__file__).resolve().parents[1] / "golden" / "run_2ranks.result.json"
    data = json.loads(golden.read_text())
    other = copy.deepcopy(data)
    other["timing_method"] = "comm_hook_host_clock"
    a, b = to_record(RunResult.from_json(data), "a"), to_record(RunResult.from_json(other), "b")
    pair = compare([a, b]).pairs[0]
    assert any(
        "timing_method: ddp_runtime_stats vs comm_hook_host_clock" in w for w in pair.warnings
    )
    assert all(r.verdict in ("not_comparable", "missing") for r in pair.rows)
    assert not pair.regressions
    allowed = compare([a, b], allowed=("timing_method",)).pairs[0]
    assert any("compared although they differ" in w for w in allowed.warnings)
    assert any(r.verdict == "no_change" for r in allowed.rows)
    assert not any(
        "timing_method" in w
        for w in compare([a, to_record(RunResult.from_json(data), "c")]).pairs[0].warnings
    )


def test_the_family_tally_counts_the_rows_verdicts() -> None:
    """A FLOPs rate twice as high on the candidate but judged on the step time (no change):
    the compute family's tally says what its rows say, never "2 better" over two no_change
    rows."""
    import random

    rng = random.Random(1)
    sa = [10 + rng.gauss(0, 1) for _ in range(20)]
    sb = [10 + rng.gauss(0, 1) for _ in range(20)]
    a = rec(
        "a",
        {"step_time_mean_ms": sum(sa) / 20, "achieved_tflops": 1.0, "tflops_per_rank": 0.5},
        {"step_time_mean_ms": sa},
    )
    b = rec(
        "b",
        {"step_time_mean_ms": sum(sb) / 20, "achieved_tflops": 2.0, "tflops_per_rank": 1.0},
        {"step_time_mean_ms": sb},
    )
    p = compare([a, b]).pairs[0]
    verdicts = {r.metric: r.verdict for r in p.rows if r.family == "compute"}
    assert verdicts == {"achieved_tflops": "no_change", "tflops_per_rank": "no_change"}
    assert p.families["compute"]["no_change"] == 2 and p.families["compute"]["better"] == 0
    for fam, counts in p.families.items():
        rows = [r.verdict for r in p.rows if r.family == fam]
        assert counts == {v: rows.count(v) for v in counts}
