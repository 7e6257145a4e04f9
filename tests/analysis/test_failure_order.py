"""Failure order from rank records, exit codes and the launcher's own signals (no torch).

The records are shaped as real runs leave them (tests/e2e/test_failure_order_cli.py makes the
real ones): a rank killed from outside leaves steps and no summary; its peer's collective fails
at once with a connection error and writes a failed summary; torchrun then SIGTERMs the rest.
"""

from __future__ import annotations

from typing import Any

from minicluster.analysis import failure_order, rank_status
from minicluster.analysis.records import RankRecords

T0 = 1_800_000_000.0
GLOO_RESET = "RuntimeError: [pair.cc:553] Connection closed by peer [127.0.0.1]:44934"
GLOO_TIMEOUT = "RuntimeError: [pair.cc:446] Timed out waiting 5000ms for recv operation"


def _rec(
    rank: int,
    n_steps: int,
    error: str | None = None,
    summary: bool = True,
    t_summary: float | None = None,
) -> RankRecords:
    steps = [
        {"type": "step", "step": i, "t_unix_s": T0 + 0.1 * i, "step_time_ms": 1.0}
        for i in range(n_steps)
    ]
    summ: dict[str, Any] | None = None
    if summary:
        summ = {"status": "failed" if error else "ok", "error": error, "t_unix_s": t_summary}
    return RankRecords(rank=rank, header={"rank": rank, "job": "train"}, steps=steps, summary=summ)


def _order(
    recs: list[RankRecords], codes: dict[int, int], stopped: dict[int, int] | None
) -> list[failure_order.FailureEvent]:
    return failure_order.order({r.rank: r for r in recs}, len(recs), codes, stopped, False, 30)


def test_sigkill_from_outside_is_a_kill_first_and_the_peer_a_victim() -> None:
    """Case 22: rank 1 SIGKILLed at step 36; torchrun signalled only rank 0, afterwards."""
    recs = [_rec(0, 36, GLOO_RESET, t_summary=T0 + 3.55), _rec(1, 36, summary=False)]
    first, second = _order(recs, {0: -15, 1: -9}, stopped={0: 15})
    assert (first.rank, first.kind, first.signal, first.step) == (1, "kill", 9, 36)
    assert "from outside the launcher" in first.evidence and "OOM killer" in first.evidence
    assert "dmesg" in first.evidence
    assert (second.rank, second.kind, second.cause) == (0, "aborted", False)
    # it failed 0.05 s after rank 1's last record: far inside the 30 s timeout, nothing hung
    assert "0.05 s after rank 1's last record; collective timeout 30 s" in second.evidence


def test_sigterm_from_outside_is_a_kill_too() -> None:
    recs = [_rec(0, 38, GLOO_RESET, t_summary=T0 + 3.75), _rec(1, 38, summary=False)]
    first, _ = _order(recs, {0: -15, 1: -15}, stopped={0: 15})
    assert (first.rank, first.kind, first.signal) == (1, "kill", 15)
    assert "earlyoom" in first.evidence


def test_without_the_launchers_signals_a_lone_signal_death_is_still_a_kill() -> None:
    """An older launcher.json (no stopped_by_launcher): the launcher signals only after a
    failure, and none came before this one."""
    recs = [_rec(0, 36, GLOO_RESET, t_summary=T0 + 3.55), _rec(1, 36, summary=False)]
    first, second = _order(recs, {0: -15, 1: -9}, stopped=None)
    assert (first.rank, first.kind) == (1, "kill")
    assert second.kind == "aborted"


def test_crash_leads_and_ranks_the_launcher_stopped_are_victims() -> None:
    """Case 24: rank 3 exits 86 at step 20; torchrun SIGTERMs the others; rank 1 had not written
    its summary when the signal came, ranks 0 and 2 had (their collective lost rank 3)."""
    recs = [
        _rec(0, 20, GLOO_RESET, t_summary=T0 + 2.0),
        _rec(1, 20, summary=False),
        _rec(2, 20, GLOO_RESET, t_summary=T0 + 2.01),
        _rec(3, 20, summary=False),
    ]
    codes = {0: -15, 1: -15, 2: -15, 3: 86}
    for stopped in ({0: 15, 1: 15, 2: 15}, None):
        events = _order(recs, codes, stopped)
        assert [(e.rank, e.kind) for e in events][0] == (3, "crash")
        assert events[0].exit_code == 86 and events[0].step == 20
        assert sorted(e.rank for e in events if e.kind == "aborted") == [0, 1, 2]
        rank1 = next(e for e in events if e.rank == 1)
        assert "stopped by the launcher (SIGTERM) after rank(s) 3 failed" in rank1.evidence


