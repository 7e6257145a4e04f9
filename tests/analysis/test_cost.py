"""Accounting, cost and culprits on records whose timeline is known: each rank's own work per step
is given, the all-reduce ends together on every rank (one sync point per step), and what each
rank records (forward, backward, exposed communication, optimizer, the gap between steps) is
what such a timeline makes a rank write."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from minicluster.analysis import accounting, cost
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable

TRANSFER_MS = 3.0
OPT_MS = 1.0


def _records(work: np.ndarray, host_extra: np.ndarray | None = None) -> list[RankRecords]:
    """Records of ranks whose compute in step s is `work[r, s]` (ms) and whose host time before
    step s has `host_extra[r, s]` added (a pause between steps). Every step: forward a third of
    the compute, backward the rest plus the exposed communication (waiting for the last arrival,
    then the transfer), optimizer 1 ms, gap 0.5 ms (+ the pause)."""
    ranks, n = work.shape
    extra = host_extra if host_extra is not None else np.zeros_like(work)
    own = OPT_MS + 0.5 + extra + work  # the work before the sync point (opt of s-1 + gap + compute)
    last = own.max(axis=0)
    out = []
    for r in range(ranks):
        steps = []
        for s in range(n):
            exposed = last[s] - own[r, s] + TRANSFER_MS
            fwd = work[r, s] / 3
            bwd = work[r, s] - fwd + exposed
            steps.append(
                {
                    "step": s,
                    "warmup": s < 1,
                    "step_time_ms": fwd + bwd + OPT_MS,
                    "fwd_ms": fwd,
                    "bwd_ms": bwd,
                    "opt_ms": OPT_MS,
                    "compute_ms": fwd + bwd - exposed,
                    "comm_ms": exposed + 1.0,
                    "exposed_comm_ms": exposed,
                    "gap_ms": None if s == 0 else 0.5 + extra[r, s],
                }
            )
        out.append(RankRecords(r, header={"rank": r, "world_size": ranks}, steps=steps))
    return out


def _acc(records: list[RankRecords]) -> accounting.Accounting:
    return accounting.account(records, StepTable(records, len(records)))


def _noise(ranks: int, n: int, seed: int = 0) -> np.ndarray:
    return 10.0 + np.random.default_rng(seed).normal(0, 0.5, (ranks, n)).clip(-1.5, 1.5)


def test_components_add_up_to_every_ranks_own_period() -> None:
    work = _noise(3, 41)
    acc = _acc(_records(work))
    assert acc.n == 40  # step 0 has no previous optimizer step: not accounted
    parts = acc.host + acc.compute + acc.wait + acc.transfer[None, :]
    np.testing.assert_allclose(parts, acc.period, atol=1e-9)
    section = accounting.section(acc)
    assert section["holds"] is True
    assert section["tolerance"]["run_residual_ms_max"] < 1e-6
    lateness = section["last_arrival"]["lateness_ms"]
    assert all(x >= 0 for x in lateness)


def test_a_rank_whose_period_disagrees_breaks_the_accounting() -> None:
    """A residual is measured, not assumed: a rank whose clock says its steps were longer than
    the sync points allow (the ranks did not meet once per step) fails the stated tolerance."""
    records = _records(_noise(2, 41))
    records[1].columns["bwd_ms"] = records[1].columns["bwd_ms"] + 5.0
    section = accounting.section(_acc(records))
    assert section["holds"] is False and "did not meet" in section["reason"]


def test_intermittent_straggler_is_the_culprit_with_its_cost_and_period() -> None:
    work = _noise(2, 51)
    work[1, 1::5] += 80.0  # rank 1: +80 ms of compute in every 5th step
    acc = _acc(_records(work))
    costs = cost.rank_costs(acc, threshold_pct=5.0)
    # What the what-if saves: in every late step, the 80 ms less the other rank's lead.
    expected = sum(
        max(0.0, acc.own[1, j] - acc.own[0, j])
        for j in range(acc.n)
        if acc.own[1, j] > acc.own[0, j]
    )
    assert costs[1]["cost_ms"] == pytest.approx(expected, abs=1e-3)
    assert costs[1]["cost_pct"] > 40 and costs[1]["culprit"]
    assert not costs[0]["culprit"]
    lo, hi = costs[1]["cost_pct_interval"]
    assert lo < costs[1]["cost_pct"] < hi
    (c,) = _culprits(acc, costs, {1: (None, "vm", "vm")})
    assert c["rank"] == 1 and c["kind"] == "intermittent" and c["node"] == "vm"
    assert c["shape"]["period_steps"] == 5 and c["shape"]["component"] == "compute"
    assert c["steps"] == list(range(1, 51, 5))[1:] or c["steps"] == list(range(1, 51, 5))
    assert (
        c["summary"].startswith("rank 1 cost the run") and "every 5th step, +80 ms" in c["summary"]
    )


def test_a_pause_between_steps_is_charged_to_its_rank_as_host_time() -> None:
    work = _noise(2, 41)
    pause = np.zeros_like(work)
    pause[0, 3::4] = 30.0  # rank 0 pauses after its optimizer step, every 4th step
    acc = _acc(_records(work, pause))
    costs = cost.rank_costs(acc, 5.0)
    (c,) = _culprits(acc, costs, {})
    assert c["rank"] == 0 and c["shape"]["component"] == "host"
    assert c["shape"]["period_steps"] == 4


@pytest.mark.parametrize(
    ("shape", "kind"),
    [("persistent", "persistent"), ("onset", "onset"), ("drift", "drift")],
)
def test_the_shape_in_time_is_named(shape: str, kind: str) -> None:
    work = _noise(4, 61, seed=3)
    if shape == "persistent":
        work[2] += 15.0
    elif shape == "onset":
        work[2, 30:] += 15.0
    else:
        work[2, 10:] += 0.8 * np.arange(51)
    acc = _acc(_records(work))
    costs = cost.rank_costs(acc, 5.0)
    (c,) = _culprits(acc, costs, {})
    assert c["rank"] == 2 and c["kind"] == kind
    if kind == "onset":
        assert 28 <= c["shape"]["from_step"] <= 32
    if kind == "drift":
        assert c["shape"]["slope_ms_per_step"] == pytest.approx(0.8, rel=0.2)


def test_ranks_as_noisy_as_each_other_have_no_culprit() -> None:
    """A busy host makes every rank late now and then: each costs the run something, none
    stands out, so no verdict (over many seeds)."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        work = 10.0 + rng.exponential(3.0, (2, 51))  # heavy right tail on both ranks
        acc = _acc(_records(work))
        costs = cost.rank_costs(acc, 5.0)
        assert all(c["cost_pct"] > 0 for c in costs.values())
        assert not _culprits(acc, costs, {}), seed


