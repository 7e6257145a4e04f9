"""Where every millisecond of every step went, per step and rank, and who arrived last.

The model (DDP: one sync point per step, the gradient all-reduce that `loss.backward()` waits
for). A rank's *period* of step s runs from the end of its backward of step s-1 to the end of
its backward of step s, on its own clock: its optimizer step of s-1 and the host time before
step s (`opt_ms` of s-1 + `gap_ms` of s: the rank's *host* time), its forward and backward
compute (`compute_ms`), and the exposed communication (`exposed_comm_ms`). Its own work before
the sync point is host + compute: the rank *arrives* at the all-reduce when that is done. The
all-reduce ends when the last rank has arrived and the data moved, at about the same time on
every rank, so per step:

- the step's time is the median rank's own period (a rank descheduled as the all-reduce
  returned sees the step end late, and its next one start late: its periods are off by that
  delay step by step, but their sum over the run is not);
- the last arrival (the step's culprit) is the rank with the most own work; its *lateness* is
  how much later than the next-to-last rank it arrived (what the step would save if it had
  arrived with the others);
- *transfer* is the step's time after the last arrival's own work (it waited for nobody);
- each rank's *wait* is the last arrival's own work minus its own.

So per rank and step host + compute + wait + transfer = the step's time, and each rank's own
measured period must equal it: the residual (own period - the step's time) is the accounting
error, reported per step and over the run with its tolerance.

Many sync points per step (FSDP2's all-gathers and reduce-scatters, TP's all-reduces: the ranks
record `syncs_ms`, the time blocked in each collective call in issue order, and `sync_groups`,
each call's group by its lowest rank): the waits add up over the step's sync points, not at one.
At each sync point the group's last arrival is the member blocked least (it waited for nobody):
that is the point's *transfer* for the group, each member's *wait* the rest of its blocked time,
and the last arrival's *lateness* there how much less it was blocked than the next-to-last. Per
rank and step wait and transfer are the sums over the step's sync points, the step's last
arrival the rank with the most lateness summed over them. The residual is then host + compute +
wait + transfer - the step's time: a blocked time the sync points missed (a wait outside a
collective call), or ranks that did not meet, shows in it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np

from minicluster.analysis.records import KnownRows, RankRecords, rows_view
from minicluster.analysis.row_medians import row_medians
from minicluster.analysis.steps import JobSteps, r4, rounded_list

# Stated tolerance of the sum: over the run, |sum of the residuals| within this share of the
# run's accounted time, or this many ms. Measured on a 2-core host at load 4-9 (runs of
# tests/e2e/test_culprit_cli.py and of `minicluster run`, faults and healthy): the run's sum
# 0.01-2.9% of its time, per step p50 0.05-2 ms, p95 1-7 ms.
RUN_TOLERANCE_PCT = 5.0
RUN_TOLERANCE_MS = 5.0
MODEL = (
    "period = host + compute + wait + transfer (exposed communication = wait + transfer); "
    "host: optimizer step of the previous step + host time before this one; one sync point per "
    "step (DDP: the gradient all-reduce)"
)
MODEL_SYNCS = (
    "period = host + compute + wait + transfer, summed over the step's sync points (every "
    "collective call: FSDP2 all-gathers and reduce-scatters, TP all-reduces); at each, the "
    "transfer is the time its group's last arrival was blocked, a member's wait the rest of its "
    "blocked time; host: optimizer step of the previous step + host time before this one"
)
FIELDS = ("opt_ms", "gap_ms", "compute_ms", "exposed_comm_ms", "fwd_ms", "bwd_ms")
# The fields only the host time is made of: aggregation reads them nowhere else (`Accounting.host`
# holds their sum), so a caller done with the records may let them go once `account` returns.
HOST_FIELDS = ("opt_ms", "gap_ms")


@dataclass
class SyncSums:
    """[rank x step] sums over each step's sync points (`sync_points`), and their count per
    step."""

    wait: np.ndarray
    transfer: np.ndarray
    late: np.ndarray
    count: np.ndarray


@dataclass
class Accounting:
    """[rank x step] matrices over the steps every rank accounted for (`steps`), ranks in
    `ranks` order. `own`: host + compute (the work before the sync point)."""

    ranks: list[int]
    steps: np.ndarray
    host: np.ndarray
    compute: np.ndarray
    exposed: np.ndarray
    period: np.ndarray  # each rank's own measured period (own clock)
    reason: str | None = None  # why nothing could be accounted for
    # Many sync points per step (`sync_points`): per rank and step the wait and the transfer
    # summed over them, and the lateness at the points where the rank arrived last
    syncs: SyncSums | None = None

    @cached_property
    def own(self) -> np.ndarray:
        # computed once: read row by row it was rebuilt per row, and each row's view kept its
        # whole [rank x step] matrix alive (31 MB a row at 4,096 x 1,000: the process went
        # past 23 GB)
        return self.host + self.compute

    @cached_property
    def top_two(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per step the row with the most own work (the first such), that work, and the next
        most (the largest with one rank: no second): one partition of `own` for the last
        arrival, its lateness, the step's time and the costs (each sorted or copied `own`,
        131 MB at 16,384 x 1,000)."""
        own = self.own
        if own.shape[0] < 2:
            most = own.max(axis=0)
            return np.argmax(own, axis=0), most, most
        most = own.max(axis=0)
        if np.isnan(most).any() or (own == 0).any():
            # NaN, or a zero whose sign a max and a partition may take from different rows: the
            # partition, as before
            part = np.partition(own, own.shape[0] - 2, axis=0)
            most, second = part[-1].copy(), part[-2].copy()  # rows of `part` would keep it all
            del part
            return first_at(own, most), most, second
        last = first_at(own, most)
        # the next most: the largest but the last arrival's (the values a partition of the
        # whole matrix gives, without its copy or its selection: 0.14 s of 4,096 x 995)
        return last, most, max_but_one(own, last)

    @property
    def n(self) -> int:
        return int(self.steps.size)

    @property
    def last(self) -> np.ndarray:
        """Per step the row of the last arrival (many sync points: the most late over them)."""
        if self.syncs is not None:
            return np.argmax(self.syncs.late, axis=0)
        return self.top_two[0]

    @property
    def lateness(self) -> np.ndarray:
        """Per step how long after the next-to-last rank the last one arrived (ms; many sync
        points: summed over those it arrived last at)."""
        if len(self.ranks) < 2:
            return np.zeros(self.n)
        if self.syncs is not None:
            return self.syncs.late.max(axis=0)
        _, most, second = self.top_two
        return most - second

    @cached_property
    def accounted(self) -> np.ndarray:
        """Per step its time, that every rank's components add up to: the median rank's own
        period (at least the last arrival's own work)."""
        return np.maximum(np.median(self.period, axis=0), self.top_two[1])

    @property
    def transfer(self) -> np.ndarray:
        """Per step the time from the last arrival to the end of the all-reduce."""
        return self.accounted - self.top_two[1]

    @property
    def transfer_of_rank(self) -> np.ndarray:
        """[rank x step] transfer: the step's, or each rank's sum over its sync points."""
        if self.syncs is not None:
            return self.syncs.transfer
        return np.broadcast_to(self.transfer, self.own.shape)

    @property
    def wait(self) -> np.ndarray:
        if self.syncs is not None:
            return self.syncs.wait
        return self.top_two[1][None, :] - self.own

    @property
    def residual(self) -> np.ndarray:
        if self.syncs is not None:
            parts = self.own + self.syncs.wait + self.syncs.transfer
            return parts - self.accounted[None, :]
        return self.period - self.accounted[None, :]


