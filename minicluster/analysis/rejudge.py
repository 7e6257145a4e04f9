"""What re-judging a run with other thresholds changed: its verdicts before and after, in lines."""

from __future__ import annotations

from typing import Any

from minicluster.analysis.verdicts import exit_code
from minicluster.core.checks import ChecksSection


def changes(
    before: dict[str, Any], after: dict[str, Any], own: ChecksSection, new: ChecksSection
) -> list[str]:
    """One line per threshold that changed and per verdict that changed with it (status,
    stragglers, detected faults, the link, the exit code); `before` was judged by the run's
    `own` thresholds, `after` by `new`."""
    lines = [
        f"checks.{name}: {_num(getattr(own, name))} -> {_num(getattr(new, name))}"
        for name in own.__dataclass_fields__
        if getattr(own, name) != getattr(new, name)
    ]
    verdicts = []
    if before["status"] != after["status"]:
        verdicts.append(f"status: {before['status']} -> {after['status']}")
    was, now = _stragglers(before), _stragglers(after)
    if was != now:
        verdicts.append(f"stragglers: {_ranks(was)} -> {_ranks(now)}")
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


def _stragglers(result: dict[str, Any]) -> list[int]:
    return sorted(s["rank"] for s in result.get("stragglers") or [])


def _ranks(ranks: list[int]) -> str:
    return "rank " + ", ".join(map(str, ranks)) if ranks else "none"


def _detected(result: dict[str, Any]) -> set[tuple[str, int | None]]:
    faults = (result.get("faults") or {}).get("detected") or []
    return {(d["kind"], d.get("rank")) for d in faults}


def _link(result: dict[str, Any]) -> str:
    link = result.get("link") or {}
    if not link.get("judged"):
        return "not judged"
    return "slow" if link.get("slow") else "ok"
