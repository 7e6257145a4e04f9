"""Per-node reduction: what a job's result needs of one node's step records, in O(steps).

A node (its local rank 0) reduces its ranks' step records (`RankRecords`) to a `NodeReduction`:

- per measured step, over the node's ranks, the max, min, argmax and argmin (the rank) of step
  time, compute, all-reduce (`comm_ms`), exposed communication, gradient bytes and buckets, and
  how many ranks have a compute time; the ranks that tie for the node's max compute (the
  straggler's sign test counts ties). These are exact under merging: a max of maxes is the max.
  Transfer (min over ranks of comm_ms) and wait (comm - transfer) follow from comm's min and max;
- per rank: its figures of `ranks[]` that are its own (step time percentiles and mean, compute
  median and mean, all-reduce and exposed medians: `StepTable.rank_figures`), its measured step
  count, which of the node's steps it measured (None: all), and its `comm_ms` per step. That one
  column per rank is carried because a rank's wait median is the median over steps of its
  comm_ms minus the job's transfer, which only the merge knows: it does not decompose;
- per rank a lean record (header, summary and the other non-step records; of the steps only the
  last row and the rows with replica checksums, which failure order and the divergence check
  read; and every row of the per-step accounting's fields and of what the `comm` section reads
  (`analysis.comm_kinds`: per kind, per rank and step), where the rank recorded them).

`ReducedTable` merges node reductions into what aggregation reads of a `StepTable` (the job's
per-step series, the rank figures, the straggler's and the node section's questions), and
`aggregate_reduced` gives the result. `to_bytes`/`from_bytes` is the reduction's codec (a JSON
part and byte-shuffled little-endian arrays, zlib-compressed: docs/formats.md); `reduce_logs`
is the in-band gather's reducer (a node's rank logs to those bytes, on the node's leader) and
`aggregate_in_band` rank 0's result from what the nodes sent (`core.in_band`).
"""

from __future__ import annotations

import json
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minicluster.analysis.accounting import FIELDS as ACCOUNTING_FIELDS
from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.fault_detect import CHECKSUM_KEYS
from minicluster.analysis.frame import Launch
from minicluster.analysis.records import RankRecords, from_gathered
from minicluster.analysis.steps import StepTable, median, rounded_list, series_from_extrema
from minicluster.core import rank_format
from minicluster.core.checks import ChecksSection
from minicluster.core.in_band import NODE_REDUCTIONS, InBand

NODE_REDUCTION_NAME = "minicluster-node-reduction"
NODE_REDUCTION_VERSION = f"{NODE_REDUCTION_NAME}/2.0"
KEYS = StepTable.KEYS
_OWN_FIGURES = (
    "compute_ms_median",
    "compute_ms_mean",
    "comm_ms_median",
    "exposed_comm_ms_median",
)
_LEAN_KEYS = ("step", "t_unix_s", *CHECKSUM_KEYS, "grad_reduced_checksum", "grad_applied_checksum")
# Kept whole (every row): the per-step accounting (culprit cost, time structure) takes a median
# over ranks of each step's period and each rank's wait against the last arrival: it needs every
# rank's per-step host, compute, exposed and period times (`analysis.accounting`); and the
# others' wait for each rank (`analysis.waited`) every rank's comm_ms, when it has one.
_WHOLE_KEYS = ("step", *ACCOUNTING_FIELDS)
# and, where a rank recorded them (FSDP2/TP layouts), each step's sync points, which the
# accounting sums (`accounting.sync_points`); and each step's CPU time and run-queue delay, which
# the host CPU contention rule compares across ranks step by step (`analysis.contention`)
_WHOLE_EXTRA = ("comm_ms", "syncs_ms", "sync_groups", "cpu_ms", "cpu_wait_ms", "main_cpu_wait_ms")
# Kept whole too, where a rank recorded them: what the `comm` section (`analysis.comm_kinds`)
# reads of each measured step. Its per-rank wait per kind is the median over the rank's steps of
# its time minus the job's transfer (the min over every rank), which does not decompose; and
# without `warmup` the warm-up steps would count as measured.
_COMM_KEYS = (
    "step",
    "warmup",
    "comm_ms",
    "exposed_comm_ms",
    "buckets",
    "comm_bytes",
    "comm_reason",
    "comm_kinds",
)


