"""A busier host is not a slower job (`compare.host_load`): the rule on numbers, both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minicluster.compare import host_load

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare" / "mc11_clean_a.json"
OTHER = FIX.with_name("mc11_clean_b.json")

QUIET = {"cpu_ms": 14.5, "cpu_wait_ms": 5.0, "threads": "all"}
BUSY = {"cpu_ms": 16.0, "cpu_wait_ms": 18.9, "threads": "all"}


def test_a_step_time_change_the_run_queue_delay_covers_is_the_hosts_load() -> None:
    # the recorded pair (tests/fixtures/recorded_runs/compare_*): +17.1 ms a step, +13.9 of it
    # waiting for a CPU, +1.5 ms of CPU time
    assert host_load.explained(18.1, 35.2, QUIET, BUSY, threshold_pct=5)
    # and the other way: the baseline's host was the busy one (a false improvement)
    assert host_load.explained(35.2, 18.1, BUSY, QUIET, threshold_pct=5)


def test_a_job_that_got_slower_by_its_own_doing_is_judged() -> None:
    # more CPU time a step (a slower kernel, a busy thread of its own): the job's change
    more_cpu = {"cpu_ms": 31.0, "cpu_wait_ms": 18.9, "threads": "all"}
    assert not host_load.explained(18.1, 35.2, QUIET, more_cpu, threshold_pct=5)
    # a sleep raises neither: the run-queue delay covers less than half the change
    sleep = {"cpu_ms": 14.9, "cpu_wait_ms": 9.0, "threads": "all"}
    assert not host_load.explained(18.1, 35.2, QUIET, sleep, threshold_pct=5)


def test_no_judgement_below_the_threshold_or_between_different_measures() -> None:
    # a 2% change gets no timing verdict to take back, whatever the delay did
    assert not host_load.explained(18.1, 18.46, QUIET, BUSY, threshold_pct=5)
    # the main thread's delay and all threads' are not one quantity
    main = dict(BUSY, threads="main")
    assert not host_load.explained(18.1, 35.2, QUIET, main, threshold_pct=5)


def test_the_line_names_the_busier_side_and_the_figures() -> None:
    text = host_load.line("A", "B", 18.1, 35.2, QUIET, BUSY)
    assert text.startswith("B ran on a busier host:")
    assert "18.9 ms a step" in text and "(A: 5.0 ms)" in text
    assert "81% of the 17.1 ms step-time difference" in text
    assert host_load.line("A", "B", 35.2, 18.1, BUSY, QUIET).startswith("A ran on a busier host")


def test_a_side_of_several_runs_takes_each_figures_median() -> None:
    from dataclasses import replace

    from minicluster.compare.repeats import combine
    from minicluster.interop import load

    base = load(FIX)
    runs = [
        replace(
            base, label=f"r{i}", details=dict(base.details, host_cpu=dict(QUIET, cpu_wait_ms=w))
        )
        for i, w in enumerate((5.0, 30.0, 7.0))
    ]
    side = combine(runs, "A")
    assert side.details["host_cpu"]["cpu_wait_ms"] == 7.0  # the median, as the side's step time
    # one run without the figures: the side has none (never the first run's alone)
    runs[1] = replace(
        runs[1], details={k: v for k, v in runs[1].details.items() if k != "host_cpu"}
    )
    assert combine(runs, "A").details["host_cpu"] is None


def test_one_side_holding_a_run_twice_is_refused() -> None:
    from minicluster.compare.repeats import refuse_same_runs
    from minicluster.core.errors import InputError
    from minicluster.interop import load

    rec = load(FIX)
    twice = replace_runs(rec, [rec, rec])
    with pytest.raises(InputError, match="one side holds the same run twice"):
        refuse_same_runs(["A,A", "B"], [twice, load(OTHER)])


def replace_runs(rec: Any, runs: list[Any]) -> Any:
    from dataclasses import replace

    return replace(rec, runs=list(runs))
