"""Columnar rank records: exact integers, missing fields, the dict view."""

from __future__ import annotations

import numpy as np

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
