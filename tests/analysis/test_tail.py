"""The incremental reader of rank files: only appended bytes, whole lines, late and rewritten files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fixtures import rank_writer  # the one shared writer of rank files (tests/fixtures)

from minicluster.analysis.tail import RankTail, RunTail, auto_window
from minicluster.core import rank_format
from minicluster.core.errors import InputError


def _line(obj: dict[str, Any] | rank_format.Record) -> bytes:
    """A line as the recorder writes it (a record), or as another tool might (a dict)."""
    if isinstance(obj, rank_format.Record):
        return (rank_format.encode(obj) + "\n").encode()
    return (json.dumps(obj) + "\n").encode()


def _step(step: int, t: float, compute: float = 4.0) -> dict[str, Any]:
    return {
        "type": "step",
        "step": step,
        "warmup": step < 2,
        "step_time_ms": compute + 3.0,
        "compute_ms": compute,
        "comm_ms": 2.0,
        "exposed_comm_ms": 2.0,
        "comm_bytes": 1000,
        "t_unix_s": t,
    }


def _start(path: Path, rank: int = 0, world: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_line(rank_writer.header(rank, world, 2, 20)) + _line(rank_writer.TIMING))


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_reads_only_what_was_appended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ranks" / "rank_00000.jsonl"
    _start(path)
    _append(path, b"".join(_line(_step(i, 100.0 + i)) for i in range(3)))
    reads = []
    real_pread = os.pread

    def spy(fd: int, n: int, offset: int) -> bytes:
        reads.append((n, offset))
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", spy)
    tail = RankTail(path, 0, window=50)
    first_size = path.stat().st_size
    assert tail.look(200.0)
    assert (tail.last_step, tail.records, tail.header["rank"]) == (2, 3, 0)
    assert tail.log.timing_methods() == ["comm_hook_host_clock"]
    assert not tail.look(201.0)  # nothing new: nothing read
    _append(path, b"".join(_line(_step(i, 100.0 + i)) for i in range(3, 5)))
    assert tail.look(202.0)
    assert reads == [(first_size, 0), (path.stat().st_size - first_size, first_size)]
    assert tail.columns()["step"].tolist() == [0, 1, 2, 3, 4]
    assert tail.columns()["warmup"].tolist() == [True, True, False, False, False]


def test_a_truncated_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "ranks" / "rank_00000.jsonl"
    _start(path)
    line = _line(_step(0, 100.0))
    _append(path, line[:25])
    tail = RankTail(path, 0, window=50)
    tail.look(100.5)
    assert tail.last_step is None and tail.warnings == []
    _append(path, line[25:] + _line(_step(1, 101.0))[:10])
    assert tail.look(101.5)
    assert tail.last_step == 0 and tail.warnings == []


def test_only_the_window_of_a_long_backlog_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "ranks" / "rank_00000.jsonl"
    _start(path)
    lines = [_line(_step(i, 100.0 + i)) for i in range(1000)]
    # Outside the window step lines are counted, never parsed; a line that is no step line is
    # parsed wherever it sits (it could be a comm_timing switch): this one is malformed.
    lines[100] = b"{not json\n"
    _append(path, b"".join(lines))
    tail = RankTail(path, 0, window=5)
    tail.look(2000.0)
    assert tail.records == 999
    assert tail.warnings == ["rank_00000.jsonl: malformed line 103 skipped"]
    assert tail.columns()["step"].tolist() == [995, 996, 997, 998, 999]
    _append(path, b"{broken\n" + _line(_step(1000, 1100.0)))
    tail.look(2001.0)
    assert tail.warnings[1:] == ["rank_00000.jsonl: malformed line 1003 skipped"]
    assert tail.last_step == 1000


def test_a_rewritten_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "ranks" / "rank_00000.jsonl"
    _start(path)
    _append(path, b"".join(_line(_step(i, 100.0 + i)) for i in range(10)))
    tail = RankTail(path, 0, window=50)
    tail.look(200.0)
    _start(path)  # a restarted rank opens its file with "w"
    _append(path, _line(_step(0, 300.0)))
    tail.look(301.0)
    assert tail.columns()["step"].tolist() == [0]
    assert "shrank" in tail.warnings[0]


def test_files_that_appear_late_and_summaries_are_picked_up(tmp_path: Path) -> None:
    ranks = tmp_path / "ranks"
    _start(ranks / "rank_00000.jsonl")
    run = RunTail(tmp_path, window=50)
    assert run.look(100.0)
    assert sorted(run.ranks) == [0]
    _start(ranks / "rank_00001.jsonl", rank=1)
    (ranks / "rank_00000.summary.json").write_text(json.dumps({"status": "ok"}))
    (ranks / ".rank_00001.summary.json.x.tmp").write_text("{")  # an atomic write in flight
    run.look(101.0)
    assert sorted(run.ranks) == [0, 1]
    assert run.ranks[0].summary == {"status": "ok"}
    assert run.ranks[1].summary is None and run.warnings() == []


def test_a_missing_ranks_folder_is_nothing_yet(tmp_path: Path) -> None:
    run = RunTail(tmp_path, window=50)
    assert not run.look(100.0) and run.ranks == {}


def test_a_header_of_an_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ranks" / "rank_00000.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(_line({"type": "header", "format": "minicluster-rank/9.0", "rank": 0}))
    with pytest.raises(InputError, match="minicluster-rank/9.0"):
        RankTail(path, 0, window=50).look(100.0)


def test_the_lag_learnt_live_absorbs_a_skewed_node_clock(tmp_path: Path) -> None:
    """A node whose clock runs 100 s behind: the first look (all `--once` has) sees its last
    step 100 s old; once steps are seen arriving, the delay they arrive with is learnt."""
    path = tmp_path / "ranks" / "rank_00000.jsonl"
    _start(path)
    _append(path, _line(_step(0, 900.0)))
    tail = RankTail(path, 0, window=50)
    tail.look(1000.0)
    assert tail.lag_s is None
    _append(path, _line(_step(1, 901.0)))
    tail.look(1001.2)
    _append(path, _line(_step(2, 902.0)))
    tail.look(1002.1)
    assert tail.lag_s == pytest.approx(100.1)


def test_the_default_window_shrinks_with_the_world_size(tmp_path: Path) -> None:
    assert [auto_window(n) for n in (1, 2, 64, 256, 1024, 4096)] == [500, 500, 500, 200, 50, 50]
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    (ranks / "rank_00000.jsonl").write_bytes(_line(rank_writer.header(0, 256, 2, 20))[:30])
    run = RunTail(tmp_path, window=None)
    assert not run.look(100.0) and run.ranks == {}  # the header line is not complete yet
    _start(ranks / "rank_00000.jsonl", rank=0, world=256)
    run.look(101.0)
    assert run.window == 200 and run.ranks[0].window == 200


def test_a_worker_shaped_file_counts_its_steps_and_keeps_its_timing(tmp_path: Path) -> None:
    """Local rank 0 writes header, roster, comm_timing, then steps (the order `rank.worker`
    writes them through `RankRecorder`): a 200-step file counts 200 steps, not 201 (the roster
    line counted as one), and the timing record is seen though the window skips the backlog."""
    from fixtures import recorded

    recorded.write_rank(
        tmp_path,
        recorded.header(0, 1, recorded.config(2, 198)),
        [
            recorded.timing("ddp_runtime_stats"),
            *(recorded.step(i, 7.0, 4.0, 2.0, warmup=i < 2) for i in range(200)),
        ],
        job_roster=recorded.roster({"node-a": [0]}, tmp_path),
    )
    tail = RankTail(tmp_path / "ranks" / "rank_00000.jsonl", 0, window=50)
    assert tail.look(1000.0)
    assert tail.records == 200
    assert tail.last_step == 199
    assert tail.header is not None and tail.log.roster is not None
    assert tail.log.timing_methods() == ["ddp_runtime_stats"]


def test_the_roster_every_node_leader_writes_is_decoded_once_and_shared(tmp_path: Path) -> None:
    """Each node's local rank 0 writes the same roster line: one decoded record serves them all
    (at 2,048 nodes each copy was 4,096 objects every garbage collection walked); a rank with
    another roster keeps its own, and a malformed roster is still warned about, rank by rank."""
    roster = rank_format.Roster(
        nodes=[{"node_rank": n, "hostname": f"h{n}", "ranks": [n]} for n in range(3)]
    )
    other = rank_format.Roster(nodes=[{"node_rank": 0, "hostname": "h0", "ranks": [0, 1, 2]}])
    ranks = tmp_path / "ranks"
    for rank, ros in ((0, roster), (1, roster), (2, other)):
        path = ranks / f"rank_{rank:05d}.jsonl"
        _start(path, rank=rank, world=4)
        _append(path, _line(ros) + _line(_step(0, 100.0)))
    bad = ranks / "rank_00003.jsonl"
    _start(bad, rank=3, world=4)
    _append(bad, b'{"type":"roster"}\n' + _line(_step(0, 100.0)))
    run = RunTail(tmp_path, window=50)
    assert run.look(100.0)
    logs = {r: t.log for r, t in run.ranks.items()}
    assert logs[0].roster is logs[1].roster
    assert logs[0].roster == roster and logs[2].roster == other and logs[3].roster is None
    assert any("rank_00003.jsonl" in w and "roster" in w for w in run.warnings())
    # a fresh reader of one file decodes the same record
    alone = RankTail(ranks / "rank_00001.jsonl", 1, window=50)
    alone.look(100.0)
    assert alone.log.roster == logs[1].roster