def test_fates_and_error_lines_lead_with_the_first_failure() -> None:
    recs = [
        _rec(0, 20, GLOO_RESET, t_summary=T0 + 2.0),
        _rec(1, 20, summary=False),
        _rec(2, 20, GLOO_RESET, t_summary=T0 + 2.01),
        _rec(3, 20, summary=False),
    ]
    codes = {0: -15, 1: -15, 2: -15, 3: 86}
    events = _order(recs, codes, {0: 15, 1: 15, 2: 15})
    fates = rank_status.classify(
        {r.rank: r for r in recs},
        4,
        codes,
        rank_status.step_where,
        stopped_victims={e.rank: e.evidence for e in events if e.rank == 1},
        first=[e.rank for e in events],
    )
    assert fates.failed == [3]
    assert fates.of(rank_status.ABORTED) == [0, 1, 2]
    assert fates.errors[0].startswith("rank 3: died during step 20")
    assert "stopped by the launcher (SIGTERM)" in fates.errors[1]


def test_hang_when_the_peers_timed_out_and_the_launcher_stopped_it() -> None:
    recs = [_rec(0, 3, GLOO_TIMEOUT, t_summary=T0 + 5.3), _rec(1, 3, summary=False)]
    first, second = _order(recs, {0: 1, 1: -15}, stopped={1: 15})
    assert (first.rank, first.kind, first.step) == (1, "hang", 3)
    assert "timed out waiting for it" in first.evidence
    assert (second.rank, second.kind) == (0, "aborted")
    assert "timed out waiting" in second.evidence


def test_own_fault_signal_is_a_crash_and_an_exception_is_named() -> None:
    recs = [_rec(0, 5, GLOO_RESET, t_summary=T0 + 1.0), _rec(1, 5, summary=False)]
    (first, _) = _order(recs, {0: -15, 1: -11}, stopped={0: 15})
    assert (first.kind, first.signal) == ("crash", 11)
    assert "SIGSEGV" in first.evidence
    recs = [_rec(0, 5, "ValueError: bad batch", t_summary=T0 + 0.45), _rec(1, 5, GLOO_RESET)]
    (first, second) = _order(recs, {0: 1, 1: 1}, stopped=None)
    assert (first.rank, first.kind) == (0, "exception")
    assert "ValueError: bad batch" in first.evidence
    assert second.kind == "aborted"


def test_causes_in_time_order_and_no_cause_means_timeouts() -> None:
    recs = [_rec(0, 8, summary=False), _rec(1, 5, summary=False)]  # rank 1 stopped first
    events = _order(recs, {0: -9, 1: -9}, stopped={})
    assert [(e.rank, e.kind) for e in events] == [(1, "kill"), (0, "kill")]
    recs = [
        _rec(0, 4, GLOO_TIMEOUT, t_summary=T0 + 5.2),
        _rec(1, 4, GLOO_TIMEOUT, t_summary=T0 + 5.1),
    ]
    events = _order(recs, {0: 1, 1: 1}, stopped={})
    assert [(e.rank, e.kind) for e in events] == [(1, "timeout"), (0, "timeout")]


def test_healthy_run_has_no_failures() -> None:
    assert _order([_rec(0, 4), _rec(1, 4)], {}, None) == []


def test_the_same_exception_on_every_rank_leads_with_a_line_that_blames_no_rank() -> None:
    """A model whose forward raises on every rank: each summary holds the same error, rank 1's
    written 0.3 ms before rank 0's (as recorded); the first error line says every rank raised it,
    not 'rank 1'. Two different errors, or one rank of two, keep the per-rank lines first."""
    same = "ValueError: shape mismatch in my layer"
    recs = [_rec(0, 0, same, t_summary=T0 + 0.0003), _rec(1, 0, same, t_summary=T0)]
    codes = {0: 3, 1: -15}

    def errors(recs: list[RankRecords]) -> list[str]:
        events = _order(recs, codes, {1: 15})
        by_rank = {r.rank: r for r in recs}
        first = [e.rank for e in events]
        return rank_status.classify(
            by_rank, len(recs), codes, rank_status.step_where, first=first
        ).errors

    lines = errors(recs)
    assert lines[0].startswith("every rank (2 of 2) raised the same error before its first step")
    assert same in lines[0] and "or of the one node they all ran on; not of one rank" in lines[0]
    assert lines[1].startswith("rank 1:")
    recs[0] = _rec(0, 0, "RuntimeError: CUDA out of memory", t_summary=T0 + 0.0003)
    assert errors(recs)[0].startswith("rank 1:")
    recs[0] = _rec(0, 0)  # rank 0 finished ok
    assert errors(recs)[0].startswith("rank 1:")


def test_bad_input_seen_by_every_rank_is_said_as_bad_input_not_as_a_fault() -> None:
    said = "workload.factory m.py:build: make_batch gave the ranks of one group different batches"
    recs = [_rec(r, 0, f"UserCodeError: {said}") for r in (0, 1)]
    for r in recs:
        assert r.summary is not None
        r.summary["bad_input"] = said
    lines = rank_status.classify(
        {r.rank: r for r in recs}, 2, {0: 2, 1: 2}, rank_status.step_where
    ).errors
    assert lines[0] == f"bad input, seen by every rank (2 of 2): {said}"
