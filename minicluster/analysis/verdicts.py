"""The exit code a result earns: what an operator or a CI gate acts on."""

from __future__ import annotations

from minicluster.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECK,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
)
from minicluster.result.model import RunResult


def exit_code(result: RunResult) -> int:
    """2 when the ranks stopped on bad input (a custom model that fails to build or run); 3
    when the run failed; 130 when it was interrupted (status incomplete, what ran kept);
    1 when it ran but a check failed (diverged replicas, a corrupted gradient, wrong collective
    elements, a slow link against the expected busbw, a slow or wrong pair in the pairwise link
    test); else 0."""
    if result.bad_input is not None:
        return EXIT_BAD_INPUT  # the ranks stopped on the user's input (a custom model's code)
    if result.status == "failed":
        return EXIT_RUN_FAILED
    if result.interrupted is True:
        return EXIT_INTERRUPTED
    if any(d.gates for d in result.faults.detected):
        return EXIT_FAILED_CHECK  # wrong numbers, or a link slower than the expected busbw
    if result.collectives is not None and result.collectives.wrong_total:
        return EXIT_FAILED_CHECK  # a collective returned wrong elements
    if result.pairwise is not None and result.pairwise.wrong_total:
        return EXIT_FAILED_CHECK  # a link delivered wrong elements
    return EXIT_OK
