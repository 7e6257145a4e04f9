"""The watch's incremental, stacked paths against the plain ones: a refresh after lines were
appended gives the snapshot a fresh read of the same files gives, and the straggler and culprit
rules built from the stacked windows (`StepTable.of_rows`, `waited.measure_rows`, the shared
step arrays of `accounting.field_matrices`) give what the per-rank way gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import rank_writer  # the one shared writer of rank files (tests/fixtures)

from minicluster.analysis import accounting, waited
from minicluster.analysis.records import RankRecords, rows_view
from minicluster.analysis.steps import StepTable
from minicluster.analysis.tail import RunTail, Windows
from minicluster.analysis.watch import snapshot
from minicluster.core import rank_format

T0 = rank_writer.T0
STEP_S = rank_writer.STEP_S

# (last steps per rank, slow ranks' compute): aligned ranks with a straggler; ranks a step or
# two apart (each rank's window over other steps); a rank left far behind (stalled, left out of
# the straggler rule); short windows still holding the warm-up steps and padding
CASES = {
    "straggler": ([70, 70, 70, 70, 70, 70], {2: 9.0}),
    "apart": ([70, 69, 71, 70, 68, 70], {4: 9.0}),
    "behind": ([70, 70, 20, 70, 70, 70], {1: 9.0}),
    "young": ([12, 11, 12, 10], {}),
}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _live_copy(full: Path, live: Path, keep: int) -> None:
    """`live` holds the first `keep` lines of each of `full`'s rank files (a running job)."""
    (live / "ranks").mkdir(parents=True)
    for f in sorted((full / "ranks").glob("*.jsonl")):
        (live / "ranks" / f.name).write_bytes(b"".join(_lines(f)[:keep]))


def _append(full: Path, live: Path, upto: int, cut: int = 0) -> None:
    """Each live file grows to `full`'s first `upto` lines, less `cut` bytes (a line still being
    written)."""
    for f in sorted((full / "ranks").glob("*.jsonl")):
        want = b"".join(_lines(f)[:upto])
        mine = live / "ranks" / f.name
        have = mine.read_bytes() if mine.exists() else b""  # (a file that appears late)
        with open(live / "ranks" / f.name, "ab") as out:
            out.write(want[len(have) : len(want) - cut])


def _fresh(run_dir: Path, window: int, now_s: float, like: RunTail) -> RunTail:
    """A first read of the files now, with the delays the live reader learnt (`lag_s`: only a
    reader that looked before knows it)."""
    tail = RunTail(run_dir, window)
    tail.look(now_s)
    for rank, t in tail.ranks.items():
        t.lag_s = like.ranks[rank].lag_s
    return tail


