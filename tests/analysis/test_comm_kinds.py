"""comm.kinds from per-rank steps: max over ranks, median over steps; the wait/transfer split
only where every rank issued the same calls and bytes; a DDP run's all-reduce as one kind."""

from __future__ import annotations

from typing import Any

import pytest

from minicluster.analysis.comm_kinds import NOT_SPLIT, comm_section
from minicluster.analysis.records import RankRecords


def _step(step: int, kinds: dict[str, dict[str, Any]] | None, **more: Any) -> dict[str, Any]:
    return {"step": step, "warmup": step == 0, "step_time_ms": 50.0, "comm_kinds": kinds, **more}


def _ag(calls: int, nbytes: int, time_ms: float, exposed_ms: float) -> dict[str, Any]:
    return {
        "calls": calls,
        "bytes": nbytes,
        "bus_bytes": nbytes / 2,  # (n-1)/n on 2 ranks
        "time_ms": time_ms,
        "exposed_ms": exposed_ms,
        "untimed": 0,
    }


def test_each_kind_is_the_max_over_ranks_and_its_transfer_the_min() -> None:
    r0 = [_step(0, {"all_gather": _ag(8, 1000, 99.0, 99.0)})] + [
        _step(s, {"all_gather": _ag(8, 1000, 10.0, 6.0)}) for s in (1, 2, 3)
    ]
    r1 = [_step(0, {"all_gather": _ag(8, 1000, 99.0, 99.0)})] + [
        _step(s, {"all_gather": _ag(8, 1000, 4.0, 2.0), "all_reduce": _ag(1, 8, 1.0, 1.0)})
        for s in (1, 2, 3)
    ]
    section = comm_section([RankRecords(0, steps=r0), RankRecords(1, steps=r1)], 2)
    assert section is not None and section["method"] == "wrapped_calls_host_clock"
    ag, ar = section["kinds"]  # in core.comm_kinds.KINDS order
    assert ag["kind"] == "all_gather" and ar["kind"] == "all_reduce"
    assert (ag["calls_per_step"], ag["bytes_per_step"]) == (8, 1000)
    assert (ag["time_ms"], ag["exposed_ms"]) == (10.0, 6.0)  # warm-up step 0 left out
    assert (ag["transfer_ms"], ag["wait_ms"]) == (4.0, 6.0)
    assert ag["busbw_gbps"] == pytest.approx(500 / 4e-3 / 1e9, rel=1e-3)
    assert [p["wait_ms"] for p in ag["per_rank"]] == [6.0, 0.0]
    # rank 0 issued no all-reduce: the ranks disagree, so no transfer is claimed
    assert ar["wait_transfer"] == NOT_SPLIT and ar["transfer_ms"] is None
    assert ar["busbw_gbps"] is None and ar["time_ms"] == 1.0


def test_an_untimed_kind_is_null_with_a_reason() -> None:
    untimed = {"calls": 2, "bytes": 64, "bus_bytes": 0, "time_ms": None, "exposed_ms": None}
    steps = [_step(s, {"send_recv": {**untimed, "untimed": 2}}) for s in (1, 2)]
    section = comm_section([RankRecords(0, steps=steps)], 1)
    assert section is not None
    (kind,) = section["kinds"]
    assert kind["status"] == "unavailable" and kind["time_ms"] is None
    assert kind["reason"] == "no call of this kind was timed" and kind["untimed_calls"] == 4


def test_a_ddp_run_fills_the_all_reduce_from_its_gradient_timing() -> None:
    steps = [
        _step(s, None, comm_ms=8.0, exposed_comm_ms=3.0, comm_bytes=4000, buckets=2) for s in (1, 2)
    ]
    gone = [_step(s, None, comm_ms=None, comm_reason="DDP stats stale") for s in (1, 2)]
    section = comm_section([RankRecords(0, steps=steps)], 2)
    assert section is not None and section["method"] == "ddp_allreduce_timer"
    (ar,) = section["kinds"]
    assert (ar["kind"], ar["calls_per_step"], ar["time_ms"], ar["exposed_ms"]) == (
        "all_reduce",
        2,
        8.0,
        3.0,
    )
    assert ar["busbw_gbps"] == pytest.approx(4000 * 1.0 / 8e-3 / 1e9)  # 2(n-1)/n = 1 on 2
    section = comm_section([RankRecords(0, steps=gone)], 2)
    assert section is not None
    assert section["kinds"][0]["reason"] == "DDP stats stale"


def test_row_medians_equal_numpy_median_bit_for_bit() -> None:
    """`medians_of_rows` (one partition, no NaN check) against np.median: odd and even widths,
    ties, infinities (rows of one value go through it when near the float limit)."""
    import numpy as np

    from minicluster.analysis.row_medians import medians_of_rows

    rng = np.random.default_rng(28)
    for n in (1, 2, 3, 994, 995):
        rows = rng.lognormal(size=(64, n)).round(rng.integers(0, 4))
        rows[3] = 7.25
        rows[4] = 1e308
        rows[5, : max(1, n // 3)] = np.inf
        rows[6, :1] = -np.inf
        with np.errstate(over="ignore", invalid="ignore"):
            want = np.median(rows, axis=1)
            got = medians_of_rows(rows)
        assert np.array_equal(got, want, equal_nan=True)
