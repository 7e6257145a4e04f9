"""Fault detection from rank records alone (no torch): dead ranks, diverged replicas."""

from __future__ import annotations

from typing import Any

import pytest

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


# --- the link under a layout (FSDP2, TP): each call's wait-free time -----------------------------


def _layout_recs(blocked: dict[int, list[float]], steps: int = 8) -> list[RankRecords]:
    """Two ranks, each step one all_gather and one reduce_scatter of 1e5 bus bytes; `blocked`:
    per rank the ms it was blocked in the two calls, the same every step."""
    return [
        _rec(
            rank,
            steps,
            syncs_ms=[list(ms)] * steps,
            sync_groups=[[0, 0]] * steps,
            sync_kinds=[["all_gather", "reduce_scatter"]] * steps,
            sync_bus_bytes=[[1e5, 1e5]] * steps,
        )
        for rank, ms in blocked.items()
    ]


def _checks(expect: float | None) -> Any:
    from minicluster.core.checks import ChecksSection

    return ChecksSection(expect_busbw_gbps=expect)


def test_a_slow_link_holds_every_rank_in_every_call_a_straggler_only_the_others() -> None:
    from minicluster.analysis.fault_detect import layout_link_check, layout_slow_link_fault

    # healthy: 1e5 bytes in 0.5 ms wait-free = 0.2 GB/s; expectation 0.2
    slow = layout_link_check(_layout_recs({0: [20.5, 21.0], 1: [20.2, 20.4]}), _checks(0.2), 2)
    assert slow["judged"] and slow["slow"] and slow["ranks"] == [0, 1]
    assert [k["kind"] for k in slow["per_kind"]] == ["all_gather", "reduce_scatter"]
    assert all(k["slow"] and k["calls"] == 8 for k in slow["per_kind"])
    (found,) = layout_slow_link_fault(slow)
    assert found["kind"] == "slow_link" and found["ranks"] == [0, 1]
    assert "the link between ranks 0 and 1" in found["evidence"]
    # a straggler (rank 1 late): rank 0 waits 60 ms, rank 1 arrives and transfers in 0.5 ms
    late = layout_link_check(_layout_recs({0: [60.5, 0.5], 1: [0.5, 0.5]}), _checks(0.2), 2)
    assert late["judged"] and not late["slow"] and layout_slow_link_fault(late) == []
    # one kind below the figure alone is an expectation that does not fit it, not a link
    one = layout_link_check(_layout_recs({0: [0.5, 20.0], 1: [0.5, 20.0]}), _checks(0.2), 2)
    assert [k["slow"] for k in one["per_kind"]] == [False, True] and not one["slow"]
    # without an expectation: not judged, this run's figures kept
    free = layout_link_check(_layout_recs({0: [20.5, 21.0], 1: [20.2, 20.4]}), _checks(None), 2)
    assert not free["judged"] and not free["slow"] and "not judged" in free["reason"]
    assert free["per_kind"][0]["judged_busbw_gbps"] == pytest.approx(1e5 / 20.2e-3 / 1e9, rel=1e-3)


def test_the_link_is_not_judged_when_the_ranks_calls_differ() -> None:
    from minicluster.analysis.fault_detect import layout_link_check

    recs = _layout_recs({0: [20.5, 21.0], 1: [20.2, 20.4]})
    other = _rec(  # another group: its k-th call is not rank 0's
        1,
        8,
        syncs_ms=[[20.2, 20.4]] * 8,
        sync_groups=[[1, 1]] * 8,
        sync_kinds=[["all_gather", "reduce_scatter"]] * 8,
        sync_bus_bytes=[[1e5, 1e5]] * 8,
    )
    assert layout_link_check(recs, _checks(0.2), 2)["slow"]
    link = layout_link_check([recs[0], other], _checks(0.2), 2)
    assert not link["judged"] and "not judged" in link["reason"]
