"""Accounting over many sync points per step (FSDP2, TP, 2-D): records whose timeline is known,
each rank's own work between collectives given, each collective ending for its group when the
last member arrived plus its transfer; ranks write what such a timeline makes them write
(forward, backward, optimizer, gap, the exposed time and `syncs_ms` / `sync_groups`)."""

from __future__ import annotations

import numpy as np

from minicluster.analysis import accounting
from minicluster.analysis.records import RankRecords
from minicluster.analysis.steps import StepTable

TRANSFER_MS = 2.0
OPT_MS = 1.0
GAP_MS = 0.5


def _records(work: np.ndarray, groups: list[list[list[int]]]) -> list[RankRecords]:
    """`work[r, s, k]`: rank r's own work before sync point k of step s (ms); `groups[k]`: the
    groups of sync point k (lists of ranks). The step starts on every rank together (after the
    previous step's last sync point, its optimizer step and gap); each point ends for a group
    TRANSFER_MS after its last member arrived; after the last point the optimizer step."""
    ranks, n, k_count = work.shape
    steps: list[list[dict]] = [[] for _ in range(ranks)]
    for s in range(n):
        t = np.zeros(ranks)  # each rank's clock since its step start (after opt + gap)
        blocked = np.zeros((ranks, k_count))
        for k in range(k_count):
            arrive = t + work[:, s, k]
            for group in groups[k]:
                end = arrive[group].max() + TRANSFER_MS
                blocked[group, k] = end - arrive[group]
                t[group] = end
        # the next step starts together: the ranks meet at the last point of this one
        assert np.allclose(t, t[0]), "the last sync point must be the whole job's"
        for r in range(ranks):
            exposed = float(blocked[r].sum())
            fb = float(t[r])
            steps[r].append(
                {
                    "step": s,
                    "warmup": s < 1,
                    "step_time_ms": fb + OPT_MS,
                    "fwd_ms": fb / 2,
                    "bwd_ms": fb / 2,
                    "opt_ms": OPT_MS,
                    "compute_ms": fb - exposed,
                    "comm_ms": exposed,
                    "exposed_comm_ms": exposed,
                    "gap_ms": None if s == 0 else GAP_MS,
                    "syncs_ms": blocked[r].tolist(),
                    "sync_groups": [
                        min(next(g for g in groups[k] if r in g)) for k in range(k_count)
                    ],
                }
            )
    return [
        RankRecords(r, header={"rank": r, "world_size": ranks}, steps=steps[r])
        for r in range(ranks)
    ]


def _acc(records: list[RankRecords]) -> accounting.Accounting:
    return accounting.account(records, StepTable(records, len(records)))


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return 3.0 + np.random.default_rng(seed).uniform(0, 2.0, shape)


def test_waits_add_up_over_the_sync_points_where_one_wait_misses_them() -> None:
    """Rank 0 late at the first of three points, rank 1 at the second by as much: their own
    work is equal, so one sync point per step sees no wait; over the points each waited 10 ms."""
    work = _noise((2, 21, 3))
    work[0, :, 0] += 10.0
    work[1, :, 1] += 10.0
    world = [[0, 1]]
    acc = _acc(_records(work, [world, world, world]))
    assert acc.syncs is not None and acc.n == 20
    assert (acc.syncs.count == 3).all()
    np.testing.assert_allclose(acc.residual, 0.0, atol=1e-9)
    assert (acc.wait >= 8.0).all()  # about 10 ms each, less the noise
    # the one-wait model (no syncs_ms) gives the same steps, but its waits are the difference
    # of the own work only, and its transfer takes the rest
    plain = _records(work, [world, world, world])
    for r in plain:
        r.columns.pop("syncs_ms")
        r.columns.pop("sync_groups")
    one = _acc(plain)
    assert one.syncs is None and (one.wait.max(axis=0) < 4.0).all()
    section = accounting.section(acc)
    assert section["holds"] is True and section["sync_points_per_step"] == 3
    assert section["model"] == accounting.MODEL_SYNCS


