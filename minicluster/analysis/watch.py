"""A snapshot of a running job from its tailed rank files: progress, rates, stalls, stragglers.

Definitions (the README's "Watching a running job" says the same):

- A rank's node is its header's `node_rank` (torchrun's group rank) when present (shown with
  the hostname), else its hostname.
- Progress: the job's steps done = the lowest (last recorded step + 1) over its ranks, of
  warm-up + measured steps; ETA = steps left / the median over ranks of their rate.
- A rank's rate: steps/s over its last `window` step records, (last - first step) /
  (t_unix_s of the last - of the first). Recent p50s: medians over the window's measured
  (non-warm-up) steps.
- Idle: seconds since the rank's last step record (`t_unix_s`, the rank's clock) on this
  machine's clock; a live watch corrects it by the smallest delay it saw between a step being
  stamped and being read (node clock skew, a shared filesystem's delay).
- Stalled rank, job stall, straggler: `analysis.watch_rules` (a rank idle past the stall
  window while the others advance; every running rank idle; aggregation's straggler rule
  on the windows, once they span enough of the job).
"""

from __future__ import annotations

import statistics
import warnings
from datetime import datetime
from typing import Any

import numpy as np

from minicluster.analysis import contention, envelope
from minicluster.analysis.rank_status import PEER_ERROR
from minicluster.analysis.steps import r4
from minicluster.analysis.tail import RankTail, RunTail, Windows, node_of
from minicluster.analysis.verdicts import after_the_fact
from minicluster.analysis.verdicts import exit_code as result_exit_code
from minicluster.analysis.watch_rules import judge_stragglers, live_culprits, mark_stalls
from minicluster.core import clock
from minicluster.core.errors import InputError
from minicluster.core.exit_policy import code_for
from minicluster.result.model import RunResult

FORMAT = "minicluster-watch/1"
MAX_ERRORS = 5  # of an ended run's errors, in the snapshot