def test_records_without_gap_say_why_nothing_is_accounted() -> None:
    records = _records(_noise(2, 11))
    for r in records:
        del r.columns["gap_ms"]
    acc = _acc(records)
    assert acc.n == 0 and "gap_ms" in str(acc.reason)
    assert cost.rank_costs(acc, 5.0) == {}
    assert accounting.section(acc)["holds"] is None


def test_node_cost_replaces_all_its_ranks_at_once() -> None:
    work = _noise(4, 41)
    work[2:, 1::2] += 20.0  # both ranks of node b slow in every other step
    acc = _acc(_records(work))
    nodes = cost.node_costs(acc, {0: "a", 1: "a", 2: "b", 3: "b"})
    assert nodes["b"]["cost_pct"] > 20 > nodes["a"]["cost_pct"]
    assert nodes["b"]["ranks"] == [2, 3]


def test_pauses_of_one_size_at_irregular_steps_are_named_blips_of_every_size_are_not() -> None:
    """A GC of one size at irregular times costs the run and is named; preemptions of a busy
    host (every size, no period) cost as much and are not."""
    rng = np.random.default_rng(7)
    steps = rng.choice(np.arange(1, 51), size=8, replace=False)
    work = _noise(2, 51)
    work[1, steps] += 80.0
    acc = _acc(_records(work))
    (c,) = _culprits(acc, cost.rank_costs(acc, 5.0), {})
    assert c["rank"] == 1 and c["kind"] == "intermittent" and c["shape"]["period_steps"] is None
    work = _noise(2, 51)
    work[1, steps] += rng.exponential(40.0, size=8) + 5.0
    acc = _acc(_records(work))
    costs = cost.rank_costs(acc, 5.0)
    assert costs[1]["cost_pct"] > 25
    assert not _culprits(acc, costs, {})


