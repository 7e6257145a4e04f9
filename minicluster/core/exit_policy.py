"""The exit-code policy: which verdict earns which exit code, one table for every command.

`run`, `validate`, `collectives`, `aggregate`, `watch`, `fleet`, `compare` and `history check`
all map what they found to a code through `code_for`, so an operator scripting any of them as
a check gets the same answer for the same finding (a straggler is a finding in `run` as it is
in `watch`). The README's exit-code table is this one (tests/core/test_exit_policy.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from minicluster.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECK,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
)


@dataclass(frozen=True)
class Verdict:
    """One kind of verdict: its name (what code passes to `code_for`), its exit code, the
    commands that give it, and what it means."""

    name: str
    code: int
    commands: str
    meaning: str


# Precedence: the first verdict present in this order decides the code (a failed run is 3
# even when it also named a straggler).
POLICY: tuple[Verdict, ...] = (
    Verdict(
        "run_failed",
        EXIT_RUN_FAILED,
        "run, validate, collectives, aggregate, sweep, watch",
        "a rank crashed, was killed, hung or timed out, a node was lost, or the disk filled up "
        "once the ranks had started (one line naming the file: `cannot write DIR/result.json: "
        "no space left on device`)",
    ),
    Verdict(
        "interrupted",
        EXIT_INTERRUPTED,
        "run, validate, collectives, sweep",
        "Ctrl-C, or SIGTERM to the launcher (a scheduler's time limit): what ran is kept, "
        "status incomplete (after every rank finished: status ok, all steps kept, said so)",
    ),
    Verdict(
        "incomplete",
        EXIT_FAILED_CHECK,
        "aggregate, watch, sweep (a run of the sweep)",
        "the run read did not run its planned steps (status incomplete: it was interrupted, "
        "or a rank's records end early, e.g. a cut rank file): what ran is judged and kept, "
        "but the run did not pass (`aggregate` or `watch` of a run interrupted before any rank "
        "recorded anything: one line, `INCOMPLETE: ...`); the command itself was not "
        "interrupted (130 is for that; a run interrupted after every rank finished exits by "
        "what it found)",
    ),
    Verdict(
        "wrong_numbers",
        EXIT_FAILED_CHECK,
        "run, validate, collectives, aggregate, watch",
        "replicas diverged, a corrupted gradient, wrong elements from a collective or a pair",
    ),
    Verdict(
        "validation_failed",
        EXIT_FAILED_CHECK,
        "run, validate, aggregate, watch",
        "a correctness check the run was configured for failed (DDP against one process)",
    ),
    Verdict(
        "slow_link",
        EXIT_FAILED_CHECK,
        "run, collectives --pattern pairwise, aggregate, watch",
        "a link slower than the expected busbw, or a slow pair in the pairwise link test",
    ),
    Verdict(
        "straggler",
        EXIT_FAILED_CHECK,
        "run, aggregate, watch, sweep (a run of the sweep)",
        "a straggler named (significant, above the threshold)",
    ),
    Verdict(
        "culprit",
        EXIT_FAILED_CHECK,
        "run, aggregate, watch, sweep (a run of the sweep)",
        "a rank that cost the run at least checks.culprit_cost_pct of its wall time, "
        "significantly more than the others (`culprits`)",
    ),
    Verdict(
        "below_reference",
        EXIT_FAILED_CHECK,
        "aggregate --reference, fleet --reference",
        "median step time, TFLOP/s or the gradient all-reduce busbw below the floor "
        "(checks.reference_floor_pct, 90%) of the reference for this platform and job; in a "
        "fleet, a node's figures below --floor-pct (90%) of it",
    ),
    Verdict(
        "live_problem",
        EXIT_FAILED_CHECK,
        "watch (while the job runs)",
        "a rank stalled, straggling, a culprit or failed in the live window",
    ),
    Verdict(
        "desync",
        EXIT_FAILED_CHECK,
        "diagnose",
        "the ranks' Flight Recorder dumps disagree: a collective some ranks never entered, or "
        "different ops or sizes at one sequence number",
    ),
    Verdict("outlier_node", EXIT_FAILED_CHECK, "fleet", "an outlier node or a failed node check"),
    Verdict(
        "regression",
        EXIT_FAILED_CHECK,
        "compare, history check",
        "a gated regression, an input run that did not finish ok, or one whose own checks "
        "failed: a straggler, a culprit, wrong numbers, ... (`compare`; the candidate of "
        "`history check`)",
    ),
    Verdict(
        "not_judged",
        EXIT_BAD_INPUT,
        "run, aggregate, sweep (a run of the sweep), diagnose, fleet, watch, compare, history "
        "check, collectives --pattern pairwise",
        "NOT JUDGED, in every command: the verdict could not be reached: a run with fewer "
        "measured steps than the straggler sign test needs to reach p < 0.05 (5 with 2 ranks, "
        "3 with 3-4, 2 with 5-20), so no straggler or culprit could be named, and nothing else "
        "found (`run`, `aggregate`, `watch` of the ended run, with the why in `not_judged`); "
        "a rank the culprit or straggler rule would name, or a slow link on a CPU (gloo) run, "
        "that was late because its threads waited for a CPU other processes held (run-queue "
        "delay, `host_contention`: `run`, `aggregate`; rerun on a quiet host); "
        "a member of a process group left no Flight Recorder "
        "dump (it died before it could dump), so nothing is said of it (`diagnose`); no metric "
        "was measured on enough nodes to judge (`fleet`: the robust z needs 5 nodes); a running "
        "job whose recent measured steps span less than 5 s, or no step yet, and nothing found "
        "(`watch`: not judged yet, never healthy); fewer than 3 comparable earlier runs, or a "
        "gated metric whose change the runs cannot resolve (`history check`: NOT JUDGED); "
        "an input (`compare`) or candidate (`history check`) whose own run was NOT JUDGED and "
        'named no finding (its reason said, never "failed its own checks"); '
        "a comparison of which not one row could be judged: every row inconclusive, not "
        "tested, not comparable or not measured (`compare`, `nothing_judged` in its JSON); "
        "two runs whose step times differ by their hosts' CPU load: the ranks' run-queue delay "
        "changed by half the step-time change or more, their CPU time by less (`compare`, "
        "`history check`: `host_load`; rerun both on hosts of the same load); "
        "the pairs' speed could not be judged and nothing else was found: 1 or 2 measured "
        "pairs (2-3 ranks or nodes) and no --min-busbw, or 3 ranks where both pairs of one "
        "rank are slow against the third (a slow rank or a fast pair: 3 cannot tell), #wrong "
        "still judged (`collectives --pattern pairwise`; a wrong element or a slow pair "
        "decides 1 first)",
    ),
    Verdict(
        "bad_input",
        EXIT_BAD_INPUT,
        "every command",
        "config, file, format, launcher environment, a Python package the command needs (torch) "
        "missing from the interpreter, an output directory holding an earlier "
        "run, fleet inputs of different jobs, a disk that is full before any rank started, a "
        "custom model whose code fails to import, build or run (`bad_input` in its result; it "
        "decides the code over a failed run): one line on stderr, no traceback",
    ),
    Verdict(
        "internal_error",
        EXIT_INTERNAL,
        "every command",
        "a bug in minicluster (`EX_SOFTWARE`), never a verdict: one line, `MINICLUSTER_DEBUG=1` "
        "shows the traceback",
    ),
)
BY_NAME = {v.name: v for v in POLICY}


_CODE_TEXT = {
    EXIT_OK: "0 ok",
    EXIT_FAILED_CHECK: "1 a finding",
    EXIT_BAD_INPUT: "2 bad usage or bad input",
    EXIT_RUN_FAILED: "3 the run itself failed",
    EXIT_INTERNAL: "70 internal error",
    EXIT_INTERRUPTED: "130 interrupted",
}


def markdown_table() -> str:
    """The policy as the README's table (a test checks the README holds exactly this)."""
    rows = [
        "| code | verdict | given by | meaning |",
        "| --- | --- | --- | --- |",
        f"| {_CODE_TEXT[EXIT_OK]} | none | every command | the command did what it was asked "
        "and found nothing wrong |",
    ]
    rows += [f"| {_CODE_TEXT[v.code]} | `{v.name}` | {v.commands} | {v.meaning} |" for v in POLICY]
    return "\n".join(rows)


def code_for(found: Iterable[str]) -> int:
    """The exit code for the verdicts `found` (names in POLICY): the first one present in
    POLICY's order decides; none is 0. KeyError for a name the policy does not know."""
    present = set(found)
    unknown = present - set(BY_NAME)
    if unknown:
        raise KeyError(f"not in the exit-code policy: {sorted(unknown)}")
    for verdict in POLICY:
        if verdict.name in present:
            return verdict.code
    return EXIT_OK