def snapshot(
    tail: RunTail,
    now_s: float,
    stall_after_s: float,
    result: RunResult | None = None,
    planned_ranks: int | None = None,
) -> dict[str, Any]:
    """The job as its rank files show it at `now_s` (this machine's `time.time()`).

    `result`: the run's `result.json` once it exists (the run ended); `planned_ranks`: the world
    size the launcher planned (config.json), used until a rank header says it. InputError for a
    collectives job (it records no training steps) or a config the ranks recorded that does not
    load.
    """
    headers = [t.header for t in tail.ranks.values() if t.header is not None]
    snap: dict[str, Any] = {
        "format": FORMAT,
        "run_dir": str(tail.run_dir),
        "taken_at": clock.utc_iso(now_s),
        "window_steps": tail.window,
        "stall_after_s": stall_after_s,
    }
    if not headers:
        world = planned_ranks or len(tail.ranks)
        rows = [_waiting_row(rank) for rank in range(world)]
        return {**snap, **_empty(world, rows, tail.warnings())}
    head0 = next((h for h in headers if h["rank"] == 0), min(headers, key=lambda h: h["rank"]))
    if head0.get("job") == "collectives":
        raise InputError(
            f"{tail.run_dir} runs the collectives benchmark: watch follows training steps "
            "(its progress is in the launching terminal)"
        )
    cfg = envelope.run_config(head0)
    world = max(h["world_size"] for h in headers)
    total = cfg.steps.warmup + cfg.steps.measured
    windows = Windows([t for t in tail.ranks.values() if t.header is not None])
    window = _window_stats(windows)
    rows = [
        _rank_row(tail.ranks[r], now_s, total, window[r]) if r in window else _waiting_row(r)
        for r in range(world)
    ]
    if result is None:
        job_stall = mark_stalls(rows, stall_after_s)
    else:
        job_stall = None
        _after_the_end(rows, result)
    # A rank left behind by the others has no steps in common with them: the straggler rule
    # (which compares ranks step by step) runs on the ranks still in step.
    left_behind = {r["rank"] for r in rows if r["stalled"]} if job_stall is None else set()
    stragglers, straggler_check, live = judge_stragglers(windows, left_behind, world, cfg.checks)
    culprits: list[dict[str, Any]] = []
    cleared: dict[int, dict[str, Any]] = {}
    if result is None and live is not None:  # (one rank, one cause: before a straggler is marked)
        culprits, cleared, stragglers = live_culprits(live, cfg.checks, stragglers)
    by_rank = {row["rank"]: row for row in rows}
    if result is not None:
        # the run's own verdict over all its steps stands beside the last window's; a rank the
        # run left NOT JUDGED for host CPU contention is not named by the window (one cause)
        busy_ranks = {h.rank for h in result.host_contention or [] if h.finding != "slow_link"}
        stragglers = [s for s in stragglers if s["rank"] not in busy_ranks]
        named = {s["rank"] for s in stragglers}
        for verdict in result.stragglers:
            if verdict.rank in by_rank and verdict.rank not in named:
                stragglers.append({**verdict.to_json(), "over": "run"})
    for s in stragglers:
        by_rank[s["rank"]]["straggler"] = True
    # host CPU contention (`analysis.contention`): a late rank not named, NOT JUDGED
    busy = [
        _contended(by_rank[r], "straggler", ev)
        for r, ev in (live.contended if live else {}).items()
    ]
    if result is not None:
        culprits = [c.to_json() | {"over": "run"} for c in result.culprits or []]
        # the run's own, over all its steps: its verdict stands (a straggler of the last
        # window whose slowness was contention is still not named there)
        busy = [h.to_json() | {"over": "run"} for h in result.host_contention or []]
    else:
        busy += [_contended(by_rank[r], "culprit", ev) for r, ev in cleared.items()]
    slowest = _slowest(rows)
    stalled = [_named(r, "last_step", "idle_s") for r in rows if r["stalled"]]
    failed = _first_failure_first(
        [
            _named(r, "last_step", "error", "last_record_unix_s")
            for r in rows
            if r["state"] == "failed"
        ],
        result,
    )
    problems = [
        name
        for name, present in (
            ("stalled", stalled),
            ("straggling", stragglers),
            ("culprit", culprits),
            ("failed", failed),
        )
        if present
    ]
    nodes = _nodes(rows)
    ended = ended_section(result) if result is not None else None
    not_judged = None
    if ended is not None:
        code = ended["exit_code"]
        # the result's verdict stands: every finding that sets its exit code (a straggler the
        # last window no longer shows, a failed validation, a slow link) is a problem, so
        # `healthy`, `problems` and the exit code agree
        add_problems(problems, [v for v in ended["verdicts"] if v != "not_judged"])
        if "not_judged" in ended["verdicts"]:  # too few steps, or host CPU contention
            not_judged = ended["not_judged"]
        if busy:
            not_judged = _contention_text(busy, not_judged)
    else:
        # Too short a window to judge stragglers and culprits is no verdict of health: "not
        # judged yet (why)", and the policy's `not_judged` code, never the healthy 0 a CI
        # script would read as a pass (a problem found, a stalled rank, still decides: 1).
        if not problems and not straggler_check["applied"]:
            not_judged = straggler_check["reason"]
            if rows and all(r["state"] in ("finished", "finishing") for r in rows):
                not_judged += (
                    "; every rank is done: the run's verdict over all its steps comes with its "
                    "result.json (`minicluster aggregate DIR` writes it if the run never does)"
                )
        if busy:  # a late rank not named: not judged, whatever else was found
            not_judged = _contention_text(busy, not_judged)
        code = code_for(["live_problem"] if problems else ["not_judged"] if not_judged else [])
    return {
        **snap,
        "run_id": head0.get("run_id"),
        "world_size": world,
        "ranks_reporting": len(headers),
        "state": "ended" if ended else "running",
        "healthy": not problems and not_judged is None,
        "problems": problems,
        "not_judged": not_judged,
        "host_contention": busy,
        "progress": _progress(rows, total, bool(stalled), ended is not None),
        "job_stall": job_stall,
        "stalled": stalled,
        "stragglers": [{**s, "node": by_rank[s["rank"]]["node"]} for s in stragglers],
        "straggler_check": straggler_check,
        "culprits": culprits,
        "slowest": slowest,
        "failed": failed,
        "nodes": nodes,
        "ranks": rows,
        "worst": _worst_first(rows),
        "worst_nodes": _worst_nodes_first(nodes),
        "ended": ended,
        "exit_code": code,
        "warnings": tail.warnings(),
    }


def _contended(row: dict[str, Any], finding: str, ev: dict[str, Any]) -> dict[str, Any]:
    """A live `host_contention` entry: the finding not named (straggler, culprit), the rank, its
    node, the evidence (`contention.judge_rank`) and its line, as aggregation words it."""
    return {
        "finding": finding,
        "rank": row["rank"],
        "node": row["node"],
        **{k: v for k, v in ev.items() if k != "contention"},
        "text": contention.rank_line(finding, row["rank"], ev, row["node"]),
        "over": "window",
    }


