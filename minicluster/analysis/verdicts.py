"""The exit code a result earns: what an operator or a CI gate acts on (the policy itself is
`core.exit_policy`)."""

from __future__ import annotations

from minicluster.core.exit_policy import code_for
from minicluster.result.model import RunResult


def verdicts(result: RunResult) -> list[str]:
    """The verdicts of `result`, as `core.exit_policy` names them."""
    if result.bad_input is not None:
        # The ranks stopped on the user's input (a custom model's code): that is the verdict
        # (exit 2), not a failed run.
        return ["bad_input"]
    found = []
    if result.status == "failed":
        found.append("run_failed")
    if result.interrupted is True:
        found.append("interrupted")
    if result.status == "incomplete":
        # the run did not run its planned steps (interrupted, or a rank's records end early:
        # lines lost to a full disk or a cut file): it did not pass, whatever it measured (a
        # cut rank file read "ok (run incomplete)", exit 0: new-user trial 2026-12-07)
        found.append("incomplete")
    for d in result.faults.detected:
        if d.fault_kind.correctness:
            found.append("wrong_numbers")  # diverged replicas, a corrupted gradient
        elif d.fault_kind.link:
            found.append("slow_link")  # below the expected busbw, or a slow pair
    if result.collectives is not None and result.collectives.wrong_total:
        found.append("wrong_numbers")  # a collective returned wrong elements
    if result.pairwise is not None and result.pairwise.wrong_total:
        found.append("wrong_numbers")  # a link delivered wrong elements
    if result.pairwise is not None and result.pairwise.not_judged:
        found.append("not_judged")  # 1-2 pairs (or 3 ranks) and nothing to judge by: exit 2
    if result.validation is not None and not result.validation.passed:
        found.append("validation_failed")
    if result.stragglers:
        found.append("straggler")
    if result.reference is not None and result.reference.verdict == "below_floor":
        found.append("below_reference")
    if result.culprits:
        found.append("culprit")
    if result.host_contention:
        # a late rank or a slow link that was the host's other processes' doing: not judged
        # (exit 2 when nothing else was found; a finding elsewhere decides first)
        found.append("not_judged")
    if not found and result.not_judged:
        # too few measured steps for the straggler test: never a plain ok (exit 2)
        found.append("not_judged")
    return found


def exit_code(result: RunResult) -> int:
    """2 when the ranks stopped on bad input (a custom model that fails to build or run), or
    when the pairs' speed was NOT JUDGED and nothing else was found (`not_judged`, the code of
    NOT JUDGED in every command); 3
    when the run failed; 130 when it was interrupted (status incomplete, what ran kept; a
    command that reads the result later: `exit_code_after_the_fact`);
    1 when it ran but a check failed (diverged replicas, a corrupted gradient, wrong collective
    elements, a failed validation, a slow link against the expected busbw, a slow or wrong pair
    in the pairwise link test, a straggler, a culprit); else 0."""
    return code_for(verdicts(result))


def after_the_fact(result: RunResult) -> list[str]:
    """The verdicts of `result` for a command that read it and was not interrupted itself
    (`aggregate DIR`, `watch` of an ended run, a sweep over its runs): 130 is the code of a
    command that was interrupted, so `interrupted` is not among them; a run interrupted before
    its planned steps ran (status incomplete) is `incomplete` (exit 1), one interrupted after
    every rank finished (status ok) exits by what it found."""
    return [v for v in verdicts(result) if v != "interrupted"]


def exit_code_after_the_fact(result: RunResult) -> int:
    """The exit code of `after_the_fact(result)`: 3 failed, 1 a finding or incomplete, else 0."""
    return code_for(after_the_fact(result))
