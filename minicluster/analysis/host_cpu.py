"""The run's host CPU load: the ranks' CPU time and run-queue delay per step (`result.host_cpu`).

Each step record carries its rank's threads' CPU time (`cpu_ms`) and the time they were runnable
but waited on a run queue for a CPU (`cpu_wait_ms`, schedstat run_delay:
`rank.telemetry.schedstat`). Their means over ranks and measured steps say how much of a step the
host's other processes took from the run. `compare` and `history check` read them to tell a
slower run from a busier host (`compare.host_load`): two identical jobs, one beside a busy
loop, differ by 2x in step time and by as much in run-queue delay, with the same CPU time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minicluster.analysis.accounting import field_matrices
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import r4

FIELDS = ("cpu_ms", "cpu_wait_ms")
# ranks per slice of the [rank x step] matrices: the means never hold more than this many rows
# at once (a whole matrix is 131 MB at 16,384 x 1,000)
_CHUNK = 1024


def host_cpu(records: list[RankRecords], steps: np.ndarray) -> dict[str, Any] | None:
    """`{cpu_ms, cpu_wait_ms, ranks, steps, threads}`: the means over ranks and `steps` (the
    measured steps); None when a rank did not record the fields (rank format < 1.7, no
    schedstat: null in every step), or there is no step."""
    if not records or not steps.size:
        return None
    columns = [r.columns for r in records]
    if not all(k in c for c in columns for k in FIELDS):
        return None
    sums = dict.fromkeys(FIELDS, 0.0)
    counts = dict.fromkeys(FIELDS, 0)
    for start in range(0, len(columns), _CHUNK):
        mats = field_matrices(columns[start : start + _CHUNK], steps, FIELDS, prev=False)
        for key in FIELDS:
            m = np.asarray(mats[key], dtype=np.float64)
            known = ~np.isnan(m)
            if not known.any(axis=1).all():  # a rank with no value at all: not measured
                return None
            sums[key] += float(m[known].sum())
            counts[key] += int(known.sum())
    return {
        "cpu_ms": r4(sums["cpu_ms"] / counts["cpu_ms"]),
        "cpu_wait_ms": r4(sums["cpu_wait_ms"] / counts["cpu_wait_ms"]),
        "ranks": len(records),
        "steps": int(steps.size),
        "threads": "all",
    }