def _contention_text(busy: list[dict[str, Any]], reason: str | None) -> str:
    """`not_judged` with host CPU contention: the reason already there (too few steps), then
    each finding's line."""
    lines = [reason] if reason else []
    return "; ".join(lines + [f"host CPU contention: {b['text']}" for b in busy])


def _empty(world: int, rows: list[dict[str, Any]], warnings: list[str]) -> dict[str, Any]:
    """A snapshot before any rank wrote its header: every rank waiting."""
    return {
        "run_id": None,
        "world_size": world,
        "ranks_reporting": 0,
        "state": "waiting",
        "healthy": False,
        "problems": [],
        "not_judged": "no rank has recorded a step yet",
        "progress": {
            "steps_done": 0,
            "steps_total": None,
            "percent": None,
            "steps_per_sec": None,
            "eta_s": None,
            "eta_reason": "no rank has written its header yet",
        },
        "job_stall": None,
        "stalled": [],
        "stragglers": [],
        "culprits": [],
        "host_contention": [],
        "straggler_check": None,
        "slowest": None,
        "failed": [],
        "nodes": [],
        "ranks": rows,
        "worst": [],
        "worst_nodes": [],
        "ended": None,
        "exit_code": code_for(["not_judged"]),
        "warnings": warnings,
    }


def _waiting_row(rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "node": None,
        "hostname": None,
        "node_rank": None,
        "state": "waiting",
        "last_step": None,
        "warmup": None,
        "steps_per_sec": None,
        "step_time_ms_p50": None,
        "compute_ms_p50": None,
        "comm_ms_p50": None,
        "idle_s": None,
        "stalled": False,
        "straggler": False,
        "slowest": False,
        "error": None,
        "last_record_unix_s": None,
    }


def _window_stats(windows: Windows) -> dict[int, tuple[Any, ...]]:
    """Per rank over its kept window, for all ranks at once ([rank x step] matrices): the rate,
    the p50s over measured steps (WINDOW_STATS), whether its last step was a warm-up step."""
    if not windows.tails:
        return {}
    col = windows.col
    measured = col["warmup"] == 0.0  # a NaN row (window not full yet) is not measured
    p50 = {
        k: _row_nanmedian(np.where(measured, col[k], np.nan))
        for k in ("step_time_ms", "compute_ms", "comm_ms")
    }
    last_warmup = (col["warmup"][:, -1] == 1.0).tolist()
    warmup = [w if t.kept else None for t, w in zip(windows.tails, last_warmup, strict=True)]
    values = zip(
        _rounded(_rates(col["step"], col["t_unix_s"])),
        *(_rounded(v) for v in p50.values()),
        warmup,
        strict=True,
    )
    return {t.rank: v for t, v in zip(windows.tails, values, strict=True)}


def _row_nanmedian(matrix: np.ndarray) -> np.ndarray:
    """`np.nanmedian(matrix, axis=1)` (NaN for a row of NaN, without a warning); the rows
    without NaN (every step of a full window measured: most) in one vectorised median."""
    out = np.full(matrix.shape[0], np.nan)
    whole = ~np.isnan(matrix).any(axis=1)
    if matrix.shape[1]:
        out[whole] = np.median(matrix[whole], axis=1)
    if not whole.all():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no measured step yet: NaN
            out[~whole] = np.nanmedian(matrix[~whole], axis=1)
    return out


WINDOW_STATS = ("steps_per_sec", "step_time_ms_p50", "compute_ms_p50", "comm_ms_p50")


def _rank_row(
    tail: RankTail, now_s: float, total_steps: int, window: tuple[Any, ...]
) -> dict[str, Any]:
    """A rank's row; `window`: its WINDOW_STATS and whether its last step was a warm-up step."""
    steps_per_sec, step_time_p50, compute_p50, comm_p50, warmup = window
    header = tail.header
    assert header is not None  # only ranks with a header have window statistics
    summary = tail.summary
    last = tail.last_step
    if summary is not None:
        state = "finished" if summary.get("status") == "ok" else "failed"
    elif last is not None and last >= total_steps - 1:
        state = "finishing"  # every step recorded: the final gather, a validation, the teardown
    else:
        state = "running"
    t_ref = tail.t_last_s
    if t_ref is None:
        t_ref = _iso_to_unix(header.get("created_at"))  # started, no step yet
    if t_ref is not None and tail.lag_s is not None:
        t_ref += tail.lag_s
    return {  # _waiting_row's keys, in its order
        "rank": tail.rank,
        "node": tail.node if tail.node is not None else node_of(header),
        "hostname": header.get("hostname"),
        "node_rank": header.get("node_rank"),
        "state": state,
        "last_step": last,
        "warmup": warmup,
        "steps_per_sec": steps_per_sec,
        "step_time_ms_p50": step_time_p50,
        "compute_ms_p50": compute_p50,
        "comm_ms_p50": comm_p50,
        "idle_s": r4(max(0.0, now_s - t_ref)) if t_ref is not None else None,
        "stalled": False,
        "straggler": False,
        "slowest": False,
        "error": (summary or {}).get("error") if state == "failed" else None,
        "last_record_unix_s": t_ref,
    }