def test_a_run_of_few_steps_is_judged_without_error() -> None:
    """8 to 12 measured steps (a tiny config): the change-point search has room for one split
    or says there is none; nothing raises."""
    for n in (9, 10, 11, 13):
        work = _noise(2, n)
        work[1, n // 2 :] += 30.0
        acc = _acc(_records(work))
        _culprits(acc, cost.rank_costs(acc, 5.0), {})


def test_a_cost_under_the_floor_per_step_is_not_a_culprit() -> None:
    work = _noise(2, 41)
    work[1] += 3.0  # 3 ms a step: half of a short step, what a busy neighbour does
    acc = _acc(_records(work))
    assert cost.rank_costs(acc, 5.0)[1]["culprit"]
    assert not cost.rank_costs(acc, 5.0, min_ms_per_step=10.0)[1]["culprit"]


@pytest.mark.parametrize(
    ("ranks", "steps"), [(2, 3), (60, 12), (500, 40), (1500, 40), (4096, 50), (16384, 30)]
)
def test_null_excess_over_the_drawn_ranks_equals_the_whole_matrix_bit_for_bit(ranks, steps):
    # the permutation null of many ranks over few steps sums only the (resample, rank) pairs
    # drawn; it must give the [resamples x ranks] matrix's answer exactly (p-values compare it)
    rng = np.random.default_rng(ranks)
    lateness = rng.exponential(3.0, steps)
    lateness[::5] = 0.0  # steps nobody was late in: totals of 0 beside the ranks not drawn
    labels = rng.integers(ranks, size=(cost.RESAMPLES, steps))
    dense = cost.null_excess_dense(labels, lateness, ranks)
    assert cost.null_excess(labels, lateness, ranks).tobytes() == dense.tobytes()
    # all the draws on two ranks: the others' top is a rank not drawn (0), or the other drawn one
    few = rng.integers(2, size=(cost.RESAMPLES, steps))
    got = cost.null_excess(few, lateness, ranks)
    assert got.tobytes() == cost.null_excess_dense(few, lateness, ranks).tobytes()


def test_rank_costs_entries_of_ranks_never_last_are_their_own_objects():
    # ranks with the same inputs share how their entry is made, not the entry itself
    work = np.full((40, 12), 5.0)
    work[3] += 4.0
    recs = _records(work)
    acc = accounting.account(recs, StepTable(recs, 40))
    costs = cost.rank_costs(acc, 5.0)
    zero = [c for c in costs.values() if c["last_arrival_steps"] == 0]
    assert len(zero) >= 38 and all(z == zero[0] for z in zero)
    zero[0]["cost_pct_interval"][0] = -1.0
    assert zero[1]["cost_pct_interval"][0] != -1.0 and zero[1] is not zero[0]


def test_linear_quantiles_equal_scipys_bit_for_bit() -> None:
    """`cost.linear_quantiles` (one partition, scipy's arithmetic) against `scipy.stats.quantile`
    (a sort): rows of 1 to 60 and 2,000 samples (the bootstrap's), ties, constant rows, NaN and
    -0.0 (scipy's own path then), the interval's quantiles, random ones and both ends."""
    from scipy.stats import quantile

    rng = np.random.default_rng(0)
    compared = 0
    for trial in range(600):
        rows = int(rng.integers(1, 6))
        size = 2000 if trial % 3 == 0 else int(rng.integers(1, 60))
        theta = rng.normal(size=(rows, size)) * rng.choice([1.0, 1e3, 1e-3])
        if trial % 4 == 0:
            theta = np.round(theta, 1)  # ties (and -0.0)
        if trial % 7 == 0:
            theta[:] = theta[:, :1]
        if trial % 11 == 0:
            theta[0, 0] = np.nan
        alpha = (1 - cost.CONFIDENCE) / 2
        for p in (np.array([alpha, 1 - alpha]), rng.random(3), np.array([0.0, 1.0, 0.5])):
            want = np.asarray(quantile(theta, p, axis=-1)).reshape(rows, p.size)
            got = cost.linear_quantiles(theta, p)
            assert got.shape == want.shape and got.tobytes() == want.tobytes()
            compared += 1
    assert compared == 1800


def _culprits(
    acc: Any, costs: dict[int, dict[str, Any]], node_of: dict[int, Any]
) -> list[dict[str, Any]]:
    return cost.culprits(costs, node_of, cost.culprit_shapes(acc, costs))
