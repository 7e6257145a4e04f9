"""Which ranks a watch names: stalled ranks, a stalled job, stragglers (with enough evidence).

A stalled rank: running (no summary yet, its last step not the job's last), idle for longer than
the stall window while another rank recorded a step more than the stall window after its last
one. A job stall: every running rank idle for longer than the stall window. A collective waits
for every rank, so a hung rank stops the others at the same step: then the ranks behind the
others (a lower last step, or none) are named, and when there are none the stall says that the
records cannot tell which rank stopped first. Before its first step a rank is given
max(stall window, START_WAIT_S) from its header: start-up has no bound a step has.

A straggler: aggregation's rule (`stragglers.find_stragglers`, one implementation, with its
requirement that the others waited for the rank, `analysis.waited`) on the recent windows, once the steps it compares span STRAGGLER_MIN_SPAN_S of the job. A slowdown
shorter than that (CPU contention, a page-cache flush, a GC pause) moves many consecutive steps
at once, and the rule's sign test counts each of them as independent evidence.

Host CPU contention: a straggler or culprit of the window whose lateness was its threads
waiting for a CPU other processes held is not named but NOT JUDGED, by aggregation's rule
(`contention.gate_stragglers`, `contention.gate_culprits`: one implementation).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from minicluster.analysis import accounting, contention, cost, waited
from minicluster.analysis.records import KnownRows, RankRecords
from minicluster.analysis.steps import StepTable, r4
from minicluster.analysis.stragglers import find_stragglers
from minicluster.analysis.tail import Windows
from minicluster.core.checks import ChecksSection

START_WAIT_S = 120.0
STRAGGLER_MIN_SPAN_S = 5.0


def _never_started(rows: list[dict[str, Any]], stall_after_s: float) -> dict[str, Any] | None:
    """No rank running, some done and the others never wrote a record (an empty journal): once
    the last record is older than the start wait, the job stalled on those ranks (they are
    marked stalled); None before then, or when no rank is waiting."""
    waiting = [r for r in rows if r["state"] == "waiting"]
    idle = [r["idle_s"] for r in rows if r["idle_s"] is not None]
    if not waiting or not idle or min(idle) <= max(stall_after_s, START_WAIT_S):
        return None
    for r in waiting:
        r["stalled"] = True
    done = [r for r in rows if r["state"] != "waiting"]
    return {
        "idle_s": min(idle),
        "last_step": max(
            (r["last_step"] for r in done if r["last_step"] is not None), default=None
        ),
        "ranks": [r["rank"] for r in waiting],
        "behind": [r["rank"] for r in waiting],
        "never_recorded": [r["rank"] for r in waiting],
        "reason": (
            f"{'ranks' if len(waiting) > 1 else 'rank'} {', '.join(str(r['rank']) for r in waiting)}"
            f" never recorded a step, the others "
            + (
                "finished"
                if all(r["state"] in ("finished", "finishing") for r in done)
                else "ended"
            )
        ),
    }


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
        return _never_started(rows, stall_after_s)

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


@dataclass
class InStep:
    """The recent windows of the ranks still in step, built once per refresh for the straggler
    and the culprit rules: their records, step table, and how long the others waited for each
    rank (as aggregation measures it)."""

    records: list[RankRecords]
    table: StepTable
    waits: waited.WaitedFor
    known: dict[str, KnownRows]  # the matrices the records' columns are rows of
    # the stragglers the rule named whose slowness was host CPU contention: evidence by rank
    contended: dict[int, dict[str, Any]]


def judge_stragglers(
    windows: Windows, leave_out: set[int], world_size: int, checks: ChecksSection
) -> tuple[list[dict[str, Any]], dict[str, Any], InStep | None]:
    """(stragglers, check, in_step): `find_stragglers` with the run's thresholds on the windows
    of the ranks not in `leave_out`, when their measured steps span STRAGGLER_MIN_SPAN_S or
    more; `in_step` the windows it judged (None when not applied), for `live_culprits`.

    `check` is `{span_s, min_span_s, applied}` (+ `reason` when not applied): the shortest span
    over those ranks of the `t_unix_s` of their measured steps in the window.
    """
    keep = [i for i, t in enumerate(windows.tails) if t.rank not in leave_out]
    span = 0.0
    if keep:
        measured = windows.col["warmup"][keep] == 0.0
        t_s = np.where(measured, windows.col["t_unix_s"][keep], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a rank with no measured step
            spans = np.nanmax(t_s, axis=1) - np.nanmin(t_s, axis=1)
        if not np.isnan(spans).all():
            span = float(np.nanmin(spans))
    check: dict[str, Any] = {
        "span_s": r4(span),
        "min_span_s": STRAGGLER_MIN_SPAN_S,
        "applied": span >= STRAGGLER_MIN_SPAN_S,
    }
    if not check["applied"]:
        check["reason"] = (
            f"the recent measured steps span {span:.1f} s < {STRAGGLER_MIN_SPAN_S:g} s: too "
            "short to tell a straggler from a passing slowdown (a larger --window spans more)"
        )
        return [], check, None
    # the windows are rows of [rank x step] matrices: the table and the waits are built from
    # them in a few numpy operations (the same as from the records, rank by rank)
    keep, step, warmup, cols, starts = windows.stacked(leave_out)
    records, known = windows.records_and_rows(keep, step, warmup, cols, starts)
    table = StepTable.of_rows(records, world_size, step, warmup, cols, starts)
    step_series = table.series(world_size).get("step_time_ms")
    ok = step_series[~np.isnan(step_series)] if step_series is not None else np.array([])
    waits = waited.measure_rows(
        records,
        table.indices,
        float(np.median(ok)) if ok.size else None,
        step,
        cols["comm_ms"],
        starts,
    )
    found = find_stragglers(
        table,
        checks.straggler_threshold_pct,
        checks.straggler_min_excess_ms,
        checks.straggler_min_steps_pct,
        waited=waits,
        min_waited_pct=checks.min_waited_for_pct,
    )
    # a straggler slow because its threads waited for a CPU other processes held is not named
    cpu = (
        contention.cpu_steps(table.records, sorted(r.rank for r in table.records), table.indices)
        if found
        else None
    )
    found, contended = contention.gate_stragglers(found, table.records, cpu, checks)
    return found, check, InStep(records, table, waits, known, contended)


def live_culprits(
    live: InStep, checks: ChecksSection, stragglers: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """(culprits, contended, stragglers): the culprits of the recent window (aggregation's rule,
    `analysis.cost`, with its requirement that the others waited for the rank, on the windows
    `judge_stragglers` judged), most costly first, each with its evidence and `over: window`;
    the evidence, by rank, of those the cost rule named whose lateness was host CPU contention
    (not named: NOT JUDGED); and the window's `stragglers` (`judge_stragglers`) less a rank
    NOT JUDGED as a culprit (one rank, one cause: `contention.one_cause`, as aggregation)."""
    acc = accounting.account(live.records, live.table, live.known)
    costs = cost.rank_costs(acc, checks.culprit_cost_pct, checks.culprit_min_ms_per_step)
    evidence = waited.gate_culprits(costs, live.waits, checks.min_waited_for_pct)
    # a rank late because its threads waited for a CPU other processes held is not named
    contended = contention.gate_culprits(
        costs, contention.culprits_cpu(acc, costs, live.records, checks)
    )
    stragglers = contention.one_cause(stragglers, live.contended, costs, contended)
    culprits = [
        c | evidence[c["rank"]] | {"min_waited_pct": checks.min_waited_for_pct, "over": "window"}
        for c in cost.culprits(costs, {}, cost.culprit_shapes(acc, costs))
    ]
    return culprits, contended, stragglers