def _after_the_end(rows: list[dict[str, Any]], result: RunResult) -> None:
    """Once the run wrote its result no rank runs, and the result's verdict on each rank stands:
    the culprit `failed`, a rank whose collective broke because of it `aborted`, a rank stopped by
    Ctrl-C `interrupted`; one that left no summary and is not named died or was killed."""
    failed = set(result.failed_ranks)
    verdict = {r.rank: r.status for r in result.ranks}
    how = {e.rank: e.evidence for e in result.failure_order or [] if e.cause}
    for r in rows:
        said = verdict.get(r["rank"])
        if said in ("aborted", "interrupted"):
            r["state"] = said
            continue
        if r["state"] in ("running", "finishing", "waiting"):
            r["state"] = "failed" if r["rank"] in failed else "ended"
            if r["state"] == "failed":
                r["error"] = how.get(
                    r["rank"], "no summary: the process died or was killed (see the run's errors)"
                )


def _first_failure_first(
    failed: list[dict[str, Any]], result: RunResult | None
) -> list[dict[str, Any]]:
    """The failed ranks, the first failure first: in the result's failure order once the run
    ended; while it runs, a rank whose own error is not a peer's (a collective that lost the
    failed rank) before one whose is, then by when each last wrote."""
    if result is not None and result.failure_order:
        place = {e.rank: i for i, e in enumerate(result.failure_order)}
        return sorted(failed, key=lambda f: (place.get(f["rank"], len(place)), f["rank"]))
    return sorted(
        failed,
        key=lambda f: (
            bool(PEER_ERROR.search(str(f["error"] or ""))),
            f["last_record_unix_s"] is None,
            f["last_record_unix_s"] or 0.0,
            f["rank"],
        ),
    )


def _progress(rows: list[dict[str, Any]], total: int, stalled: bool, ended: bool) -> dict[str, Any]:
    done = min((r["last_step"] + 1 if r["last_step"] is not None else 0) for r in rows)
    rates = [r["steps_per_sec"] for r in rows if r["steps_per_sec"] and r["state"] == "running"]
    rate = r4(statistics.median(rates)) if rates else None
    eta, why = None, None
    if done >= total or ended:
        eta, why = (0.0, None) if done >= total else (None, "the run ended")
    elif stalled:
        why = "a rank is stalled"
    elif rate is None:
        why = "no running rank has two steps in its window yet"
    else:
        eta = r4((total - done) / rate)
    return {
        "steps_done": done,
        "steps_total": total,
        "percent": r4(100.0 * done / total) if total else None,
        "steps_per_sec": rate,
        "eta_s": eta,
        "eta_reason": why,
    }


