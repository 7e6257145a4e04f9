"""The measured steps of every rank as [rank x step] matrices, and the statistics taken over them.

Warm-up steps are left out; a step a rank did not record is NaN. Per step, the all-reduce
transfer is the min over ranks of `comm_ms` and each rank's wait is its `comm_ms` minus that
(wait vs transfer, as the README defines them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from minicluster.analysis.records import RankRecords, measured_pick, rows_view
from minicluster.analysis.row_medians import row_nanmedians
from minicluster.core import rundir

EMBED_STEPS_MAX = 50_000  # rank-steps embedded in result.json; larger runs point to the rank files


class JobSteps(Protocol):
    """What aggregation reads of the job's steps: a `StepTable` of every rank's steps, or the
    merge of node reductions (`analysis.node_reduce.ReducedTable`), with one answer."""

    indices: np.ndarray
    row: dict[int, int]
    world_size: int
    records: list[RankRecords]  # the ranks with steps (a reduction's: their lean records)

    def series(self, world_size: int) -> dict[str, np.ndarray]: ...
    def compute_medians(self) -> dict[int, float | None]: ...
    def measured_steps(self, rank: int) -> int: ...
    def min_measured_steps(self) -> int: ...
    def rank_figures(self) -> dict[int, dict[str, Any]]: ...
    def slowest_in_steps(self, rank: int) -> tuple[int, int, int]: ...
    def group_step_max(self, column: str, groups: list[list[int]]) -> np.ndarray: ...
    def steps_section(self, series: dict[str, np.ndarray]) -> dict[str, Any]: ...


# the per-step maxima over ranks that the series is made of (StepTable.series)
SERIES_MAX_COLUMNS = (
    "step_time_ms",
    "compute_ms",
    "comm_ms",
    "exposed_comm_ms",
    "comm_bytes",
    "buckets",
)


def series_from_extrema(
    indices: np.ndarray,
    maxima: Mapping[str, np.ndarray],
    transfer_ms: np.ndarray,
    world_size: int,
) -> dict[str, np.ndarray]:
    """The cross-rank series of `StepTable.series` from each step's maxima over ranks
    (`SERIES_MAX_COLUMNS`) and its min of comm_ms (`transfer_ms`): what files and node
    reductions (analysis.node_reduce, a max of maxes) both give."""
    with np.errstate(all="ignore"):
        out = {"step": indices.astype(np.int64)}
        for key, column in (
            ("step_time_ms", "step_time_ms"),
            ("compute_ms", "compute_ms"),
            ("allreduce_ms", "comm_ms"),
            ("exposed_comm_ms", "exposed_comm_ms"),
        ):
            out[key] = maxima[column]
        out["allreduce_transfer_ms"] = transfer_ms
        out["allreduce_wait_ms"] = out["allreduce_ms"] - out["allreduce_transfer_ms"]
        n_bytes = maxima["comm_bytes"]
        t_s = out["allreduce_transfer_ms"] / 1000.0
        busbw = n_bytes / t_s / 1e9 * (2 * (world_size - 1) / world_size)
        # one rank sends nothing to anyone: no bus bandwidth (null), not nccl-tests' 0
        ok = (t_s > 0) & (n_bytes > 0) & (world_size > 1)
        out["busbw_gbps"] = np.where(ok, busbw, np.nan)
        out["comm_bytes"] = n_bytes
        out["buckets"] = maxima["buckets"]
    return out


class StepTable:
    """Measured (non-warm-up) steps of every rank as [rank x step] matrices, NaN where absent."""

    KEYS = ("step_time_ms", "compute_ms", "comm_ms", "exposed_comm_ms", "comm_bytes", "buckets")

    def __init__(self, records: list[RankRecords], world_size: int) -> None:
        self.world_size = world_size
        self.records = [r for r in records if r.n_steps]
        self.row = {r.rank: i for i, r in enumerate(self.records)}
        masks = [_measured(r) for r in self.records]
        measured = [r.columns["step"][m] for r, m in zip(self.records, masks, strict=True)]
        if measured and _same_sorted_steps(measured):
            # Every rank measured the same steps (a run that finished): one matrix per key,
            # each rank's row copied in once.
            self.indices = measured[0].astype(np.int64)
            self.m = {}
            for k in self.KEYS:
                view = _shared_rows(self.records, masks, k)
                if view is not None:  # the ranks' columns are rows of one buffer: no copy
                    self.m[k] = view
                    continue
                matrix = np.full((len(self.records), self.indices.size), np.nan)
                for i, (r, m) in enumerate(zip(self.records, masks, strict=True)):
                    if k in r.columns:
                        matrix[i] = r.columns[k][m]
                self.m[k] = matrix
        else:
            self.indices = (
                np.unique(np.concatenate(measured)) if measured else np.array([], np.int64)
            )
            shape = (len(self.records), self.indices.size)
            self.m = {k: np.full(shape, np.nan) for k in self.KEYS}
            for i, (rec, mask, steps) in enumerate(zip(self.records, masks, measured, strict=True)):
                cols = np.searchsorted(self.indices, steps)
                for k in self.KEYS:
                    if k in rec.columns:
                        self.m[k][i, cols] = rec.columns[k][mask]
        self._derive()

    @classmethod
    def of_rows(
        cls,
        records: list[RankRecords],
        world_size: int,
        step: np.ndarray,
        warmup: np.ndarray,
        cols: Mapping[str, np.ndarray],
        starts: np.ndarray,
    ) -> StepTable:
        """`StepTable(records, world_size)` built with a few numpy operations per key, for
        records whose columns are rows of [rank x n] matrices: rank `records[i]` holds `step`
        (int64), `warmup` (bool) and `cols` (float64) of row i from column `starts[i]` on (a
        live watch's windows, `analysis.tail.Windows`). The same table; when a rank's measured
        steps are not strictly increasing, built the per-rank way."""
        n, width = step.shape
        valid = np.arange(width)[None, :] >= np.asarray(starts)[:, None]
        measured = valid & ~warmup
        has = np.asarray(
            valid.any(axis=1)
        )  # ranks without steps are left out, as the per-rank way does
        # every rank measured the same steps at the same places (the usual case)?
        aligned = bool(
            n and has.all() and (step == step[:1]).all() and (measured == measured[:1]).all()
        )
        at = np.flatnonzero(measured[0]) if aligned else None
        if at is not None:
            if (np.diff(step[0, at]) <= 0).any():  # a step recorded twice, or out of order
                return cls(records, world_size)
        else:
            low = np.iinfo(np.int64).min
            seen = np.maximum.accumulate(np.where(measured, step, low), axis=1)
            before = np.concatenate((np.full((n, 1), low), seen[:, :-1]), axis=1)
            if (measured & (step <= before)).any():
                return cls(records, world_size)
        table = cls.__new__(cls)
        table.world_size = world_size
        table.records = [r for r, h in zip(records, has.tolist(), strict=True) if h]
        table.row = {r.rank: i for i, r in enumerate(table.records)}
        table.m = {}
        if at is not None:
            table.indices = step[0, at].astype(np.int64)
            for k in cls.KEYS:
                if k not in cols:
                    table.m[k] = np.full((n, table.indices.size), np.nan)
                elif at.size == width:  # every step measured: the matrix itself, read-only
                    table.m[k] = cols[k].view()
                    table.m[k].flags.writeable = False
                else:
                    table.m[k] = cols[k][:, at]
            table._derive()
            return table
        measured = measured[has]
        table.indices = np.unique(step[has][measured]).astype(np.int64)
        at_row = np.nonzero(measured)[0]
        at_col = np.searchsorted(table.indices, step[has][measured])
        for k in cls.KEYS:
            table.m[k] = np.full((len(table.records), table.indices.size), np.nan)
            if k in cols:
                table.m[k][at_row, at_col] = cols[k][has][measured]
        table._derive()
        return table

    def _derive(self) -> None:
        """What the matrices give: where a rank recorded a step, the transfer and the waits."""
        self.present = ~np.isnan(self.m["step_time_ms"])
        if self.indices.size:
            # transfer per step = min over ranks of comm_ms; wait = comm - transfer (DESIGN.md 4)
            # (a step no rank could time, e.g. DDP's stats went stale, stays NaN, silently)
            self.transfer_ms = _nan_reduce(np.nanmin, self.m["comm_ms"])
        else:
            self.transfer_ms = np.array([])
        # each rank's wait (comm_ms - the step's transfer) is made where read, not kept: a
        # [rank x step] matrix is 131 MB at 16,384 x 1,000

    def series(self, world_size: int) -> dict[str, np.ndarray]:
        """The per-step cross-rank series every run-level component is the median of (`SERIES`).

        One value per measured step (`step`), over the ranks that recorded it: step time,
        compute, all-reduce and exposed communication take the max over ranks (a synchronous
        step lasts as long as its slowest rank, and each value is one some rank had); transfer
        the min over ranks of comm_ms; wait = all-reduce - transfer (the longest any rank waited
        for the others); busbw = gradient bytes / transfer x 2(n-1)/n (nccl-tests); comm_bytes
        and buckets: the gradient bytes and the DDP buckets all-reduced in the step (max over
        ranks; the inputs of a sweep's alpha-beta projection).
        """
        if not self.indices.size:
            return {}
        maxima = {c: _nan_reduce(np.nanmax, self.m[c]) for c in SERIES_MAX_COLUMNS}
        transfer_ms = _nan_reduce(np.nanmin, self.m["comm_ms"])
        return series_from_extrema(self.indices, maxima, transfer_ms, world_size)

    def compute_medians(self) -> dict[int, float | None]:
        """Per rank, `median(self.column(rank, "compute_ms"))`, all rows at once (made once: the
        straggler rule and `not_judged_reason` both ask, 0.05 s at 4,096 x 1,000)."""
        return dict(self._compute_medians)

    @cached_property
    def _compute_medians(self) -> dict[int, float | None]:
        if not self.records or not self.indices.size:
            return {r.rank: None for r in self.records}
        every = bool(self.present.all())  # then the matrix itself (no copy to partition)
        matrix = (
            self.m["compute_ms"] if every else np.where(self.present, self.m["compute_ms"], np.nan)
        )
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row is None below
            medians = row_nanmedians(matrix, overwrite=not every)
        return {r.rank: _r4_or_none(v) for r, v in zip(self.records, medians.tolist(), strict=True)}

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
        if i is None:
            return np.array([])
        return (self.m["comm_ms"][i] - self.transfer_ms)[self.present[i]]

    def transfer(self, rank: int) -> np.ndarray:
        i = self.row.get(rank)
        return np.array([]) if i is None else self.transfer_ms[self.present[i]]

    def rank_figures(self) -> dict[int, dict[str, Any]]:
        """Per rank that recorded steps, over its measured steps: `step_time_ms` (`stats`) and
        the medians of compute, all-reduce, exposed, wait and transfer time, as `stats` and
        `median` give them row by row. Ranks that measured every step are taken all at once
        (one partition per matrix instead of one per rank: 4,096 ranks in well under a second)."""
        out: dict[int, dict[str, Any]] = {}
        if not self.records:
            return out
        full = self.present.all(axis=1) if self.indices.size else np.zeros(len(self.records), bool)
        rows = np.flatnonzero(full)
        if rows.size:
            every = rows.size == len(self.records)  # no copy of the matrices then
            comm = self.m["comm_ms"] if every else self.m["comm_ms"][rows]
            transfer = self.transfer_ms[None, :]  # the same in every row: one median
            compute = self.m["compute_ms"] if every else self.m["compute_ms"][rows]
            columns: dict[str, np.ndarray | None] = {
                "compute_ms_median": compute,
                "comm_ms_median": self.m["comm_ms"] if every else self.m["comm_ms"][rows],
                "exposed_comm_ms_median": (
                    self.m["exposed_comm_ms"] if every else self.m["exposed_comm_ms"][rows]
                ),
                "wait_ms_median": None,  # comm - transfer, made when its turn comes (below)
                "transfer_ms_median": transfer,
            }
            steps = self.m["step_time_ms"] if every else self.m["step_time_ms"][rows]
            pct = np.percentile(steps, [50, 95, 99], axis=1)
            step_mean = steps.mean(axis=1)
            # A step the comm timer could not vouch for has no comm figures (NaN): left out.
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row is None below
                medians = {
                    k: row_nanmedians(v)
                    if v is not None
                    else row_nanmedians(comm - transfer, overwrite=True)  # its own matrix
                    for k, v in columns.items()
                }
                medians["transfer_ms_median"] = np.broadcast_to(
                    medians["transfer_ms_median"], rows.shape
                )
                compute_mean = np.nanmean(compute, axis=1)
            n = int(self.indices.size)
            # as Python floats once (the same values; not a numpy scalar made per rank and field)
            p50s, p95s, p99s = pct.tolist()
            means, compute_means = step_mean.tolist(), compute_mean.tolist()
            listed = {k: v.tolist() for k, v in medians.items()}
            for j, i in enumerate(rows.tolist()):
                rank = self.records[i].rank
                figures: dict[str, Any] = {
                    "step_time_ms": {
                        "p50": r4(p50s[j]),
                        "p95": r4(p95s[j]),
                        "p99": r4(p99s[j]),
                        "mean": r4(means[j]),
                        "n": n,
                    }
                }
                figures.update({k: _r4_or_none(v[j]) for k, v in listed.items()})
                figures["compute_ms_mean"] = _r4_or_none(compute_means[j])
                out[rank] = figures
        for i in np.flatnonzero(~full).tolist():
            rank = self.records[i].rank
            out[rank] = {
                "step_time_ms": stats(self.column(rank, "step_time_ms")),
                "compute_ms_median": median(self.column(rank, "compute_ms")),
                "compute_ms_mean": mean(self.column(rank, "compute_ms")),
                "comm_ms_median": median(self.column(rank, "comm_ms")),
                "exposed_comm_ms_median": median(self.column(rank, "exposed_comm_ms")),
                "wait_ms_median": median(self.wait(rank)),
                "transfer_ms_median": median(self.transfer(rank)),
            }
        return out

    def slowest_in_steps(self, rank: int) -> tuple[int, int, int]:
        """In how many steps where every rank with steps has a compute time `rank`'s is the
        highest (ties count), of how many such steps, among how many ranks (0, 0, 0 when none)."""
        row = self.row.get(rank)
        compute = self.m["compute_ms"]
        full = ~np.isnan(compute).any(axis=0)
        if row is None or not full.any():
            return 0, 0, 0
        cols = compute if full.all() else compute[:, full]  # (a copy only when it must)
        k = int((cols[row] >= cols.max(axis=0)).sum())
        return k, int(cols.shape[1]), int(cols.shape[0])

    def group_step_max(self, column: str, groups: list[list[int]]) -> np.ndarray:
        """Per group of ranks (each with steps), per step, the max of `column` over its ranks
        that recorded it (NaN where none did): [groups x steps]."""
        out = np.full((len(groups), self.indices.size), np.nan)
        for g, ranks in enumerate(groups):
            rows = [self.row[r] for r in ranks]
            out[g] = np.fmax.reduce(self.m[column][rows], axis=0)
        return out

    def pooled(self, key: str) -> np.ndarray:
        return self.m[key][self.present]

    def steps_section(self, series: dict[str, np.ndarray]) -> dict[str, Any]:
        """`result.json`'s `steps`: where the rank files are, the per-step cross-rank `series`
        the run-level metrics were computed from (always; `compare` tests exactly these), and
        every rank's steps embedded unless there are more than EMBED_STEPS_MAX rank-steps."""
        section: dict[str, Any] = {"rank_files": rundir.rank_files_pattern()}
        section["series"] = {
            k: v.tolist() if k == "step" else rounded_list(v) for k, v in series.items()
        } or None
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


def _shared_rows(
    records: list[RankRecords], masks: list[np.ndarray | slice], key: str
) -> np.ndarray | None:
    """The measured steps of `key` of every rank as a read-only view of the columns' buffer
    (`records.rows_view`), when every rank holds it, measured the same slice of its steps, and
    the columns lie one after another; None otherwise (the rows are copied then)."""
    if not masks or not all(isinstance(m, slice) and m == masks[0] for m in masks):
        return None
    if any(key not in r.columns for r in records):
        return None
    view = rows_view([r.columns[key] for r in records])
    return None if view is None else view[:, masks[0]]


def _measured(rec: RankRecords) -> np.ndarray | slice:
    """Which of a rank's steps are measured (not warm-up): `records.measured_pick`."""
    return measured_pick(rec.columns.get("warmup"))


def _same_sorted_steps(measured: list[np.ndarray]) -> bool:
    """Whether every rank measured the same strictly increasing step numbers."""
    first = measured[0]
    if first.size > 1 and not bool((np.diff(first) > 0).all()):
        return False
    return all(m.size == first.size and np.array_equal(m, first) for m in measured[1:])


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
    """Median of the values that were measured (NaN: not measured), or None when none were."""
    values = values[~np.isnan(values)]
    return r4(np.median(values)) if values.size else None


def mean(values: np.ndarray) -> float | None:
    """Mean of the values that were measured (NaN: not measured), or None when none were."""
    values = values[~np.isnan(values)]
    return r4(values.mean()) if values.size else None


def _r4_or_none(x: float) -> float | None:
    return None if math.isnan(x) else r4(x)


# Run-level metric -> the per-step series it is the median of, and how that series is taken.
SERIES_METHOD = {
    "compute_ms": "per-step max over ranks of forward + backward - exposed comm (the slowest "
    "rank's compute: the critical path)",
    "allreduce_ms": "per-step max over ranks of the time with a gradient all-reduce in flight",
    "allreduce_transfer_ms": "per-step min over ranks of comm_ms (the rank that waited least)",
    "allreduce_wait_ms": "per-step max over ranks of comm_ms - transfer_ms (the longest any rank "
    "waited for the slowest)",
    "exposed_comm_ms": "per-step max over ranks of end of backward compute to end of last "
    "all-reduce",
    "busbw_gbps": "per-step gradient bytes / transfer_ms x 2(n-1)/n (nccl-tests)",
}


def _nan_reduce(fn: Any, matrix: np.ndarray) -> np.ndarray:
    """`fn` (nanmax, nanmin) over ranks per step; NaN for a step no rank measured (np.fmax and
    np.fmin skip NaN in one pass, and give NaN where every value is)."""
    if matrix.size == 0:
        return np.full(matrix.shape[1] if matrix.ndim == 2 else 0, np.nan)
    ufunc = {np.nanmax: np.fmax, np.nanmin: np.fmin}.get(fn)
    if ufunc is not None:
        return ufunc.reduce(matrix, axis=0)
    all_nan = np.isnan(matrix).all(axis=0)
    filled = np.where(np.isnan(matrix) & all_nan[None, :], 0.0, matrix)
    out = fn(filled, axis=0)
    return np.where(all_nan, np.nan, out)
