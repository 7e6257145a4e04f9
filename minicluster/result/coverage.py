"""How much of a run a result covers: the ranks that left records and the records they left.

`aggregate DIR` on a node that holds only its own ranks' files (multi-node without a shared
filesystem) must not replace the complete result rank 0 wrote: a result is replaced only by
one that covers at least as many ranks and records.
"""

from __future__ import annotations

from typing import Any


def coverage(result: dict[str, Any]) -> tuple[int, int]:
    """(ranks with records, records over all ranks: steps, or (op, size) records)."""
    ranks = [r for r in result.get("ranks") or [] if isinstance(r, dict)]
    present = sum(1 for r in ranks if r.get("status") != "missing")
    records = sum(
        int(r.get("steps_recorded") or 0) + int(r.get("collectives_recorded") or 0) for r in ranks
    )
    return present, records


def covers_less(new: dict[str, Any], old: dict[str, Any]) -> str | None:
    """Why `new` covers less of the run than `old` (fewer ranks or fewer records), or None."""
    (new_ranks, new_records), (old_ranks, old_records) = coverage(new), coverage(old)
    if new_ranks < old_ranks:
        return f"{new_ranks} ranks with records against {old_ranks}"
    if new_records < old_records:
        return f"{new_records} records against {old_records}"
    return None
