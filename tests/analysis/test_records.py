"""Columnar rank records: exact integers, missing fields, the dict view."""

from __future__ import annotations

import numpy as np
import pytest

from minicluster.analysis.records import RankRecords, to_columns

BIG = 2**60 + 1  # float64 cannot tell this from 2**60


def test_large_integers_stay_exact_in_the_fast_path() -> None:
    steps = [{"type": "step", "step": i, "param_checksum": BIG + i, "x": 1.5} for i in range(3)]
    cols = to_columns(steps)
    assert cols["param_checksum"].tolist() == [BIG, BIG + 1, BIG + 2]
    assert cols["x"].dtype == np.float64


def test_checksums_differing_in_the_last_unit_stay_different() -> None:
    a = to_columns([{"type": "step", "step": 0, "c": 2**60}])["c"][0]
    b = to_columns([{"type": "step", "step": 0, "c": 2**60 + 1}])["c"][0]
    assert a != b


def test_mixed_rows_take_the_general_path() -> None:
    steps = [
        {"type": "step", "step": 0, "warmup": True, "comm_ms": 1.0},
        {"type": "step", "step": 1, "warmup": False, "comm_ms": None, "param_checksum": BIG},
    ]
    cols = to_columns(steps)
    assert cols["warmup"].tolist() == [True, False]
    assert np.isnan(cols["comm_ms"][1])
    assert cols["param_checksum"].tolist() == [None, BIG]


def test_dict_view_round_trips() -> None:
    steps = [
        {"type": "step", "step": i, "warmup": i == 0, "step_time_ms": 2.0 * i} for i in range(4)
    ]
    rec = RankRecords(0, steps=steps)
    assert rec.steps == steps
    assert (rec.n_steps, rec.last_step) == (4, 3)


def _arrow_tables() -> list[object]:
    """Tables of one schema as rank files hold them, with the rarer values in some: a null among
    floats, integers beyond float64's exact ones, a null among bools, text."""
    import pyarrow as pa

    tables = []
    for t in range(7):
        n = 3 + t % 3
        tables.append(
            pa.table(
                {
                    "step": pa.array(list(range(10 * t, 10 * t + n)), pa.int64()),
                    "warmup": pa.array(
                        [None if (t, i) == (4, 1) else i == 0 for i in range(n)], pa.bool_()
                    ),
                    "compute_ms": pa.array(
                        [None if (t, i) == (2, 1) else 1.5 * i + t for i in range(n)], pa.float64()
                    ),
                    "buckets": pa.array([2**60 + i if t == 5 else i for i in range(n)], pa.int64()),
                    "comm_reason": pa.array([None] * n, pa.null()),
                    "note": pa.array([f"r{t}" if i == 1 else None for i in range(n)], pa.string()),
                }
            )
        )
    return tables


def _journal_columns(tables: list[object]) -> list[dict[str, np.ndarray]]:
    """Each table's columns as the journal's reader makes them of its values (`column_of`)."""
    from minicluster.analysis import records

    return [
        {
            name: records.column_of(name, col.to_pylist())
            for name, col in zip(t.column_names, t.columns, strict=True)  # type: ignore[attr-defined]
        }
        for t in tables
    ]


def _arrow_columns(
    monkeypatch: pytest.MonkeyPatch, tables: list[object], batch_rows: int
) -> list[dict[str, np.ndarray]]:
    """`tables` through `ArrowColumns` converting `batch_rows` rows at a time."""
    from minicluster.analysis import records

    monkeypatch.setattr(records.ArrowColumns, "BATCH_ROWS", batch_rows)
    conv = records.ArrowColumns(len(tables))
    for t in tables:
        conv.add(t)
    return conv.finish()


def _assert_same_columns(
    got: list[dict[str, np.ndarray]], expected: list[dict[str, np.ndarray]], tag: object
) -> None:
    """Each table's columns are the journal reader's: same names in the same order, dtype, and
    values (floats NaN-aware and, without a NaN, to the bit; other numbers to the bit; objects
    by value)."""
    for want, have in zip(expected, got, strict=True):
        assert list(have) == list(want)
        for key in want:
            assert have[key].dtype == want[key].dtype, (tag, key)
            if want[key].dtype == object:
                assert have[key].tolist() == want[key].tolist(), (tag, key)
                continue
            if want[key].dtype.kind == "f":
                np.testing.assert_array_equal(have[key], want[key], err_msg=f"{tag} {key}")
                if not np.isnan(want[key]).any():
                    assert have[key].tobytes() == want[key].tobytes(), (tag, key)
                continue
            assert have[key].tobytes() == want[key].tobytes(), (tag, key)


def test_arrow_columns_in_batches_equal_each_table_read_as_a_journal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ArrowColumns` converts tables a batch at a time; whatever the batch size, each table's
    columns are those the journal's reader makes of its values (`column_of`), dtype included."""
    tables = _arrow_tables()
    expected = _journal_columns(tables)
    for batch_rows in (1, 8, 10**6):
        _assert_same_columns(_arrow_columns(monkeypatch, tables, batch_rows), expected, batch_rows)


def _tables_alike_until(k: int, n: int = 4, count: int = 9) -> list[object]:
    """`count` tables whose columns are all the same until table `k`, where each field differs
    its own way (a float, an integer beyond float64's exact ones, a null among bools), and table
    `k + 1` is shorter; `same` and `nulls` differ only there."""
    import pyarrow as pa

    tables = []
    for t in range(count):
        m = n - 1 if t == k + 1 else n
        tables.append(
            pa.table(
                {
                    "step": pa.array(list(range(m)), pa.int64()),
                    "warmup": pa.array(
                        [None if (t, i) == (k, 2) else i == 0 for i in range(m)], pa.bool_()
                    ),
                    "compute_ms": pa.array([1.5 * i + (t >= k) for i in range(m)], pa.float64()),
                    "buckets": pa.array([2**60 + i if t == k else i for i in range(m)], pa.int64()),
                    "same": pa.array([0.25] * m, pa.float64()),
                    "nulls": pa.array([None] * m, pa.null()),
                }
            )
        )
    return tables


@pytest.mark.parametrize("k", [0, 1, 4, 8, 20])
def test_arrow_columns_held_once_while_alike_equal_each_table_read_as_a_journal(
    monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """A column every table holds alike is held once (one read-only array for all, a zero-stride
    matrix from `rows_view`) until a table's differs: then each table gets its own rows, and
    every table's columns are still those the journal's reader makes of its values."""
    from minicluster.analysis import records

    tables = _tables_alike_until(k)
    expected = _journal_columns(tables)
    for batch_rows in (1, 3, 8, 10**6):
        got = _arrow_columns(monkeypatch, tables, batch_rows)
        _assert_same_columns(got, expected, batch_rows)
        if k + 1 < len(tables):  # a shorter table: no column is alike in every table
            assert got[0]["same"] is not got[-1]["same"]
            continue
        for key in ("same", "nulls"):  # alike in every table: one array
            assert all(g[key] is got[0][key] for g in got)
            assert not got[0][key].flags.writeable
            view = records.rows_view([g[key] for g in got])
            assert view is not None and view.strides[0] == 0
            np.testing.assert_array_equal(view, np.vstack([w[key] for w in expected]))
        if k >= len(tables):  # nothing ever differed
            assert all(g["compute_ms"] is got[0]["compute_ms"] for g in got)
        else:
            assert got[0]["compute_ms"] is not got[-1]["compute_ms"]