def test_the_last_arrival_is_the_rank_late_at_most_sync_points() -> None:
    work = _noise((2, 21, 4), seed=1)
    work[1, :, 2] += 30.0  # rank 1 late by 30 ms at one point of every step
    world = [[0, 1]]
    acc = _acc(_records(work, [world] * 4))
    assert (acc.last == 1).all()
    assert (acc.lateness > 25.0).all()
    last = accounting.section(acc)["last_arrival"]
    assert set(last["rank"]) == {1}


def test_two_dimensional_groups_are_accounted_per_group() -> None:
    """4 ranks on a 2 x 2 mesh: tensor-parallel pairs {0,1}, {2,3} meet at two points, the
    data-parallel pairs {0,2}, {1,3} at the next, the whole job at the last; rank 3 is late
    inside its TP pair only."""
    work = _noise((4, 21, 4), seed=2)
    work[3, :, 0] += 20.0
    tp, dp = [[0, 1], [2, 3]], [[0, 2], [1, 3]]
    acc = _acc(_records(work, [tp, tp, dp, [[0, 1, 2, 3]]]))
    np.testing.assert_allclose(acc.residual, 0.0, atol=1e-9)
    # rank 2 waited for rank 3 at the TP point; ranks 0 and 1 did not wait for it there
    assert (acc.syncs.late[3] >= 15.0).all()  # type: ignore[union-attr]
    assert (acc.last == 3).all()


def test_a_wait_outside_the_collective_calls_shows_in_the_residual() -> None:
    """A rank blocked 6 ms somewhere its sync points do not see (its exposed time says so, its
    calls do not) breaks the stated tolerance: the residual is measured, not assumed."""
    work = _noise((2, 41, 2), seed=3)
    records = _records(work, [[[0, 1]]] * 2)
    c = records[1].columns
    c["fwd_ms"] = c["fwd_ms"] + 6.0
    c["exposed_comm_ms"] = c["exposed_comm_ms"] + 6.0  # blocked, so not compute either
    acc = _acc(records)
    section = accounting.section(acc)
    assert (
        section["holds"] is False and "outside the recorded collective calls" in section["reason"]
    )


def test_ranks_with_different_counts_of_sync_points_fall_back_to_one() -> None:
    work = _noise((2, 11, 2), seed=4)
    records = _records(work, [[[0, 1]]] * 2)
    steps = records[1].steps
    steps[3].update(syncs_ms=[1.0], sync_groups=[0])  # one call fewer on rank 1 in step 3
    records[1].steps = steps
    assert _acc(records).syncs is None


def test_a_real_2d_run_adds_up_over_its_sync_points() -> None:
    """Records a real FSDP2 x TP run wrote (4 gloo ranks; tests/fixtures/recorded_runs): every
    step's 41 collective calls, in two kinds of group; the parts add up to the step time within
    the stated tolerance, where one sync point per step finds a fraction of the waits."""
    from pathlib import Path

    from minicluster.analysis.records import read_run_dir

    run = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs" / "fsdp_tp_2d"
    records = read_run_dir(run, workers=1)
    acc = _acc(records)
    assert acc.syncs is not None and acc.n == 20
    assert set(acc.syncs.count.tolist()) == {41}
    section = accounting.section(acc)
    assert section["holds"] is True and section["sync_points_per_step"] == 41
    assert (
        section["tolerance"]["run_residual_ms_max"]
        < 0.01 * section["tolerance"]["run_accounted_ms"]
    )
    groups = {g for r in records for gs in r.columns["sync_groups"] for g in gs}
    assert groups == {0, 1, 2}  # TP {0,1} {2,3}, FSDP2 {0,2} {1,3}: lowest ranks 0, 2 and 0, 1
    one = accounting.Accounting(
        acc.ranks, acc.steps, acc.host, acc.compute, acc.exposed, acc.period
    )
    assert (acc.wait.sum(axis=1) > 2 * one.wait.sum(axis=1)).all()
