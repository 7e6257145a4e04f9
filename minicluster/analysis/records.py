"""Per-rank records (header, step columns, summary) for aggregation, from rank logs: read back from
`DIR/ranks/` or gathered in-band (`core.rank_format.RankLog`, one codec for both).

A collectives run's ranks write one `collective` record per (op, size) instead of steps (the
pairwise link test: a `pair_plan` and one `pair` record per pair); they are kept as a list of
JSON objects (`RankRecords.collectives`).

Steps are held as columns (one numpy array per field) so a 1,024-rank x 1,000-step run fits in
little memory; `RankRecords.steps` gives them back as a list of dicts for small uses. A rank that
finished left its steps as columns too (`core.rank_columns`): when that file is complete it is
read instead of the journal (the same columns, one call per rank instead of a parse per line);
a field every rank's file holds alike (the step numbers, a column of nulls) is then one
read-only array shared by every rank's record (`ArrowColumns`). At `SPLIT_MIN_FILES` columnar
files or more, with a second core, a forked process reads part of them into the same buffers
(`_read_split`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import mmap
import os
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from operator import is_, itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from minicluster.core import comm_methods, gc_pause, rank_columns, rank_format, rundir
from minicluster.core.errors import InputError
from minicluster.core.forked import Forked, second_core
from minicluster.core.rank_format import CommTiming, RankLog
from minicluster.core.units import format_ranks

try:
    from orjson import loads as _loads
except ImportError:  # orjson is a dependency; plain json is the slower fallback
    _loads = json.loads  # type: ignore[assignment]

log = logging.getLogger(__name__)

PARALLEL_MIN_FILES = 32  # below this, a process pool costs more than it saves
# columnar files from which a second core reads part of them (`_read_split`): below, the fork
# and the hand-back cost more than they save (and tests aggregate many small runs)
SPLIT_MIN_FILES = 1024
PARENT_SHARE = 0.5  # of the files, read by the process that aggregates (it also unpickles)
SPLIT_WAIT_S = 60.0  # the longest wait for the child's records (plus this much a file)
SPLIT_WAIT_PER_FILE_S = 0.01
FLOAT_EXACT_MAX = 2**53  # integers at or above this lose precision in float64


class RankRecords:
    """What one rank left behind. `header`/`summary` are None when the rank never wrote them."""

    def __init__(
        self,
        rank: int,
        header: dict[str, Any] | None = None,
        steps: Iterable[dict[str, Any]] | None = None,
        summary: dict[str, Any] | None = None,
        warnings: list[str] | None = None,
        columns: dict[str, np.ndarray] | None = None,
        collectives: list[dict[str, Any]] | None = None,
        roster: dict[str, Any] | None = None,
        timing: list[CommTiming] | None = None,
        other: dict[str, list[dict[str, Any]]] | None = None,
        counts: tuple[int, int | None] | None = None,
        last: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.rank = rank
        # (steps recorded, last step) when `columns` hold only some rows (a node reduction's
        # lean record: `analysis.node_reduce`); None: counted from the columns
        self._counts = counts
        self.header = header
        self.summary = summary
        self.roster = roster  # the job's nodes and their ranks (local rank 0 of a node writes it)
        self.collectives = collectives if collectives is not None else []
        self.warnings = warnings if warnings is not None else []
        self.timing = timing if timing is not None else []  # the comm_timing history, in order
        # Records of the other known types (RankLog.others), by type, as JSON objects
        self.other = other if other is not None else {}
        self._columns = columns if columns is not None else to_columns(steps or [])
        # Step fields held as their last step's value only (`last_only` of `read_run_dir`), each a
        # one-element array as the column's last element would be; absent: no step held it
        self._last = last if last is not None else {}

    @classmethod
    def from_log(
        cls,
        rank: int,
        log: RankLog,
        warnings: list[str] | None = None,
        drop: Collection[str] = (),
        columns: dict[str, np.ndarray] | None = None,
        last_only: Collection[str] = (),
        last: dict[str, np.ndarray] | None = None,
    ) -> RankRecords:
        """What aggregation reads of rank `rank`'s log: steps as columns (but the `drop`ped
        fields, and the `last_only` ones held as their last value; `columns`: the steps already
        as columns, read from the columnar file, with `last` those last values), the other
        records as their JSON objects."""
        if columns is None:
            columns = _columns_of(log.step_rows, drop)
            last = _last_values(columns, last_only)
        return cls(
            rank,
            header=log.header.to_json() if log.header is not None else None,
            summary=log.summary.to_json() if log.summary is not None else None,
            warnings=warnings,
            columns=columns,
            collectives=[r.to_json() for r in log.bench],
            roster=log.roster.to_json() if log.roster is not None else None,
            timing=list(log.timing),
            other={kind: [r.to_json() for r in kept] for kind, kept in log.others.items()},
            last=last,
        )

    def timing_methods(self) -> list[str]:
        """The all-reduce timing methods the rank used, in order (more than one: it switched
        mid-run; none recorded: a 1.0 file, timed with the comm hook)."""
        return [t.method for t in self.timing] or [comm_methods.HOOK_HOST_CLOCK]

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Step fields as arrays (numbers as float64 with NaN for missing, `step` as int64)."""
        return self._columns

    def release(self, keys: Iterable[str]) -> None:
        """Let go of the step fields `keys` (their last reader has read them): a field of a
        columnar read is a slice of one buffer for all ranks, freed once every rank let go."""
        for key in keys:
            self._columns.pop(key, None)

    def last_of(self, key: str) -> np.ndarray | None:
        """Step field `key` of the rank's last step record as a one-element array (from its
        column, or held alone: `last_only` of `read_run_dir`); None when no step holds it."""
        col = self._columns.get(key)
        if col is not None:
            return col[-1:] if col.size else None
        return self._last.get(key)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The step records as dicts (made on each call: use `columns` on hot paths)."""
        cols = self._columns
        keys = list(cols)
        n = self.n_steps
        lists = {k: cols[k].tolist() for k in keys}
        return [{"type": "step", **{k: lists[k][i] for k in keys}} for i in range(n)]

    @steps.setter
    def steps(self, steps: Iterable[dict[str, Any]]) -> None:
        self._columns = to_columns(steps)
        self._counts = None

    @property
    def n_steps(self) -> int:
        if self._counts is not None:
            return self._counts[0]
        step = self._columns.get("step")
        return 0 if step is None else int(step.size)

    @property
    def last_step(self) -> int | None:
        if self._counts is not None:
            return self._counts[1]
        step = self._columns.get("step")
        return int(step[-1]) if step is not None and step.size else None


def to_columns(
    steps: Iterable[dict[str, Any]], drop: Collection[str] = ()
) -> dict[str, np.ndarray]:
    """Step dicts -> one array per field, in first-seen field order (but the `drop`ped ones)."""
    return _columns_of([s for s in steps if s.get("type", "step") == "step"], drop)


def _last_values(
    columns: dict[str, np.ndarray], last_only: Collection[str]
) -> dict[str, np.ndarray]:
    """The `last_only` fields of `columns` taken out of them, each as its last element (a copy:
    the column's buffer is let go); a field with no step is left out."""
    last = {}
    for key in last_only:
        col = columns.pop(key, None)
        if col is not None and col.size:
            last[key] = col[-1:].copy()
    return last


def _columns_of(rows: list[dict[str, Any]], drop: Collection[str]) -> dict[str, np.ndarray]:
    """`to_columns` of rows that are all step records."""
    if rows and len(set(map(len, rows))) == 1:  # one width; the fast path checks the fields
        fast = _numeric_columns(rows, tuple(rows[0]), drop)
        if fast is not None:
            return fast
    shapes = set(map(tuple, rows))
    keys: dict[str, None] = {}
    for shape in sorted(shapes, key=lambda t: -len(t)):
        keys.update(dict.fromkeys(shape))
    keys.pop("type", None)
    return {k: column_of(k, [s.get(k) for s in rows]) for k in keys if k not in drop}


def _numeric_columns(
    rows: list[dict[str, Any]], fields: tuple[str, ...], drop: Collection[str]
) -> dict[str, np.ndarray] | None:
    """Rows of one width that all hold the first row's `fields` (so exactly those) and only
    numbers, bools and nulls (NaN): one C-level conversion of every field (which checks them
    all), then the kept ones. None when they do not: the slow path."""
    every = tuple(k for k in fields if k != "type")
    first = rows[0]
    if not every or not all(
        v is None or isinstance(v, (int, float)) for v in map(first.get, every)
    ):
        return None
    try:
        matrix = np.array(list(map(itemgetter(*every), rows)), dtype=float).reshape(len(rows), -1)
    except (KeyError, TypeError, ValueError):  # another field, or a string or nested value
        return None
    keys = tuple(k for k in every if k not in drop)
    if len(keys) < len(every):
        matrix = matrix[:, [every.index(k) for k in keys]]
    with np.errstate(invalid="ignore"):
        big = np.nanmax(np.abs(matrix), axis=0, initial=0.0) >= FLOAT_EXACT_MAX
    cols: dict[str, np.ndarray] = {}
    for j, k in enumerate(keys):
        col = matrix[:, j]
        if isinstance(first[k], bool):
            if np.isnan(col).any():
                return None  # a null among bools: the slow path keeps it as it is
            cols[k] = col.astype(bool)
        elif k == "step":
            cols[k] = col.astype(np.int64)
        elif big[j]:
            cols[k] = column_of(k, [r[k] for r in rows])  # integers float64 cannot hold exactly
        else:
            cols[k] = col
    return cols


def _exact_ints(values: list[Any]) -> np.ndarray:
    """Integers too large for float64 to hold exactly (e.g. replica checksums), kept exact."""
    try:
        return np.array(values, dtype=np.int64)
    except (OverflowError, TypeError):  # beyond int64, or None among them
        return np.array(values, dtype=object)


def column_of(key: str, values: list[Any]) -> np.ndarray:
    """One step field's values (from journal lines, or a columnar file's batch that could not be
    converted at once) as the column every reader makes of them: bool, float64 (None as NaN;
    `step` int64), exact integers where float64 cannot hold them, else objects."""
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in values):
        if any(isinstance(v, int) and abs(v) >= FLOAT_EXACT_MAX for v in values):
            return _exact_ints(values)
        arr = np.array([np.nan if v is None else v for v in values], dtype=float)
        if key == "step":
            return arr.astype(np.int64)
        return arr
    return np.array(values, dtype=object)


