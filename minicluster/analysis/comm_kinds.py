"""The `comm` section of a training result: one entry per collective kind the steps issued.

Each figure is per step: the max over ranks (the job waits for its slowest rank), then the median
over measured steps. Where every rank issued the same calls and bytes of a kind in a step, the
skew definition applies: `transfer_ms` is the min over ranks of its time (the rank that waited
least), `wait_ms` the longest any rank spent beyond it; busbw is bytes x nccl-tests' factor over
the transfer time. A DDP run fills the all-reduce entry from its gradient all-reduce timing.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import numpy as np

from minicluster.analysis.records import RankRecords, Stacked
from minicluster.analysis.row_medians import medians_of_rows
from minicluster.core import comm_kinds as ck

NOT_SPLIT = (
    "not split: ranks issued different calls or bytes of it (or a rank is missing), so the min "
    "over ranks is not one transfer"
)


def comm_section(records: list[RankRecords], world_size: int) -> dict[str, Any] | None:
    """The `comm` section, or None for a run without measured steps."""
    fast = ddp_section(records, world_size)
    if fast is not None:
        return fast or None
    steps = {r.rank: [s for s in r.steps if not s.get("warmup")] for r in records}
    if not any(steps.values()):
        return None
    per_rank: dict[int, dict[int, dict[str, dict[str, Any]]]] = {}  # rank -> step -> kind
    # A step's comm_kinds is a dict (a column of steps without it reads back as NaN or None).
    wrapped = any(isinstance(s.get("comm_kinds"), dict) for ss in steps.values() for s in ss)
    for rank, ss in steps.items():
        per_rank[rank] = {
            s["step"]: _own_kinds(s) if wrapped else _ddp_kinds(s, world_size) for s in ss
        }
    method = ck.WRAPPED_HOST_CLOCK if wrapped else ck.DDP_ALLREDUCE
    present = {k for by_step in per_rank.values() for kinds in by_step.values() for k in kinds}
    kinds = [_kind(kind, per_rank, method) for kind in ck.KINDS if kind in present]
    return {
        "method": method,
        "method_text": ck.METHOD_TEXT[method],
        "definitions": _definitions(),
        "kinds": kinds,
    }


def _own_kinds(step: dict[str, Any]) -> dict[str, dict[str, Any]]:
    kinds = step.get("comm_kinds")
    return kinds if isinstance(kinds, dict) else {}


def _ddp_kinds(step: dict[str, Any], n: int) -> dict[str, dict[str, Any]]:
    """A DDP step's gradient all-reduce as one kind (buckets and bytes where the method counts
    them)."""
    nbytes = _number(step.get("comm_bytes"))
    time_ms = _number(step.get("comm_ms"))
    reason = step.get("comm_reason")
    return {
        "all_reduce": {
            "calls": _number(step.get("buckets")),
            "bytes": nbytes,
            "bus_bytes": None if nbytes is None else nbytes * ck.busbw_factor("all_reduce", n),
            "time_ms": time_ms,
            "exposed_ms": _number(step.get("exposed_comm_ms")),
            "untimed": 0 if time_ms is not None else (_number(step.get("buckets")) or 0),
            "reason": reason if isinstance(reason, str) else None,
        }
    }


def _number(value: Any) -> float | None:
    """A step field as a number; None for null and for NaN (a column's missing value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return value


def _median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    mid = statistics.median(got)
    return int(mid) if float(mid).is_integer() else float(f"{mid:.6g}")  # 6 significant digits


def _kind(
    kind: str, per_rank: dict[int, dict[int, dict[str, dict[str, Any]]]], method: str
) -> dict[str, Any]:
    ranks = sorted(per_rank)
    all_steps = sorted({s for by_step in per_rank.values() for s in by_step})
    empty: dict[str, Any] = {"calls": 0, "bytes": 0, "time_ms": None, "exposed_ms": None}

    def of(rank: int, step: int) -> dict[str, Any] | None:
        by_step = per_rank[rank]
        if step not in by_step:
            return None
        return by_step[step].get(kind, empty)

    def job(key: str, pick: Callable[[list[Any]], Any] = max) -> float | None:
        per_step = []
        for step in all_steps:
            values = [v[key] for r in ranks if (v := of(r, step)) and v.get(key) is not None]
            per_step.append(pick(values) if values else None)
        return _median(per_step)

    transfer_at: dict[int, float] = {}
    transfers: list[float | None] = []
    waits: list[float | None] = []
    busbw: list[float | None] = []
    split = True
    for step in all_steps:
        entries = [of(r, step) for r in ranks]
        if (
            any(e is None for e in entries)
            or len({(e["calls"], e["bytes"]) for e in entries if e is not None}) != 1
        ):
            split = False
            continue
        times = [e.get("time_ms") for e in entries if e is not None]
        if any(t is None for t in times) or not times:
            continue
        transfer = min(t for t in times if t is not None)
        transfer_at[step] = transfer
        transfers.append(transfer)
        waits.append(max(t for t in times if t is not None) - transfer)
        bus = max((e.get("bus_bytes") or 0) for e in entries if e is not None)
        busbw.append(bus / (transfer / 1e3) / 1e9 if transfer > 0 and bus else None)
    time_ms = job("time_ms")
    untimed = sum(
        (v.get("untimed") or 0) for r in ranks for s in all_steps if (v := of(r, s)) is not None
    )
    reasons = {
        v.get("reason") for r in ranks for s in all_steps if (v := of(r, s)) and v.get("reason")
    }
    reason = None
    if time_ms is None:
        reason = "; ".join(sorted(str(r) for r in reasons)) or "no call of this kind was timed"
    return {
        "kind": kind,
        "label": ck.LABELS[kind],
        "calls_per_step": job("calls"),
        "bytes_per_step": job("bytes"),
        "time_ms": time_ms,
        "exposed_ms": job("exposed_ms"),
        "transfer_ms": _median(transfers) if split else None,
        "wait_ms": _median(waits) if split else None,
        "busbw_gbps": _median(busbw) if split else None,
        "status": "measured" if time_ms is not None else "unavailable",
        "method": method,
        "reason": reason,
        "untimed_calls": untimed,
        "wait_transfer": "split" if split else NOT_SPLIT,
        "per_rank": [
            _rank_entry(r, per_rank[r], kind, empty, transfer_at if split else None) for r in ranks
        ],
    }


def _rank_entry(
    rank: int,
    by_step: dict[int, dict[str, dict[str, Any]]],
    kind: str,
    empty: dict[str, Any],
    transfer_at: dict[int, float] | None,
) -> dict[str, Any]:
    entries = [kinds.get(kind, empty) for kinds in by_step.values()]
    waits: list[float | None] = []
    for step, kinds in by_step.items():
        time_ms = kinds.get(kind, empty).get("time_ms")
        if transfer_at is not None and step in transfer_at and time_ms is not None:
            waits.append(time_ms - transfer_at[step])
    return {
        "rank": rank,
        "calls_per_step": _median([e.get("calls") for e in entries]),
        "bytes_per_step": _median([e.get("bytes") for e in entries]),
        "time_ms": _median([e.get("time_ms") for e in entries]),
        "exposed_ms": _median([e.get("exposed_ms") for e in entries]),
        "wait_ms": _median(waits) if transfer_at is not None else None,
    }


def _definitions() -> dict[str, Any]:
    return {
        "calls_per_step": "collectives of the kind per step (median over measured steps of the "
        "max over ranks); groups of one rank left out",
        "bytes_per_step": dict(ck.BYTES_TEXT),
        "time_ms": "time with at least one collective of the kind in flight (union of its "
        "spans), median over measured steps of the max over ranks",
        "exposed_ms": "time the rank was blocked on the kind (not hidden behind compute), median "
        "over measured steps of the max over ranks",
        "transfer_ms": "min over ranks of time_ms per step (the rank that waited least)",
        "wait_ms": "time_ms - transfer_ms per step: the longest any rank waited for the others",
        "busbw_gbps": "sum over calls of bytes x busbw factor(n) / transfer_ms (nccl-tests "
        "doc/PERFORMANCE.md); GB = 1e9 bytes",
        "busbw_factor": {k: ck.busbw_factor_text(k) for k in ck.KINDS},
    }


def ddp_section(records: list[RankRecords], world_size: int) -> dict[str, Any] | None:
    """`comm_section` of a DDP run (no step records its own comm_kinds) from [rank x step]
    matrices (`records.Stacked`): the same figures as the per-step path, one numpy operation
    per field. {} for a run without measured steps; None when the steps are not laid out so
    (the per-step path then)."""
    if any("comm_kinds" in r.columns for r in records) or len({r.rank for r in records}) < len(
        records
    ):
        return None
    order = sorted(range(len(records)), key=lambda i: records[i].rank)
    stacked = Stacked.of([records[i] for i in order])
    if stacked is None:
        return None
    if not stacked.present.any():
        return {}
    mats = {}
    for key, field in (
        ("calls", "buckets"),
        ("bytes", "comm_bytes"),
        ("time_ms", "comm_ms"),
        ("exposed_ms", "exposed_comm_ms"),
    ):
        m = stacked.matrix(field)
        if m is None:
            return None
        mats[key] = m
    reasons = _reasons(stacked)
    if reasons is None:
        return None
    kind = _ddp_kind(stacked, mats, ck.busbw_factor("all_reduce", world_size), reasons)
    method = ck.DDP_ALLREDUCE
    return {
        "method": method,
        "method_text": ck.METHOD_TEXT[method],
        "definitions": _definitions(),
        "kinds": [kind | {"method": method}],
    }


def _reasons(stacked: Stacked) -> set[str] | None:
    """The comm_reason strings of the measured steps (None: a column that is not one of strings
    and nulls)."""
    out: set[str] = set()
    for rec, (pick, _) in zip(stacked._records, stacked._cols, strict=True):
        col = rec.columns.get("comm_reason")
        if col is None or col.dtype.kind == "f" or "step" not in rec.columns:
            continue  # absent, or null throughout (read back as NaN)
        if col.dtype != object:
            return None
        out.update(v for v in set(col[pick].tolist()) if isinstance(v, str) and v)
    return out


def _ddp_kind(
    stacked: Stacked, mats: dict[str, np.ndarray], factor: float, reasons: set[str]
) -> dict[str, Any]:
    """`_kind` of the DDP gradient all-reduce, from the matrices (NaN: null or not recorded)."""
    present = stacked.present
    calls, nbytes, time_ms = mats["calls"], mats["bytes"], mats["time_ms"]

    def job(m: np.ndarray) -> float | None:
        with np.errstate(all="ignore"):
            return _median_of(np.fmax.reduce(m, axis=0))

    split = bool(present.all()) and all(
        _one_value(m) for m in (calls, nbytes)
    )  # every rank issued the same calls and bytes in every step
    transfer = wait = busbw = None
    transfer_at = None
    if split:
        timed = ~np.isnan(time_ms).any(axis=0)
        every = bool(timed.all())  # then no copy of the columns timed
        lo = np.min(time_ms if every else time_ms[:, timed], axis=0)
        hi = np.max(time_ms if every else time_ms[:, timed], axis=0)
        bus = (nbytes if every else nbytes[:, timed]) * factor
        if not np.isfinite(bus).all():  # else nan_to_num changes nothing (and costs 4 passes)
            bus = np.nan_to_num(bus, nan=0.0)
        bus = bus.max(axis=0)
        with np.errstate(all="ignore"):
            rate = bus / (lo / 1e3) / 1e9
        rate[~((lo > 0) & (bus != 0))] = np.nan
        transfer, wait, busbw = _median_of(lo), _median_of(hi - lo), _median_of(rate)
        transfer_at = np.full(stacked.steps.size, np.nan)
        transfer_at[timed] = lo
    time_med = job(time_ms)
    untimed = 0
    if np.isnan(time_ms).any():  # else no call is untimed (and no [rank x step] masks made)
        untimed_at = present & np.isnan(time_ms) & ~np.isnan(calls) & (calls != 0)
        untimed = sum(calls[untimed_at].tolist(), 0)
    reason = None
    if time_med is None:
        reason = "; ".join(sorted(reasons)) or "no call of this kind was timed"
    medians = {
        k: _row_medians(m, present)
        for k, m in (
            ("calls_per_step", calls),
            ("bytes_per_step", nbytes),
            ("time_ms", time_ms),
            ("exposed_ms", mats["exposed_ms"]),
        )
    }
    if transfer_at is not None:
        medians["wait_ms"] = _row_medians(time_ms - transfer_at[None, :], present, own=True)
    per_rank = [
        {"rank": rank, **{k: v[i] for k, v in medians.items()}}
        | ({} if transfer_at is not None else {"wait_ms": None})
        for i, rank in enumerate(stacked.ranks)
    ]
    return {
        "kind": "all_reduce",
        "label": ck.LABELS["all_reduce"],
        "calls_per_step": job(calls),
        "bytes_per_step": job(nbytes),
        "time_ms": time_med,
        "exposed_ms": job(mats["exposed_ms"]),
        "transfer_ms": transfer,
        "wait_ms": wait,
        "busbw_gbps": busbw,
        "status": "measured" if time_med is not None else "unavailable",
        "method": None,
        "reason": reason,
        "untimed_calls": untimed,
        "wait_transfer": "split" if split else NOT_SPLIT,
        "per_rank": per_rank,
    }


def _one_value(m: np.ndarray) -> bool:
    """Every row holds the first row's value in each step (null equal to null)."""
    first = m[:1]
    return bool(((m == first) | (np.isnan(m) & np.isnan(first))).all())


def _median_of(values: np.ndarray) -> float | None:
    """`_median` of the values that are not NaN."""
    got = np.sort(values[~np.isnan(values)])
    n = int(got.size)
    if not n:
        return None
    mid = float(got[n // 2]) if n % 2 else (float(got[n // 2 - 1]) + float(got[n // 2])) / 2
    return int(mid) if float(mid).is_integer() else float(f"{mid:.6g}")


def _row_medians(m: np.ndarray, present: np.ndarray, own: bool = False) -> list[float | None]:
    """Per row `_median` of its values where `present` and not NaN: full rows at once (a row
    of one value is that value: calls and bytes per step mostly are; the others by one
    partition of the matrix), the others one by one. `own`: `m` is the caller's to partition
    in place (else a matrix made here is, and `m` is copied only when none was)."""
    if not present.all():
        m = np.where(present, m, np.nan)
        own = True
    full = ~np.isnan(m).any(axis=1)
    out: list[float | None] = [None] * m.shape[0]
    if full.any() and m.shape[1]:
        rows = m if full.all() else m[full]
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        # np.median of n copies of v: v, or (v + v) / 2, which is v but where v + v overflows
        varies = (lo != hi) | ~(np.abs(lo) < 1e307)
        med = lo
        if varies.any():
            med = lo.copy()
            every = bool(varies.all())
            med[varies] = medians_of_rows(
                rows if every else rows[varies],
                overwrite=not every or own or rows is not m,  # a matrix of its own: no copy
            )
        for i, v in zip(np.flatnonzero(full).tolist(), med.tolist(), strict=True):
            out[i] = int(v) if float(v).is_integer() else float(f"{v:.6g}")
    for i in np.flatnonzero(~full).tolist():
        out[i] = _median_of(m[i])
    return out
