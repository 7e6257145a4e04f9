"""What became of each rank: ok, failed on its own (the culprit), missing, aborted because a peer
failed (a victim), or interrupted (Ctrl-C, or a scheduler's SIGTERM at its time limit).

When one rank dies, the others fail too, inside the collective that waited for it ("Connection
closed by peer", a timeout); naming them as failures would point an operator at healthy nodes.
A rank whose own error is such a peer error, while another rank failed, is `aborted`; the error
lines list the culprits first and say at which step each stopped (the step it was in, not the
last one it finished).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from minicluster.analysis.records import RankRecords
from minicluster.core import rank_format

# What a rank's own error says when a collective failed because of another rank (gloo, NCCL,
# the c10d store). Matched case-insensitively.
PEER_ERROR = re.compile(
    r"connection (closed|reset|refused)|by peer|timed out|timeout|broken pipe|"
    r"communicator was aborted|DistNetworkError|DistBackendError|DistStoreError|"
    r"NCCL (error|communicator)",
    re.IGNORECASE,
)
OK, FAILED, MISSING, ABORTED, INTERRUPTED = "ok", "failed", "missing", "aborted", "interrupted"
INTERRUPTED_EXIT = 130  # a rank's own exit code after Ctrl-C


@dataclass
class RankStatuses:
    """`status[rank]` is one of ok, failed, missing, aborted, interrupted; `errors` holds one
    line per rank that is not ok, culprits first."""

    status: dict[int, str]
    errors: list[str] = field(default_factory=list)

    def of(self, *kinds: str) -> list[int]:
        return sorted(r for r, s in self.status.items() if s in kinds)

    @property
    def failed(self) -> list[int]:
        """The culprits: ranks that failed on their own, died, or left nothing."""
        return self.of(FAILED, MISSING)

    @property
    def all_ok(self) -> bool:
        """Every rank finished and wrote an `ok` summary."""
        return bool(self.status) and all(s == OK for s in self.status.values())


FINISHED_BEFORE_INTERRUPT = (
    "interrupted after every rank finished (during teardown): every rank wrote its ok "
    "summary, nothing is missing"
)


@dataclass(frozen=True)
class RunStatus:
    """The run's `status` (ok, failed, incomplete), whether it counts as interrupted, and the
    lines the rule adds to the result's errors."""

    status: str
    interrupted: bool
    errors: list[str]


def run_status(
    fates: RankStatuses,
    launcher_error: str | None,
    interrupted: bool,
    short_of_plan: str | None = None,
) -> RunStatus:
    """The one status rule of every aggregated run (training, collectives, pairwise).

    failed: a rank failed on its own or left nothing, or the launcher failed (not by an
    interrupt); incomplete: the run was interrupted (Ctrl-C, a scheduler's SIGTERM) before every
    rank finished, or `short_of_plan` says why it ran less than planned; else ok. A run whose
    every rank finished ok is ok, even when the interrupt came during its teardown.
    """
    stopped = interrupted or bool(fates.of(INTERRUPTED))
    if stopped and fates.all_ok:
        return RunStatus("ok", False, [FINISHED_BEFORE_INTERRUPT])
    if fates.failed or (launcher_error and not interrupted):
        return RunStatus("failed", stopped, [])
    if stopped:
        return RunStatus(
            "incomplete",
            True,
            ["interrupted before the planned steps ran: every recorded step is kept"],
        )
    if short_of_plan:
        return RunStatus("incomplete", False, [short_of_plan])
    return RunStatus("ok", False, [])


