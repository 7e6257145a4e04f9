"""`row_medians` against `np.median(matrix, axis=1)` bit for bit: odd and even widths, ties,
zeros, negative values, infinities, a copy or in place; NaN, -0.0, integers and empty shapes
(np.median's own path)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from minicluster.analysis.row_medians import medians_of_rows, row_medians


@pytest.mark.parametrize("width", [1, 2, 3, 4, 994, 995])
def test_row_medians_equal_numpy_median_bit_for_bit(width: int) -> None:
    rng = np.random.default_rng(width)
    for trial in range(12):
        m = rng.lognormal(size=(50, width)).round(int(rng.integers(0, 4)))
        if trial % 2:
            m -= 1.0  # negative values
        m[3] = 7.25
        m[4, : max(1, width // 3)] = np.inf
        m[5, :1] = 0.0
        if trial % 3 == 0:
            m[6, width // 2] = np.nan
        if trial % 4 == 0:
            m[7, :1] = -0.0
        with np.errstate(invalid="ignore"):
            want = np.median(m, axis=1)
            got = row_medians(m)
            assert got.tobytes() == want.tobytes()
            mine, theirs = m.copy(), m.copy()
            got = row_medians(mine, overwrite=True)
            assert got.tobytes() == np.median(theirs, axis=1, overwrite_input=True).tobytes()


def test_row_medians_of_other_shapes_and_kinds_are_numpys() -> None:
    for m in (np.zeros((0, 5)), np.zeros((5, 0)), np.arange(12).reshape(3, 4)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an empty row
            want = np.median(m, axis=1)
            got = row_medians(m)
        assert got.tobytes() == want.tobytes() and got.dtype == want.dtype


def test_medians_of_rows_in_place_partitions_the_callers_matrix() -> None:
    rows = np.array([[3.0, 1.0, 2.0], [9.0, 7.0, 8.0]])
    assert medians_of_rows(rows, overwrite=True).tolist() == [2.0, 8.0]
    assert rows[:, 1].tolist() == [2.0, 8.0]  # partitioned where it lay: no copy was made
