"""The comparator on real runs (issue 13, part 1): a straggler is a regression, noise is not.

Fixtures: three default runs (`minicluster run`, 2 ranks, 5 + 50 steps) made one after the other
on this project's 2-core VM while other test suites ran on it: `mc11_clean_a.json`,
`mc11_clean_b.json` (nothing changed) and `mc11_straggler.json`
(`--fault straggler:rank=1,delay_ms=20`). Each is the run's `result.json` (schema 1.1, with
`steps.series`), copied as it was written. And three made the same way on the quiet VM
(2026-11-30, `scripts/check_false_regressions.py`): `mc13_quiet_clean_1.json`,
`mc13_quiet_clean_2.json` (identical jobs whose step p50 differ by 16%) and
`mc13_quiet_straggler.json`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minicluster.compare import compare
from minicluster.compare.stats import mann_whitney_p
from minicluster.core import metrics as metrics_registry
from minicluster.interop import load

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"
PER_STEP = (
    "throughput_samples_per_sec",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "step_time_mean_ms",
    "compute_ms",
    "allreduce_ms",
    "allreduce_wait_ms",
    "allreduce_transfer_ms",
    "exposed_comm_ms",
    "busbw_gbps",
)


def _rows(a: str, b: str) -> dict[str, object]:
    pair = compare([load(FIX / a), load(FIX / b)]).pairs[0]
    return {r.metric: r for r in pair.rows}


def test_every_per_step_metric_is_tested_on_its_own_series() -> None:
    rows = _rows("mc11_clean_a.json", "mc11_straggler.json")
    for name in PER_STEP:
        r = rows[name]
        # the test fits the statistic: MWU for a median, Welch for a mean, exceedance for a tail
        statistic = metrics_registry.REGISTRY[name].statistic
        want = {"mean": "welch-t", "harmonic_mean": "welch-t", "p90": "quantile-exceedance-fisher"}
        want |= {"p95": "quantile-exceedance-fisher", "p99": "quantile-exceedance-fisher"}
        assert r.test == want.get(str(statistic), "mann-whitney-u"), name  # type: ignore[attr-defined]
        assert (r.n_a, r.n_b) == (50, 50), name  # type: ignore[attr-defined]


def test_straggler_run_is_a_regression_named_by_step_time_and_compute() -> None:
    c = compare([load(FIX / "mc13_quiet_clean_1.json"), load(FIX / "mc13_quiet_straggler.json")])
    regressions = {r.metric for r in c.pairs[0].regressions}
    assert c.has_regression
    assert {"latency_p50_ms", "step_time_mean_ms", "compute_ms", "allreduce_wait_ms"} <= regressions
    # The straggler's delay shows up as the healthy rank's wait, not as slower transfer.
    rows = {r.metric: r for r in c.pairs[0].rows}
    assert not rows["allreduce_transfer_ms"].regression


def test_identical_runs_a_whole_run_apart_are_no_regression() -> None:
    """Identical quiet runs whose step p50 differ by 16%, every block of one above the other's:
    a confidence interval of the block means (the rule before) called throughput, p50, mean
    step, all-reduce, exposed comm and busbw regressions. The difference is no larger than the
    way each run's blocks move: within the run-to-run spread, so not judged: a +16% change the
    spread can neither confirm nor rule out is inconclusive (rule 9b), never "no change"."""
    c = compare([load(FIX / "mc13_quiet_clean_1.json"), load(FIX / "mc13_quiet_clean_2.json")])
    rows = {r.metric: r for r in c.pairs[0].rows}
    assert rows["latency_p50_ms"].delta_pct > 15 and rows["latency_p50_ms"].p_value < 0.001
    assert not c.has_regression
    assert rows["latency_p50_ms"].verdict == "inconclusive"
    assert "the run-to-run spread can neither confirm nor rule out" in rows["latency_p50_ms"].reason


def test_a_straggler_on_a_loaded_host_is_within_that_hosts_spread() -> None:
    """The limit of one run a side, said plainly: recorded while other suites loaded the 2-core
    VM, the baseline's blocks moved between 30 and 50 ms (its first 10 measured steps ran 26%
    slow: named as a level change, and kept in the yardstick, since the baseline's own moves
    are what runs do here); the straggler's +44% p50 is inside that spread: inconclusive, not
    judged (never `~`), with the smallest change this pair could detect said (repeat the runs,
    or keep a history)."""
    c = compare([load(FIX / "mc11_clean_a.json"), load(FIX / "mc11_straggler.json")])
    p50 = {r.metric: r for r in c.pairs[0].rows}["latency_p50_ms"]
    assert p50.delta_pct > 40 and p50.verdict == "inconclusive"  # type: ignore[operator]
    assert p50.reason.startswith("inconclusive, not judged: a +44.4% change") and not p50.regression
    assert p50.mde_pct is not None and p50.mde_pct > 44
    assert c.pairs[0].structure["mc11_clean_a.json"]["kind"] == "shift"


@pytest.mark.parametrize("metric", ["compute_ms", "allreduce_ms", "exposed_comm_ms"])
def test_noise_between_identical_runs_is_not_a_regression(metric: str) -> None:
    """Two runs with nothing changed: these rows differ by 14-25 % and Mann-Whitney calls that
    significant (the old rule gated on exactly this), but each run's own blocks of steps move
    as much: within the run-to-run spread, so not gated; worse by more than the threshold, or
    inside a spread too wide to have seen a regression, so not "no change" either:
    inconclusive (rule 9b)."""
    a, b = load(FIX / "mc11_clean_a.json"), load(FIX / "mc11_clean_b.json")
    assert mann_whitney_p(a.samples[metric], b.samples[metric]) < 0.05
    r = next(x for x in compare([a, b]).pairs[0].rows if x.metric == metric)
    assert abs(r.delta_pct or 0) > 5
    assert r.verdict == "inconclusive" and not r.regression
    # worse past the threshold, or (compute_ms, 14% faster) a spread too wide to have seen one
    assert "run-to-run spread can neither" in r.reason or "could detect is" in r.reason
