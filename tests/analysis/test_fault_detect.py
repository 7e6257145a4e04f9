"""Fault detection from rank records alone (no torch): dead ranks, diverged replicas."""

from __future__ import annotations

from typing import Any

from minicluster.analysis import failure_order
from minicluster.analysis.fault_detect import detect, validation_section
from minicluster.analysis.records import RankRecords
from minicluster.core.config import RunSection


def _rec(
    rank: int, n_steps: int, summary: bool = True, error: str | None = None, **per_step: list[Any]
) -> RankRecords:
    steps = []
    for i in range(n_steps):
        s: dict[str, Any] = {"type": "step", "step": i}
        for key, values in per_step.items():
            s[key] = values[i]
        steps.append(s)
    summ = {"status": "failed" if error else "ok", "error": error} if summary else None
    return RankRecords(rank=rank, header={"rank": rank}, steps=steps, summary=summ)


def _deaths(
    recs: list[RankRecords],
    exit_codes: dict[int, int] | None = None,
    stopped: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    events = failure_order.order({r.rank: r for r in recs}, len(recs), exit_codes or {}, stopped)
    return detect(recs, [], events)


def test_crash_from_the_ranks_own_exit_code() -> None:
    recs = [_rec(0, 4, error="Connection reset by peer"), _rec(1, 4, summary=False)]
    (d,) = _deaths(recs, exit_codes={0: -15, 1: 86})
    assert (d["kind"], d["rank"], d["step"]) == ("crash", 1, 4)


def test_a_rank_killed_after_another_crashed_is_not_a_hang() -> None:
    recs = [_rec(0, 4, summary=False), _rec(1, 4, summary=False), _rec(2, 4, error="reset")]
    found = _deaths(recs, exit_codes={0: -15, 1: 86, 2: 3})
    assert [(d["kind"], d["rank"], d["step"]) for d in found] == [("crash", 1, 4)]


def test_hang_from_the_peers_timeout() -> None:
    recs = [_rec(0, 3, error="Timed out waiting 5000ms"), _rec(1, 3, summary=False)]
    (d,) = _deaths(recs, exit_codes={0: 3, 1: -15}, stopped={1: 15})
    assert (d["kind"], d["rank"], d["step"]) == ("hang", 1, 3)
    (d,) = _deaths(recs, exit_codes={0: 3, 1: -15})  # the launcher did not say whom it stopped
    assert (d["kind"], d["rank"], d["step"]) == ("hang", 1, 3)
    (d,) = _deaths(recs)  # `aggregate DIR` without launcher exit codes
    assert (d["kind"], d["rank"], d["step"]) == ("hang", 1, 3)


def test_no_fault_when_every_rank_finished_and_agrees() -> None:
    sums = {"param_checksum": [5, 6, 7], "optim_checksum": [1, 2, 3]}
    assert detect([_rec(0, 3, **sums), _rec(1, 3, **sums)], [], []) == []


def test_divergence_blames_the_rank_whose_gradient_changed_after_the_all_reduce() -> None:
    good = {
        "param_checksum": [5, 6, 7],
        "optim_checksum": [1, 2, 3],
        "grad_reduced_checksum": [9, 9, 9],
        "grad_applied_checksum": [9, 9, 9],
    }
    bad = dict(good, param_checksum=[5, 6, 8], grad_applied_checksum=[9, 9, 10])
    (d,) = detect([_rec(0, 3, **good), _rec(1, 3, **bad)], [], [])
    assert (d["kind"], d["rank"], d["step"]) == ("corrupt_grad", 1, 2)


def test_divergence_without_gradient_evidence_uses_the_majority_or_says_ambiguous() -> None:
    a = {"param_checksum": [5, 6], "optim_checksum": [1, 2]}
    b = {"param_checksum": [5, 0], "optim_checksum": [1, 2]}
    found = detect([_rec(0, 2, **a), _rec(1, 2, **b), _rec(2, 2, **a)], [], [])
    assert [(d["kind"], d["rank"], d["step"]) for d in found] == [("replica_divergence", 1, 1)]
    found = detect([_rec(0, 2, **a), _rec(1, 2, **b)], [], [])
    assert sorted(d["rank"] for d in found) == [0, 1]
    assert all("no majority" in d["evidence"] for d in found)


def test_replica_check_needs_two_ranks_to_pass() -> None:
    cfg = RunSection(replica_check_every=1)
    sums = {"param_checksum": [5, 6], "optim_checksum": [1, 2]}
    v = validation_section([_rec(0, 2, **sums), _rec(1, 2, **sums)], cfg, [])
    assert v is not None and v["passed"] and v["checks"][0]["steps_checked"] == 2
    v = validation_section([_rec(0, 2, **sums)], cfg, [])
    assert v is not None and not v["passed"]
    assert "two or more ranks" in v["reason"]
    assert validation_section([_rec(0, 2, **sums)], RunSection(), []) is None  # nothing configured


def test_under_sharded_layouts_each_shard_is_checked_against_what_its_collectives_delivered() -> (
    None
):
    """FSDP2/TP: every rank holds its own shard, so checksums differ across ranks by design (no
    divergence); a rank whose applied gradient is not the delivered one is named."""
    shard = {
        "param_checksum": [5, 6, 7],
        "optim_checksum": [1, 2, 3],
        "grad_reduced_checksum": [9, 9, 9],
        "grad_applied_checksum": [9, 9, 9],
    }
    other = {k: [v + 100 for v in vals] for k, vals in shard.items()}  # another shard
    singles = [[0], [1]]
    assert detect([_rec(0, 3, **shard), _rec(1, 3, **other)], [], [], singles) == []
    # Without the groups (read as DDP) the same records would be a divergence:
    assert detect([_rec(0, 3, **shard), _rec(1, 3, **other)], [], [])
    bad = dict(other, grad_applied_checksum=[109, 110, 109])
    (d,) = detect([_rec(0, 3, **shard), _rec(1, 3, **bad)], [], [], singles)
    assert (d["kind"], d["rank"], d["step"]) == ("corrupt_grad", 1, 1)
    assert "no other rank holds its shard" in d["evidence"]
    cfg = RunSection(replica_check_every=1)
    v = validation_section([_rec(0, 3, **shard), _rec(1, 3, **bad)], cfg, [d], singles)
    assert v is not None and not v["passed"] and v["checks"][0]["steps_checked"] == 3
    clean = validation_section([_rec(0, 3, **shard), _rec(1, 3, **other)], cfg, [], singles)
    assert clean is not None and clean["passed"]
    # A lone shard without its delivered gradient compares to nothing: not passed
    lone = {k: v for k, v in shard.items() if k != "grad_reduced_checksum"}
    v = validation_section([_rec(0, 3, **lone)], cfg, [], [[0]])
    assert v is not None and not v["passed"]


def test_hsdp_compares_the_replicas_of_each_shard() -> None:
    """dp_replicate=2,dp_shard=2: ranks (0, 2) and (1, 3) hold the same shards."""
    a = {"param_checksum": [5, 6], "optim_checksum": [1, 2]}
    b = {"param_checksum": [7, 8], "optim_checksum": [3, 4]}
    bad = {"param_checksum": [7, 0], "optim_checksum": [3, 4]}
    recs = [_rec(0, 2, **a), _rec(1, 2, **b), _rec(2, 2, **a), _rec(3, 2, **bad)]
    found = detect(recs, [], [], [[0, 2], [1, 3]])
    assert sorted(d["rank"] for d in found) == [1, 3]  # two replicas: no majority, both named
    assert all(d["step"] == 1 and "no majority" in d["evidence"] for d in found)
