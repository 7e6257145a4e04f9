"""Which ranks meet in the pairwise link test, and in what order: the round-robin schedule of
disjoint pairs, and the node a rank belongs to.

Shared by the rank side (which runs the schedule) and the analysis side (which checks that every
scheduled pair was measured and groups ranks by node), so both read one definition. Stdlib only.
"""

from __future__ import annotations

from typing import Any

Pair = tuple[int, int]


def round_robin(participants: list[int]) -> list[list[Pair]]:
    """Every pair of `participants` exactly once, in rounds of disjoint pairs (circle method).

    n even: n - 1 rounds of n / 2 pairs; n odd: n rounds of (n - 1) / 2 pairs (each round one
    participant sits out). Each pair is `(lower, higher)`; rounds and pairs in a fixed order, so
    every rank computes the same schedule. ValueError for fewer than 2 or repeated participants.
    """
    if len(participants) < 2:
        raise ValueError(f"a pairwise test needs at least 2 participants, got {len(participants)}")
    if len(set(participants)) != len(participants):
        raise ValueError(f"participants repeat: {participants}")
    ring: list[int | None] = list(participants)
    if len(ring) % 2:
        ring.append(None)  # the "bye": whoever meets it sits the round out
    m = len(ring)
    rounds: list[list[Pair]] = []
    for _ in range(m - 1):
        pairs: list[Pair] = []
        for i in range(m // 2):
            a, b = ring[i], ring[m - 1 - i]
            if a is not None and b is not None:
                pairs.append((min(a, b), max(a, b)))
        rounds.append(pairs)
        ring = [ring[0], ring[-1], *ring[1:-1]]  # fix the first, rotate the rest by one
    return rounds


def serial(rounds: list[list[Pair]]) -> list[list[Pair]]:
    """The same pairs one at a time: one round per pair, in schedule order."""
    return [[pair] for r in rounds for pair in r]


def node_of(entry: dict[str, Any]) -> str:
    """The node of a rank, from its header (or its entry in a result's `ranks`): `node_rank` when
    the launcher gave one (several agents can share a host name), else the host name."""
    node_rank = entry.get("node_rank")
    host = entry.get("hostname")
    if node_rank is not None:
        return f"node {node_rank} ({host})" if host else f"node {node_rank}"
    return str(host) if host is not None else "unknown host"