def _slowest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rank with the highest recent compute p50 (marked `row["slowest"]`), of 2 or more."""
    timed = [r for r in rows if r["compute_ms_p50"] is not None]
    if len(timed) < 2:
        return None
    slow = max(timed, key=lambda r: r["compute_ms_p50"])
    slow["slowest"] = True
    others = statistics.median(r["compute_ms_p50"] for r in timed if r is not slow)
    return {
        "rank": slow["rank"],
        "node": slow["node"],
        "compute_ms_p50": slow["compute_ms_p50"],
        "others_compute_ms_p50": r4(others),
        "excess_pct": r4(100.0 * (slow["compute_ms_p50"] - others) / others) if others else None,
    }


def _named(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {"rank": row["rank"], "node": row["node"], **{k: row[k] for k in keys}}


def _nodes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per node: its ranks' spread of progress, median rate and step time, worst compute."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["node"] is not None:
            groups.setdefault(r["node"], []).append(r)
    out = []
    for node, members in groups.items():
        steps = [r["last_step"] for r in members if r["last_step"] is not None]
        computes = [r for r in members if r["compute_ms_p50"] is not None]
        worst = max(computes, key=lambda r: r["compute_ms_p50"]) if computes else None
        out.append(
            {
                "node": node,
                "hostname": members[0]["hostname"],
                "node_rank": members[0]["node_rank"],
                "ranks": len(members),
                "last_step_min": min(steps, default=None),
                "last_step_max": max(steps, default=None),
                "steps_per_sec_median": _median_of(members, "steps_per_sec"),
                "step_time_ms_p50_median": _median_of(members, "step_time_ms_p50"),
                "compute_ms_p50_max": worst["compute_ms_p50"] if worst else None,
                "slowest_rank": worst["rank"] if worst else None,
                "stalled": sum(r["stalled"] for r in members),
                "failed": sum(r["state"] == "failed" for r in members),
                "stragglers": sum(r["straggler"] for r in members),
            }
        )
    return sorted(out, key=lambda n: (n["node_rank"] is None, n["node_rank"] or 0, n["node"]))


def _worst_first(rows: list[dict[str, Any]]) -> list[int]:
    """Ranks ordered worst first: failed, stalled, stragglers, waiting, then the highest compute
    p50 and the lowest last step (what a collapsed view keeps)."""

    def key(r: dict[str, Any]) -> tuple[int, float, float]:
        tier = (
            0
            if r["state"] == "failed"
            else 1
            if r["stalled"]
            else 2
            if r["straggler"]
            else 3
            if r["state"] == "waiting"
            else 4
        )
        compute = r["compute_ms_p50"] if r["compute_ms_p50"] is not None else -1.0
        last = r["last_step"] if r["last_step"] is not None else -1
        return tier, -compute, last

    return [r["rank"] for r in sorted(rows, key=key)]


def _worst_nodes_first(nodes: list[dict[str, Any]]) -> list[str]:
    """Nodes ordered worst first: failed, stalled, straggling ranks, then the lowest progress
    and the highest compute p50."""

    def key(n: dict[str, Any]) -> tuple[int, int, int, float, float]:
        last = n["last_step_min"] if n["last_step_min"] is not None else -1
        compute = n["compute_ms_p50_max"] if n["compute_ms_p50_max"] is not None else -1.0
        return -n["failed"], -n["stalled"], -n["stragglers"], last, -compute

    return [n["node"] for n in sorted(nodes, key=key)]


# A result's verdict (`core.exit_policy`) as a watch problem, where the live view names it so.
_PROBLEM_OF = {"straggler": "straggling", "run_failed": "failed"}


def add_problems(problems: list[str], verdicts: list[str]) -> None:
    """Add to `problems` each of an ended result's `verdicts` not already there."""
    for verdict in verdicts:
        name = _PROBLEM_OF.get(verdict, verdict)
        if name not in problems:
            problems.append(name)


def ended_section(result: RunResult) -> dict[str, Any]:
    """What the run's result says at its end: `verdicts`, the findings that set its exit code;
    `run_exit_code`, the code `minicluster run` gave it, and `exit_code`, the watch's: the same
    (one policy, `core.exit_policy`), except for a run that was interrupted: the watch was not,
    so it exits by what the result found (`incomplete`, 1, when the planned steps did not all
    run), as `aggregate` does."""
    run_code = result_exit_code(result)
    found = after_the_fact(result)
    code = code_for(found)
    stragglers = [s.rank for s in result.stragglers]
    culprits = [c.rank for c in result.culprits or []]
    return {
        "status": result.status,
        "interrupted": bool(result.interrupted),
        "failed_ranks": list(result.failed_ranks),
        "stragglers": stragglers,
        "culprits": culprits,
        "faults_detected": [d.to_json() for d in result.faults.detected],
        "errors": result.errors[:MAX_ERRORS],
        "verdicts": found,
        # why the straggler and culprit checks were not judged (too few steps), else None
        "not_judged": result.not_judged,
        "run_exit_code": run_code,
        "exit_code": code,
    }


def _rates(steps: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Per row: (last - first step) / (t of the last - t of the first), over the stamped steps;
    NaN with fewer than two or no time between them."""
    stamped = ~np.isnan(t_s)
    rows = np.arange(t_s.shape[0])
    first = stamped.argmax(axis=1)
    last = t_s.shape[1] - 1 - stamped[:, ::-1].argmax(axis=1)
    dt = t_s[rows, last] - t_s[rows, first]
    with np.errstate(all="ignore"):
        rate = (steps[rows, last] - steps[rows, first]) / dt
    return np.where((stamped.sum(axis=1) >= 2) & (dt > 0), rate, np.nan)


def _rounded(values: np.ndarray) -> list[float | None]:
    """To 4 decimals as Python floats, NaN as None (the JSON the snapshot is)."""
    return [None if v != v else v for v in np.round(values, 4).tolist()]  # NaN != NaN


def _median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return r4(statistics.median(values)) if values else None


def _iso_to_unix(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None
