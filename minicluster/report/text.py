"""Tables of display strings and the number format every report shares (no escaping here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minicluster.core.exit_policy import POLICY
from minicluster.result.model import RankEntry, RunResult


@dataclass
class TextTable:
    """A table of display strings; `highlight` holds row indices to emphasise (e.g. a straggler)."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    highlight: set[int] = field(default_factory=set)
    note: str = ""
    numeric: set[int] = field(default_factory=set)  # column indices to right-align
    wrap: set[int] = field(default_factory=set)  # text columns a narrow terminal may wrap


def fmt_num(value: float | None) -> str:
    """A number for people: n/a for None, thousands separators above 100, 3 significant digits below 0.01."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"


_BREAKS = " /:,;=()[]-_."


def ellipsize(value: str, limit: int) -> str:
    """`value` in at most `limit` characters: cut at the last break (a space, a path's slash, a
    colon, ...) that keeps at least half of it, not inside a word or name, and "…" said in its
    place; a value that fits is unchanged."""
    if len(value) <= limit:
        return value
    room = max(1, limit - 1)
    head = value[:room]
    cut = max(head.rfind(c) for c in _BREAKS)
    if cut >= room // 2:
        # keep the break itself when it is a path's or a name's separator (".../gloo/…")
        head = head[: cut + 1] if value[cut] in "/:_-." else head[:cut]
    return head.rstrip() + "…"


def text(value: Any) -> str:
    return "n/a" if value is None else str(value)


# What each verdict (`core.exit_policy`) reads as in a report's header: the first words a
# reader sees are the verdict, not the result's `status` (which says how far the run got).
VERDICT_WORDS = {
    "bad_input": "BAD INPUT",
    "run_failed": "FAILED",
    "incomplete": "INCOMPLETE",
    "wrong_numbers": "WRONG NUMBERS",
    "validation_failed": "FAILED validation",
    "slow_link": "SLOW LINK",
    "not_judged": "NOT JUDGED",
    "straggler": "STRAGGLER",
    "culprit": "CULPRIT",
    "below_reference": "BELOW REFERENCE",
}


def headline(verdicts: list[str]) -> str:
    """The verdict as a header says it: `ok`, or each finding in the policy's words, in the
    exit-code policy's order, the one that decides the code first (`FAILED, STRAGGLER, CULPRIT`,
    `WRONG NUMBERS, FAILED validation`)."""
    order = {v.name: i for i, v in enumerate(POLICY)}
    ranked = sorted(verdicts, key=lambda v: order.get(v, len(order)))
    words = [VERDICT_WORDS.get(v, v.upper()) for v in ranked]
    return ", ".join(dict.fromkeys(words)) if words else "ok"


def completion(status: str, interrupted: bool | None) -> str:
    """How far the run got, apart from its verdict: the result's `status` in words."""
    if status == "ok":
        return "finished"
    if status == "incomplete":
        return "incomplete: interrupted" if interrupted else "incomplete"
    return str(status)


def job_links(world_size: int | None) -> str:
    """Where a slow link is when its evidence (the gradient all-reduce's busbw) names no rank:
    with 2 ranks the one link there is, else the job's links, which one not known."""
    if world_size == 2:
        return "on the link between ranks 0 and 1"
    among = f" of ranks 0-{world_size - 1}" if world_size else ""
    return f"on one of the links{among} (the all-reduce does not tell which)"


def node_count(result: RunResult) -> str:
    """How many nodes ran the job: the per-node section's length (1.2), or the count results
    before 1.2 (and results converted from other formats) hold instead."""
    count = result.node_count
    return "n/a" if count is None else str(count)


def node_label(node_rank: Any, hostname: Any) -> str:
    """`node 1 (host-a)`; the hostname alone when the launcher gave no node rank."""
    if node_rank is None:
        return text(hostname) if hostname is not None else "unknown node"
    return f"node {node_rank} ({text(hostname)})"


def platform_rows(result: RunResult) -> list[list[str]]:
    platform = result.platform
    nodes = platform.nodes
    hosts = ", ".join(str(n.hostname) for n in nodes) or "n/a"
    cpus = sorted({str(n.cpu) for n in nodes if n.cpu})
    gpus = sorted(
        {
            str(g.get("name") or g.get("model") or g) if isinstance(g, dict) else str(g)
            for n in nodes
            for g in n.gpus
        }
    )
    return [
        ["hosts", hosts],
        ["CPU", ", ".join(cpus) or "n/a"],
        ["GPU", ", ".join(gpus) or "none"],
        [
            "software",
            f"minicluster {result.tool.version}, torch {text(platform.torch)}, "
            f"python {text(platform.python)}",
        ],
    ]


def shown_ranks(ranks: list[RankEntry], flagged: set[int], max_rows: int | None) -> list[RankEntry]:
    if max_rows is None or len(ranks) <= max_rows:
        return ranks

    def slowness(r: RankEntry) -> float:
        p50 = r.step_p50_ms
        return -p50 if isinstance(p50, (int, float)) else 0.0

    order = sorted(ranks, key=lambda r: (r.rank not in flagged, slowness(r)))
    keep = {r.rank for r in order[:max_rows]}
    return [r for r in ranks if r.rank in keep]
