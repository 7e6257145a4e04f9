"""The measured steps of every rank as [rank x step] matrices, and the statistics taken over them.

Warm-up steps are left out; a step a rank did not record is NaN. Per step, the all-reduce
transfer is the min over ranks of `comm_ms` and each rank's wait is its `comm_ms` minus that
(wait vs transfer, as the README defines them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minicluster.analysis.records import RankRecords
from minicluster.core import rundir

EMBED_STEPS_MAX = 50_000  # rank-steps embedded in result.json; larger runs point to the rank files


class StepTable:
    """Measured (non-warm-up) steps of every rank as [rank x step] matrices, NaN where absent."""

    KEYS = ("step_time_ms", "compute_ms", "comm_ms", "exposed_comm_ms", "comm_bytes")

    def __init__(self, records: list[RankRecords], world_size: int) -> None:
        self.world_size = world_size
        self.records = [r for r in records if r.n_steps]
        self.row = {r.rank: i for i, r in enumerate(self.records)}
        masks = [~r.columns.get("warmup", np.zeros(r.n_steps, bool)) for r in self.records]
        measured = [r.columns["step"][m] for r, m in zip(self.records, masks, strict=True)]
        self.indices = np.unique(np.concatenate(measured)) if measured else np.array([], np.int64)
        shape = (len(self.records), self.indices.size)
        self.m: dict[str, np.ndarray] = {k: np.full(shape, np.nan) for k in self.KEYS}
        for i, (rec, mask, steps) in enumerate(zip(self.records, masks, measured, strict=True)):
            cols = np.searchsorted(self.indices, steps)
            for k in self.KEYS:
                if k in rec.columns:
                    self.m[k][i, cols] = rec.columns[k][mask]
        self.present = ~np.isnan(self.m["step_time_ms"])
        if self.indices.size:
            # transfer per step = min over ranks of comm_ms; wait = comm - transfer (DESIGN.md 4)
            self.transfer_ms = np.nanmin(self.m["comm_ms"], axis=0)
            self.step_max_ms = np.nanmax(self.m["step_time_ms"], axis=0)
        else:
            self.transfer_ms = self.step_max_ms = np.array([])
        self.wait_ms = self.m["comm_ms"] - self.transfer_ms[None, :]

    def measured_steps(self, rank: int) -> int:
        i = self.row.get(rank)
        return 0 if i is None else int(self.present[i].sum())

    def min_measured_steps(self) -> int:
        return min(self.measured_steps(r) for r in range(self.world_size))

    def column(self, rank: int, key: str) -> np.ndarray:
        i = self.row.get(rank)
        if i is None:
            return np.array([])
        return self.m[key][i][self.present[i]]

    def wait(self, rank: int) -> np.ndarray:
        i = self.row.get(rank)
        return np.array([]) if i is None else self.wait_ms[i][self.present[i]]

    def transfer(self, rank: int) -> np.ndarray:
        i = self.row.get(rank)
        return np.array([]) if i is None else self.transfer_ms[self.present[i]]

    def pooled(self, key: str) -> np.ndarray:
        return self.m[key][self.present]

    def steps_section(self) -> dict[str, Any]:
        section: dict[str, Any] = {"rank_files": rundir.rank_files_pattern()}
        total = sum(r.n_steps for r in self.records)
        if total > EMBED_STEPS_MAX:
            section["embedded"] = None
            section["reason"] = f"{total} rank-steps > {EMBED_STEPS_MAX}: read the rank files"
            return section
        per_rank: dict[str, Any] = {}
        for rec in sorted(self.records, key=lambda r: r.rank):
            c = rec.columns
            steps = c["step"]
            col = np.searchsorted(self.indices, steps).clip(max=max(0, self.indices.size - 1))
            measured = (
                (self.indices[col] == steps) if self.indices.size else np.zeros(steps.size, bool)
            )
            wait = np.where(
                measured,
                c["comm_ms"] - self.transfer_ms[col] if self.indices.size else np.nan,
                np.nan,
            )
            per_rank[str(rec.rank)] = {
                "step": steps.tolist(),
                "warmup": c.get("warmup", np.zeros(steps.size, bool)).tolist(),
                "step_time_ms": rounded_list(c["step_time_ms"]),
                "compute_ms": rounded_list(c["compute_ms"]),
                "comm_ms": rounded_list(c["comm_ms"]),
                "exposed_comm_ms": rounded_list(c["exposed_comm_ms"]),
                "wait_ms": rounded_list(wait),
            }
        section["embedded"] = per_rank
        return section


def rounded_list(values: np.ndarray) -> list[float | None]:
    """Rounded to 4 decimals, NaN as None (JSON null)."""
    return [None if math.isnan(v) else round(v, 4) for v in values.tolist()]


def r4(x: float) -> float:
    return round(float(x), 4)


def stats(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50": r4(p50),
        "p95": r4(p95),
        "p99": r4(p99),
        "mean": r4(values.mean()),
        "n": int(values.size),
    }


def median(values: np.ndarray) -> float | None:
    return r4(np.median(values)) if values.size else None
