"""The vectorised hot paths of aggregation (issue 28) give exactly what the per-rank, per-step
loops they replaced gave: each is compared with that loop (kept here, or still in the module)
on generated runs with a straggler, a crashed rank, ties, untimed steps and ragged steps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minicluster.analysis import accounting, comm_kinds, cost
from minicluster.analysis.accounting import Accounting
from minicluster.analysis.records import RankRecords, Stacked, read_run_dir
from minicluster.analysis.steps import StepTable, r4

ROOT = Path(__file__).resolve().parents[2]


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_rank_files", ROOT / "scripts/gen_rank_files.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_rank_files"] = mod
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path: Path, crashed: bool) -> list[RankRecords]:
    _gen().write_run(tmp_path, 24, 60, per_node=4, slow={5: 1.6})
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
    _same(
        accounting.field_matrices([r.columns for r in ranks], table.indices),
        _old_mats(ranks, table.indices),
    )
    acc = accounting.account(records, table)
    assert acc.n > 8
    assert accounting.per_rank_medians(acc) == _old_medians(acc)


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


def test_the_cost_interval_equals_scipys_bootstrap() -> None:
    rng = np.random.default_rng(7)
    for trial in range(8):
        n = int(rng.integers(8, 400))
        wall = rng.uniform(5, 20, n)
        per = np.zeros(n)
        hit = rng.choice(n, int(rng.integers(1, 10)), replace=False)
        per[hit] = rng.exponential(2, hit.size)
        if trial % 3 == 0:
            per = rng.uniform(0, 3, n)
        assert cost.cost_interval(per, wall, trial) == _scipy_interval(per, wall, trial)
    # a rank that never arrived last: every resample costs 0
    wall = rng.uniform(5, 20, 50)
    assert cost.cost_interval(None, wall, 3) == _scipy_interval(np.zeros(50), wall, 3)


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
    monkeypatch.setattr(cost, "_cost_pct_bootstrap", _scipy_interval)
    assert cost.rank_costs(acc, 10.0) == fast
    assert fast[4]["culprit"]


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
    assert Stacked.of(records) is not None
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
    _gen().write_run(tmp_path, 16, 40, per_node=4)
    columnar = StepTable(read_run_dir(tmp_path, workers=1), 16)
    for f in (tmp_path / "ranks").glob("*.steps.arrow"):
        f.unlink()
    journals = StepTable(read_run_dir(tmp_path, workers=1), 16)
    assert not columnar.m["compute_ms"].flags.owndata  # no copy of the ranks' columns
    assert not columnar.m["compute_ms"].flags.writeable
    assert journals.m["compute_ms"].flags.owndata
    for k in StepTable.KEYS:
        np.testing.assert_array_equal(columnar.m[k], journals.m[k], err_msg=k)
