"""Verdicts on real runs recorded under CPU load (issue 25): clean default runs on the 2-core VM
beside two busy loops (`scripts/check_false_verdicts.py --hogs 2`) name no straggler, culprit
or slow link; a slowness added to those same records (a source of noise the rules did not make)
is still found and described by its shape in time."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from minicluster.analysis import accounting, time_shape
from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.records import RankRecords, read_run_dir
from minicluster.analysis.steps import StepTable
from minicluster.core.checks import ChecksSection

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs" / "under_load"
CLEAN = sorted(p.name for p in RUNS.iterdir() if p.is_dir())
# `minicluster collectives --ops all_reduce` at the gradient's size on the same host, under the
# same two busy loops, in the same session as the runs (check_false_verdicts.py printed it)
EXPECT_GBPS = 0.5741


def _records(tmp_path: Path, name: str) -> list[RankRecords]:
    run = tmp_path / name
    shutil.copytree(RUNS / name, run)
    return read_run_dir(run, workers=1)


@pytest.mark.parametrize("name", CLEAN)
def test_a_clean_run_under_load_has_no_straggler_culprit_or_slow_link(
    tmp_path: Path, name: str
) -> None:
    result = aggregate(
        _records(tmp_path, name), checks=ChecksSection(expect_busbw_gbps=EXPECT_GBPS)
    )
    assert result["status"] == "ok"
    assert result["stragglers"] == []
    assert result["culprits"] == []
    link = result["link"]
    # the median step's busbw is below half the expectation (the old rule called this slow);
    # the faster steps, which the load perturbs least, are not
    assert link["measured_busbw_gbps"] / EXPECT_GBPS < 0.5
    assert link["judged"] and not link["slow"], link
    assert link["judged_busbw_interval"][1] / EXPECT_GBPS * 100 >= link["below_pct"]
    assert result["faults"]["detected"] == []


def _with_straggler(records: list[RankRecords], extra_ms: float, waits: bool) -> None:
    """Rank 1 computes `extra_ms` more in every measured step; with `waits` rank 0's all-reduce
    lasts that much longer (it waits for rank 1, as DDP's does)."""
    by_rank = {r.rank: r for r in records}
    measured = ~by_rank[1].columns["warmup"].astype(bool)
    for key in ("compute_ms", "bwd_ms", "step_time_ms"):
        by_rank[1].columns[key] = by_rank[1].columns[key] + extra_ms * measured
    if waits:
        for key in ("comm_ms", "exposed_comm_ms", "step_time_ms"):
            by_rank[0].columns[key] = by_rank[0].columns[key] + extra_ms * measured


@pytest.mark.parametrize("name", CLEAN)
def test_a_straggler_the_others_waited_for_is_named_over_recorded_load(
    tmp_path: Path, name: str
) -> None:
    records = _records(tmp_path, name)
    _with_straggler(records, 60.0, waits=True)
    (s,) = aggregate(records)["stragglers"]
    assert s["rank"] == 1
    assert s["waited_for_ms_interval"][0] > s["waited_for_floor_ms"]


@pytest.mark.parametrize("name", CLEAN)
def test_slower_compute_nobody_waited_for_is_not_named_over_recorded_load(
    tmp_path: Path, name: str
) -> None:
    """The false verdict of issue 25: rank 1's compute inflated (its clock ran on a busy
    core), its peers' all-reduce no longer for it."""
    records = _records(tmp_path, name)
    _with_straggler(records, 60.0, waits=False)
    result = aggregate(records)
    assert result["stragglers"] == []
    assert result["culprits"] == []


@pytest.mark.parametrize("name", CLEAN)
def test_an_onset_under_load_is_described_as_an_onset(tmp_path: Path, name: str) -> None:
    """+30 ms of compute on rank 1 from step 18 on top of the recorded noise (per-step compute
    swings of tens of ms beside the busy loops): an onset near step 18, not persistent."""
    records = _records(tmp_path, name)
    acc = accounting.account(records, StepTable(records, 2))
    acc.compute[1, acc.steps >= 18] += 30.0
    shape = time_shape.describe(acc, 1)
    assert shape["kind"] == "onset", shape["text"]
    assert 16 <= shape["from_step"] <= 24
    assert np.isclose(shape["late_ms_median"], 30.0, atol=15.0)
