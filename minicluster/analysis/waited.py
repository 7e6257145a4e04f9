"""How long the other ranks waited in the collectives for one rank: the evidence that a slow
rank slowed the job, which the straggler and culprit rules require.

Per step (every rank timed its all-reduce), the transfer is the least `comm_ms` of any rank and
each rank's wait is its `comm_ms` minus that (`analysis.steps`). The rank that waited least
arrived last: in that step the others waited for it, the median of their waits (`waited_for`);
in the other steps they did not wait for it (0). Its `waited_for_ms` is the mean over the steps,
ms per step, with a bootstrap interval over the steps (seeded). A rank slow in compute because
its own clock ran on a busy core, while the others did not wait for it (its collective was
entered as late as theirs, or its slowness overlapped theirs), has an interval near zero.

The floor: `checks.straggler_min_waited_pct` percent of the run's median step time. A rank is
named (straggler or culprit) only when its interval's lower bound is above the floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from minicluster.analysis.accounting import field_matrices, first_at
from minicluster.analysis.cost import cost_bootstrap
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import JobSteps, r4

CONFIDENCE = 0.95
MIN_STEPS = 4  # fewer steps with every rank's all-reduce timed: not measured


@dataclass
class WaitedFor:
    """Per rank (`ranks` order) and step (`steps`), how long the others waited for it (ms): only
    a step's last arrival was waited for, so per step its row (`last`) and the others' wait
    (`waited`) are kept, not a [rank x step] matrix of zeros (131 MB at 16,384 x 1,000)."""

    ranks: list[int]
    steps: np.ndarray
    last: np.ndarray  # per step the row (in `ranks`) of its last arrival
    waited: np.ndarray  # per step the median of the others' wait for it
    step_ms: float | None  # the run's median step time (the floor's unit)
    reason: str | None = None  # why it could not be measured

    def row(self, i: int) -> np.ndarray:
        """Per step how long the others waited for row `i`'s rank (0 where it was not last)."""
        out = np.zeros(self.steps.size)
        at = self.last == i
        out[at] = self.waited[at]
        return out

    @property
    def matrix(self) -> np.ndarray:
        """[rank x step]: every row's `row` (made on each call)."""
        out = np.zeros((len(self.ranks), self.steps.size))
        out[self.last, np.arange(self.steps.size)] = self.waited
        return out

    def evidence(self, rank: int, floor_pct: float) -> dict[str, Any]:
        """`rank`'s `waited_for_ms` (mean ms per step), its interval, the floor in ms and whether
        the interval's lower bound is above it (`waited`; None when not measured, with `reason`)."""
        out: dict[str, Any] = {
            "waited_for_ms": None,
            "waited_for_ms_interval": None,
            "waited_for_floor_ms": None,
            "waited_for_steps": None,
            "waited": None,
        }
        if self.reason is None and self.step_ms is None:
            self.reason = "the run has no step time"
        if self.reason is not None or rank not in self.ranks or self.step_ms is None:
            out["waited_for_reason"] = self.reason or f"rank {rank} has no timed all-reduce"
            return out
        row = self.row(self.ranks.index(rank))
        low, high = interval(row, seed=rank)
        floor = floor_pct / 100.0 * self.step_ms
        out.update(
            waited_for_ms=r4(float(row.mean())),
            waited_for_ms_interval=[r4(low), r4(high)],
            waited_for_floor_ms=r4(floor),
            waited_for_steps=int((row > 0).sum()),
            waited=bool(low > floor),
        )
        return out


def measure(records: list[RankRecords], steps: np.ndarray, step_ms: float | None) -> WaitedFor:
    """The others' wait for each rank over the measured `steps` every rank timed (`step_ms`:
    the run's median step time, the floor's unit)."""
    recs = sorted((r for r in records if r.n_steps), key=lambda r: r.rank)
    ranks = [r.rank for r in recs]
    none = np.array([], np.int64)
    empty = WaitedFor(ranks, none, none, np.array([]), step_ms)
    if len(ranks) < 2 or not steps.size:
        empty.reason = "fewer than two ranks with measured steps"
        return empty
    if any("comm_ms" not in r.columns for r in recs):
        empty.reason = "the records hold no per-step all-reduce time (comm_ms)"
        return empty
    # a read-only view of the ranks' columns where every rank recorded the same steps (no copy)
    comm = field_matrices([r.columns for r in recs], steps, ("comm_ms",), prev=False)["comm_ms"]
    return _from_comm(ranks, steps, comm, step_ms)


