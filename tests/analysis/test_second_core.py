"""The second core of a big `aggregate` (`records._read_split`: a forked child reads part of the
columnar files; `aggregate._accounting_child`: a forked child makes the accounting) gives the
serial result bit for bit, also when the files are not all alike and when a child fails. Forced
on small generated runs (their thresholds lowered); no gloo."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import script_module

from minicluster.analysis import aggregate as aggregate_mod
from minicluster.analysis import cost, records
from minicluster.analysis.aggregate import LAST_ONLY_STEP_FIELDS, UNREAD_STEP_FIELDS, aggregate
from minicluster.analysis.records import read_run_dir, rows_view
from minicluster.core import forked

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Per message a parent asked a child for, whether it came (None: done serially); two cores
    (`forked.second_core`) wherever the test runs."""
    monkeypatch.setattr(forked.os, "cpu_count", lambda: 2)
    got: list[bool] = []
    receive = forked.Forked.receive

    def spy(self: forked.Forked, timeout_s: float) -> Any:
        out = receive(self, timeout_s)
        got.append(out is not None)
        return out

    monkeypatch.setattr(forked.Forked, "receive", spy)
    return got


def _run(tmp_path: Path, ranks: int = 24, steps: int = 60) -> Path:
    run = tmp_path / "run"
    script_module.load("gen_rank_files").write_run(
        run, ranks, steps, per_node=4, slow={13: 4.0}, varying=True
    )
    return run


def _read(run: Path, workers: int) -> list[records.RankRecords]:
    return read_run_dir(run, workers, drop=UNREAD_STEP_FIELDS, last_only=LAST_ONLY_STEP_FIELDS)


def _same_records(a: list[records.RankRecords], b: list[records.RankRecords]) -> None:
    assert [r.rank for r in a] == [r.rank for r in b]
    for x, y in zip(a, b, strict=True):
        assert (x.header, x.summary, x.warnings, x.roster) == (
            y.header,
            y.summary,
            y.warnings,
            y.roster,
        )
        assert list(x.columns) == list(y.columns)
        for key, col in x.columns.items():
            assert col.dtype == y.columns[key].dtype and col.tobytes() == y.columns[key].tobytes()
        for key in LAST_ONLY_STEP_FIELDS:
            assert np.array_equal(x.last_of(key), y.last_of(key), equal_nan=True)


def _result(recs: list[records.RankRecords]) -> str:
    return json.dumps(aggregate(recs, aggregated_at="t", consume=True), sort_keys=True)


def test_split_read_gives_the_serial_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, received: list[bool]
) -> None:
    run = _run(tmp_path)
    monkeypatch.setattr(records, "SPLIT_MIN_FILES", 2)
    serial, split = _read(run, 1), _read(run, 2)
    assert received == [True]  # the child's half came back
    _same_records(serial, split)
    # every rank's column a row of one buffer (the child's rows among them), or held once
    view = rows_view([r.columns["step_time_ms"] for r in split])
    assert view is not None and view.shape == (24, 60)
    assert _result(split) == _result(serial)


@pytest.mark.parametrize(("where", "taken"), [(3, []), (20, [True])], ids=["parent's", "child's"])
def test_split_read_of_unlike_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    received: list[bool],
    where: int,
    taken: list[bool],
) -> None:
    """A rank whose journal was cut (no columnar file: read as a journal) and one whose columns
    have another length (in the child's half): the serial read's records. Rows short of where
    the child's begin (the journal in the parent's half): the parent reads the child's half."""
    run = _run(tmp_path)
    journal = run / f"ranks/rank_{where:05d}.jsonl"
    journal.write_text("\n".join(journal.read_text().splitlines()[:40]) + "\n")
    (run / f"ranks/rank_{where:05d}.steps.arrow").unlink()
    script_module.load("gen_rank_files").write_run(
        tmp_path / "short", 24, 30, per_node=4, varying=True
    )
    for name in ("jsonl", "steps.arrow", "summary.json"):  # rank 22: 30 steps
        other = tmp_path / f"short/ranks/rank_00022.{name}"
        (run / f"ranks/rank_00022.{name}").write_bytes(other.read_bytes())
    monkeypatch.setattr(records, "SPLIT_MIN_FILES", 2)
    serial, split = _read(run, 1), _read(run, 2)
    _same_records(serial, split)
    assert received == taken
    assert _result(split) == _result(serial)


def test_a_failing_reader_child_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, received: list[bool]
) -> None:
    run = _run(tmp_path)
    parent = os.getpid()
    handoff = records.ArrowColumns.handoff

    def dies(self: records.ArrowColumns) -> Any:
        if os.getpid() != parent:
            raise MemoryError("the child ran out of memory")
        return handoff(self)

    monkeypatch.setattr(records.ArrowColumns, "handoff", dies)
    monkeypatch.setattr(records, "SPLIT_MIN_FILES", 2)
    serial, split = _read(run, 1), _read(run, 2)
    assert received == [False]
    _same_records(serial, split)


@pytest.mark.parametrize("fails", [False, True], ids=["child", "child fails"])
def test_accounting_child_gives_the_serial_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, received: list[bool], fails: bool
) -> None:
    run = _run(tmp_path)
    want = _result(_read(run, 1))
    assert json.loads(want)["culprits"]  # rank 13 is one: its shape and cost were made
    monkeypatch.setattr(aggregate_mod, "SPLIT_MIN_RANKS", 2)
    if fails:
        parent = os.getpid()
        rank_costs = cost.rank_costs

        def dies(*args: Any, **kwargs: Any) -> Any:
            if os.getpid() != parent:
                os._exit(9)
            return rank_costs(*args, **kwargs)

        monkeypatch.setattr(cost, "rank_costs", dies)
    assert _result(_read(run, 1)) == want
    assert received == ([False] if fails else [True, True])