@dataclass
class NodeReduction:
    """One node's ranks' steps reduced (see the module)."""

    ranks: list[int]  # the node's ranks with steps (the rows), in order
    steps: np.ndarray  # the measured step numbers (any rank), increasing
    max: dict[str, np.ndarray]  # per key, per step, NaN where no rank measured it
    min: dict[str, np.ndarray]
    argmax: dict[str, np.ndarray]  # the rank, -1 where none
    argmin: dict[str, np.ndarray]
    compute_count: np.ndarray  # per step, ranks with a compute time
    compute_ties: list[tuple[int, int]]  # (step index, rank) also at the node's max compute
    figures: dict[int, dict[str, Any]]  # per rank, its own figures (_OWN_FIGURES, step_time_ms)
    measured: dict[int, int]  # per rank, measured steps
    present: dict[int, np.ndarray | None]  # per rank, which steps it measured (None: all)
    comm: dict[int, np.ndarray]  # per rank, comm_ms per step (NaN: not measured)
    lean: list[RankRecords] = field(default_factory=list)  # every rank's lean record

    def to_bytes(self) -> bytes:
        """The whole reduction as bytes: the step part and every rank's lean record (its
        non-step records as their JSON objects, its kept columns as arrays). See the module."""
        blob = _Blob()
        doc = {
            "format": NODE_REDUCTION_VERSION,
            "ranks": self.ranks,
            "steps": blob.put(self.steps, "<i8"),
            **{
                name: {k: blob.put(v, "<f8") for k, v in getattr(self, name).items()}
                for name in ("max", "min")
            },
            **{
                name: {k: blob.put(v, "<i4") for k, v in getattr(self, name).items()}
                for name in ("argmax", "argmin")
            },
            "compute_count": blob.put(self.compute_count, "<i4"),
            "compute_ties": self.compute_ties,
            "figures": {str(r): f for r, f in self.figures.items()},
            "measured": {str(r): n for r, n in self.measured.items()},
            "present": {
                str(r): None if p is None else blob.put(p, "u1") for r, p in self.present.items()
            },
            "comm": {str(r): blob.put(c, "<f8") for r, c in self.comm.items()},
            "lean": [_lean_doc(rec, blob) for rec in self.lean],
        }
        head = json.dumps(doc, separators=(",", ":")).encode()
        return zlib.compress(_MAGIC + len(head).to_bytes(8, "little") + head + blob.bytes(), 1)

    @classmethod
    def from_bytes(cls, data: bytes, lean: list[RankRecords] | None = None) -> NodeReduction:
        """The reduction `to_bytes` wrote (its lean records too, unless `lean` is given);
        ValueError when it is not one."""
        try:
            raw = zlib.decompress(data)
        except zlib.error:
            raise ValueError("not a node reduction") from None
        if not raw.startswith(_MAGIC):
            raise ValueError("not a node reduction")
        at = len(_MAGIC) + 8
        size = int.from_bytes(raw[len(_MAGIC) : at], "little")
        doc = json.loads(raw[at : at + size])
        if str(doc.get("format", "")).partition("/")[0] != NODE_REDUCTION_NAME:
            raise ValueError("not a node reduction")
        body = memoryview(raw)[at + size :]

        def arr(ref: list[Any] | None) -> np.ndarray:
            return _get(body, ref)

        return cls(
            ranks=[int(r) for r in doc["ranks"]],
            steps=arr(doc["steps"]).astype(np.int64),
            max={k: arr(v).astype(float) for k, v in doc["max"].items()},
            min={k: arr(v).astype(float) for k, v in doc["min"].items()},
            argmax={k: arr(v).astype(np.int64) for k, v in doc["argmax"].items()},
            argmin={k: arr(v).astype(np.int64) for k, v in doc["argmin"].items()},
            compute_count=arr(doc["compute_count"]).astype(np.int64),
            compute_ties=[(int(i), int(r)) for i, r in doc["compute_ties"]],
            figures={int(r): f for r, f in doc["figures"].items()},
            measured={int(r): int(n) for r, n in doc["measured"].items()},
            present={
                int(r): None if p is None else arr(p).astype(bool)
                for r, p in doc["present"].items()
            },
            comm={int(r): arr(c).astype(float) for r, c in doc["comm"].items()},
            lean=lean if lean is not None else [_lean_of(d, body) for d in doc.get("lean", [])],
        )


_MAGIC = b"minicluster-node-reduction\n"