def account(
    records: list[RankRecords],
    table: JobSteps,
    known: Mapping[str, KnownRows] | None = None,
) -> Accounting:
    """The accounting of the measured steps every rank recorded with every field it needs (a
    step needs the previous step's optimizer time, so the first recorded step has none).
    `known`: per field, the matrix whose rows the ranks' columns are (`records.rows_view`)."""
    ranks = sorted(r.rank for r in table.records)
    empty = np.zeros((len(ranks), 0))
    if len(ranks) < 2 or not table.indices.size:
        return Accounting(ranks, np.array([], np.int64), empty, empty, empty, empty, "no steps")
    by_rank = {r.rank: r for r in table.records}
    columns = [by_rank[r].columns for r in ranks]
    missing = [k for k in FIELDS if not all(map(operator.contains, columns, repeat(k)))]
    if missing:
        return Accounting(
            ranks,
            np.array([], np.int64),
            empty,
            empty,
            empty,
            empty,
            f"the ranks did not record {', '.join(missing)} (records from before the host time "
            "between steps was recorded)",
        )
    steps = table.indices
    keys = tuple(k for k in FIELDS if k != "opt_ms")  # the step's own optimizer time: unread
    mats = field_matrices(columns, steps, keys, known=known)
    # [rank x step] matrices are 33 MB each at 4,096 x 1,000: summed in place, each let go
    # once summed (the same sums, in the same order: host = opt_prev + gap, period = host +
    # fwd + bwd)
    # (views of the ranks' columns where `field_matrices` could: read-only, not added in place)
    host = _sum(mats.pop("opt_prev"), mats.pop("gap_ms"))
    period = host + mats.pop("fwd_ms")
    period += mats.pop("bwd_ms")
    compute = mats["compute_ms"]
    exposed = mats["exposed_comm_ms"]
    del mats
    ok = ~(
        np.isnan(host).any(axis=0)
        | np.isnan(compute).any(axis=0)
        | np.isnan(exposed).any(axis=0)
        | np.isnan(period).any(axis=0)
    )
    reason = None if ok.any() else "no step with every rank's host, compute and exposed time"
    if not ok.all():
        host, compute, exposed, period = (m[:, ok] for m in (host, compute, exposed, period))
    return Accounting(
        ranks,
        steps[ok],
        host,
        compute,
        exposed,
        period,
        reason,
        sync_points([by_rank[r] for r in ranks], steps[ok]),
    )