@pytest.mark.parametrize("window", [50, 16])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refresh_after_appended_lines_equals_a_fresh_read(
    tmp_path: Path, case: str, window: int
) -> None:
    last, slow = CASES[case]
    rank_writer.write_static(tmp_path / "full", last, compute_ms=slow, total=200)
    live = tmp_path / "live"
    _live_copy(tmp_path / "full", live, keep=15)
    tail = RunTail(live, window)
    now = T0 + 20 * STEP_S
    tail.look(now)
    for upto, cut in ((40, 7), (41, 0), (60, 0), (90, 0)):  # a line split, then whole ones
        now += 10 * STEP_S
        _append(tmp_path / "full", live, upto, cut)
        tail.look(now)
        got = snapshot(tail, now, 5.0)
        want = snapshot(_fresh(live, window, now, tail), now, 5.0)
        assert got == want
    if case in ("straggler", "behind") and window == 50:  # the rules named someone: it can fail
        assert got["stragglers"] and got["straggler_check"]["applied"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_stacked_rules_equal_the_per_rank_ones(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    last, slow = CASES[case]
    rank_writer.write_static(tmp_path, last, compute_ms=slow, total=200)
    now = T0 + 72 * STEP_S
    tail = RunTail(tmp_path, 50)
    tail.look(now)
    stacked = snapshot(tail, now, 5.0)
    with monkeypatch.context() as m:
        m.setattr(StepTable, "of_rows", classmethod(lambda cls, recs, world, *_: cls(recs, world)))
        m.setattr(
            waited, "measure_rows", lambda recs, steps, ms, *_: waited.measure(recs, steps, ms)
        )
        per_rank = snapshot(tail, now, 5.0)
    assert stacked == per_rank
    if case != "young":
        assert stacked["straggler_check"]["applied"]


def _tables_equal(a: StepTable, b: StepTable) -> None:
    assert [r.rank for r in a.records] == [r.rank for r in b.records]
    assert a.row == b.row and np.array_equal(a.indices, b.indices)
    for k in StepTable.KEYS:
        np.testing.assert_array_equal(a.m[k], b.m[k])
    np.testing.assert_array_equal(a.transfer_ms, b.transfer_ms)


def _stacked_inputs(windows: Windows, leave_out: set[int]) -> tuple[Any, ...]:
    keep, step, warmup, cols, starts = windows.stacked(leave_out)
    return windows.records_of(keep, step, warmup, cols, starts), step, warmup, cols, starts


@pytest.mark.parametrize("leave_out", [set(), {1}])
@pytest.mark.parametrize("last", [[30, 28, 31, 29], [10, 8, 11, 9]])
def test_step_table_and_waits_of_rows_equal_the_per_rank_way(
    tmp_path: Path, leave_out: set[int], last: list[int]
) -> None:
    # ranks at different steps, one with no step yet (a header alone), a short window; the
    # second: windows not full yet, holding the 2 warm-up steps
    rank_writer.write_static(tmp_path, last, compute_ms={2: 9.0}, total=200)
    header_only = _lines(tmp_path / "ranks" / "rank_00003.jsonl")[:1]
    (tmp_path / "ranks" / "rank_00003.jsonl").write_bytes(b"".join(header_only))
    tail = RunTail(tmp_path, 20)
    tail.look(T0)
    windows = Windows(list(tail.ranks.values()))
    records, step, warmup, cols, starts = _stacked_inputs(windows, leave_out)
    fast = StepTable.of_rows(records, 4, step, warmup, cols, starts)
    _tables_equal(fast, StepTable(records, 4))
    assert 3 not in fast.row and fast.indices.size
    ms = 12.5
    a = waited.measure_rows(records, fast.indices, ms, step, cols["comm_ms"], starts)
    b = waited.measure(records, fast.indices, ms)
    assert a.ranks == b.ranks and a.reason == b.reason
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    # the ranks in another order than their numbers: the same waits, by rank
    back = slice(None, None, -1)
    c = waited.measure_rows(
        records[back], fast.indices, ms, step[back], cols["comm_ms"][back], starts[back]
    )
    assert c.ranks == b.ranks
    np.testing.assert_array_equal(c.matrix, b.matrix)


def test_a_step_recorded_twice_takes_the_per_rank_way(tmp_path: Path) -> None:
    rank_writer.write_static(tmp_path, [30, 30, 30], total=200)
    path = tmp_path / "ranks" / "rank_00001.jsonl"
    lines = _lines(path)
    path.write_bytes(b"".join(lines + [lines[-1]]))  # its last step line again
    tail = RunTail(tmp_path, 20)
    tail.look(T0)
    records, step, warmup, cols, starts = _stacked_inputs(Windows(list(tail.ranks.values())), set())
    _tables_equal(StepTable.of_rows(records, 3, step, warmup, cols, starts), StepTable(records, 3))
    a = waited.measure_rows(records, np.arange(2, 31), 10.0, step, cols["comm_ms"], starts)
    b = waited.measure(records, np.arange(2, 31), 10.0)
    np.testing.assert_array_equal(a.matrix, b.matrix)


def test_field_matrices_of_shared_step_arrays_equal_those_of_copies() -> None:
    # the watch's ranks at the same steps hold one step array (`Windows.records_of`)
    rng = np.random.default_rng(0)
    a, b = np.arange(10, 20), np.array([10, 11, 13, 14, 15, 16, 18, 19, 20, 21])
    for arrays, steps in (((a, b), np.arange(11, 22)), ((a,), a)):
        columns = [
            {"step": arrays[i % len(arrays)]} | {k: rng.random(10) for k in accounting.FIELDS}
            for i in range(12)
        ]
        shared = accounting.field_matrices(columns, steps)
        copies = [dict(c, step=c["step"].copy()) for c in columns]
        per_rank = accounting.field_matrices(copies, steps)
        assert shared.keys() == per_rank.keys()
        for k in shared:
            np.testing.assert_array_equal(shared[k], per_rank[k])
        assert not np.isnan(shared["opt_prev"]).all()


def test_an_appended_header_only_rank_and_late_files_keep_the_equality(tmp_path: Path) -> None:
    rank_writer.write_static(tmp_path / "full", [40, 40, 40], total=200)
    live = tmp_path / "live"
    _live_copy(tmp_path / "full", live, keep=20)
    shutil.move(live / "ranks" / "rank_00002.jsonl", tmp_path / "later.jsonl")
    tail = RunTail(live, 50)
    now = T0 + 20 * STEP_S
    tail.look(now)
    shutil.move(tmp_path / "later.jsonl", live / "ranks" / "rank_00002.jsonl")  # appears late
    _append(tmp_path / "full", live, 45)
    now += 20 * STEP_S
    tail.look(now)
    assert snapshot(tail, now, 5.0) == snapshot(_fresh(live, 50, now, tail), now, 5.0)


def test_many_ranks_rings_in_one_store_as_it_grows(tmp_path: Path) -> None:
    # more rank files than the store first holds (64), some appearing after the first look
    # and one rewritten (its ring emptied in place): the same as a fresh read, and as rings of
    # their own
    rank_writer.write_static(tmp_path / "full", [30] * 70 + [29] * 30, total=200)
    live = tmp_path / "live"
    _live_copy(tmp_path / "full", live, keep=10)
    for r in range(80, 100):
        (live / "ranks" / f"rank_{r:05d}.jsonl").unlink()
    tail = RunTail(live, 16)
    tail.look(T0 + 5 * STEP_S)
    _append(tmp_path / "full", live, 25)
    path = live / "ranks" / "rank_00003.jsonl"
    path.write_bytes(b"".join(_lines(path)[:12]))  # rewritten shorter: read again
    now = T0 + 40 * STEP_S
    tail.look(now)
    assert len(tail.ranks) == 100 and tail._store is not None and len(tail._store.buf) >= 100
    assert all(t._store is tail._store for t in tail.ranks.values())
    assert snapshot(tail, now, 5.0) == snapshot(_fresh(live, 16, now, tail), now, 5.0)
    tails = list(tail.ranks.values())
    stored, gathered = Windows(tails), Windows(tails[::-1])  # out of slot order: gathered
    for t in tails:
        t._store = None  # each ring as the tail holds it, stacked one by one
    own = Windows(tails)
    assert not np.isnan(own.col["step"]).all(axis=1).any()
    for k in stored.col:
        np.testing.assert_array_equal(own.col[k], stored.col[k])
        np.testing.assert_array_equal(gathered.col[k][::-1], stored.col[k])


def test_full_rotated_windows_are_rows_of_one_buffer_that_accounting_takes_as_is(
    tmp_path: Path,
) -> None:
    """Every window full and rotated (its oldest step mid-ring): each key's [rank x step]
    matrix is one buffer whose rows are the ranks' columns, found both by the rows' addresses
    and by the rows `records_and_rows` names; the accounting from those views is the one from
    copies of the columns (the per-rank way), `opt_prev` of the window's first step unread."""
    rng = np.random.default_rng(3)

    def steps(rank: int, first: int, last: int) -> bytes:
        return b"".join(
            json.dumps(
                {"type": "step", "step": s, "warmup": s < 2, "t_unix_s": T0 + s * STEP_S}
                | {k: float(rng.uniform(1, 9)) for k in ("step_time_ms", "comm_ms", "comm_bytes")}
                | {k: float(rng.uniform(1, 9)) + (rank == 2) for k in accounting.FIELDS}
            ).encode()
            + b"\n"
            for s in range(first, last)
        )

    ranks = tmp_path / "ranks"
    ranks.mkdir()
    for r in range(4):
        head = rank_format.encode(rank_writer.header(r, 4, 2, 100)) + "\n"
        (ranks / f"rank_{r:05d}.jsonl").write_bytes(head.encode() + steps(r, 0, 30))
    tail = RunTail(tmp_path, 16)
    tail.look(T0)
    for r in range(4):
        with open(ranks / f"rank_{r:05d}.jsonl", "ab") as f:
            f.write(steps(r, 30, 35))  # 5 more steps each
    tail.look(T0 + 40 * STEP_S)
    windows = Windows(list(tail.ranks.values()))
    assert {t.kept % 16 for t in tail.ranks.values()} == {5}  # rotated, not at 0
    keep, step, warmup, cols, starts = windows.stacked()
    records, known = windows.records_and_rows(keep, step, warmup, cols, starts)
    assert not starts.any() and set(known) == set(cols)
    for key in ("fwd_ms", "opt_ms", "compute_ms"):
        mine = [r.columns[key] for r in records]
        by_address = rows_view(mine)
        assert by_address is not None and by_address.base is not None
        np.testing.assert_array_equal(by_address, np.stack(mine))
        by_name = rows_view(mine, known[key])
        assert by_name is not None and not by_name.flags.writeable
        np.testing.assert_array_equal(by_name, np.stack(mine))
        # another array in place of one row (equal values): not the named matrix
        other = [*mine[:1], mine[1].copy(), *mine[2:]]
        assert rows_view(other, known[key]) is None
    table = StepTable.of_rows(records, 4, step, warmup, cols, starts)
    copies = [
        RankRecords(r.rank, r.header, columns={k: v.copy() for k, v in r.columns.items()})
        for r in records
    ]
    fast = accounting.account(records, table, known)
    slow = accounting.account(copies, StepTable(copies, 4))
    assert fast.ranks == slow.ranks and fast.reason == slow.reason
    np.testing.assert_array_equal(fast.steps, slow.steps)
    assert fast.steps.size == table.indices.size - 1  # the first step's previous one unread
    for name in ("host", "compute", "exposed", "period"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))


def test_windows_reuse_their_buffer_only_once_nothing_holds_the_last(tmp_path: Path) -> None:
    rank_writer.write_static(tmp_path, [30, 30, 30], total=200)
    tail = RunTail(tmp_path, 8)
    tail.look(T0)
    tails = list(tail.ranks.values())
    first = Windows(tails)
    held = first.records()[1].columns["compute_ms"]  # a row of its buffer, kept
    before = held.copy()
    second = Windows(tails)
    assert not np.shares_memory(second.col["compute_ms"], held)
    np.testing.assert_array_equal(held, before)
    del first, held
    at = second.col["step"].__array_interface__["data"][0]  # (an address: no reference)
    del second
    third = Windows(tails)  # nothing holds the second's buffer now: written again
    assert third.col["step"].__array_interface__["data"][0] == at
    np.testing.assert_array_equal(third.matrix, Windows(tails).matrix)