class _Blob:
    """The arrays of a reduction, one after another; each is named in the JSON part by
    `[dtype, offset, bytes]`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def put(self, a: np.ndarray, dtype: str) -> list[Any]:
        arr = np.ascontiguousarray(a, dtype=dtype)
        # byte-shuffled (every value's first byte, then every second, ...): the sign, exponent
        # and high mantissa bytes of nearby values repeat, which zlib then finds
        data = arr.view(np.uint8).reshape(arr.size, arr.itemsize).T.tobytes()
        ref = [dtype, self.size, len(data)]
        self.parts.append(data)
        self.size += len(data)
        return ref

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _get(body: memoryview, ref: list[Any] | None) -> np.ndarray:
    if ref is None:
        return np.array([])
    dtype, offset, size = ref
    width = np.dtype(dtype).itemsize
    shuffled = np.frombuffer(body[offset : offset + size], dtype=np.uint8)
    return shuffled.reshape(width, size // width).T.copy().view(dtype).reshape(-1)


def _lean_doc(rec: RankRecords, blob: _Blob) -> dict[str, Any]:
    """A lean record as JSON (its records' objects) and arrays (its kept columns; a column of
    other values, such as text or integers beyond int64, as a JSON list)."""
    columns: dict[str, Any] = {}
    for key, col in rec.columns.items():
        if col.dtype.kind in "fiub":
            columns[key] = {"a": blob.put(col, col.dtype.newbyteorder("<").str)}
        else:
            columns[key] = {"v": col.tolist()}
    return {
        "rank": rec.rank,
        "header": rec.header,
        "summary": rec.summary,
        "warnings": rec.warnings,
        "collectives": rec.collectives,
        "roster": rec.roster,
        "timing": [t.to_json() for t in rec.timing],
        "other": rec.other,
        "counts": [rec.n_steps, rec.last_step],
        "columns": columns,
    }


def _lean_of(doc: dict[str, Any], body: memoryview) -> RankRecords:
    columns = {
        k: _get(body, c["a"]) if "a" in c else _objects(c["v"]) for k, c in doc["columns"].items()
    }
    timing = []
    for t in doc["timing"]:
        record = rank_format.decode(t, "a node reduction's comm_timing")
        assert isinstance(record, rank_format.CommTiming)
        timing.append(record)
    n, last = doc["counts"]
    return RankRecords(
        int(doc["rank"]),
        header=doc["header"],
        summary=doc["summary"],
        warnings=list(doc["warnings"]),
        columns=columns,
        collectives=doc["collectives"],
        roster=doc["roster"],
        timing=timing,
        other=doc["other"],
        counts=(int(n), None if last is None else int(last)),
    )


def _objects(values: list[Any]) -> np.ndarray:
    """A column of other values (text, lists) as one object per row."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def reduce_logs(logs: list[rank_format.RankLog]) -> bytes:
    """One node's ranks' logs (as its leader gathered them in-band) reduced, as the codec's
    bytes: what the node sends to rank 0 instead of the logs (`rank.session`'s reducer)."""
    records = [
        RankRecords.from_log(log.rank if log.rank is not None else i, log)
        for i, log in enumerate(logs)
    ]
    return reduce_node(records).to_bytes()


def reduce_node(records: list[RankRecords]) -> NodeReduction:
    """The reduction of one node's ranks' records (any ranks: a node's, or any group)."""
    table = StepTable(records, world_size=max((r.rank for r in records), default=0) + 1)
    ranks = [r.rank for r in table.records]
    rank_of = np.array(ranks, dtype=np.int64)
    n = table.indices.size
    out_max, out_min, out_argmax, out_argmin = {}, {}, {}, {}
    for key in KEYS:
        m = table.m[key]
        none = np.isnan(m).all(axis=0) if m.size else np.ones(n, bool)
        out_max[key] = np.fmax.reduce(m, axis=0) if m.size else np.full(n, np.nan)
        out_min[key] = np.fmin.reduce(m, axis=0) if m.size else np.full(n, np.nan)
        if m.size:
            hi = np.argmax(np.where(np.isnan(m), -np.inf, m), axis=0)
            lo = np.argmin(np.where(np.isnan(m), np.inf, m), axis=0)
            out_argmax[key] = np.where(none, -1, rank_of[hi])
            out_argmin[key] = np.where(none, -1, rank_of[lo])
        else:
            out_argmax[key] = np.full(n, -1, np.int64)
            out_argmin[key] = np.full(n, -1, np.int64)
    compute = table.m["compute_ms"]
    ties: list[tuple[int, int]] = []
    if compute.size:
        at_max = compute == out_max["compute_ms"][None, :]
        first = out_argmax["compute_ms"]
        for row, col in zip(*np.nonzero(at_max), strict=True):
            if rank_of[row] != first[col]:
                ties.append((int(col), int(rank_of[row])))
    figures = table.rank_figures()
    own = {
        rank: {"step_time_ms": f["step_time_ms"], **{k: f[k] for k in _OWN_FIGURES}}
        for rank, f in figures.items()
    }
    present = {
        rank: None if bool(table.present[i].all()) else table.present[i].copy()
        for i, rank in enumerate(ranks)
    }
    return NodeReduction(
        ranks=ranks,
        steps=table.indices.astype(np.int64),
        max=out_max,
        min=out_min,
        argmax=out_argmax,
        argmin=out_argmin,
        compute_count=(~np.isnan(compute)).sum(axis=0).astype(np.int64)
        if compute.size
        else np.zeros(n, np.int64),
        compute_ties=ties,
        figures=own,
        measured={rank: int(table.present[i].sum()) for i, rank in enumerate(ranks)},
        present=present,
        comm={rank: table.m["comm_ms"][i].copy() for i, rank in enumerate(ranks)},
        lean=[lean_record(r) for r in records],
    )


