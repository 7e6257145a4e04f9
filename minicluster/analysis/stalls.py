"""Which running ranks are stalled, and whether the whole job is, from a watch's rank rows.

A stalled rank: running (no summary yet, its last step not the job's last), idle for longer than
the stall window while another rank recorded a step more than the stall window after its last
one. A job stall: every running rank idle for longer than the stall window. A collective waits
for every rank, so a hung rank stops the others at the same step: then the ranks behind the
others (a lower last step, or none) are named, and when there are none the stall says that the
records cannot tell which rank stopped first. Before its first step a rank is given
max(stall window, START_WAIT_S) from its header: start-up has no bound a step has.
"""

from __future__ import annotations

from typing import Any

START_WAIT_S = 120.0


def mark_stalls(rows: list[dict[str, Any]], stall_after_s: float) -> dict[str, Any] | None:
    """Set `row["stalled"]` on the stalled ranks; the job stall, or None.

    Each row holds `rank`, `state` (only `running` ranks can stall), `last_step` (None before
    the first), `idle_s` (seconds since its last record) and `last_record_unix_s` (that
    record's time on this machine's clock). The job stall is `{idle_s, last_step, ranks,
    behind}` (+ `reason` when no rank is behind): the least idle rank's seconds, the highest
    last step, the running ranks, the ranks behind the others.
    """
    running = [r for r in rows if r["state"] == "running" and r["idle_s"] is not None]
    if not running:
        return None

    def idle_too_long(r: dict[str, Any]) -> bool:
        limit = stall_after_s if r["last_step"] is not None else max(stall_after_s, START_WAIT_S)
        return bool(r["idle_s"] > limit)

    stamped = [
        r["last_record_unix_s"]
        for r in rows
        if r["last_record_unix_s"] is not None and r["last_step"] is not None
    ]
    latest = max(stamped, default=None)
    for r in running:
        others_advanced = latest is not None and latest - r["last_record_unix_s"] > stall_after_s
        r["stalled"] = idle_too_long(r) and others_advanced
    if not all(idle_too_long(r) for r in running):
        return None
    for r in running:
        r["stalled"] = True
    top = max((r["last_step"] for r in running if r["last_step"] is not None), default=None)
    behind = [
        r["rank"]
        for r in rows
        if r["state"] == "waiting"
        or r["state"] == "running"
        and (r["last_step"] is None or top is not None and r["last_step"] < top)
    ]
    stall = {
        "idle_s": min(r["idle_s"] for r in running),
        "last_step": top,
        "ranks": [r["rank"] for r in running],
        "behind": behind,
    }
    if not behind and len(running) == 1:
        stall["reason"] = f"rank {running[0]['rank']} is the only rank still running"
    elif not behind:
        stall["reason"] = (
            f"every running rank stopped at step {top}: a collective waits for all ranks, so the "
            "records cannot tell which rank stopped first"
        )
    return stall
