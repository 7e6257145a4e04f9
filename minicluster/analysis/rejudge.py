"""What re-judging a run with other thresholds changed: its verdicts before and after, in lines."""

from __future__ import annotations

from minicluster.analysis.verdicts import exit_code_after_the_fact as exit_code
from minicluster.core.checks import ChecksSection
from minicluster.result.model import RunResult


def changes(
    before: RunResult, after: RunResult, own: ChecksSection, new: ChecksSection
) -> list[str]:
    """One line per threshold that changed and per verdict that changed with it (status,
    stragglers, culprits, detected faults, the link, the exit code); `before` was judged by the run's
    `own` thresholds, `after` by `new`."""
    lines = [
        f"checks.{name}: {_num(getattr(own, name))} -> {_num(getattr(new, name))}"
        for name in own.__dataclass_fields__
        if getattr(own, name) != getattr(new, name)
    ]
    verdicts = []
    if before.status != after.status:
        verdicts.append(f"status: {before.status} -> {after.status}")
    was, now = _stragglers(before), _stragglers(after)
    if was != now:
        verdicts.append(f"stragglers: {_ranks(was)} -> {_ranks(now)}")
    was_culprits, now_culprits = _culprits(before), _culprits(after)
    if was_culprits != now_culprits:
        verdicts.append(f"culprits: {_ranks(was_culprits)} -> {_ranks(now_culprits)}")
    was_found, now_found = _detected(before), _detected(after)
    for kind, rank in sorted(now_found - was_found, key=str):
        verdicts.append(f"found: {kind}{'' if rank is None else f' rank {rank}'}")
    for kind, rank in sorted(was_found - now_found, key=str):
        verdicts.append(f"no longer found: {kind}{'' if rank is None else f' rank {rank}'}")
    was_link, now_link = _link(before), _link(after)
    if was_link != now_link:
        verdicts.append(f"link: {was_link} -> {now_link}")
    if exit_code(before) != exit_code(after):
        verdicts.append(f"exit code: {exit_code(before)} -> {exit_code(after)}")
    return lines + (verdicts or ["no verdict changed"])


def remaining(result: RunResult) -> list[str]:
    """Why the judged `result` still exits non-zero: one line naming its code and each finding
    that keeps it (a culprit the new thresholds left, a failed run); none when it exits 0."""
    code = exit_code(result)
    if code == 0:
        return []
    return [f"exits {code} on: {'; '.join(findings(result)) or 'the run status'}"]


def findings(result: RunResult) -> list[str]:
    """The findings of `result` that set its exit code, each in a few words."""
    out = []
    if result.bad_input is not None:
        out.append(f"bad input: {result.bad_input}")
    if result.status == "failed":
        out.append("the run failed")
    if result.interrupted is True and result.status == "incomplete":
        out.append("the run was interrupted before its planned steps ran (incomplete)")
    for kind, rank in sorted(_detected(result), key=str):
        out.append(f"detected {kind}{'' if rank is None else f' on rank {rank}'}")
    if result.validation is not None and not result.validation.passed:
        out.append("the validation failed")
    for st in result.stragglers:
        excess = "" if st.excess_pct is None else f" ({st.excess_pct:.3g}% slower compute)"
        out.append(f"straggler rank {st.rank}{excess}")
    for c in result.culprits or []:
        out.append(f"culprit rank {c.rank} ({c.kind}, costs {c.cost_pct:.3g}% of the wall time)")
    if result.reference is not None and result.reference.verdict == "below_floor":
        out.append("below the reference's floor")
    if result.collectives is not None and result.collectives.wrong_total:
        out.append("a collective returned wrong elements")
    if result.pairwise is not None and result.pairwise.wrong_total:
        out.append("a link delivered wrong elements")
    return out


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _stragglers(result: RunResult) -> list[int]:
    return sorted(s.rank for s in result.stragglers if s.rank is not None)


def _culprits(result: RunResult) -> list[int]:
    return [c.rank for c in result.culprits or [] if c.rank is not None]


def _ranks(ranks: list[int]) -> str:
    return "rank " + ", ".join(map(str, ranks)) if ranks else "none"


def _detected(result: RunResult) -> set[tuple[str, int | None]]:
    return {(d.kind, d.rank) for d in result.faults.detected}


def _link(result: RunResult) -> str:
    link = result.link
    if link is None or not link.judged:
        return "not judged"
    return "slow" if link.slow else "ok"