def lean_record(rec: RankRecords) -> RankRecords:
    """`rec` without its step columns but for what aggregation reads of them apart from the step
    table: every row of the accounting's fields (`_WHOLE_KEYS`), and of the others the last row
    and the rows with replica checksums (`fault_detect`); and its counts."""
    cols = rec.columns
    n = rec.n_steps
    keep = np.zeros(n, bool)
    if n:
        keep[-1] = True
        if all(k in cols for k in CHECKSUM_KEYS):
            for k in CHECKSUM_KEYS:
                c = cols[k]
                keep |= ~np.isnan(c) if c.dtype.kind == "f" else c != None  # noqa: E711
    whole = n and all(k in cols for k in _WHOLE_KEYS)
    comm = n and any(k in cols for k in _COMM_KEYS[2:])
    if whole or comm:
        keep[:] = True  # every row (the accounting's, the comm section's): the others' come too
    keys = (
        *_LEAN_KEYS,
        *((*ACCOUNTING_FIELDS, *_WHOLE_EXTRA) if whole else ()),
        *(_COMM_KEYS if comm else ()),
    )
    lean = {k: cols[k][keep] for k in dict.fromkeys(keys) if k in cols}
    return RankRecords(
        rec.rank,
        header=rec.header,
        summary=rec.summary,
        warnings=list(rec.warnings),
        columns=lean,
        collectives=rec.collectives,
        roster=rec.roster,
        timing=rec.timing,
        other=rec.other,
        counts=(n, rec.last_step),
    )


