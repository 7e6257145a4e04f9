"""StepTable.rank_figures (all fully measured ranks at once) equals `stats`/`median` rank by rank."""

from __future__ import annotations

import numpy as np

from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable, median, stats


def test_vectorised_rank_figures_equal_the_row_by_row_ones() -> None:
    rng = np.random.default_rng(3)
    records = []
    for rank in range(64):
        n = 40 if rank % 9 else 17  # some ranks stopped early
        steps = [
            {
                "step": i,
                "warmup": i < 3,
                "step_time_ms": float(rng.lognormal(2, 0.4)),
                "compute_ms": float(rng.lognormal(1.5, 0.4)),
                "comm_ms": float(rng.lognormal(1, 0.4)),
                "exposed_comm_ms": float(rng.lognormal(0.5, 0.4)),
                "comm_bytes": 1000,
            }
            for i in range(n + (rank % 2))  # an even and an odd count of measured steps
        ]
        records.append(RankRecords(rank, {"rank": rank}, steps))
    table = StepTable(records, 64)
    got = table.rank_figures()
    assert set(got) == set(range(64))
    for rank in range(64):
        assert got[rank]["step_time_ms"] == stats(table.column(rank, "step_time_ms"))
        assert got[rank]["compute_ms_median"] == median(table.column(rank, "compute_ms"))
        assert got[rank]["comm_ms_median"] == median(table.column(rank, "comm_ms"))
        assert got[rank]["exposed_comm_ms_median"] == median(table.column(rank, "exposed_comm_ms"))
        assert got[rank]["wait_ms_median"] == median(table.wait(rank))
        assert got[rank]["transfer_ms_median"] == median(table.transfer(rank))