def first_at(matrix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per column the first row where `matrix` holds `values` (its max or min: then what
    `np.argmax` or `np.argmin` give, for columns without NaN), without the copy of the matrix
    those make along axis 0 (131 MB at 16,384 x 1,000)."""
    return np.argmax(matrix == values[None, :], axis=0)


def max_but_one(matrix: np.ndarray, rows: np.ndarray, block: int = 256) -> np.ndarray:
    """Per column j the largest value of `matrix` but the one in row `rows[j]` (with that row
    holding the column's max: its next most, ties counted), a `block` of rows at a time (no
    copy of the matrix; the blocks holding a skipped value copied, `block` rows at most)."""
    second = np.full(matrix.shape[1], -np.inf)
    for start in range(0, matrix.shape[0], block):
        part = matrix[start : start + block]
        cols = np.flatnonzero((rows >= start) & (rows < start + part.shape[0]))
        if cols.size:
            part = part.copy()
            part[rows[cols] - start, cols] = -np.inf
        np.maximum(second, part.max(axis=0), out=second)
    return second


def _sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a + b`; one row broadcast to every rank when both are (a column every rank held alike,
    `records.rows_view`): the same values without a [rank x step] matrix."""
    if a.shape[0] and a.strides[0] == 0 and b.strides[0] == 0:
        return np.broadcast_to(a[0] + b[0], a.shape)
    return a + b


def _sync_lists(records: RankRecords, steps: np.ndarray) -> list[tuple[list[float], list[Any]]]:
    """Per step of `steps` the rank's (syncs_ms, sync_groups); empty lists where it recorded
    none."""
    c = records.columns
    if "syncs_ms" not in c:
        return [([], [])] * steps.size
    at = {int(s): j for j, s in enumerate(c["step"].tolist())}
    groups = c.get("sync_groups")
    out = []
    for s in steps.tolist():
        j = at.get(int(s))
        ms = _as_list(c["syncs_ms"][j]) if j is not None else None
        g = _as_list(groups[j]) if groups is not None and j is not None else None
        ms = ms or []
        out.append((ms, g if g is not None and len(g) == len(ms) else [None] * len(ms)))
    return out


def _leader(group: Any) -> int:
    """A sync point's group as recorded (its lowest rank); -1 (the whole job) when unknown."""
    if isinstance(group, (int, float)) and not isinstance(group, bool) and group == group:
        return int(group)
    return -1


def _as_list(value: Any) -> list[Any] | None:
    """A list field's value as read back: a list, or a row of a 2-D object column (lists of one
    length stack); None for a step without it (None or NaN)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else None


def sync_points(records: list[RankRecords], steps: np.ndarray) -> SyncSums | None:
    """Wait, transfer and lateness summed over each step's sync points (the module's model),
    from the ranks' `syncs_ms` and `sync_groups`; None when a rank recorded none, or the ranks'
    counts of sync points differ in a step (then their k-th calls are not one collective)."""
    if not steps.size:
        return None
    if records and "syncs_ms" not in records[0].columns:
        return None  # (the first rank recorded none: its count differs from a step's first)
    per_rank = [_sync_lists(r, steps) for r in records]
    n_ranks = len(records)
    shape = (n_ranks, steps.size)
    wait, transfer, late = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    count = np.zeros(steps.size, dtype=np.int64)
    for j in range(steps.size):
        lists = [per_rank[i][j] for i in range(n_ranks)]
        k = len(lists[0][0])
        if k == 0 or any(len(ms) != k for ms, _ in lists):
            return None
        blocked = np.array([ms for ms, _ in lists], dtype=np.float64)  # rank x sync point
        leaders = np.array([[_leader(g) for g in gs] for _, gs in lists], dtype=np.int64)
        for point in range(k):
            for leader in np.unique(leaders[:, point]):
                rows = np.flatnonzero(leaders[:, point] == leader)
                b = blocked[rows, point]
                order = np.argsort(b)
                transfer[rows, j] += b[order[0]]
                wait[rows, j] += b - b[order[0]]
                if rows.size >= 2:
                    late[rows[order[0]], j] += b[order[1]] - b[order[0]]
        count[j] = k
    return SyncSums(wait, transfer, late, count)


def section(acc: Accounting) -> dict[str, Any]:
    """`result.json`'s `accounting`: the model, the tolerance and whether it holds, per step the
    last arrival and its lateness, per rank the median of each component."""
    out: dict[str, Any] = {
        "model": MODEL if acc.syncs is None else MODEL_SYNCS,
        "steps_accounted": acc.n,
        "holds": None,
        "reason": acc.reason,
    }
    if not acc.n:
        return out
    residual = acc.residual  # a new matrix: made absolute and partitioned in place below
    total = float(acc.accounted.sum())
    run_residual = residual.sum(axis=1)
    worst = float(np.abs(run_residual).max())
    allowed = max(RUN_TOLERANCE_MS, RUN_TOLERANCE_PCT / 100.0 * total)
    np.abs(residual, out=residual)
    # one partition for both
    p50, p95 = np.percentile(residual, [50, 95], overwrite_input=True).tolist()
    del residual
    out.update(
        holds=bool(worst <= allowed),
        tolerance={
            "run_pct": RUN_TOLERANCE_PCT,
            "run_ms": RUN_TOLERANCE_MS,
            "run_residual_ms_max": r4(worst),
            "run_accounted_ms": r4(total),
            "step_residual_ms_p50": r4(p50),
            "step_residual_ms_p95": r4(p95),
        },
        last_arrival={
            "step": acc.steps.tolist(),
            "rank": [acc.ranks[i] for i in acc.last.tolist()],
            "lateness_ms": rounded_list(acc.lateness),
        },
        per_rank_ms_median=per_rank_medians(acc),
    )
    if acc.syncs is not None:
        out["sync_points_per_step"] = int(np.median(acc.syncs.count))
    if not out["holds"]:
        out["reason"] = (
            f"a rank's periods differ from the accounted ones by {worst:.1f} ms over the run "
            f"(tolerance {allowed:.1f} ms): the ranks did not meet at one sync point per step"
            if acc.syncs is None
            else f"a rank's host + compute + wait + transfer over its sync points differ from "
            f"the step times by {worst:.1f} ms over the run (tolerance {allowed:.1f} ms): "
            "blocked time outside the recorded collective calls, or ranks that did not meet"
        )
    return out


def field_matrices(
    columns: list[dict[str, np.ndarray]],
    steps: np.ndarray,
    keys: tuple[str, ...] = FIELDS,
    prev: bool = True,
    known: Mapping[str, KnownRows] | None = None,
) -> dict[str, np.ndarray]:
    """[rank x step] matrices of `keys` (step fields every rank holds) at `steps` (NaN where a
    rank did not record the step; a step recorded twice: its last record) and, with `prev`,
    `opt_prev`: the optimizer time of the step before. Ranks that recorded the same steps share one lookup (the usual case: every
    rank). When every rank recorded the same steps, the wanted ones one after another, and a
    field's columns are the rows of one buffer (`records.rows_view`: the columnar reader's), its
    matrix is a read-only view of them: no copy (each is 131 MB at 16,384 x 1,000)."""
    wanted = {k: (k, False) for k in keys} | ({"opt_prev": ("opt_ms", True)} if prev else {})
    mats: dict[str, np.ndarray] = {}
    step0 = columns[0]["step"] if columns else None
    if step0 is not None and all(
        c["step"] is step0 or np.array_equal(c["step"], step0) for c in columns
    ):
        pos = {False: positions(step0, steps), True: positions(step0, steps - 1)}
        at = {back: _run_of(i) for back, i in pos.items()}
        for name, (key, back) in wanted.items():
            view = rows_view([c[key] for c in columns], (known or {}).get(key))
            if view is not None and at[back] is not None:
                mats[name] = view[:, at[back]]
            elif view is not None:  # (e.g. `opt_prev`: the first step's previous one unread)
                # what the rank-by-rank loop below gives, every rank at once
                have = pos[back] >= 0
                mats[name] = np.full((len(columns), steps.size), np.nan)
                mats[name][:, have] = view[:, pos[back][have]]
    rest = [k for k in wanted if k not in mats]
    if not rest:
        return mats
    for k in rest:
        mats[k] = np.full((len(columns), steps.size), np.nan)
    lookup: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for i, c in enumerate(columns):
        step = c["step"]
        if lookup is None or (step is not lookup[0] and not np.array_equal(lookup[0], step)):
            lookup = (step, positions(step, steps), positions(step, steps - 1))
        _, idx, before = lookup
        for k in rest:
            key, back = wanted[k]
            where = before if back else idx
            have = where >= 0
            mats[k][i, have] = c[key][where[have]]
    return mats


def _run_of(idx: np.ndarray) -> slice | None:
    """`idx` (positions, -1: none) as a slice when they are one after another; None otherwise."""
    if not idx.size or idx[0] < 0 or not (np.diff(idx) == 1).all():
        return None
    return slice(int(idx[0]), int(idx[0]) + idx.size)


def positions(step: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per wanted step the index of its last record in `step` (-1 where none)."""
    order = np.argsort(step, kind="stable")  # equal steps keep their order: the last is rightmost
    ordered = step[order]
    pos = np.searchsorted(ordered, wanted, side="right") - 1
    ok = pos >= 0
    ok[ok] = ordered[pos[ok]] == wanted[ok]
    return np.where(ok, order[pos.clip(min=0)] if order.size else -1, -1)


def per_rank_medians(acc: Accounting) -> dict[str, dict[str, float]]:
    """`section`'s per rank medians of each component, every rank at once (each matrix's rows;
    the transfer is each rank's own: summed over its sync points under FSDP2/TP)."""
    own = acc.syncs is None  # the wait is then a matrix of its own: partitioned in place
    medians = []
    for name in ("host", "compute", "wait", "transfer_of_rank", "period"):
        m = getattr(acc, name)  # (the wait made only when its turn comes)
        medians.append(
            # one sync point per step: every rank's transfer is the step's, one median for all
            # (a host time every rank recorded alike: one row too)
            [float(np.median(m[0]))] * m.shape[0]
            if m.shape[0] and m.strides[0] == 0
            else row_medians(m, overwrite=own and name == "wait").tolist()
        )
        del m
    return {
        str(rank): {
            "host": r4(host),
            "compute": r4(compute),
            "wait": r4(w),
            "transfer": r4(transfer),
            "period": r4(period),
        }
        for rank, host, compute, w, transfer, period in zip(acc.ranks, *medians, strict=True)
    }