def from_gathered(gathered: list[RankLog]) -> list[RankRecords]:
    """Every rank's log gathered in-band on rank 0 (`worker.run`'s return value), read as the
    rank files are."""
    parsed = [
        RankRecords.from_log(log.rank if log.rank is not None else i, log)
        for i, log in enumerate(gathered)
    ]
    _one_roster(parsed)
    return parsed


def read_run_dir(
    out_dir: Path,
    workers: int | None = None,
    drop: Collection[str] = (),
    last_only: Collection[str] = (),
) -> list[RankRecords]:
    """Read every rank's JSONL and summary under `out_dir/ranks/`; a truncated last line is skipped.

    Many files are parsed by a pool of processes (one per core unless `workers` says otherwise).
    `drop`: step fields not to hold (`aggregate.UNREAD_STEP_FIELDS`: the ones aggregation never
    reads, a third of the memory of a 4,096-rank run). `last_only`: step fields held as their last
    step's value only (`RankRecords.last_of`; `aggregate.LAST_ONLY_STEP_FIELDS`: `t_unix_s`, 131 MB
    as a column at 16,384 x 1,000). The garbage collector is off meanwhile: the
    records are millions of small objects that hold no cycles.
    """
    ranks_dir = rundir.ranks_dir(out_dir)
    if not ranks_dir.is_dir():
        if not out_dir.exists():
            raise InputError(f"{out_dir}: no such directory (give a run or sweep directory)")
        if not out_dir.is_dir():
            raise InputError(f"{out_dir} is not a directory (give a run or sweep directory)")
        hint = rundir.wrong_level(out_dir, "aggregate")
        raise InputError(hint or f"{out_dir} holds no rank records (no {rundir.RANKS_DIR}/ folder)")
    jobs = []
    for name in _names(ranks_dir, rundir.RANK_FILE_GLOB):
        rank = rundir.rank_from_name(name)
        if rank is not None:
            jobs.append((out_dir, rank, drop, last_only))
    if not jobs:
        copies = len(_names(ranks_dir, f"rank_*{rank_columns.COLUMNS_SUFFIX}"))
        also = (
            f" (only {copies} columnar rank_NNNNN{rank_columns.COLUMNS_SUFFIX} files: they are "
            "copies of the journals, which are the record; copy the .jsonl files too)"
            if copies
            else ""
        )
        raise InputError(f"{ranks_dir} holds no rank_NNNNN.jsonl files{also}")
    workers = workers or os.cpu_count() or 1
    parsed: list[RankRecords] = []
    with gc_pause.paused():
        # Complete columnar files first, in this process (a tenth of a millisecond a rank: a
        # pool would spend more sending the columns back); the journals of the others after.
        if rank_columns.available():
            parsed, jobs = _read_columns_of(jobs, split=workers > 1 and second_core())
        if workers > 1 and len(jobs) >= PARALLEL_MIN_FILES:
            # fork: the analysis process holds no threads or torch state, and fork starts fast
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                chunk = max(1, len(jobs) // (workers * 4))
                parsed += pool.map(_read_rank_files, jobs, chunksize=chunk)
        else:
            parsed += [_read_rank_files(job) for job in jobs]
    _one_run(parsed, ranks_dir)
    _one_roster(parsed)
    have = {rec.rank for rec in parsed}
    for name in _names(ranks_dir, rundir.SUMMARY_FILE_GLOB):
        rank = rundir.rank_from_name(name)
        if rank is not None and rank not in have:  # failed before its first record
            parsed.append(_read_rank_files((out_dir, rank, (), ())))
    for rec in parsed:
        _check_step_order(rec)
        for w in rec.warnings:
            log.warning("%s", w)
    return sorted(parsed, key=lambda r: r.rank)


def _check_step_order(rec: RankRecords) -> None:
    """A warning (`rec.warnings`, the result's `errors`) when the rank's step numbers do not
    increase line by line: a rank writes each step once, in order, so a step again or out of
    order is a journal written to after the run or by two processes, whose every line the
    figures then count."""
    step = rec.columns.get("step")
    if step is None or step.size < 2 or step.dtype.kind not in "iu":
        return
    bad = np.flatnonzero(np.diff(step) <= 0)
    if bad.size:
        at = int(bad[0]) + 1
        what = "again" if int(step[at]) in step[:at] else f"after step {int(step[at - 1])}"
        rec.warnings.append(
            f"rank_{rec.rank:05d}.jsonl: step {int(step[at])} recorded {what} ({bad.size} step "
            "line(s) out of order: a rank writes each step once, in order; the journal was "
            "written to after the run or by two processes, and the figures count every line)"
        )


def _names(folder: Path, pattern: str) -> list[str]:
    """The names of the regular files in `folder` that `pattern` matches, sorted:
    `sorted(folder.glob(pattern))`'s names for a pattern of one part, without a Path per file
    (16,384 of them, sorted by their parts, were a tenth of a second a glob at 4,096 ranks)."""
    with os.scandir(folder) as entries:  # regular files only: a FIFO would block its reader
        names = [e.name for e in entries if e.is_file()]
    return sorted(fnmatch.filter(names, pattern))


def _one_run(parsed: list[RankRecords], ranks_dir: Path) -> None:
    """Refuse rank files that are not this run's ranks: one whose header names another rank
    than its file name, or rank files of more than one run (the ranks of a job agree on one
    run_id before they write: files of two runs are a copy gone wrong, say every node's ranks/
    gathered into a folder that held another run's). Merged, their steps would make numbers no
    rank of either run had."""
    runs: dict[str, list[int]] = {}
    for rec in parsed:
        run_id = header_run_id(ranks_dir, rec.rank, rec.header or {})
        if run_id is not None:
            runs.setdefault(run_id, []).append(rec.rank)
    if len(runs) > 1:
        raise mixed_runs_error(ranks_dir, runs)


def header_run_id(ranks_dir: Path, rank: int, header: dict[str, Any]) -> str | None:
    """The run id the header of rank `rank`'s file names (None: none); InputError when the
    header names another rank (a rank file copied under another rank's name)."""
    said, run_id = header.get("rank"), header.get("run_id")
    if isinstance(said, int) and said != rank:
        raise InputError(
            f"{ranks_dir}/rank_{rank:05d}.jsonl is rank {said}'s file (its header says "
            f"rank {said} of run {run_id}): a rank file copied under another rank's name"
        )
    return run_id if isinstance(run_id, str) else None


def mixed_runs_error(ranks_dir: Path, runs: dict[str, list[int]]) -> InputError:
    """The error for a `ranks/` folder holding the files of several runs (run id -> its ranks)."""
    ordered = sorted(runs.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    parts = "; ".join(
        f"run {run_id}: rank{'s' if len(ranks) > 1 else ''} {format_ranks(ranks)}"
        for run_id, ranks in ordered[:4]
    )
    more = f" and {len(ordered) - 4} more runs" if len(ordered) > 4 else ""
    return InputError(
        f"{ranks_dir} holds rank files of {len(runs)} runs ({parts}{more}): the ranks of one "
        "job share one run_id; move the other runs' files out (their steps merged would make "
        "numbers no rank had)"
    )


def _one_roster(parsed: list[RankRecords]) -> None:
    """Keep the job's roster once: every node's local rank 0 wrote the same one, and a
    4,096-rank roster held 512 times is 150 MB of Python objects."""
    kept = False
    for rec in sorted(parsed, key=lambda r: r.rank):
        if rec.roster is not None:
            if kept:
                rec.roster = None
            kept = True


def read_rank(run_dir: Path, rank: int, journal: bool = False) -> RankRecords:
    """One rank's records (header, roster, steps, summary) from `run_dir/ranks/`: from its
    complete columnar file when there is one (unless `journal`), else from its journal."""
    if not journal and rank_columns.available():
        got, _ = _read_columns_of([(run_dir, rank, (), ())])
        if got:
            return got[0]
    return _read_rank_files((run_dir, rank, (), ()))


_Job = tuple[Path, int, Collection[str], Collection[str]]  # run dir, rank, drop, last_only


def _read_columns_of(jobs: list[_Job], split: bool = False) -> tuple[list[RankRecords], list[_Job]]:
    """The records of the ranks of `jobs` that left a complete columnar file
    (`rank_columns.read_columns`), and the jobs of the others (their journal is the record).
    Each file's columns are converted as it is read (the file is then let go: holding every
    file until the end doubled the memory of a 4,096-rank run), into one numpy array per field
    for all ranks of the same schema, each rank holding its slice of it. `split`: at
    `SPLIT_MIN_FILES` files or more, a forked process reads part of them (`_read_split`)."""
    jobs = sorted(jobs, key=itemgetter(1))
    reading = _ColumnsRead(ArrowColumns(len(jobs)))
    if split and len(jobs) >= SPLIT_MIN_FILES:
        _read_split(jobs, reading)
    else:
        reading.read(jobs)
    for rec, cols in zip(reading.found, reading.columns.finish(), strict=True):
        rec._columns = cols
    return reading.found, reading.rest


class _ColumnsRead:
    """The ranks' columnar files read so far: their records (`found`, without their step
    columns: those are `columns.finish()`'s, in the same order) and the jobs with no complete
    file (`rest`)."""

    def __init__(self, columns: ArrowColumns) -> None:
        self.columns = columns
        self.found: list[RankRecords] = []
        self.rest: list[_Job] = []
        self.need_roster = True  # the lowest rank's is the one kept (`_one_roster`)
        self._bases: dict[Path, str] = {}  # run directory -> its ranks/ folder as text

    def read(self, jobs: list[_Job]) -> None:
        """Read the columnar files of `jobs` (in rank order, after those read so far)."""
        bases = self._bases
        for job in jobs:
            run_dir, rank, drop, last_only = job
            got = rank_columns.read_columns(
                run_dir, rank, frozenset(drop), loads=_loads, roster=self.need_roster
            )
            if got is None:
                self.rest.append(job)
                continue
            meta, table = got
            table, last = _arrow_last_values(table, last_only)
            rank_log = RankLog(keep_steps=False)
            # the paths as str(rundir.rank_jsonl(...)) and rank_summary write them, without a Path
            base = bases.get(run_dir) or bases.setdefault(run_dir, str(rundir.ranks_dir(run_dir)))
            where = f"{base}/rank_{rank:05d}.jsonl"
            warnings = rank_log.apply_json(list(meta.get("records") or []), where)
            summary_warning = rank_log.read_summary(
                f"{base}/rank_{rank:05d}.summary.json", f"rank {rank}"
            )
            if summary_warning:
                warnings.append(summary_warning)
            self.found.append(RankRecords.from_log(rank, rank_log, warnings, columns={}, last=last))
            self.columns.add(table)
            self.need_roster = self.need_roster and rank_log.roster is None


def _read_split(jobs: list[_Job], reading: _ColumnsRead) -> None:
    """`reading.read(jobs)` on two cores: a forked child reads the files from `jobs[cut]` on
    while this process reads those before, both converting into the same buffers (shared memory
    reserved for every field as the first file holds them: `ArrowColumns.reserve`); the child
    hands back its records (pickled, without the columns) and which fields its files held alike.

    When the files are not all like the first (another schema or length, a field the buffers
    cannot take, no roster before `cut`) or the child fails, this process reads the child's
    files itself, as the serial read would (the result is the same either way). The shared
    memory is anonymous: nothing to remove, whatever happens to either process."""
    reading.read(jobs[:1])
    columns = reading.columns
    rows = columns.reserve()
    if rows is None:
        reading.read(jobs[1:])
        return
    cut = max(1, round(len(jobs) * PARENT_SHARE))

    def child_reads(send: Callable[[Any], None]) -> None:
        child = _ColumnsRead(columns.forked(cut * rows))
        child.need_roster = False  # the rank before `cut` that holds the roster keeps it
        child.read(jobs[cut:])
        handed = child.columns.handoff()
        if handed is not None:
            send((child.found, child.rest, handed))

    with Forked(child_reads) as child:
        reading.read(jobs[1:cut])
        got = None
        if not reading.need_roster and columns.can_take(cut * rows):
            got = child.receive(SPLIT_WAIT_S + len(jobs) * SPLIT_WAIT_PER_FILE_S)
        child.close()  # stopped before anything else writes its rows
    if got is None:
        log.debug("reading the rank files in two processes did not work out: read serially")
        reading.read(jobs[cut:])
        return
    found, rest, handed = got
    columns.take(*handed)
    reading.found += found
    reading.rest += rest


def _arrow_last_values(table: Any, last_only: Collection[str]) -> tuple[Any, dict[str, np.ndarray]]:
    """The `last_only` fields of an Arrow table that `ArrowColumns` would make float64 columns
    of (float64 or all null) taken out of it, each as its last row's value as that column's
    last element would be (null: NaN); a field of another type stays a column (`last_of`
    reads its last element), one with no row is left out."""
    pa = _pa()
    last: dict[str, np.ndarray] = {}
    taken = []
    for name in last_only:
        at = table.schema.get_field_index(name)
        if at < 0:
            continue
        col = table.column(at)
        if not (pa.types.is_float64(col.type) or pa.types.is_null(col.type)):
            continue
        taken.append(name)
        if len(col):
            value = col[len(col) - 1].as_py()
            last[name] = np.array([np.nan if value is None else value], np.float64)
    return (table.drop_columns(taken) if taken else table), last


class ArrowColumns:
    """Arrow tables' columns as `column_of` makes them from the journal's values: bools as bool,
    numbers as float64 with NaN for null (`step` as int64; integers float64 cannot hold exactly
    kept exact), anything else as an object array of the values. Tables of one schema are
    converted a batch at a time (`BATCH_ROWS`: one Arrow concatenation and one copy per field
    for the batch, not one per field per table: per table that Python loop was a third of
    `aggregate`'s CPU at 4,096 ranks), straight into one buffer per field for all tables of
    its schema (sized for `tables` tables like the first; grown if needed), so that no more
    than a batch of files is held and no table's array is allocated on its own (small arrays
    freed later stay in the heap); `finish` gives each table's slices of those buffers. A
    field a batch cannot convert as one (a null among bools, integers float64 cannot hold) is
    converted table by table, as each table alone would be. No array keeps a file's buffer
    alive.

    A field whose column is the same in every table of its schema so far (bit for bit: the
    step numbers, the warm-up flags, a column of nulls, the gradient bytes and buckets of a
    DDP run) is held once, not once per table: every table gets that one read-only array
    (`rows_view` gives such rows as a matrix with a zero stride, no copy). It is written out
    to a buffer per table the first time a table's column differs. At 16,384 ranks x 1,000
    steps each such float64 column held per rank is 131 MB."""

    BATCH_ROWS = 1 << 18  # 256 ranks of 1,000 steps: about 30 MB of files held at once

    def __init__(self, tables: int) -> None:
        self.tables = tables
        self.names: list[list[str]] = []  # per table its fields, in the file's order
        # the schemas (without metadata) of the tables, each once; a schema's key is its index
        # here (an Arrow schema's hash is made from its fields anew each time: 8 us, five
        # times a table when the dicts below were keyed by schemas, 0.17 s at 4,096 ranks)
        self.schemas: list[Any] = []
        self._keys: dict[Any, int] = {}  # schema -> its key
        self.at: list[tuple[int, int, int]] = []  # per table: its schema's key, first row, rows
        self.buffers: dict[int, dict[str, np.ndarray]] = {}  # key -> field -> buffer
        self.used: dict[int, int] = {}  # key -> rows given out
        self.own: list[dict[str, np.ndarray]] = []  # per table the fields converted on their own
        self.pending: dict[int, list[tuple[Any, int, int, dict[str, np.ndarray]]]] = {}
        # key -> field -> (the one column every table of the schema held from row `since` on
        # (no buffer yet), since)
        self.same: dict[int, dict[str, tuple[np.ndarray, int]]] = {}
        self._last: tuple[int, list[str]] | None = None  # the last table's schema key and names
        # field -> a buffer in shared memory for the first schema's fields (`reserve`), taken
        # when the field first needs one
        self.reserved: dict[str, np.ndarray] = {}

    def add(self, table: Any) -> None:
        # the last table's schema again (the usual case), compared without the metadata as the
        # dict compares it: no schema without metadata made and hashed per table
        last = self._last
        if last is not None and table.schema.equals(self.schemas[last[0]]):
            key, names = last
        else:
            schema, names = table.schema.remove_metadata(), table.schema.names
            got = self._keys.get(schema)
            if got is None:
                got = self._keys[schema] = len(self.schemas)
                self.schemas.append(schema)
                self.buffers[got], self.used[got], self.pending[got], self.same[got] = {}, 0, [], {}
            key = got
            self._last = key, names
        n = table.num_rows
        start = self.used[key]
        own: dict[str, np.ndarray] = {}
        batch = self.pending[key]
        batch.append((table, start, n, own))
        self.used[key] = start + n
        self.names.append(names)
        self.at.append((key, start, n))
        self.own.append(own)
        if start + n - batch[0][1] >= self.BATCH_ROWS:
            self._flush(key)

    def _buffer(self, key: int, name: str, kind: Any, first: int, end: int) -> np.ndarray:
        """The buffer of field `name` of the schema `key`, holding rows up to `end` (allocated for
        `tables` tables of `first` rows; doubled when too short)."""
        bufs = self.buffers[key]
        buf = bufs.get(name)
        if buf is None:
            size = max(max(first, 1) * self.tables, end)
            buf = self.reserved.get(name) if key == 0 else None
            if buf is None or buf.dtype != kind or buf.size < size:
                buf = np.empty(size, kind)
            bufs[name] = buf
        elif buf.size < end:  # tables longer than the first: grow
            grown = np.empty(max(2 * buf.size, end), kind)
            grown[: buf.size] = buf
            buf = bufs[name] = grown
        return buf

    def reserve(self) -> int | None:
        """For `_read_split`, after the first table was added: a buffer in shared memory (an
        anonymous mapping, shared with a process forked after) for each of its fields of a
        numpy kind, for `tables` tables like it (pages touched only where rows are written);
        the first table's rows, or None when it has none or another table came first."""
        if len(self.at) != 1 or not self.at[0][2]:
            return None
        table = self.pending[0][0][0]
        rows = table.num_rows
        for j, field in enumerate(self.schemas[0]):
            kind = _numpy_kind(field, table.column(j).null_count)
            if kind is not None:
                self.reserved[field.name] = _shared_array(np.dtype(kind), rows * self.tables)
        return rows

    def forked(self, start: int) -> ArrowColumns:
        """A converter for the tables from row `start` of the first schema on (in a forked
        process: `handoff` then gives them to this one's `take`), into the same reserved
        buffers."""
        other = ArrowColumns(self.tables)
        other.schemas, other._keys = self.schemas[:1], {self.schemas[0]: 0}
        other.buffers[0], other.used[0], other.pending[0], other.same[0] = {}, start, [], {}
        other.reserved = self.reserved
        return other

    def handoff(self) -> tuple[list[list[str]], list[tuple[int, int, int]], Any, int] | None:
        """A `forked` converter's tables for the parent's `take`: their fields, places and the
        fields held once; None when they did not all go into the reserved buffers (another
        schema, a field converted on its own, a buffer grown or of another kind)."""
        for key in list(self.pending):
            self._flush(key)
        if not self._only_reserved() or any(self.own):
            return None
        return self.names, self.at, self.same[0], self.used[0]

    def can_take(self, rows: int) -> bool:
        """Whether this converter's tables (after `reserve`) filled rows up to `rows` of the
        first schema, each field in its reserved buffer (or held once): then `take` can add
        the tables a `forked` one converted from there on."""
        for key in list(self.pending):
            self._flush(key)
        return self.used.get(0) == rows and self._only_reserved()

    def _only_reserved(self) -> bool:
        return len(self.schemas) == 1 and all(
            buf is self.reserved.get(name) for name, buf in self.buffers[0].items()
        )

    def take(
        self,
        names: list[list[str]],
        at: list[tuple[int, int, int]],
        same: dict[str, tuple[np.ndarray, int]],
        used: int,
    ) -> None:
        """Add the tables of a `forked` converter (`handoff`; after `can_take`) as if this one
        had converted them: a field held once by both, alike, stays held once; else each
        side's one column is written out to the buffer (the other side's rows are there)."""
        mine, upto = self.same[0], self.used[0]
        for name in {**mine, **same}:
            held, theirs = mine.get(name), same.get(name)
            if held is not None and theirs is not None:
                a, b = held[0], theirs[0]
                if a.dtype == b.dtype and a.size == b.size and (_bits(a) == _bits(b)).all():
                    continue
            if held is not None:
                self._unshare(0, name, upto)
            if theirs is not None:
                row, since = theirs
                buf = self._buffer(0, name, row.dtype, row.size, used)
                if row.size and used > since:
                    buf[since:used].reshape(-1, row.size)[:] = row
        self.names += names
        self.at += at
        self.own += [{} for _ in at]
        self.used[0] = used

    def _flush(self, key: int) -> None:
        """Convert the pending tables of the schema `key`: per field, the batch's chunks as one
        array into the buffer's rows of the batch (they are consecutive); table by table where
        that cannot be done."""
        batch = self.pending[key]
        if not batch:
            return
        self.pending[key] = []
        first, end = batch[0][1], batch[-1][1] + batch[-1][2]
        pa = _pa()
        # one table of the batch's (no copy: its columns' chunks are the tables' arrays), so that
        # a field's chunks are one call, not one per table
        whole = pa.concat_tables([table for table, _, _, _ in batch])
        for j, field in enumerate(self.schemas[key]):
            column = whole.column(j)
            kind = _numpy_kind(field, column.null_count)
            if kind is not None:
                one = [column.combine_chunks()] if column.num_chunks > 1 else column.chunks
                if field.name not in self.buffers[key]:  # none yet: the same so far?
                    got = np.empty(end - first, kind)
                    if _numpy_fill(field, one, got):
                        if not self._same(key, field.name, batch, got):
                            self._buffer(key, field.name, kind, batch[0][2], end)[first:end] = got
                        continue
                else:
                    buf = self._buffer(key, field.name, kind, batch[0][2], end)
                    if _numpy_fill(field, one, buf[first:end]):
                        continue
            for table, start, n, own in batch:  # as each table alone
                self._convert_one(key, j, table, start, n, own)

    def _same(self, key: int, name: str, batch: list[Any], got: np.ndarray) -> bool:
        """Whether every table of `batch` holds the column (its rows `got`, converted) that
        every earlier table of the schema `key` held, bit for bit: then it stays held once (the
        first batch's first table's). When not, the tables before the batch get their rows of a
        buffer (each the column they shared), and the caller fills the batch's."""
        same = self.same[key]
        first = batch[0][1]
        row, since = same.get(name, (None, first))
        if row is None:
            row = got[: batch[0][2]].copy()
        n = row.size
        if all(t[2] == n for t in batch):
            bits = _bits(got).reshape(len(batch), n) if n else None
            if bits is None or (bits == _bits(row)[None, :]).all():
                row.flags.writeable = False
                same[name] = (row, since)
                return True
        self._unshare(key, name, first)
        return False

    def _unshare(self, key: int, name: str, upto: int) -> None:
        """Field `name` of the schema `key`, held once so far, in a buffer: the tables before row
        `upto` that shared it get their rows (each its copy of the column)."""
        row, since = self.same[key].pop(name, (None, 0))
        if row is None:
            return
        buf = self._buffer(key, name, row.dtype, row.size, upto)
        if row.size and upto > since:
            buf[since:upto].reshape(-1, row.size)[:] = row

    def _convert_one(
        self, key: int, j: int, table: Any, start: int, n: int, own: dict[str, Any]
    ) -> None:
        field = table.schema.field(j)  # its own (schemas compare equal whatever fields' metadata)
        chunks = table.column(j).chunks
        self._unshare(key, field.name, start)  # held once so far: no more
        kind = _numpy_kind(field, table.column(j).null_count)
        if kind is not None:
            buf = self._buffer(key, field.name, kind, n, start + n)
            if _numpy_fill(field, chunks, buf[start : start + n]):
                return
        values = table.column(j).to_pylist()  # as the journal's reader would
        if rank_columns.json_encoded(field):
            values = [json.loads(v) for v in values]
        own[field.name] = column_of(field.name, values)

    def finish(self) -> list[dict[str, np.ndarray]]:
        for key in list(self.pending):
            self._flush(key)
        out = []
        # per schema each field's one column (held once) or buffer, looked up once (the same
        # key follows itself table after table)
        last: Any = None
        spec: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
        for names, (key, start, n), own in zip(self.names, self.at, self.own, strict=True):
            if key != last or len(spec) != len(names):
                bufs, same = self.buffers[key], self.same[key]
                spec = [(k, same[k][0] if k in same else None, bufs.get(k)) for k in names]
                last = key
            out.append(
                {
                    k: own[k]
                    if own and k in own
                    else once
                    if once is not None
                    else buf[start : start + n]  # type: ignore[index]
                    for k, once, buf in spec
                }
            )
        return out


def _shared_array(dtype: np.dtype, size: int) -> np.ndarray:
    """A zeroed array of `size` elements in an anonymous shared mapping: a process forked
    after writes into the same memory (unmapped once the array and its views are gone)."""
    mapping = mmap.mmap(-1, max(1, size * dtype.itemsize), flags=mmap.MAP_SHARED)
    return np.frombuffer(mapping, dtype, size)


def _bits(values: np.ndarray) -> np.ndarray:
    """`values` as integers of their width (NaN equal to the same NaN, -0.0 not to 0.0)."""
    return values.view({8: np.int64, 4: np.int32, 2: np.int16}.get(values.itemsize, np.uint8))


def _numpy_kind(field: Any, null_count: int) -> Any:
    """The numpy dtype `_numpy_fill` writes a field's arrays (holding `null_count` nulls in all)
    as (bool; int64 for `step`; else float64), or None when they are not of a kind the journal's reader makes such an array of
    (JSON text, strings, lists, a null among bools, a `step` not int64 or with nulls)."""
    pa = _pa()
    kind = field.type
    if rank_columns.json_encoded(field):
        return None
    if pa.types.is_null(kind):
        return np.float64
    is_bool, is_int = pa.types.is_boolean(kind), pa.types.is_int64(kind)
    if not (is_bool or is_int or pa.types.is_float64(kind)):
        return None
    if is_bool and null_count:
        return None  # a null among bools: the journal's reader keeps the values as they are
    if field.name == "step" and (not is_int or null_count):
        return None
    return bool if is_bool else np.int64 if field.name == "step" else np.float64


def _numpy_fill(field: Any, chunks: list[Any], out: np.ndarray) -> bool:
    """Arrow arrays of one field (`_numpy_kind` not None) copied from their buffers into `out`;
    False when they hold integers float64 cannot hold exactly (kept exact, by the journal's
    reader)."""
    pa = _pa()
    if pa.types.is_null(field.type):
        out[:] = np.nan
        return True
    is_bool, is_int = pa.types.is_boolean(field.type), pa.types.is_int64(field.type)
    pos = 0
    for c in chunks:
        m = len(c)
        validity, data = c.buffers()[:2]
        if is_bool:
            bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
            out[pos : pos + m] = bits[c.offset : c.offset + m]
        else:
            values = np.frombuffer(data, np.int64 if is_int else np.float64, c.offset + m)
            values = values[c.offset :]
            if is_int and field.name != "step" and m and np.abs(values).max() >= FLOAT_EXACT_MAX:
                return False
            out[pos : pos + m] = values
            if c.null_count:
                bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
                out[pos : pos + m][bits[c.offset : c.offset + m] == 0] = np.nan
        pos += m
    return True


def _pa() -> Any:
    """pyarrow, imported on first use (only a columnar file needs it)."""
    import pyarrow

    return pyarrow


def _read_rank_files(job: _Job) -> RankRecords:
    run_dir, rank, drop, last_only = job
    with gc_pause.paused():  # off in a pool worker too (see read_run_dir)
        rank_log, warnings = rank_format.read_log(run_dir, rank, loads=_loads)
        return RankRecords.from_log(rank, rank_log, warnings, drop, last_only=last_only)


class Stacked:
    """Every rank's measured (non-warm-up) steps as [rank x step] matrices over the union of
    their steps, ranks in `ranks` order (NaN where a rank did not record a step or a field):
    built once, so hot paths take one numpy operation per field instead of a loop per rank and
    step. `of` gives None when a rank's steps cannot be laid out so (a step recorded twice, a
    non-integer step column, a warm-up flag that is not a plain bool column)."""

    def __init__(self, ranks: list[int], steps: np.ndarray, present: np.ndarray, cols: Any):
        self.ranks = ranks
        self.steps = steps  # the union of the measured steps, sorted
        self.present = present  # [rank x step]: the rank recorded the step
        self._cols = cols  # per rank (its measured-step selector, its positions in `steps`)
        self._records: list[RankRecords] = []

    @classmethod
    def of(cls, records: list[RankRecords]) -> Stacked | None:
        picks: list[tuple[np.ndarray | slice, np.ndarray]] = []
        measured = []
        for rec in records:
            step = rec.columns.get("step")
            warmup = rec.columns.get("warmup")
            if (
                step is None
                or step.dtype.kind != "i"
                or (warmup is not None and warmup.dtype != bool)
            ):
                if rec.n_steps:
                    return None
                step = np.array([], np.int64)
                warmup = None
            pick = measured_pick(warmup)
            mine = step[pick]
            if mine.size > 1 and not (np.diff(mine) > 0).all():
                if np.unique(mine).size != mine.size:
                    return None  # a step recorded twice
            picks.append((pick, mine))
            measured.append(mine)
        first = measured[0] if measured else np.array([], np.int64)
        if all(m.size == first.size and np.array_equal(m, first) for m in measured):
            steps = first.astype(np.int64)
            if (np.diff(steps) > 0).all():
                stacked = cls(
                    [r.rank for r in records],
                    steps,
                    np.ones((len(records), steps.size), bool),
                    [(p, None) for p, _ in picks],
                )
                stacked._records = records
                return stacked
        steps = (
            np.unique(np.concatenate(measured)).astype(np.int64)
            if measured
            else np.array([], np.int64)
        )
        present = np.zeros((len(records), steps.size), bool)
        cols = []
        for i, (pick, mine) in enumerate(picks):
            at = np.searchsorted(steps, mine)
            present[i, at] = True
            cols.append((pick, at))
        stacked = cls([r.rank for r in records], steps, present, cols)
        stacked._records = records
        return stacked

    def matrix(self, key: str) -> np.ndarray | None:
        """Field `key` as a float64 [rank x step] matrix (NaN: absent; read-only where it is a
        view of the ranks' columns), or None when some rank holds it as something else than
        numbers (the caller's per-record path then)."""
        shared = self._shared_matrix(key)
        if shared is not None:
            return shared
        out = np.full(self.present.shape, np.nan)
        for i, (rec, (pick, at)) in enumerate(zip(self._records, self._cols, strict=True)):
            col = rec.columns.get(key)
            if col is None or "step" not in rec.columns:
                continue
            if col.dtype != np.float64:
                return None
            if at is None:
                out[i] = col[pick]
            else:
                out[i, at] = col[pick]
        return out

    def _shared_matrix(self, key: str) -> np.ndarray | None:
        """`matrix` without a copy (in one where the measured steps are not a slice) when every
        rank measured the same steps, picked alike, and its column of `key` is a row of one
        buffer (`rows_view`: the columnar reader's); None otherwise (row by row then)."""
        recs = self._records
        if not recs or any(at is not None for _, at in self._cols):
            return None
        if any(key not in r.columns or "step" not in r.columns for r in recs):
            return None
        view = rows_view([r.columns[key] for r in recs])
        if view is None:
            return None
        pick = self._cols[0][0]
        for p, _ in self._cols:
            if isinstance(p, slice) or isinstance(pick, slice):
                same = isinstance(p, slice) and isinstance(pick, slice) and p == pick
            else:
                same = p is pick or np.array_equal(p, pick)
            if not same:
                return None
        # a view (read-only; rows of a column held once have a zero stride) where the pick is a
        # slice: a [rank x step] copy is 131 MB at 16,384 x 1,000
        return view[:, pick] if isinstance(pick, slice) else np.array(view[:, pick])


def measured_pick(warmup: np.ndarray | None) -> np.ndarray | slice:
    """Which of a rank's steps are measured (not warm-up) from its bool `warmup` column: a
    slice when they are all those after the warm-up (the usual case: indexing by it copies
    nothing), else a boolean mask."""
    if warmup is None:
        return slice(None)
    w = int(np.argmin(warmup)) if warmup.size and not warmup.all() else int(warmup.size)
    if not warmup[w:].any() and warmup[:w].all():
        return slice(w, None)
    return ~warmup


# A [rank x n] float64 matrix and `list(matrix)`: the row arrays the ranks' columns hold
# (`analysis.tail.Windows`), for `rows_view` to know them without looking at each one's address.
KnownRows = tuple[np.ndarray, list[np.ndarray]]


def rows_view(cols: list[np.ndarray], known: KnownRows | None = None) -> np.ndarray | None:
    """`cols` (one array per rank, equal length) as the rows of one read-only [rank x n] matrix
    without a copy, when they lie one after another in one buffer (the columnar reader's: all
    ranks' columns are converted together, each rank holding a slice), or are all one array
    (a column the reader holds once: every rank's was the same; the matrix's rows then have
    a zero stride); None otherwise.

    `known`: a matrix and its rows as `list(matrix)` made them; when `cols` are those very
    arrays, in that order (checked by identity), the matrix is the answer, without the address
    of each row (~3 us a row: 20 ms a field at 16,384 ranks)."""
    if not cols:
        return None
    if known is not None and len(known[1]) == len(cols) and all(map(is_, cols, known[1])):
        view = known[0].view()
        view.flags.writeable = False
        return view
    first = cols[0]
    if first.ndim != 1 or not first.flags.c_contiguous or first.dtype != np.float64:
        return None
    owner = first.base if first.base is not None else first
    start = first.__array_interface__["data"][0]
    stride = first.size * first.itemsize
    if len(cols) > 1 and all(c is first for c in cols):
        stride = 0
    for i, c in enumerate(cols):
        if (
            c.dtype != first.dtype
            or c.ndim != 1
            or c.size != first.size
            or not c.flags.c_contiguous
            or (c.base if c.base is not None else c) is not owner
            or c.__array_interface__["data"][0] != start + i * stride
        ):
            return None
    return np.lib.stride_tricks.as_strided(
        first, shape=(len(cols), first.size), strides=(stride, first.itemsize), writeable=False
    )
