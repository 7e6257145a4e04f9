"""Follow the rank files of a running job: on each look, read only what every file gained since.

No locks and no writes: a look lists `DIR/ranks/` once, opens each rank file read-only, reads
from the offset it reached last time up to the size the file has now, and keeps only complete
lines (a line still being written waits for its newline). Files that appear late are picked up;
a file that shrank was rewritten (a restarted rank) and is read again from its start. Opening
the file on every look (rather than trusting a cached `stat`) is what makes a shared
filesystem's close-to-open consistency show the newest bytes.

Per rank it keeps a `RankLog` of every record but the steps (header, roster, the comm_timing
history: the same codec as every other reader), the last `window` step records (as columns for
`StepTable`) and the summary once it appears. Of a long backlog only the last `window` step
lines are parsed.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from minicluster.analysis.records import (
    KnownRows,
    RankRecords,
    header_run_id,
    mixed_runs_error,
)
from minicluster.core import rank_format, rundir
from minicluster.core.errors import InputError
from minicluster.core.rank_format import RankLog, RecordError

try:
    from orjson import loads as _loads
except ImportError:  # orjson is a dependency; plain json is the slower fallback
    _loads = json.loads  # type: ignore[assignment]

# The step fields the watch uses, in the order each kept step is stored.
WINDOW_KEYS = (
    "step",
    "warmup",
    "t_unix_s",
    "step_time_ms",
    "compute_ms",
    "comm_ms",
    "exposed_comm_ms",
    "comm_bytes",
    "fwd_ms",  # the accounting's (analysis.accounting): a rank's period of each step
    "bwd_ms",
    "opt_ms",
    "gap_ms",
    # the host CPU contention rule's (analysis.contention; NaN in records before rank format 1.7)
    "cpu_ms",
    "cpu_wait_ms",
    "main_cpu_wait_ms",  # 1.8: the loop thread's (the culprit and straggler rules take it)
)
HEADER_MAX_BYTES = 1 << 20
WINDOW_BUDGET = 51_200  # rank-steps: 1,024 ranks x 50 steps refresh in about 0.1-0.2 s here
WINDOW_MIN = 50
WINDOW_MAX = 500
MAX_WARNINGS = 20
# The roster (every node and its ranks) is the same line in the file of each node's local rank 0:
# decoded once per run and the one record shared (2,048 nodes: 2,048 copies of 2,048 entries
# were 8.4M objects that each full garbage collection walked, 2.5 s of CPU). At most SHARED_MAX
# distinct lines are kept.
ROSTER = rank_format.Roster.TYPE
SHARED_MAX = 8
_COUNTED = (rank_format.STEP, rank_format.COLLECTIVE)


class RankTail:
    """One rank file followed incrementally: its header, its last `window` steps, its summary.

    `t_last_s` is the rank's own clock (`t_unix_s` of its last step). `lag_s` is the smallest
    delay seen between a step's `t_unix_s` and this reader finding it, over looks after the
    first: it absorbs a node clock that differs from this machine's and a shared filesystem's
    delay (None until a second look found new steps).
    """

    def __init__(
        self,
        path: Path,
        rank: int,
        window: int,
        store: RingStore | None = None,
        shared: dict[bytes, rank_format.LineRecord] | None = None,
    ) -> None:
        self.path = path
        self._os_path = os.fspath(path)  # (a Path converts on every open)
        self.rank = rank
        self.window = window
        self._shared = shared  # decoded roster lines by their bytes (`RunTail`'s, for every rank)
        self._store: RingStore | None = None  # the buffer its ring lies in, at `_slot`
        self._slot = -1
        self._ring: np.ndarray = np.empty((0, 0))  # made by _restart
        self.summary: dict[str, Any] | None = None
        self.summary_unreadable = False
        self.looks = 0
        self.warnings: list[str] = []
        self._restart()
        if store is not None:
            store.add(self)

    def _restart(self) -> None:
        """Forget what was read of the file (it is read again from its start)."""
        self.offset = 0
        self.pending = b""  # the start of a line whose newline has not been written yet
        self.lines_read = 0
        self.log = RankLog(keep_steps=False)  # every record but the steps
        # the header line's JSON object (None until it was read), and the node it names
        # (`analysis.watch.node_of`), made once per header record read: a refresh asks for them
        # several times per rank
        self.header: dict[str, Any] | None = None
        self.node: str | None = None
        # The last `window` steps, a ring of columns ([key x step], each key's steps one run
        # for `Windows` to copy): column `kept % window` is written next.
        if self._store is not None:
            self._ring[:] = np.nan  # its place in the store
        else:
            self._ring = np.full((len(WINDOW_KEYS), self.window), np.nan)
        self.kept = 0
        self.records = 0  # step (or collective) lines read, including those not parsed
        self.lag_s: float | None = None
        self.last_step: int | None = None
        self.t_last_s: float | None = None  # `t_unix_s` of the last step, when it has one

    def look(self, now_s: float) -> bool:
        """Read what the file gained since the last look; True when a new line was complete.

        `now_s` is this machine's `time.time()` at the look (for `lag_s`). InputError when the
        header is in a format version this reader does not know.
        """
        self.looks += 1
        try:
            fd = os.open(self._os_path, os.O_RDONLY)
        except OSError as e:
            self._warn(f"{self.path.name}: cannot open ({e.strerror or e})")
            return False
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:
                self._warn(f"{self.path.name} shrank (rewritten by a restarted rank): read again")
                self._restart()
            if size == self.offset:
                return False
            data = os.pread(fd, size - self.offset, self.offset)
        except OSError as e:
            self._warn(f"{self.path.name}: cannot read ({e.strerror or e})")
            return False
        finally:
            os.close(fd)
        self.offset += len(data)
        buf = self.pending + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self.pending = buf
            return False
        self.pending = buf[cut + 1 :]
        before = self.kept
        self._take(buf[:cut].split(b"\n"))
        if self.looks > 1 and self.kept != before and self.t_last_s is not None:
            lag = now_s - self.t_last_s
            self.lag_s = lag if self.lag_s is None else min(self.lag_s, lag)
        return True

    def _take(self, lines: list[bytes]) -> None:
        # Step and collective lines the window would drop anyway are counted, not parsed (a long
        # backlog costs a split); every other record (header, roster, comm_timing) is parsed
        # wherever it sits.
        parse_from = len(lines) - self.window
        for i, line in enumerate(lines):
            at = self.lines_read + i
            if i < parse_from and rank_format.line_type(line) in _COUNTED:
                self.records += 1
                continue
            if not line.strip():
                continue
            known = self._shared.get(line) if self._shared else None
            if known is not None:
                self.log.apply(known)
                continue
            try:
                obj = _loads(line)
            except ValueError:
                self._warn(f"{self.path.name}: malformed line {at + 1} skipped")
                continue
            kind = obj.get("type") if isinstance(obj, dict) else None
            if kind == rank_format.STEP:
                self.records += 1
                # `_number` of each value, the usual types inline (a call each was ~10% of a look)
                row = [
                    v
                    if (t := type(v)) is float
                    else float(v)
                    if t is int or t is bool
                    else _number(v)
                    for v in map(obj.get, WINDOW_KEYS)
                ]
                self._ring[:, self.kept % self.window] = row
                self.kept += 1
                self.last_step = int(row[0]) if row[0] == row[0] else self.last_step
                self.t_last_s = row[2] if row[2] == row[2] else None  # NaN != NaN
            elif kind == rank_format.COLLECTIVE:
                self.records += 1
            else:
                try:
                    record = rank_format.decode(obj, f"{self.path.name} line {at + 1}")
                except RecordError as e:
                    self._warn(f"{e}; skipped")
                    continue
                self.log.apply(record)
                if record is self.log.header:
                    self.header = record.to_json()
                    self.node = node_of(self.header)
                if kind == ROSTER and self._shared is not None and len(self._shared) < SHARED_MAX:
                    self._shared[line] = record
        self.lines_read += len(lines)

    def read_summary(self, path: Path) -> None:
        """Read the summary (written atomically at the rank's end) once it exists."""
        if self.summary is not None or self.summary_unreadable:
            return
        try:
            summary = _loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            self.summary_unreadable = True
            self._warn(f"rank {self.rank}: summary unreadable ({e}); treated as missing")
            return
        if isinstance(summary, dict):
            self.summary = summary

    def window_rows(self) -> np.ndarray:
        """The kept steps, oldest first: [window x WINDOW_KEYS], NaN rows first while fewer than
        `window` steps were read (booleans as 0/1, a missing field NaN)."""
        return Windows([self]).matrix[0]

    def columns(self) -> dict[str, np.ndarray]:
        """The kept steps as arrays, as `RankRecords.columns` holds them."""
        return Windows([self]).records()[0].columns

    def _warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS and text not in self.warnings:
            self.warnings.append(text)


class RingStore:
    """The rings of a run's `RankTail`s in one [tail x key x step] buffer, in the order they
    were added (`Windows` takes them from it without gathering one array per rank)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.buf = np.full((0, len(WINDOW_KEYS), window), np.nan)
        self.tails: list[RankTail] = []
        self._spare: np.ndarray | None = None
        self._free_refs = 0

    def spare(self, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised float64 buffer of `shape` for `Windows`: the one it gave last time when
        nothing refers to it any more (no window, record or view of it is alive: its reference
        count says so), else a new one. At 16,384 ranks x 50 steps it is 78 MB, and a new one
        cost its page faults on every refresh (30-100 ms of system CPU)."""
        out = self._spare
        if out is not None and out.shape == shape and sys.getrefcount(out) <= self._free_refs:
            return out
        out = self._spare = np.empty(shape)
        # its count with nothing but this store holding it, counted the same way as above (what
        # the interpreter adds for `out` and the call's argument is the same in both)
        self._free_refs = sys.getrefcount(out)
        return out

    def add(self, tail: RankTail) -> None:
        if len(self.tails) == len(self.buf):
            grown = np.full((max(64, 2 * len(self.buf)), *self.buf.shape[1:]), np.nan)
            grown[: len(self.buf)] = self.buf
            self.buf = grown
            for slot, t in enumerate(self.tails):
                t._ring = grown[slot]
        slot = len(self.tails)
        self.buf[slot] = tail._ring
        tail._ring, tail._slot, tail._store = self.buf[slot], slot, self
        self.tails.append(tail)


class Windows:
    """The kept windows of many ranks stacked, oldest step first: `col[key]` is [rank x window]
    (NaN where a rank has fewer steps than the window, or a step lacked the field), each key's
    matrix one contiguous buffer (so a rank's columns are rows of it: `records.rows_view`)."""

    def __init__(self, tails: list[RankTail]) -> None:
        self.tails = tails
        width = tails[0].window if tails else 0
        kept = np.fromiter((t.kept for t in tails), np.int64, len(tails))
        # Column (kept + i) % window of a ring is its i-th oldest step; columns never written
        # are NaN, so one gather puts every rank's steps oldest first, padding first, laid out
        # [key x rank x step] in the same copy.
        store = tails[0]._store if tails else None
        if store is not None and all(t._store is store for t in tails):
            slots = np.fromiter((t._slot for t in tails), np.int64, len(tails))
            in_place = bool((slots == np.arange(len(tails))).all())
            rings = (store.buf[: len(tails)] if in_place else store.buf[slots]).transpose(1, 0, 2)
        elif tails:
            rings = (
                np.concatenate([t._ring for t in tails])  # (np.stack: a Python call per ring)
                .reshape(len(tails), len(WINDOW_KEYS), width)
                .transpose(1, 0, 2)
            )
        else:
            rings = np.empty((len(WINDOW_KEYS), 0, 0))
        shift = kept % max(width, 1)
        if tails and (shift == shift[0]).all():  # every ring at the same place: one rotation
            # (into a [key x rank x step] buffer: `np.concatenate` of the transposed rings would
            # lay it out [rank x key x step], and `rows_view` would not find a key's rows in it)
            s = int(shift[0])
            by_key = store.spare(rings.shape) if store is not None else np.empty(rings.shape)
            by_key[:, :, : width - s] = rings[:, :, s:]
            by_key[:, :, width - s :] = rings[:, :, :s]
        else:
            order = (kept[:, None] + np.arange(width)[None, :]) % max(width, 1)
            by_key = np.ascontiguousarray(rings[:, np.arange(len(tails))[:, None], order])
        self.col = {k: by_key[j] for j, k in enumerate(WINDOW_KEYS)}
        self.matrix = by_key.transpose(1, 2, 0)  # [rank x window x key], a view
        self.starts = width - np.minimum(kept, width)  # per rank, its first kept column

    def stacked(
        self, leave_out: set[int] | frozenset[int] = frozenset()
    ) -> tuple[list[int], np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """The windows as `records` gives them, still stacked: (the ranks' positions in `tails`,
        `step` int64 [rank x window] (-1 where NaN), `warmup` bool, the other keys' float64
        matrices, each rank's first kept column), ranks in `leave_out` left out."""
        keep = [i for i, t in enumerate(self.tails) if t.rank not in leave_out]
        everyone = len(keep) == len(self.tails)
        take = slice(None) if everyone else np.asarray(keep, dtype=np.int64)
        step = np.nan_to_num(self.col["step"][take], nan=-1).astype(np.int64)
        warmup = self.col["warmup"][take] == 1.0
        cols = {k: v[take] for k, v in self.col.items() if k not in ("step", "warmup")}
        return keep, step, warmup, cols, self.starts[take]

    def records(self, leave_out: set[int] | frozenset[int] = frozenset()) -> list[RankRecords]:
        """Each rank's window as `RankRecords` (`step` int64, `warmup` bool, the rest float64),
        what `StepTable` and the straggler rule take; ranks in `leave_out` are left out."""
        if not self.tails:
            return []
        return self.records_of(*self.stacked(leave_out))

    def records_of(
        self,
        keep: list[int],
        step: np.ndarray,
        warmup: np.ndarray,
        cols: dict[str, np.ndarray],
        starts: np.ndarray,
    ) -> list[RankRecords]:
        """`records` from `stacked`'s answer: each rank's columns are rows of its matrices."""
        return self.records_and_rows(keep, step, warmup, cols, starts)[0]

    def records_and_rows(
        self,
        keep: list[int],
        step: np.ndarray,
        warmup: np.ndarray,
        cols: dict[str, np.ndarray],
        starts: np.ndarray,
    ) -> tuple[list[RankRecords], dict[str, KnownRows]]:
        """`records_of`, and per float64 key the matrix and the row arrays the records' columns
        are when every window is full (`records.rows_view`; else empty)."""
        mats = {"step": step, "warmup": warmup, **cols}
        keys = [k for k in WINDOW_KEYS if k in mats]
        known: dict[str, KnownRows] = {}
        if not starts.any():  # every window full: each rank's columns are whole rows
            rows = [list(mats[k]) for k in keys]
            known = {
                k: (mats[k], r)
                for k, r in zip(keys, rows, strict=True)
                if k in cols and mats[k].dtype == np.float64 and mats[k].ndim == 2
            }
            # ranks with the same steps hold one `step` array (`accounting.field_matrices`
            # then looks each array up once)
            if (step == step[:1]).all():  # every rank at the same steps (the usual case)
                rows[keys.index("step")] = [step[0]] * len(step)
            else:
                same, which = np.unique(step, axis=0, return_inverse=True)
                arrays = list(same)
                rows[keys.index("step")] = [arrays[j] for j in which.ravel().tolist()]
            per_rank: Any = (dict(zip(keys, r, strict=True)) for r in zip(*rows, strict=True))
        else:
            per_rank = ({k: mats[k][j, s:] for k in keys} for j, s in enumerate(starts.tolist()))
        records = [
            RankRecords(
                self.tails[i].rank,
                self.tails[i].header,
                summary=self.tails[i].summary,
                columns=c,
                timing=list(self.tails[i].log.timing),
            )
            for i, c in zip(keep, per_rank, strict=True)
        ]
        return records, known


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


def node_of(header: dict[str, Any]) -> str:
    """The node a rank runs on: `node N (host)` from torchrun's group rank, else its hostname."""
    node_rank = header.get("node_rank")
    host = str(header.get("hostname"))
    return f"node {node_rank} ({host})" if node_rank is not None else host


def auto_window(world_size: int) -> int:
    """The default window: WINDOW_BUDGET rank-steps over the ranks, between WINDOW_MIN and
    WINDOW_MAX steps (a refresh's cost grows with ranks x window; few ranks afford a longer one)."""
    return min(WINDOW_MAX, max(WINDOW_MIN, WINDOW_BUDGET // max(1, world_size)))


class RunTail:
    """Every rank file of one run directory, followed incrementally (`look` once per refresh).

    `window` None: `auto_window` of the world size in the first header found (no rank file is
    followed until one has its header line).
    """

    def __init__(self, run_dir: Path, window: int | None) -> None:
        self.run_dir = run_dir
        self.window = window
        self.ranks: dict[int, RankTail] = {}
        self._store: RingStore | None = None
        self._shared: dict[bytes, rank_format.LineRecord] = {}
        self._names: dict[str, tuple[int | None, bool, bool]] = {}  # name -> (rank, summary, jsonl)
        # the run the first header read names (its rank), and the ranks whose header was checked
        self._run: tuple[str, int] | None = None
        self._checked: set[int] = set()
        # the last listing of ranks/ and its ranks with a journal, with a summary
        self._listed: tuple[list[str] | None, frozenset[int], frozenset[int]] = (
            None,
            frozenset(),
            frozenset(),
        )

    def look(self, now_s: float) -> bool:
        """List `ranks/` once, pick up new rank files, read what each file gained and any summary
        that appeared; True when some file gained a complete line."""
        ranks_dir = rundir.ranks_dir(self.run_dir)
        try:
            names = [e.name for e in os.scandir(ranks_dir)]
        except FileNotFoundError:
            return False
        except OSError as e:
            raise InputError(f"cannot list {ranks_dir}: {e.strerror or e}") from None
        if names == self._listed[0]:  # the same listing as last time: the same rank files
            files, summaries = self._listed[1], self._listed[2]
        else:
            files, summaries = self._classify(names)
            self._listed = (names, files, summaries)
        if self.window is None:
            world = next(filter(None, map(self._world_size, sorted(files))), None)
            if world is None:
                return False
            self.window = auto_window(world)
        for rank in files | summaries:  # a summary alone: the rank failed before its first line
            if rank not in self.ranks:
                if self._store is None:
                    self._store = RingStore(self.window)
                self.ranks[rank] = RankTail(
                    rundir.rank_jsonl(self.run_dir, rank),
                    rank,
                    self.window,
                    self._store,
                    self._shared,
                )
        grew = False
        for rank, tail in self.ranks.items():
            if rank in files:
                grew |= tail.look(now_s)
            if rank in summaries and tail.summary is None:
                tail.read_summary(rundir.rank_summary(self.run_dir, rank))
            if tail.header is not None and rank not in self._checked:
                self._check_header(rank, tail.header)
        return grew

    def _check_header(self, rank: int, header: dict[str, Any]) -> None:
        """Refuse a rank file that is not this run's rank `rank` (as `records.read_run_dir`)."""
        self._checked.add(rank)
        ranks_dir = rundir.ranks_dir(self.run_dir)
        run_id = header_run_id(ranks_dir, rank, header)
        if run_id is None:
            return
        if self._run is None:
            self._run = (run_id, rank)
        elif run_id != self._run[0]:
            raise mixed_runs_error(ranks_dir, {self._run[0]: [self._run[1]], run_id: [rank]})

    def _classify(self, names: list[str]) -> tuple[frozenset[int], frozenset[int]]:
        """The ranks with a journal and those with a summary among the listed `names`."""
        files: set[int] = set()
        summaries: set[int] = set()
        for name in names:
            kind = self._names.get(name)
            if kind is None:
                rank = rundir.rank_from_name(name)
                kind = self._names[name] = (
                    rank,
                    rank is not None and name.endswith(".summary.json"),
                    rank is not None and name.endswith(".jsonl"),
                )
            if kind[0] is None:
                continue
            if kind[1]:
                summaries.add(kind[0])
            elif kind[2]:
                files.add(kind[0])
        return frozenset(files), frozenset(summaries)

    def warnings(self) -> list[str]:
        return [w for t in self.ranks.values() for w in t.warnings]

    def _world_size(self, rank: int) -> int | None:
        """The world size in a rank file's header line, once that line is complete."""
        try:
            with open(rundir.rank_jsonl(self.run_dir, rank), "rb") as f:
                line = f.readline(HEADER_MAX_BYTES)
            head = _loads(line) if line.endswith(b"\n") else None
        except (OSError, ValueError):
            return None
        world = head.get("world_size") if isinstance(head, dict) else None
        return world if isinstance(world, int) and world > 0 else None
