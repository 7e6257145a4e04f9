"""The live view of `minicluster watch`: a watch snapshot rendered for a terminal (renders only).

One row per rank, grouped by node when there are several; stalled and failed ranks in red, a
straggler in yellow, the slowest rank marked. Above COLLAPSE_ABOVE ranks the table keeps the
worst SHOWN_WHEN_COLLAPSED ranks (the snapshot's `worst` order) and adds a per-node summary,
itself cut to the worst SHOWN_WHEN_COLLAPSED nodes (`worst_nodes`) when there are more.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from minicluster.report.fit import Fitted
from minicluster.report.text import completion, ellipsize, fmt_num, headline, job_links

COLLAPSE_ABOVE = 32
SHOWN_WHEN_COLLAPSED = 16
ERROR_CHARS = 160

_STATE_STYLE = {"failed": "bold red", "waiting": "dim", "finished": "green", "finishing": "green"}


def view(snap: dict[str, Any]) -> RenderableType:
    """The whole live view: header, what is wrong, the rank table (and the node summary)."""
    parts: list[RenderableType] = [_header(snap)]
    parts += [Text(line, style=style) for line, style in problem_lines(snap)]
    if snap.get("not_judged") and not snap.get("host_contention"):  # (those are lines above)
        parts.append(Text(f"{_not_judged(snap)}: {snap['not_judged']}", style="yellow"))
    rows = {r["rank"]: r for r in snap["ranks"]}
    collapsed = len(rows) > COLLAPSE_ABOVE
    if collapsed:
        shown = [rows[r] for r in snap["worst"][:SHOWN_WHEN_COLLAPSED]]
        title = (
            f"worst {len(shown)} of {len(rows)} ranks (failed, stalled, stragglers, then the "
            "highest compute p50)"
        )
    else:
        shown, title = snap["ranks"], "ranks"
    parts.append(_rank_table(shown, title, not collapsed, snap))
    if collapsed or len(snap["nodes"]) > 1:
        nodes = {n["node"]: n for n in snap["nodes"]}
        if len(nodes) > SHOWN_WHEN_COLLAPSED:
            shown_nodes = [nodes[name] for name in snap["worst_nodes"][:SHOWN_WHEN_COLLAPSED]]
            title = f"worst {len(shown_nodes)} of {len(nodes)} nodes"
        else:
            shown_nodes, title = snap["nodes"], "nodes"
        parts.append(_node_table(shown_nodes, title))
    for warning in snap["warnings"]:
        parts.append(Text(f"warning: {warning}", style="dim"))
    return Group(*parts)


def _not_judged(snap: dict[str, Any]) -> str:
    """ "not judged" once the run ended (its result's verdict: nothing more will come), "not
    judged yet" while it runs (docs/watch.md, exit codes)."""
    return "not judged" if snap["state"] == "ended" else "not judged yet"


def status_line(snap: dict[str, Any]) -> str:
    """One line per refresh (for a piped output): time, progress, what is wrong."""
    wrong = [line for line, _ in problem_lines(snap)]
    if not wrong and snap.get("not_judged"):
        wrong = [f"{_not_judged(snap)} ({snap['not_judged']})"]
    return f"{snap['taken_at'][11:19]} {_progress_text(snap)} | " + (
        "; ".join(wrong) if wrong else "healthy"
    )


def final_lines(snap: dict[str, Any]) -> list[str]:
    """How the watch ended: the run's own verdict when it wrote its result, else the stall."""
    sweep = snap.get("sweep")
    ended = sweep["ended"] if sweep else snap["ended"]
    if ended is None:
        return [
            f"watch: no rank file grew for {fmt_num(snap['stall_after_s'])} s and there is no "
            f"result.json: stopped watching (exit {snap['exit_code']})"
        ]
    what = "sweep" if sweep else "run"
    lines = [f"watch: the {what} ended: {_ended_verdict(ended, what)} (exit {snap['exit_code']})"]
    if ended["failed_ranks"]:
        lines.append(f"  failed ranks: {', '.join(map(str, ended['failed_ranks']))}")
    for fault in ended["faults_detected"]:
        step = f" at step {fault['step']}" if fault.get("step") is not None else ""
        if fault["kind"] == "slow_link" and isinstance(fault.get("peer"), int):
            a, b = sorted((fault["rank"], fault["peer"]))
            where = f"on the link between ranks {a} and {b}"
        elif fault.get("rank") is not None:
            where = f"rank {fault['rank']}"
        elif fault.get("ranks"):
            where = "ranks " + ", ".join(map(str, fault["ranks"]))
        else:
            where = job_links(snap.get("world_size"))
        lines.append(f"  detected: {fault['kind']} {where}{step}: {fault['evidence']}")
    lines += [f"  error: {_cut(e)}" for e in ended["errors"]]
    return lines


def _ended_verdict(ended: dict[str, Any], what: str = "run") -> str:
    """The ended run's verdict first, then how far it got: `SLOW LINK (run finished)`."""
    verdicts = ended.get("verdicts") or []
    done = completion(ended["status"], ended.get("interrupted"))
    return f"{headline(verdicts)} ({what} {done})"


def problem_lines(snap: dict[str, Any]) -> list[tuple[str, str]]:
    """(sentence, style) for each thing wrong now: job stall, stalled, straggling, culprit, a late
    rank NOT JUDGED for host CPU contention, and failed ranks."""
    out = []
    stall = snap["job_stall"]
    if stall is not None and stall.get("never_recorded"):
        out.append(
            (
                f"JOB STALLED: no rank recorded anything for {fmt_num(stall['idle_s'])} s; "
                f"{stall['reason']}",
                "bold red",
            )
        )
    elif stall is not None:
        ranks = _ranks(stall["ranks"])
        why = (
            f"behind the others: {_ranks(stall['behind'])}"
            if stall["behind"]
            else stall.get("reason", "")
        )
        out.append(
            (
                f"JOB STALLED: no running rank recorded a step for {fmt_num(stall['idle_s'])} s "
                f"(ranks {ranks}, last step {stall['last_step']}); {why}",
                "bold red",
            )
        )
    else:
        for s in snap["stalled"]:
            out.append(
                (
                    f"STALLED: rank {s['rank']} on {s['node']} at step {s['last_step']}, no new "
                    f"step for {fmt_num(s['idle_s'])} s while the others advance",
                    "bold red",
                )
            )
    span = (snap.get("straggler_check") or {}).get("span_s")
    for s in snap["stragglers"]:
        out.append(
            (
                f"STRAGGLER: rank {s['rank']} on {s['node']}: compute p50 "
                f"{fmt_num(s['compute_ms_median'])} ms vs {fmt_num(s['others_compute_ms_median'])}"
                f" ms on the others (+{fmt_num(s['excess_pct'])}%) "
                + (
                    "over the whole run"
                    if s.get("over") == "run"
                    else f"over the last {fmt_num(span)} s"
                )
                + f", slowest in {s['slowest_in_steps']} of "
                f"{s['steps_compared']} steps (sign test p={s['sign_test_p']:.3g})",
                "bold yellow",
            )
        )
    for c in snap.get("culprits", []):
        where = (
            "over the whole run" if c.get("over") == "run" else f"over the last {fmt_num(span)} s"
        )
        summary = c.get("summary") or f"rank {c['rank']} cost the run {fmt_num(c['cost_pct'])}%"
        out.append((f"CULPRIT: {summary} ({where}; {c['evidence']})", "bold yellow"))
    for h in snap.get("host_contention") or []:  # late for the host's other processes: NOT JUDGED
        where = (
            "over the whole run" if h.get("over") == "run" else f"over the last {fmt_num(span)} s"
        )
        out.append((f"NOT JUDGED: {h['text']} ({where})", "yellow"))
    for f in snap["failed"]:
        out.append(
            (
                f"FAILED: rank {f['rank']} on {f['node']} "
                + (
                    "before its first step"
                    if f["last_step"] is None
                    else f"after step {f['last_step']}"
                )
                + ": "
                f"{_cut(str(f['error']))}",
                "bold red",
            )
        )
    return out


def _header(snap: dict[str, Any]) -> Text:
    nodes = len(snap["nodes"])
    head = Text()
    head.append("minicluster watch ", style="bold")
    head.append(snap["run_dir"], style="cyan")
    sweep = snap.get("sweep")
    if sweep:
        head.append(f"  sweep run {sweep['index']}/{sweep['runs']} ({sweep['run']})")
    head.append(
        f"  {snap['ranks_reporting']}/{snap['world_size']} ranks reporting"
        + (f" on {nodes} node{'s' if nodes != 1 else ''}" if nodes else "")
        + f"  {snap['taken_at']}\n"
    )
    head.append(_progress_text(snap))
    if snap["state"] == "ended":
        ended = snap["ended"]
        head.append(f"  ended: {_ended_verdict(ended)}", style="bold")
    elif snap["healthy"] and snap["state"] == "running":
        head.append("  healthy", style="green")
    elif not snap["problems"] and snap.get("host_contention"):
        head.append("  not judged: host CPU contention (see below)", style="yellow")
    elif not snap["problems"] and snap.get("not_judged"):
        head.append("  not judged yet (see below)", style="yellow")
    return head


def _progress_text(snap: dict[str, Any]) -> str:
    p = snap["progress"]
    if p["steps_total"] is None:
        return f"waiting for the ranks ({p['eta_reason']})"
    eta = (
        f"ETA {_duration(p['eta_s'])}" if p["eta_s"] is not None else f"ETA n/a ({p['eta_reason']})"
    )
    return (
        f"step {p['steps_done']}/{p['steps_total']} ({fmt_num(p['percent'])}%)  "
        f"{fmt_num(p['steps_per_sec'])} steps/s  {eta}"
    )


_RANK_COLUMNS = (
    ("node", False),
    ("rank", True),
    ("state", False),
    ("last step", True),
    ("steps/s", True),
    ("step", True),
    ("compute", True),
    ("all-reduce", True),
    ("idle s", True),
)


def _rank_table(
    rows: list[dict[str, Any]], title: str, grouped: bool, snap: dict[str, Any]
) -> Fitted:
    """The rank table fitted to the terminal: no number is cut; the least needed columns are left
    out whole and named (the node column first where every rank is on one node)."""
    title = f"{title}; times in ms, p50 over each rank's last {snap['window_steps']} steps"
    cells = [
        [
            str(r["node"] or "?"),
            str(r["rank"]),
            _state(r, snap["slowest"]),
            fmt_num(r["last_step"]),
            fmt_num(r["steps_per_sec"]),
            fmt_num(r["step_time_ms_p50"]),
            fmt_num(r["compute_ms_p50"]),
            fmt_num(r["comm_ms_p50"]),
            f"{r['idle_s']:.1f}" if r["idle_s"] is not None else "n/a",
        ]
        for r in rows
    ]
    styles = [_row_style(r) for r in rows]
    names = [name for name, _ in _RANK_COLUMNS]

    def build(cols: list[str]) -> Table:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for name, right in _RANK_COLUMNS:
            if name in cols:
                table.add_column(name, justify="right" if right else "left", no_wrap=True)
        keep = [names.index(c) for c in cols]
        previous = None
        for r, row, style in zip(rows, cells, styles, strict=True):
            if grouped and previous is not None and r["node"] != previous:
                table.add_section()
            previous = r["node"]
            table.add_row(*(Text(row[i]) for i in keep), style=style)
        return table

    one_node = len({r["node"] for r in rows}) <= 1
    droppable = ["idle s", *(["node"] if one_node else []), "all-reduce", "last step", "compute"]
    return Fitted(build, names, droppable, lambda: (cells, styles), title, "--json has")


_NODE_COLUMNS = (
    "node",
    "ranks",
    "last step min-max",
    "steps/s median",
    "step p50 ms median",
    "compute p50 ms max (rank)",
    "stalled",
    "stragglers",
    "failed",
)


def _node_table(nodes: list[dict[str, Any]], title: str) -> Fitted:
    cells = [
        [
            str(n["node"]),
            str(n["ranks"]),
            f"{fmt_num(n['last_step_min'])}-{fmt_num(n['last_step_max'])}",
            fmt_num(n["steps_per_sec_median"]),
            fmt_num(n["step_time_ms_p50_median"]),
            f"{fmt_num(n['compute_ms_p50_max'])} ({fmt_num(n['slowest_rank'])})",
            str(n["stalled"]),
            str(n["stragglers"]),
            str(n["failed"]),
        ]
        for n in nodes
    ]
    styles = [
        "bold red" if n["stalled"] or n["failed"] else "yellow" if n["stragglers"] else None
        for n in nodes
    ]

    def build(cols: list[str]) -> Table:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in cols:
            table.add_column(name, justify="left" if name == "node" else "right", no_wrap=True)
        keep = [_NODE_COLUMNS.index(c) for c in cols]
        for row, style in zip(cells, styles, strict=True):
            table.add_row(*(Text(row[i]) for i in keep), style=style)
        return table

    droppable = ("last step min-max", "steps/s median", "compute p50 ms max (rank)")
    return Fitted(build, _NODE_COLUMNS, droppable, lambda: (cells, styles), title, "--json has")


def _state(row: dict[str, Any], slowest: dict[str, Any] | None) -> str:
    state = "warm-up" if row["warmup"] and row["state"] == "running" else row["state"]
    if row["stalled"]:
        state = "STALLED"
    if row["straggler"]:
        state += " STRAGGLER"
    elif row["slowest"] and slowest is not None:
        state += f" slowest +{fmt_num(slowest['excess_pct'])}%"
    return state


def _row_style(row: dict[str, Any]) -> str | None:
    if row["stalled"] or row["state"] == "failed":
        return "bold red"
    if row["straggler"]:
        return "bold yellow"
    return _STATE_STYLE.get(row["state"])


def _ranks(ranks: list[int]) -> str:
    shown = ", ".join(map(str, ranks[:8]))
    return shown + (f" and {len(ranks) - 8} more" if len(ranks) > 8 else "")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _cut(text: str) -> str:
    return ellipsize(text, ERROR_CHARS)