def measure_rows(
    records: list[RankRecords],
    steps: np.ndarray,
    step_ms: float | None,
    step: np.ndarray,
    comm_ms: np.ndarray,
    starts: np.ndarray,
) -> WaitedFor:
    """`measure(records, steps, step_ms)` in a few numpy operations, for records whose columns
    are rows of [rank x n] matrices: rank `records[i]` holds `step` (int64) and `comm_ms` of
    row i from column `starts[i]` on (`StepTable.of_rows`' layout). The same answer; when a
    rank's steps are not strictly increasing, measured the per-rank way."""
    n, width = step.shape
    if len(records) != n:
        return measure(records, steps, step_ms)
    valid = np.arange(width)[None, :] >= np.asarray(starts)[:, None]
    has = np.asarray(valid.any(axis=1))
    # every rank recorded the same steps (the usual case)?
    aligned = bool(n and valid.all() and (step == step[:1]).all())
    if aligned:
        if (np.diff(step[0]) <= 0).any():  # a step recorded twice, or out of order
            return measure(records, steps, step_ms)
    else:
        low = np.iinfo(np.int64).min
        seen = np.maximum.accumulate(np.where(valid, step, low), axis=1)
        before = np.concatenate((np.full((n, 1), low), seen[:, :-1]), axis=1)
        if (valid & (step <= before)).any():
            return measure(records, steps, step_ms)
    rank_of = np.fromiter((r.rank for r in records), np.int64, n)
    if (np.diff(rank_of) > 0).all():  # in rank order already
        order = np.flatnonzero(has)
    else:
        order = np.argsort(rank_of, kind="stable")
        order = order[has[order]]
    ranks = rank_of[order].tolist()
    if len(ranks) < 2 or not steps.size:
        none = np.array([], np.int64)
        empty = WaitedFor(ranks, none, none, np.array([]), step_ms)
        empty.reason = "fewer than two ranks with measured steps"
        return empty
    in_order = order.size == n and bool((order == np.arange(n)).all())
    comm = np.full((len(ranks), steps.size), np.nan)
    if aligned:
        # each recorded step's place in `steps` (a step not among them is left out)
        at = np.minimum(np.searchsorted(steps, step[0]), steps.size - 1)
        hit = steps[at] == step[0]
        comm[:, at[hit]] = (comm_ms if in_order else comm_ms[order])[:, hit]
        return _from_comm(ranks, steps, comm, step_ms)
    step, valid, comm_ms = step[order], valid[order], comm_ms[order]
    at = np.minimum(np.searchsorted(steps, step), steps.size - 1)
    hit = valid & (steps[at] == step)
    comm[np.nonzero(hit)[0], at[hit]] = comm_ms[hit]
    return _from_comm(ranks, steps, comm, step_ms)


def _from_comm(
    ranks: list[int], steps: np.ndarray, comm: np.ndarray, step_ms: float | None
) -> WaitedFor:
    """The others' wait for each rank from each rank's comm_ms at `steps` (NaN: not recorded)."""
    none = np.array([], np.int64)
    empty = WaitedFor(ranks, none, none, np.array([]), step_ms)
    ok = ~np.isnan(comm).any(axis=0)
    if int(ok.sum()) < MIN_STEPS:
        empty.reason = f"fewer than {MIN_STEPS} steps with every rank's all-reduce timed"
        return empty
    wait = comm[:, ok] if not ok.all() else comm
    least = wait.min(axis=0)
    last = first_at(wait, least)  # np.argmin's answer, without its copy of the matrix
    if wait.flags.writeable:
        wait -= least[None, :]  # in place: comm_ms less the step's least
    else:
        wait = wait - least[None, :]
    return WaitedFor(ranks, steps[ok], last, _median_of_others(wait), step_ms)


def measure_table(table: JobSteps, step_series: np.ndarray | None) -> WaitedFor:
    """`measure` over a step table's ranks and measured steps, the floor's unit the median of
    `step_series` (the run's step time per step, the slowest rank's)."""
    ok = step_series[~np.isnan(step_series)] if step_series is not None else np.array([])
    return measure(table.records, table.indices, float(np.median(ok)) if ok.size else None)


def gate_culprits(
    costs: dict[int, dict[str, Any]], waits: WaitedFor, floor_pct: float
) -> dict[int, dict[str, Any]]:
    """Each culprit's waited-for evidence (`WaitedFor.evidence`), by rank; a culprit the others
    did not wait for (the interval's lower bound not above `floor_pct` of the step time) is set
    not a culprit in `costs`. When the wait could not be measured the cost rule alone stands."""
    evidence = {}
    for rank, c in costs.items():
        if c["culprit"]:
            evidence[rank] = waits.evidence(rank, floor_pct)
            if evidence[rank].pop("waited") is False:
                c["culprit"] = False
    return evidence


def _median_of_others(wait: np.ndarray) -> np.ndarray:
    """Per step (column) the median of the waits without the least one (the last arrival's),
    as `np.median` of the column with that value deleted gives it, all steps at once (`wait`
    is partitioned in place)."""
    m = wait.shape[0] - 1  # the others
    # their middle values sit one place up in the whole column, past its least
    lo, hi = (m - 1) // 2 + 1, m // 2 + 1
    wait.partition(sorted({lo, hi}), axis=0)  # in place: the caller's own matrix
    return (wait[lo] + wait[hi]) / 2 if lo != hi else wait[lo].copy()


def interval(values: np.ndarray, seed: int) -> tuple[float, float]:
    """The bootstrap interval (percentile, seeded) of the mean of `values`."""
    if values.size < 2 or float(values.max()) == float(values.min()):
        v = float(values.mean()) if values.size else 0.0
        return v, v
    # scipy's bootstrap of one sample, paired or not, draws and resamples alike
    return cost_bootstrap(np.mean, (values,), CONFIDENCE, seed)