class ReducedTable:
    """The job's node reductions merged: what aggregation reads of a `StepTable`, exactly."""

    def __init__(self, reductions: list[NodeReduction], world_size: int) -> None:
        self.world_size = world_size
        self.reductions = [r for r in reductions if r.ranks]
        steps = [r.steps for r in self.reductions]
        self.indices = (
            np.unique(np.concatenate(steps)).astype(np.int64) if steps else np.array([], np.int64)
        )
        self._cols = [np.searchsorted(self.indices, r.steps) for r in self.reductions]
        self.node_of = {rank: i for i, r in enumerate(self.reductions) for rank in r.ranks}
        self.row = {rank: i for i, rank in enumerate(self.node_of)}  # ranks with steps
        lean = {r.rank: r for red in self.reductions for r in red.lean}
        self.records = [lean[rank] for rank in self.node_of if rank in lean]
        self.max = {k: self._merge(np.fmax, "max", k) for k in KEYS}
        self.min = {k: self._merge(np.fmin, "min", k) for k in KEYS}
        self.transfer_ms = self.min["comm_ms"] if self.indices.size else np.array([])

    def _aligned(self, i: int, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full(self.indices.size, fill)
        out[self._cols[i]] = values
        return out

    def _merge(self, ufunc: Any, name: str, key: str) -> np.ndarray:
        rows = [self._aligned(i, getattr(r, name)[key]) for i, r in enumerate(self.reductions)]
        return ufunc.reduce(np.array(rows), axis=0) if rows else np.array([])

    def series(self, world_size: int) -> dict[str, np.ndarray]:
        """`StepTable.series`, from the merged maxes and mins."""
        if not self.indices.size:
            return {}
        return series_from_extrema(self.indices, self.max, self.min["comm_ms"], world_size)

    def _present(self, rank: int) -> np.ndarray:
        """Which of the job's steps `rank` measured."""
        i = self.node_of[rank]
        red = self.reductions[i]
        p = red.present[rank]
        mask = np.zeros(self.indices.size, bool)
        mask[self._cols[i]] = True if p is None else p
        return mask

    def compute_medians(self) -> dict[int, float | None]:
        return {
            rank: self.reductions[i].figures[rank]["compute_ms_median"]
            for rank, i in self.node_of.items()
        }

    def measured_steps(self, rank: int) -> int:
        i = self.node_of.get(rank)
        return 0 if i is None else self.reductions[i].measured[rank]

    def min_measured_steps(self) -> int:
        return min(self.measured_steps(r) for r in range(self.world_size))

    def rank_figures(self) -> dict[int, dict[str, Any]]:
        """`StepTable.rank_figures`: each rank's own figures from its node, its wait and transfer
        medians against the job's transfer."""
        out: dict[int, dict[str, Any]] = {}
        for rank, i in self.node_of.items():
            red = self.reductions[i]
            mask = self._present(rank)
            comm = self._aligned(i, red.comm[rank])
            with np.errstate(all="ignore"):
                wait = (comm - self.transfer_ms)[mask]
            out[rank] = {
                "step_time_ms": red.figures[rank]["step_time_ms"],
                **{k: red.figures[rank][k] for k in _OWN_FIGURES},
                "wait_ms_median": median(wait),
                "transfer_ms_median": median(self.transfer_ms[mask]),
            }
        return out

    def slowest_in_steps(self, rank: int) -> tuple[int, int, int]:
        """`StepTable.slowest_in_steps` from the nodes' max compute, counts and ties."""
        i = self.node_of.get(rank)
        n_rows = len(self.node_of)
        if i is None or not self.indices.size:
            return 0, 0, 0
        count = np.zeros(self.indices.size)
        for j, r in enumerate(self.reductions):
            count += self._aligned(j, r.compute_count.astype(float), 0.0)
        full = count == n_rows
        if not full.any():
            return 0, 0, 0
        red = self.reductions[i]
        node_max = self._aligned(i, red.max["compute_ms"])
        node_arg = self._aligned(i, red.argmax["compute_ms"].astype(float), -1.0)
        mine = node_arg == rank
        for col, tied in red.compute_ties:
            if tied == rank:
                mine[self._cols[i][col]] = True
        top = mine & (node_max >= self.max["compute_ms"])
        return int((top & full).sum()), int(full.sum()), n_rows

    def group_step_max(self, column: str, groups: list[list[int]]) -> np.ndarray:
        """`StepTable.group_step_max` for groups that are unions of whole reductions' ranks;
        ValueError for a group that splits one."""
        out = np.full((len(groups), self.indices.size), np.nan)
        for g, ranks in enumerate(groups):
            nodes = sorted({self.node_of[r] for r in ranks})
            if sum(len(self.reductions[i].ranks) for i in nodes) != len(set(ranks)):
                raise ValueError("a node group splits a node reduction")
            rows = [self._aligned(i, self.reductions[i].max[column]) for i in nodes]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[g] = np.fmax.reduce(np.array(rows), axis=0)
        return out

    def steps_section(self, series: dict[str, np.ndarray]) -> dict[str, Any]:
        """`StepTable.steps_section` without embedded steps (they stayed on the nodes)."""
        from minicluster.core import rundir

        return {
            "rank_files": rundir.rank_files_pattern(),
            "series": {k: v.tolist() if k == "step" else rounded_list(v) for k, v in series.items()}
            or None,
            "embedded": None,
            "reason": "merged from node reductions: every rank's steps are in its rank files",
        }


def merge(reductions: list[NodeReduction]) -> tuple[list[RankRecords], ReducedTable]:
    """The job's inputs from its nodes' reductions: every rank's lean record, in rank order, and
    the merged table."""
    records = sorted((r for red in reductions for r in red.lean), key=lambda r: r.rank)
    world = max((int(r.header["world_size"]) for r in records if r.header), default=len(records))
    return records, ReducedTable(reductions, world)


def aggregate_reduced(
    reductions: list[NodeReduction],
    launch: Launch | None = None,
    checks: ChecksSection | None = None,
    aggregated_at: str | None = None,
) -> dict[str, Any]:
    """`aggregate.aggregate` from node reductions instead of every rank's steps."""
    records, table = merge(reductions)
    return aggregate(records, launch, checks, aggregated_at, table=table)


def aggregate_in_band(
    in_band: InBand, launch: Launch | None = None, aggregated_at: str | None = None
) -> dict[str, Any]:
    """The result of a job gathered in-band by node (`core.in_band`): merged from every node's
    reduction, or from every rank's log when the nodes sent logs; with the `in_band` section
    (what each node sent rank 0, in bytes, and what the per-rank logs would have been)."""
    if in_band.method == NODE_REDUCTIONS:
        reductions = [NodeReduction.from_bytes(data) for data in in_band.reductions()]
        result = aggregate_reduced(reductions, launch, aggregated_at=aggregated_at)
    else:
        result = aggregate(from_gathered(in_band.logs()), launch, aggregated_at=aggregated_at)
    result["in_band"] = in_band.traffic()
    return result
