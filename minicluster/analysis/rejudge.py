"""What re-judging a run with other thresholds changed: its verdicts before and after, in lines."""

from __future__ import annotations

from minicluster.analysis.verdicts import exit_code
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
