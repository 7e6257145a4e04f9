"""Time structure on records real runs wrote (tests/fixtures/recorded_runs) and on series whose
shape is known: an every-other-step straggler is intermittent with period 2 and a culprit, its
own work per step bimodal (Hartigan's dip test), and a healthy run has no bimodal finding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minicluster.analysis import accounting, cost, time_shape
from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.records import read_run_dir
from minicluster.analysis.steps import StepTable

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs"


def _acc(name: str) -> accounting.Accounting:
    records = read_run_dir(RUNS / name, workers=1)
    return accounting.account(records, StepTable(records, len(records)))


def test_a_straggler_late_every_other_step_is_intermittent_with_period_2() -> None:
    """Half the steps are late: the median sits between the two modes and every first
    difference is a jump; the baseline is the lower mode and the noise floor comes from the
    differences two steps apart."""
    acc = _acc("intermittent_every2")
    shape = time_shape.describe(acc, acc.ranks.index(1))
    assert shape["kind"] == "intermittent" and shape["period_steps"] == 2, shape
    assert 30 < shape["late_ms_median"] < 60  # the injected 40 ms
    assert "every 2nd step" in shape["text"]
    costs = cost.rank_costs(acc, threshold_pct=5.0)
    assert costs[1]["culprit"] is True and costs[0]["culprit"] is False


def test_the_every_other_step_straggler_is_the_culprit_in_the_result() -> None:
    result = aggregate(read_run_dir(RUNS / "intermittent_every2", workers=1))
    (culprit,) = result["culprits"]
    assert culprit["rank"] == 1 and culprit["shape"]["period_steps"] == 2
    bimodal = [f for f in result["time_structure"] if f["kind"] == "bimodal"]
    assert [f["rank"] for f in bimodal] == [1], result["time_structure"]
    (f,) = bimodal
    assert f["p_value"] < 0.001 and f["dip"] > 0.05
    low, high = f["modes_ms"]
    assert 30 < high - low < 60 and min(f["mode_steps"]) >= 20
    assert "bimodal" in f["evidence"] and "dip" in f["evidence"]


@pytest.mark.parametrize("name", ["healthy", "intermittent_straggler"])
def test_no_bimodal_finding_where_the_steps_have_one_mode(name: str) -> None:
    """A healthy run (one mode, busy-host noise), and an every-5th-step straggler whose late
    steps are a fifth of the run: the dip test, weak against a small second mode, says nothing
    there (the period names it)."""
    acc = _acc(name)
    assert time_shape.bimodal_findings(acc) == []


def test_two_modes_split_where_the_gap_is() -> None:
    x = np.r_[np.full(30, 10.0), np.full(10, 50.0)] + np.linspace(0, 1, 40)
    low, high = time_shape.two_modes(x)
    assert low.size == 30 and high.size == 10
    split = time_shape.bimodal(x)
    assert split is not None and split["p_value"] < 0.001 and split["mode_steps"] == [30, 10]


def test_one_mode_is_not_bimodal() -> None:
    x = np.random.default_rng(3).normal(20.0, 2.0, 200)
    split = time_shape.bimodal(x)
    assert split is not None and split["p_value"] > 0.05
    assert time_shape.bimodal(x[:5]) is None  # too few steps to test


def test_the_noise_floor_is_not_widened_by_a_pause_every_other_step() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1.0, 60) + np.where(np.arange(60) % 2 == 1, 40.0, 0.0)
    assert time_shape.noise_floor_ms(d) < 10.0


def _synthetic(late_ms: np.ndarray, seed: int = 0) -> accounting.Accounting:
    """4 ranks x len(late_ms) steps of ~30 ms compute (busy-host noise), rank 1 later by
    `late_ms` per step."""
    rng = np.random.default_rng(seed)
    n = late_ms.size
    compute = 30.0 + rng.normal(0.0, 1.5, (4, n))
    compute[1] += late_ms
    host = 1.0 + rng.normal(0.0, 0.1, (4, n))
    period = compute.max(axis=0) + host.max(axis=0) + 5.0
    exposed = period - compute - host
    return accounting.Accounting(
        [0, 1, 2, 3], np.arange(n), host, compute, exposed, np.tile(period, (4, 1))
    )


def test_a_rank_late_throughout_whose_lateness_grows_is_persistent_not_an_onset() -> None:
    """Late by 20 ms from the first step, by 60 ms from step 25 (the load on its host grew): it
    never kept the others' pace, so no 'onset at step 25' (seen under load in CI: a rank with a
    busy thread in it from its start was called an onset)."""
    shape = time_shape.describe(_synthetic(np.r_[np.full(25, 20.0), np.full(25, 60.0)]), 1)
    assert shape["kind"] == "persistent", shape


def test_a_rank_that_kept_pace_and_then_fell_behind_is_an_onset() -> None:
    shape = time_shape.describe(_synthetic(np.r_[np.zeros(25), np.full(25, 40.0)]), 1)
    assert shape["kind"] == "onset" and shape["from_step"] == 25, shape


def test_persistent_says_every_step_only_when_the_rank_was_slower_in_every_step() -> None:
    """New-user trial: "persistent, every step" beside "arrived last ... in 26 of 30 steps": a
    rank late by 20 ms except in 4 of 30 steps (where it ran 5 ms ahead) is persistent, and the
    text counts the steps it was slower in."""
    late = np.full(30, 20.0)
    late[[3, 11, 19, 27]] = -5.0
    shape = time_shape.describe(_synthetic(late), 1)
    assert shape["kind"] == "persistent", shape
    assert "every step" not in shape["text"], shape["text"]
    assert shape["text"].startswith("persistent, slower in 26 of 30 steps, +"), shape["text"]
    assert len(shape["late_steps"]) == 26 and 3 not in shape["late_steps"], shape["late_steps"]
    always = time_shape.describe(_synthetic(np.full(30, 20.0)), 1)
    assert always["text"].startswith("persistent, every step, +"), always["text"]


@pytest.mark.parametrize("ranks", [2, 3, 4, 5, 8, 9])
def test_the_median_of_the_others_is_numpys_with_the_row_deleted(ranks: int) -> None:
    """`median_of_others` of every row equals np.median of the matrix without it, bit for bit:
    ties, odd and even counts, a row of one value repeated (zero stride)."""
    from minicluster.analysis.time_shape import median_of_others

    rng = np.random.default_rng(ranks)
    for m in (
        rng.integers(0, 4, (ranks, 300)).astype(float),  # ties
        rng.lognormal(0, 0.3, (ranks, 300)),
        np.broadcast_to(rng.random(300), (ranks, 300)),
    ):
        for row in range(ranks):
            want = np.median(np.delete(m, row, axis=0), axis=0)
            assert median_of_others(m, row).tobytes() == want.tobytes(), (ranks, row)


def _onset_searched(d: np.ndarray, floor: float) -> int | None:
    """`time_shape.find_onset(d, floor)` as it was before the split check: always searched."""
    import ruptures

    if d.size < 2 * time_shape.MIN_SEGMENT:
        return None
    try:
        search = ruptures.Binseg(model="l2", min_size=time_shape.MIN_SEGMENT, jump=1)
        k = search.fit(d.reshape(-1, 1)).predict(n_bkps=1)[0]
    except ruptures.exceptions.BadSegmentationParameters:
        return None
    if k >= d.size:
        return None
    typical = float(np.median(d[:k])) + floor
    return k if float(np.mean(d[k:] > typical)) >= time_shape.PERSISTENT_SHARE else None


def test_the_onset_without_the_search_where_no_split_passes_is_the_searched_one() -> None:
    """`find_onset` skips the change-point search (and ruptures' import) when no split it could
    return passes the persistence test: the same answer as searching, on noise, spikes at
    either end, level shifts and ramps of every size and place, short series and NaN; and
    the search is really skipped for most healthy series."""
    rng = np.random.default_rng(0)
    skipped = found = 0
    for trial in range(300):
        n = int(rng.choice([7, 8, 9, 12, 40, 200, 995]))
        d = 100 + rng.normal(0, rng.choice([0.1, 1.0, 5.0]), n)
        kind = trial % 6
        at = int(rng.integers(1, n))
        if kind == 1:
            d[at:] += rng.choice([1.0, 3.0, 10.0, 50.0])  # a level shift
        elif kind == 2:
            d[-int(rng.integers(1, 6)) :] += 30.0  # slow steps at the end
        elif kind == 3:
            d[: int(rng.integers(1, 6))] -= 30.0  # fast steps at the start
        elif kind == 4:
            d += np.linspace(0, rng.choice([1.0, 20.0]), n)  # a ramp
        elif kind == 5 and trial % 4 == 1:
            d[at] = np.nan
        floor = time_shape.noise_floor_ms(d)
        want = _onset_searched(d, floor)
        assert time_shape.find_onset(d, floor) == want, (trial, kind)
        skipped += not time_shape.some_split_persistent(d, floor)
        found += want is not None
    assert skipped > 100 and found > 20


@pytest.mark.parametrize("seed", range(6))
def test_bimodal_findings_test_only_the_rows_that_could_pass_and_find_the_same(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows tested from the largest dip down (`_dip_candidates`) give the findings that testing
    every row gives: random runs with a few two-level ranks, some values rounded (ties)."""
    import types

    rng = np.random.default_rng(seed)
    for _ in range(6):
        ranks, n = int(rng.integers(2, 60)), int(rng.integers(5, 400))
        own = rng.lognormal(2, 0.1, (ranks, n))
        for r in rng.choice(ranks, size=min(ranks, int(rng.integers(0, 4))), replace=False):
            own[r, rng.random(n) < rng.uniform(0.1, 0.5)] += rng.uniform(1, 20)
        if seed % 2:
            own = np.round(own, 1)
        acc = types.SimpleNamespace(own=own, ranks=list(range(ranks)), accounted=own.max(axis=0))
        found = time_shape.bimodal_findings(acc)  # type: ignore[arg-type]
        with monkeypatch.context() as m:
            m.setattr(time_shape, "_dip_candidates", lambda own, alpha: None)
            assert time_shape.bimodal_findings(acc) == found  # type: ignore[arg-type]