def classify(
    by_rank: dict[int, RankRecords],
    world_size: int,
    exit_codes: dict[int, int],
    where: Callable[[RankRecords], str],
    interrupted: bool = False,
    node_of: dict[int, str] | None = None,
    stopped_victims: Mapping[int, str] | None = None,
    first: Sequence[int] = (),
) -> RankStatuses:
    """Each rank's fate from its records and the launcher's exit codes.

    `where(rec)` says where a rank stopped, e.g. "during step 7 (last finished step 6)" or
    "after all_reduce at 1024 B"; the exit code is added when the launcher reported one.
    `interrupted`: the launcher was stopped (Ctrl-C, SIGTERM); a rank it stopped before the
    rank could write a summary is interrupted, not failed, unless it exited with a code of
    its own. `node_of` names each rank's node in the lines (a job across nodes).
    `stopped_victims`: ranks that died without a summary because the launcher stopped them after
    another rank failed (rank -> how, `analysis.failure_order`): aborted, not failed. `first`:
    the failed ranks in the order they failed (the error lines follow it).
    """
    status: dict[int, str] = {}
    lines: dict[int, str] = {}
    peer_errors: set[int] = set()
    node_of = node_of or {}
    stopped_victims = stopped_victims or {}
    for rank in range(world_size):
        rec = by_rank.get(rank)
        code = f" (exit code {exit_codes[rank]})" if rank in exit_codes else ""
        who = f"rank {rank} on {node_of[rank]}" if rank in node_of else f"rank {rank}"
        if rec is None or rec.header is None:
            status[rank] = MISSING
            lines[rank] = f"{who}: no records (never started or its files are missing){code}"
            continue
        summary = rec.summary
        own_exit = exit_codes.get(rank, 0) > 0 and exit_codes.get(rank) != INTERRUPTED_EXIT
        if summary is None and interrupted and not own_exit:
            status[rank] = INTERRUPTED
            lines[rank] = f"{who}: stopped {where(rec)} when the run was interrupted{code}"
            continue
        if summary is None:
            status[rank] = FAILED
            lines[rank] = f"{who}: died {where(rec)}, without a summary{code}"
            continue
        error = summary.get("error")
        if summary.get("status") == INTERRUPTED:
            status[rank] = INTERRUPTED
            lines[rank] = f"{who}: interrupted {where(rec)} ({error}){code}"
        elif summary.get("status") != OK:
            status[rank] = FAILED
            lines[rank] = f"{who}: failed {where(rec)}: {error}{code}"
            if PEER_ERROR.search(str(error or "")):
                peer_errors.add(rank)
        else:
            status[rank] = OK
    position = {r: i for i, r in enumerate(first)}
    culprits = sorted(
        (
            r
            for r, s in status.items()
            if s in (FAILED, MISSING) and r not in peer_errors and r not in stopped_victims
        ),
        key=lambda r: (position.get(r, len(position)), r),
    )
    if culprits:
        names = ", ".join(str(r) for r in culprits)
        for rank, s in status.items():
            who = f"rank {rank} on {node_of[rank]}" if rank in node_of else f"rank {rank}"
            if rank in stopped_victims and s == FAILED:
                status[rank] = ABORTED
                code = f" (exit code {exit_codes[rank]})" if rank in exit_codes else ""
                lines[rank] = (
                    f"{who}: aborted {where(by_rank[rank])}: {stopped_victims[rank]}{code}"
                )
            elif rank in peer_errors or s == INTERRUPTED:
                # Its collective failed, or the launcher stopped it, because rank(s) failed.
                status[rank] = ABORTED
                why = "its collective failed" if rank in peer_errors else "it was stopped"
                lines[rank] = (
                    f"{who}: aborted {where(by_rank[rank])}: {why} after rank(s) {names} "
                    f"failed ({(by_rank[rank].summary or {}).get('error') or ''})"
                )
    order = {FAILED: 0, MISSING: 0, ABORTED: 1, INTERRUPTED: 2}
    ranked = sorted(
        (order[s], position.get(r, len(position)), r) for r, s in status.items() if s != OK
    )
    common = common_error(by_rank, world_size, where, len(set(node_of.values())) > 1)
    return RankStatuses(status, ([common] if common else []) + [lines[r] for _, _, r in ranked])


def common_error(
    by_rank: Mapping[int, RankRecords],
    world_size: int,
    where: Callable[[RankRecords], str],
    across_nodes: bool = False,
) -> str | None:
    """The line for a run whose every rank (2 or more) raised the very same error of its own (a
    bug in the model, its input or its configuration: every rank runs the same code on the same
    kind of data), or None. Which of them wrote its summary first is a matter of microseconds:
    naming one rank, or its node, as the failure would send an operator to drain a healthy node."""
    errors: list[str | None] = []
    places, bad = set(), set()
    for rank in range(world_size):
        rec = by_rank.get(rank)
        summary = rec.summary if rec is not None else None
        error = str((summary or {}).get("error") or "")
        if rec is None or summary is None or summary.get("status") in (OK, INTERRUPTED, None):
            return None
        errors.append(None if PEER_ERROR.search(error) else error)
        places.add(where(rec))
        bad.add(summary.get("bad_input"))
    same = same_error(errors, world_size)
    if same is None:
        return None
    if bad != {None}:  # the harness stopped the ranks on the user's input: no one to blame
        said = next((b for b in bad if b), None)
        return f"bad input, seen by every rank ({world_size} of {world_size}): {said}"
    place = places.pop() if len(places) == 1 else "in different steps"
    return (
        f"every rank ({world_size} of {world_size}) raised the same error {place}: "
        f"{same}: {blame(across_nodes)}"
    )


def same_error(errors: Sequence[str | None], world_size: int) -> str | None:
    """The one error every rank of a job of 2 or more raised of its own, or None. `errors`: one
    per rank (None or empty: that rank raised none of its own, such as a peer's lost connection);
    the same text from all `world_size` ranks is the code's fault, not the rank's that wrote
    first (a matter of microseconds). Used by the errors' lead line (`common_error`) and by the
    incident (`analysis.incident`), so the two cannot disagree on it."""
    if world_size < 2 or len(errors) != world_size:
        return None
    distinct = set(errors)
    if len(distinct) != 1:
        return None
    only = distinct.pop()
    return only or None


def blame(across_nodes: bool) -> str:
    """Where the same error on every rank points."""
    if across_nodes:
        return "a fault in the code, its input or its configuration, not of one rank or node"
    return (
        "a fault in the code, its input or its configuration, or of the one node they all ran "
        "on; not of one rank"
    )


def step_where(rec: RankRecords) -> str:
    """Where a training rank stopped: the step it was in, and the last one it finished."""
    last = rec.summary.get("last_step") if rec.summary is not None else rec.last_step
    if last is None or last < 0:
        # its comm timing record is written once the model, layout and optimizer are set up
        return "during step 0 (its first)" if rec.timing else "before its first step"
    return f"during step {last + 1} (last finished step {last})"


def bench_where(rec: RankRecords) -> str:
    """Where a collectives-job rank stopped: after its last (op, size) or pair record."""
    if not rec.collectives:
        return "after no (op, size) record"
    last = rec.collectives[-1]
    n = len(rec.collectives)
    if last.get("type") == rank_format.PAIR:
        return f"after pair {last['a']}-{last['b']} (round {last['round']}; {n} records)"
    if last.get("type") == rank_format.PAIR_PLAN:
        return "after the pairwise plan, before its first pair"
    return f"after {last['op']} at {last['size_bytes']} B ({n} records)"
