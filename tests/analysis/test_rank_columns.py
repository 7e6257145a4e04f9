"""The columnar copy of the rank records (`core.rank_columns`): written at a rank's end, read
instead of the journal only when complete, and giving the same records and the same result."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from fixtures import recorded  # noqa: E402

from minicluster.analysis.aggregate import UNREAD_STEP_FIELDS, aggregate  # noqa: E402
from minicluster.analysis.records import read_rank, read_run_dir  # noqa: E402
from minicluster.core import rank_columns, rundir  # noqa: E402
from minicluster.core.rank_format import LineRecord  # noqa: E402

T = "2026-01-01T00:00:00+00:00"


def _run(tmp_path: Path) -> Path:
    """Four ranks, rank 2 slower by 30 ms in every measured step, a timing switch at step 4;
    and beside them (`odd/`) a rank whose steps carry the rarer fields: one step the comm timer
    could not vouch for (comm null, a reason string), replica checksums beyond float64's exact
    integers, a key from a later writer."""
    out = tmp_path / "run"
    compute = [[10.0 + 0.1 * s for s in range(8)] for _ in range(4)]
    for s in range(8):
        compute[2][s] += 30.0
    recorded.training_run(out, compute, switch_at=4)
    _odd_rank(tmp_path / "odd")
    return out


def _odd_rank(out: Path) -> None:
    head = recorded.header(0, 1, recorded.config(warmup=1, measured=8))
    records: list[LineRecord] = [recorded.timing()]
    for i in range(9):
        extra = {"extra": {"later_key": i}} if i == 2 else {}
        records.append(
            recorded.step(
                i,
                40.0 + i,
                10.0 + i,
                None if i == 5 else 2.0 + i,
                warmup=i == 0,
                param_checksum=2**60 + i if i == 6 else None,
                **extra,
            )
        )
    recorded.write_rank(out, head, records, recorded.summary(0, last_step=8, world=1))


def _same_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)  # the journal orders keys of rows of mixed widths by a set
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k].tolist() == b[k].tolist(), k


def test_a_finished_rank_leaves_its_steps_as_columns_equal_to_its_journal(tmp_path: Path) -> None:
    out = _run(tmp_path)
    for where, rank in [(out, 0), (out, 1), (out, 2), (out, 3), (tmp_path / "odd", 0)]:
        assert rank_columns.columns_path(where, rank).is_file()
        cols, journal = read_rank(where, rank), read_rank(where, rank, journal=True)
        _same_columns(cols.columns, journal.columns)
        assert cols.header == journal.header and cols.summary == journal.summary
        assert cols.roster == journal.roster and cols.timing == journal.timing
        assert cols.warnings == journal.warnings == []
    rec3 = read_rank(tmp_path / "odd", 0)
    assert rec3.columns["param_checksum"][6] == 2**60 + 6  # exact, as the journal keeps it
    assert rec3.columns["comm_reason"][5] == "not timed (test)"
    assert len(read_rank(out, 0).timing) == 2  # the switch mid-run kept


@pytest.mark.parametrize("which", ["run", "odd"])
def test_the_result_is_the_same_from_columns_and_from_journals(tmp_path: Path, which: str) -> None:
    _run(tmp_path)
    out = tmp_path / which
    journals = tmp_path / "journals"
    shutil.copytree(out, journals)
    for path in (journals / "ranks").glob(f"*{rank_columns.COLUMNS_SUFFIX}"):
        path.unlink()
    a = aggregate(read_run_dir(out, drop=UNREAD_STEP_FIELDS), aggregated_at=T)
    b = aggregate(read_run_dir(journals, drop=UNREAD_STEP_FIELDS), aggregated_at=T)
    assert a == b
    if which == "run":
        assert [s["rank"] for s in a["stragglers"]] == [2]


def test_a_journal_that_changed_after_its_columns_is_read_as_itself(tmp_path: Path) -> None:
    out = _run(tmp_path)
    journal = rundir.rank_jsonl(out, 0)
    n = read_rank(out, 0).n_steps
    line = journal.read_bytes().splitlines()[-1]
    with open(journal, "ab") as f:  # a step appended after the columns were made
        f.write(line.replace(b'"step":8', b'"step":9') + b"\n")
    assert rank_columns.read_columns(out, 0) is None
    assert read_rank(out, 0).n_steps == n + 1
    assert read_run_dir(out)[0].last_step == 9


def test_unreadable_or_foreign_columns_fall_back_to_the_journal(tmp_path: Path) -> None:
    out = _run(tmp_path)
    n = read_rank(out, 1).n_steps
    rank_columns.columns_path(out, 1).write_bytes(b"not arrow")
    assert rank_columns.read_columns(out, 1) is None
    assert read_rank(out, 1).n_steps == n
    rank_columns.columns_path(out, 2).unlink()
    assert read_rank(out, 2).n_steps == n


def test_a_rank_that_died_leaves_only_its_journal(tmp_path: Path) -> None:
    out = tmp_path / "run"
    head = recorded.header(0, 1, recorded.config(warmup=1, measured=4))
    records: list[LineRecord] = [recorded.timing(), recorded.step(0, 10.0, 5.0, 1.0)]
    recorded.write_rank(out, head, records, end=None)  # no summary: it died
    assert not rank_columns.columns_path(out, 0).exists()
    assert read_rank(out, 0).n_steps == 1


def test_drop_leaves_out_the_unread_fields_from_columns_too(tmp_path: Path) -> None:
    out = _run(tmp_path)
    (rec,) = [r for r in read_run_dir(out, drop=UNREAD_STEP_FIELDS) if r.rank == 0]
    assert not set(UNREAD_STEP_FIELDS) & set(rec.columns)
    assert "step_time_ms" in rec.columns


def test_the_benchmark_files_columns_equal_their_journals(tmp_path: Path) -> None:
    """scripts/gen_rank_files.py writes the columns from its own values, not from the journal:
    they must read back as the journal does (the benchmark measures what a real run leaves)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from gen_rank_files import write_run

    write_run(tmp_path, 9, 20, warmup=3, per_node=4)
    for rank in range(9):
        assert rank_columns.read_columns(tmp_path, rank) is not None
        cols, journal = read_rank(tmp_path, rank), read_rank(tmp_path, rank, journal=True)
        assert list(cols.columns) == list(journal.columns)
        _same_columns(cols.columns, journal.columns)
        assert cols.header == journal.header and cols.roster == journal.roster
        assert cols.timing == journal.timing and cols.summary == journal.summary


def test_a_columnar_file_that_cannot_be_written_costs_nothing_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(journal: Path, out: Path) -> int:
        raise ValueError("disk says no (test)")

    monkeypatch.setattr(rank_columns, "write_columns", fail)
    out = tmp_path / "run"
    head = recorded.header(0, 1, recorded.config(warmup=1, measured=2))
    steps: list[LineRecord] = [recorded.step(i, 10.0, 5.0, 1.0, warmup=i == 0) for i in range(3)]
    recorded.write_rank(
        out, head, [recorded.timing(), *steps], recorded.summary(0, last_step=2, world=1)
    )
    assert not rank_columns.columns_path(out, 0).exists()
    rec = read_rank(out, 0)
    assert rec.n_steps == 3 and rec.summary is not None and rec.summary["status"] == "ok"
