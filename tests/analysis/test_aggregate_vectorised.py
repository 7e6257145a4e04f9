"""The vectorised hot paths of aggregation (issue 28) give exactly what the per-rank, per-step
loops they replaced gave: each is compared with that loop (kept here, or still in the module)
on generated runs with a straggler, a crashed rank, ties, untimed steps and ragged steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import script_module

from minicluster.analysis import accounting, comm_kinds, cost, waited
from minicluster.analysis.accounting import Accounting
from minicluster.analysis.records import RankRecords, Stacked, read_run_dir
from minicluster.analysis.steps import StepTable, r4


def _run(tmp_path: Path, crashed: bool) -> list[RankRecords]:
    script_module.load("gen_rank_files").write_run(tmp_path, 24, 60, per_node=4, slow={5: 1.6})
    if crashed:  # rank 7 died at step ~30: its journal cut, no columnar file
        journal = tmp_path / "ranks/rank_00007.jsonl"
        journal.write_text("\n".join(journal.read_text().splitlines()[:35]) + "\n")
        (tmp_path / "ranks/rank_00007.steps.arrow").unlink()
    return read_run_dir(tmp_path, workers=1)


# --- the loops the vectorised code replaced, as they were ---------------------------------


def _old_mats(records: list[RankRecords], steps: np.ndarray) -> dict[str, np.ndarray]:
    mats = {
        k: np.full((len(records), steps.size), np.nan) for k in (*accounting.FIELDS, "opt_prev")
    }
    for i, rec in enumerate(records):
        c = rec.columns
        at = {int(s): j for j, s in enumerate(c["step"].tolist())}
        cols = [at.get(int(s), -1) for s in steps]
        prev = [at.get(int(s) - 1, -1) for s in steps]
        have = np.array([j >= 0 for j in cols])
        have_prev = np.array([j >= 0 for j in prev])
        idx = np.array(cols)
        for k in accounting.FIELDS:
            mats[k][i, have] = c[k][idx[have]]
        mats["opt_prev"][i, have_prev] = c["opt_ms"][np.array(prev)[have_prev]]
    return mats


def _old_medians(acc: Accounting) -> dict[str, dict[str, float]]:
    return {
        str(rank): {
            "host": r4(float(np.median(acc.host[i]))),
            "compute": r4(float(np.median(acc.compute[i]))),
            "wait": r4(float(np.median(acc.wait[i]))),
            "transfer": r4(float(np.median(acc.transfer))),
            "period": r4(float(np.median(acc.period[i]))),
        }
        for i, rank in enumerate(acc.ranks)
    }


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # NaN where NaN, else bit-equal


@pytest.mark.parametrize("crashed", [False, True])
def test_accounting_matrices_and_medians_equal_the_loops(tmp_path: Path, crashed: bool) -> None:
    records = _run(tmp_path, crashed)
    table = StepTable(records, 24)
    ranks = sorted(table.records, key=lambda r: r.rank)
    mats = accounting.field_matrices([r.columns for r in ranks], table.indices)
    _same(mats, _old_mats(ranks, table.indices))
    # every rank's columnar file read: views of the columns, no copy (a crashed rank: copies)
    assert all(m.flags.writeable == crashed for m in mats.values())
    acc = accounting.account(records, table)
    assert acc.n > 8
    assert accounting.per_rank_medians(acc) == _old_medians(acc)
    top2 = np.sort(acc.own, axis=0)[-2:]  # as the lateness was taken before one partition
    np.testing.assert_array_equal(acc.lateness, top2[1] - top2[0])
    np.testing.assert_array_equal(acc.last, np.argmax(acc.own, axis=0))
    np.testing.assert_array_equal(acc.wait, acc.own.max(axis=0)[None, :] - acc.own)
    np.testing.assert_array_equal(acc.transfer, acc.accounted - acc.own.max(axis=0))


def test_a_step_recorded_twice_reads_its_last_record() -> None:
    step = np.array([3, 4, 4, 6, 5])
    wanted = np.array([2, 3, 4, 5, 6, 7])
    assert accounting.positions(step, wanted).tolist() == [-1, 0, 2, 4, 3, -1]
    assert accounting.positions(np.array([], np.int64), wanted).tolist() == [-1] * 6


def _acc(own: np.ndarray) -> Accounting:
    """An accounting whose own work is `own` (all host), a median period above it."""
    n = own.shape[1]
    return Accounting(
        list(range(own.shape[0])),
        np.arange(n),
        own,
        np.zeros_like(own),
        np.zeros_like(own),
        own + 1.0,
    )


def _per_step(acc: Accounting, rows: list[int]) -> np.ndarray:
    """The loop `rank_per_step` and `group_per_step` replaced: per step the time saved had the
    ranks in `rows` (one rank, or a node's) arrived at the others' pace: the latest of them
    minus the latest of the rest, when positive."""
    own = acc.own
    inside = own[rows].max(axis=0)
    rest = np.delete(own, rows, axis=0)
    if not rest.size:
        return np.zeros(acc.n)
    return np.clip(inside - rest.max(axis=0), 0.0, None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_and_node_costs_equal_the_per_rank_deletions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    own = rng.lognormal(2, 0.1, (40, 200)).round(1)  # rounded: ties for the last arrival
    own[3, 50:] += 3.0  # a straggler from step 50 on
    acc = _acc(own)
    costly, per = cost.rank_per_step(acc)
    old = np.stack([_per_step(acc, [i]) for i in range(40)])
    full = np.zeros_like(old)
    full[costly] = per
    np.testing.assert_array_equal(full, old)
    assert not old[np.setdiff1d(np.arange(40), costly)].any()
    total = old.sum(axis=1)
    np.testing.assert_array_equal(full.sum(axis=1), total)
    excess = np.array([total[i] - np.delete(total, i).max() for i in range(40)])
    np.testing.assert_array_equal(cost.excess_over_next(total), excess)
    tied = np.array([5.0, 2.0, 5.0, 1.0])
    np.testing.assert_array_equal(cost.excess_over_next(tied), [0.0, -3.0, 0.0, -4.0])
    groups = [list(range(g, 40, 7)) for g in range(7)]  # nodes of scattered rows
    np.testing.assert_array_equal(
        cost.group_per_step(acc, groups), np.stack([_per_step(acc, g) for g in groups])
    )


def _scipy_interval(per: np.ndarray, wall: np.ndarray, seed: int) -> tuple[float, float]:
    return cost.cost_bootstrap(
        lambda c, w, axis=-1: 100.0 * c.sum(axis=axis) / w.sum(axis=axis),
        (per, wall),
        cost.CONFIDENCE,
        seed=seed,
    )


def _scipy_intervals(per: np.ndarray, wall: np.ndarray, seed: int) -> np.ndarray:
    return np.array([_scipy_interval(row, wall, seed) for row in per]).reshape(-1, 2)


def test_the_cost_intervals_equal_scipys_bootstrap_row_by_row() -> None:
    """Each row's interval is scipy's bootstrap of that row with the same seed (the same
    resampled steps for every row), up to the order of the sums (relative 1e-12)."""
    rng = np.random.default_rng(7)
    for trial in range(8):
        n = int(rng.integers(8, 400))
        wall = rng.uniform(5, 20, n)
        rows = int(rng.integers(1, 12))
        per = np.zeros((rows, n))
        last = rng.integers(0, rows + 2, n)  # each step's last arrival; rows and up: nobody
        hit = last < rows
        per[last[hit], np.flatnonzero(hit)] = rng.exponential(2, int(hit.sum()))
        if trial % 3 == 0:
            per[0] = rng.uniform(0, 3, n)  # a row that costs something in every step
        per[-1] = 0.0  # a rank that never arrived last: every resample costs 0
        got = cost.cost_intervals(per, wall, trial)
        np.testing.assert_allclose(got, _scipy_intervals(per, wall, trial), rtol=1e-12, atol=0)
        assert got[-1].tolist() == [0.0, 0.0]
    assert cost.cost_intervals(np.zeros((0, 9)), wall[:9], 1).shape == (0, 2)


def test_rank_costs_match_with_and_without_the_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    own = rng.lognormal(2, 0.1, (12, 60))
    own[4] += 4.0
    acc = _acc(own)
    fast = cost.rank_costs(acc, 10.0)
    monkeypatch.setattr(
        cost,
        "rank_per_step",
        lambda a: (np.arange(len(a.ranks)), np.stack([_per_step(a, [i]) for i in range(12)])),
    )
    monkeypatch.setattr(cost, "cost_intervals", _scipy_intervals)
    assert cost.rank_costs(acc, 10.0) == fast
    assert fast[4]["culprit"]


def _old_waited_matrix(records: list[RankRecords], steps: np.ndarray) -> tuple[Any, Any]:
    recs = sorted((r for r in records if r.n_steps), key=lambda r: r.rank)
    comm = np.full((len(recs), steps.size), np.nan)
    for i, rec in enumerate(recs):
        at = {int(s): j for j, s in enumerate(rec.columns["step"].tolist())}
        cols = np.array([at.get(int(s), -1) for s in steps])
        have = cols >= 0
        comm[i, have] = rec.columns["comm_ms"][cols[have]]
    ok = ~np.isnan(comm).any(axis=0)
    comm = comm[:, ok]
    wait = comm - comm.min(axis=0)[None, :]
    last = np.argmin(wait, axis=0)
    matrix = np.zeros_like(wait)
    for s in range(wait.shape[1]):
        matrix[last[s], s] = float(np.median(np.delete(wait[:, s], last[s])))
    return steps[ok], matrix


@pytest.mark.parametrize("crashed", [False, True])
def test_the_waited_for_matrix_equals_the_per_step_loop(tmp_path: Path, crashed: bool) -> None:
    records = _run(tmp_path, crashed)
    table = StepTable(records, 24)
    got = waited.measure(records, table.indices, 10.0)
    steps, matrix = _old_waited_matrix(records, table.indices)
    np.testing.assert_array_equal(got.steps, steps)
    np.testing.assert_array_equal(got.matrix, matrix)  # bit-equal
    assert got.matrix[got.ranks.index(5)].sum() > 0  # the straggler was waited for


@pytest.mark.parametrize("ranks", [2, 3, 4, 7])
def test_the_median_of_the_others_with_ties_and_odd_and_even_counts(ranks: int) -> None:
    rng = np.random.default_rng(ranks)
    wait = rng.integers(0, 4, (ranks, 300)).astype(float)  # ties, the least one among them
    steps = np.arange(300)
    records = [
        RankRecords(r, columns={"step": steps, "comm_ms": wait[r] + 1.0}) for r in range(ranks)
    ]
    records[1].columns["step"] = np.concatenate((steps[:5], steps[4:-1]))  # step 4 twice
    records[1].columns["comm_ms"] = np.concatenate((wait[1, :5] + 9.0, wait[1, 4:-1] + 1.0))
    got = waited.measure(records, steps, 10.0)
    old_steps, matrix = _old_waited_matrix(records, steps)
    np.testing.assert_array_equal(got.steps, old_steps)
    np.testing.assert_array_equal(got.matrix, matrix)


def test_the_waited_for_interval_is_scipys_bootstrap_of_the_mean() -> None:
    from scipy.stats import bootstrap

    rng = np.random.default_rng(5)
    for seed in range(6):
        values = np.where(rng.random(200) < 0.3, rng.exponential(4.0, 200), 0.0)
        res = bootstrap(
            (values,),
            np.mean,
            vectorized=True,
            n_resamples=2000,
            confidence_level=waited.CONFIDENCE,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        old = (float(res.confidence_interval.low), float(res.confidence_interval.high))
        assert waited.interval(values, seed) == old


# --- the comm section: matrices vs the per-step path ----------------------------------------


def _slow(records: list[RankRecords], world: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(comm_kinds, "ddp_section", lambda *_: None)
        return comm_kinds.comm_section(records, world)


@pytest.mark.parametrize("crashed", [False, True])
def test_the_comm_section_equals_the_per_step_path(
    tmp_path: Path, crashed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _run(tmp_path, crashed)
    stacked = Stacked.of(records)
    assert stacked is not None
    # every rank's columns in one buffer (the columnar reader's): the matrices in one copy
    assert (stacked._shared_matrix("comm_ms") is not None) == (not crashed)
    fast = comm_kinds.comm_section(records, 24)
    assert fast == _slow(records, 24, monkeypatch)
    assert fast is not None
    assert fast["kinds"][0]["wait_transfer"] == ("split" if not crashed else comm_kinds.NOT_SPLIT)


def _rec(rank: int, steps: list[dict[str, Any]]) -> RankRecords:
    return RankRecords(rank, steps=[{"type": "step", **s} for s in steps])


def _s(step: int, **kw: Any) -> dict[str, Any]:
    base = {
        "step": step,
        "warmup": step == 0,
        "buckets": 2,
        "comm_bytes": 1000,
        "comm_ms": 1.0 + step + 0.01,
        "exposed_comm_ms": 0.5,
    }
    return base | kw


def test_the_comm_section_with_untimed_steps_reasons_and_unequal_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    untimed = [
        _rec(0, [_s(i) for i in range(6)]),
        _rec(
            1,
            [_s(i, comm_ms=None, comm_reason="stale stats") if i == 3 else _s(i) for i in range(6)],
        ),
        _rec(2, [_s(i, comm_ms=2.5 * i) for i in range(6)]),
        _rec(3, []),  # a rank without steps: nothing is split
    ]
    unequal = [
        _rec(0, [_s(i) for i in range(5)]),
        _rec(1, [_s(i, comm_bytes=2000 if i == 2 else 1000) for i in range(5)]),
    ]
    ragged = [
        _rec(0, [_s(i) for i in range(7)]),
        _rec(1, [_s(i) for i in (0, 1, 2, 5, 4)]),  # out of order, 3 missing
    ]
    none_timed = [
        _rec(r, [_s(i, comm_ms=None, comm_reason="no timer") for i in range(4)]) for r in range(2)
    ]
    for records in (untimed, unequal, ragged, none_timed, untimed[:3]):
        world = len(records)
        fast = comm_kinds.comm_section(records, world)
        assert fast == _slow(records, world, monkeypatch)
    assert comm_kinds.comm_section(none_timed, 2)["kinds"][0]["reason"] == "no timer"
    assert comm_kinds.comm_section(untimed[:3], 3)["kinds"][0]["untimed_calls"] == 2.0


def test_the_comm_section_with_constant_and_varying_rows_and_gapped_warmup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The row medians take a row of one value as that value (calls, bytes) and partition the
    others; an even number of steps averages two; a warm-up that is not one run of steps keeps
    its mask (a run of steps is a slice): each equal to the per-step path."""
    even = [  # 6 measured steps: medians average two values
        _rec(0, [_s(i) for i in range(7)]),
        _rec(1, [_s(i, buckets=2 + i % 2, comm_bytes=1000 * (i % 3)) for i in range(7)]),
        _rec(2, [_s(i, comm_ms=3.0, exposed_comm_ms=1e308) for i in range(7)]),
    ]
    gapped = [
        _rec(r, [_s(i, warmup=i in (0, 3), comm_ms=0.5 * r + i) for i in range(8)])
        for r in range(3)
    ]
    late_warmup = [  # warm-up steps at the end: the measured run of steps is not the first
        _rec(r, [_s(i, warmup=i >= 5, comm_ms=1.0 + r * i) for i in range(8)]) for r in range(2)
    ]
    for records in (even, gapped, late_warmup):
        world = len(records)
        stacked = Stacked.of(records)
        assert stacked is not None
        fast = comm_kinds.comm_section(records, world)
        assert fast == _slow(records, world, monkeypatch)
    per_rank = comm_kinds.comm_section(even, 3)["kinds"][0]["per_rank"]
    assert [r["calls_per_step"] for r in per_rank] == [2, 2.5, 2]
    # a row of one value near the float limit takes np.median's path, as before: it overflows
    assert per_rank[2]["exposed_ms"] == float("inf")


def test_a_step_recorded_twice_takes_the_per_step_path() -> None:
    records = [_rec(0, [_s(0), _s(1), _s(1)]), _rec(1, [_s(0), _s(1)])]
    assert Stacked.of(records) is None
    assert comm_kinds.ddp_section(records, 2) is None


def _old_permutation_p(lateness: np.ndarray, ranks: int, observed: np.ndarray, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    n = lateness.size
    labels = rng.integers(ranks, size=(cost.RESAMPLES, n))
    flat = (np.arange(cost.RESAMPLES)[:, None] * ranks + labels).ravel()
    totals = np.bincount(
        flat, weights=np.tile(lateness, cost.RESAMPLES), minlength=cost.RESAMPLES * ranks
    ).reshape(cost.RESAMPLES, ranks)
    null = totals[:, 0] - totals[:, 1:].max(axis=1)
    return (1 + (null[None, :] >= observed[:, None]).sum(axis=1)) / (cost.RESAMPLES + 1)


@pytest.mark.parametrize("ranks", [2, 7, 3000])
def test_the_permutation_p_values_equal_the_whole_matrix(ranks: int) -> None:
    rng = np.random.default_rng(ranks)
    lateness = rng.exponential(1.0, 300).round(2)
    observed = np.concatenate([rng.normal(0, 20, ranks - 1), [0.0]])
    np.testing.assert_array_equal(
        cost.permutation_p(lateness, ranks, observed, 300),
        _old_permutation_p(lateness, ranks, observed, 300),
    )


def test_the_step_table_views_the_columnar_buffers_and_equals_the_journals(
    tmp_path: Path,
) -> None:
    script_module.load("gen_rank_files").write_run(tmp_path, 16, 40, per_node=4)
    columnar = StepTable(read_run_dir(tmp_path, workers=1), 16)
    for f in (tmp_path / "ranks").glob("*.steps.arrow"):
        f.unlink()
    journals = StepTable(read_run_dir(tmp_path, workers=1), 16)
    assert not columnar.m["compute_ms"].flags.owndata  # no copy of the ranks' columns
    assert not columnar.m["compute_ms"].flags.writeable
    assert journals.m["compute_ms"].flags.owndata
    for k in StepTable.KEYS:
        np.testing.assert_array_equal(columnar.m[k], journals.m[k], err_msg=k)


def test_first_at_the_max_or_min_is_argmax_or_argmin_with_ties() -> None:
    rng = np.random.default_rng(3)
    m = rng.integers(0, 3, (9, 400)).astype(float)  # ties in most columns
    np.testing.assert_array_equal(accounting.first_at(m, m.max(axis=0)), np.argmax(m, axis=0))
    np.testing.assert_array_equal(accounting.first_at(m, m.min(axis=0)), np.argmin(m, axis=0))


def test_columns_every_rank_holds_alike_are_held_once(tmp_path: Path) -> None:
    """Read from the columnar files, a field every rank recorded alike (the step numbers, the
    all-null comm_reason, the generator's constant bytes) is one array for all ranks, a measured
    one (compute_ms) each rank's own row; a crashed rank read from its journal has its own."""
    records = _run(tmp_path, crashed=True)
    alike = [r for r in records if r.rank != 7]
    for key in ("step", "warmup", "comm_reason", "comm_bytes", "buckets"):
        assert all(r.columns[key] is alike[0].columns[key] for r in alike), key
        assert records[7].columns[key] is not alike[0].columns[key]
    assert alike[0].columns["compute_ms"] is not alike[1].columns["compute_ms"]
    table = StepTable(records, 24)
    assert table.m["comm_bytes"].strides[0] != 0  # rank 7's row is its own: a copy
    full = StepTable(alike, 24)
    assert full.m["comm_bytes"].strides[0] == 0  # one row for every rank, no copy


def test_top_two_without_the_partition_equals_the_partition_bit_for_bit() -> None:
    """`Accounting.top_two` (the max, its first row and `max_but_one`) against one partition of
    `own` (its last two rows, as it was): random matrices, ties, whole columns alike, a few
    rows and more than a block; zeros and NaN (which take the partition again) too."""
    rng = np.random.default_rng(3)
    for trial in range(200):
        rows, cols = int(rng.integers(2, 700)), int(rng.integers(1, 40))
        own = rng.exponential(5.0, (rows, cols)) + 0.5
        if trial % 3 == 0:
            own = np.round(own) + 1.0  # ties, the max among them
        if trial % 7 == 0:
            own[:] = own[:1]
        if trial % 11 == 0:
            own[rng.integers(rows), rng.integers(cols)] = 0.0
        if trial % 13 == 0:
            own[rng.integers(rows), rng.integers(cols)] = np.nan
        acc = Accounting(list(range(rows)), np.arange(cols), np.zeros((rows, cols)), own,
                         own, own)  # fmt: skip
        last, most, second = acc.top_two
        part = np.partition(own, rows - 2, axis=0)
        assert most.tobytes() == part[-1].tobytes() and second.tobytes() == part[-2].tobytes()
        assert last.tobytes() == accounting.first_at(own, part[-1]).tobytes()
