"""What a run report shows, as plain-text tables shared by the terminal, Markdown and HTML renderers.

Everything here is selection and formatting of numbers aggregation already computed; the
text is raw (unescaped): each renderer escapes for its own output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minicluster.core.units import bytes_to_mib
from minicluster.report import pairwise, scaling_text, sections
from minicluster.report.node_table import nodes_table
from minicluster.report.text import (
    TextTable,
    fmt_num,
    node_count,
    node_label,
    node_list,
    platform_rows,
    shown_ranks,
    text,
)


@dataclass
class RunView:
    """The sections of a run report, in the order every renderer shows them."""

    title: str
    status: str
    verdict: str | None  # one line naming what failed and where (the pairwise test's), or None
    summary: TextTable
    sections: list[TextTable]  # what a sweep or a collectives run adds (scaling, bandwidth tables)
    why: list[str]  # a sweep: where each world size's lost step time went, one line each
    why_note: str  # how those lines were derived
    metrics: TextTable
    missing: TextTable
    nodes: TextTable | None  # jobs across two or more nodes (results of schema 1.2 on)
    ranks: TextTable
    stragglers: list[str]
    faults: TextTable
    validation: TextTable | None
    errors: list[str]


def run_view(result: dict[str, Any], max_rank_rows: int | None = None) -> RunView:
    """Pick and format what a report of one run result shows (no statistic is computed here).

    With `max_rank_rows`, the ranks table keeps failed ranks and stragglers, then the ranks with
    the slowest median step, and says how many it left out (the nodes table likewise).
    """
    pw = result.get("pairwise")
    return RunView(
        title=f"minicluster {result_kind(result)} {result['run_id']}",
        status=str(result["status"]),
        verdict=str(pw["verdict"])
        if isinstance(pw, dict) and pw.get("verdict")
        else _verdict(result),
        summary=_summary(result),
        sections=_sections(result, max_rank_rows),
        why=scaling_text.why_lines(result),
        why_note=scaling_text.why_note(result),
        metrics=_metrics(result),
        missing=_missing(result),
        nodes=nodes_table(result, max_rank_rows),
        ranks=_ranks(result, max_rank_rows),
        stragglers=[_straggler_sentence(s) for s in result.get("stragglers") or []],
        faults=_faults(result),
        validation=_validation(result),
        errors=[str(e) for e in result.get("errors") or []],
    )


def result_kind(result: dict[str, Any]) -> str:
    """What made the result: `sweep` (a scaling block), `collectives` (a collectives block),
    `pairwise` (the pairwise link test's block) or `run`."""
    if isinstance(result.get("scaling"), dict):
        return "sweep"
    if isinstance(result.get("pairwise"), dict):
        return "pairwise"
    return "collectives" if isinstance(result.get("collectives"), dict) else "run"


def _sections(result: dict[str, Any], max_rows: int | None = None) -> list[TextTable]:
    """The tables of a sweep (`scaling`), a collectives run (`collectives`) or a pairwise link
    test (`pairwise`; with `max_rows`, the worst pairs instead of a larger matrix)."""
    if isinstance(result.get("pairwise"), dict):
        return pairwise.pairwise_tables(result, max_rows)
    tables: list[TextTable] = []
    scaling = sections.scaling_table(result)
    if scaling is not None:
        tables.append(scaling)
    for table in (
        scaling_text.projection_table(result),
        scaling_text.projection_check_table(result),
    ):
        if table is not None:
            tables.append(table)
    if isinstance(result.get("collectives"), dict):
        tables.append(sections.collectives_table(result))
    return tables


def _summary(result: dict[str, Any]) -> TextTable:
    wl = result["workload"]
    if wl.get("workload_type") == "collectives":
        summary = sections.collectives_summary(result)
        if isinstance(result.get("pairwise"), dict):
            ours = dict((r[0], r) for r in pairwise.pairwise_summary_rows(result))
            summary.rows = [ours.get(r[0], r) for r in summary.rows]
        return summary
    steps = (result.get("config") or {}).get("steps") or {}
    rows = [
        ["run id", str(result["run_id"])],
        ["status", str(result["status"])],
        ["created at (UTC)", text(result.get("created_at"))],
        ["world size", f"{text(result['world_size'])} ranks on {node_count(result)} node(s)"],
        ["launcher / backend", f"{result.get('launcher')} / {text(result.get('backend'))}"],
        [
            "workload",
            f"{wl['name']} ({wl['workload_type']}), params {fmt_num(wl.get('params'))}",
        ],
        ["batch", f"global {text(wl['global_batch'])} = {text(wl['per_rank_batch'])} per rank"],
        [
            "steps",
            f"{text(steps.get('warmup'))} warm-up + {text(steps.get('measured'))} measured",
        ],
        *platform_rows(result),
    ]
    return TextTable("Summary", ["field", "value"], rows)


def _metrics(result: dict[str, Any]) -> TextTable:
    table = TextTable(
        "Metrics",
        ["metric", "value", "unit", "status", "method"],
        numeric={1},
        note="status: measured (read from a clock or counter), derived (computed from measured "
        "values), estimated (modelled).",
    )
    for name, mv in result["metrics"].items():
        if mv.get("value") is None:
            continue
        table.rows.append(
            [name, fmt_num(mv["value"]), mv["unit"], mv["status"], text(mv.get("method"))]
        )
    return table


def _missing(result: dict[str, Any]) -> TextTable:
    table = TextTable("Not measured, and why", ["metric", "unit", "reason"])
    for name, mv in result["metrics"].items():
        if mv.get("value") is None:
            table.rows.append([name, mv["unit"], text(mv.get("reason"))])
    return table


def _ranks(result: dict[str, Any], max_rows: int | None = None) -> TextTable:
    if result["workload"].get("workload_type") == "collectives":
        return sections.collectives_ranks(result, max_rows)
    stragglers = {s.get("rank") for s in result.get("stragglers") or []}
    failed = set(result.get("failed_ranks") or [])
    flagged = stragglers | failed | {r["rank"] for r in result["ranks"] if r["status"] != "ok"}
    shown = shown_ranks(result["ranks"], flagged, max_rows)
    table = TextTable(
        "Ranks",
        [
            "rank",
            "host",
            "status",
            "steps",
            "step p50 ms",
            "step p95 ms",
            "compute ms",
            "comm ms",
            "wait ms",
            "transfer ms",
            "exposed ms",
            "score",
            "peak RSS MiB",
            "note",
        ],
        note="Per-rank medians over measured steps (warm-up excluded), computed by the "
        "coordinator. steps = measured / recorded. score: relative performance score, the "
        "fastest rank's median compute / this rank's (1 = fastest).",
        numeric=set(range(3, 13)),
    )
    many_nodes = len(node_list(result)) > 1
    if len(shown) < len(result["ranks"]):
        table.note += (
            f" Showing {len(shown)} of {len(result['ranks'])} ranks: failed ranks and stragglers "
            "first, then the slowest median step; every rank is in result.json."
        )
    for i, r in enumerate(shown):
        st = r.get("step_time_ms") or {}
        mem = r.get("memory") or {}
        rss = mem.get("rss_peak_bytes")
        notes = []
        if r["rank"] in stragglers:
            notes.append("straggler")
            table.highlight.add(i)
        if r["rank"] in failed or r["status"] != "ok":
            table.highlight.add(i)
        if r.get("error"):
            notes.append(f"error: {r['error']}")
        host = text(r.get("hostname"))
        if many_nodes:  # two agents on one machine share a host: the node rank tells them apart
            host = node_label(r.get("node_rank"), r.get("hostname"))
        table.rows.append(
            [
                str(r["rank"]),
                host,
                str(r["status"]),
                f"{r['measured_steps']} / {r['steps_recorded']}",
                fmt_num(st.get("p50")),
                fmt_num(st.get("p95")),
                fmt_num(r.get("compute_ms_median")),
                fmt_num(r.get("comm_ms_median")),
                fmt_num(r.get("wait_ms_median")),
                fmt_num(r.get("transfer_ms_median")),
                fmt_num(r.get("exposed_comm_ms_median")),
                fmt_num(r.get("performance_score")),
                fmt_num(bytes_to_mib(rss)) if isinstance(rss, (int, float)) else "n/a",
                "; ".join(notes),
            ]
        )
    return table


def _straggler_sentence(s: dict[str, Any]) -> str:
    where = ""
    if "node_rank" in s or "hostname" in s:
        where = f" on {node_label(s.get('node_rank'), s.get('hostname'))}"
    return (
        f"rank {s.get('rank')}{where}: median compute {fmt_num(s.get('compute_ms_median'))} ms vs "
        f"{fmt_num(s.get('others_compute_ms_median'))} ms on the others "
        f"(+{fmt_num(s.get('excess_pct'))}%, threshold {fmt_num(s.get('threshold_pct'))}%, "
        f"attributed to {s.get('attributed_to', 'compute')})"
    )


def _verdict(result: dict[str, Any]) -> str | None:
    """One line naming what went wrong and where (failed run, detected faults such as a
    straggler or a slow link, a failed validation), or None when nothing did."""
    parts: list[str] = []
    errors = [str(e) for e in result.get("errors") or []]
    if result.get("status") == "failed":
        parts.append("FAILED: " + (errors[0] if errors else "see the errors below"))
    elif result.get("interrupted") is True:
        parts.append("INTERRUPTED: the steps that ran are kept")
    for d in (result.get("faults") or {}).get("detected") or []:
        if not isinstance(d, dict):
            continue
        evidence = f": {d['evidence']}" if d.get("evidence") else ""
        parts.append(f"{d.get('kind')} rank {_fault_rank(d)}{evidence}")
    v = result.get("validation")
    if isinstance(v, dict) and v.get("passed") is False:
        parts.append(f"validation FAILED: {v.get('reason') or 'see the checks'}")
    return "; ".join(parts) or None


def _fault_rank(f: dict[str, Any]) -> str:
    """A fault's rank, and its node when the fault records one: `1 on node 0 (vm)`."""
    rank = text(f.get("rank"))
    if f.get("hostname") is not None or f.get("node_rank") is not None:
        rank += f" on {node_label(f.get('node_rank'), f.get('hostname'))}"
    return rank


_FAULT_KEYS = ("kind", "rank", "step")
_NODE_KEYS = ("node_rank", "hostname")


def _faults(result: dict[str, Any]) -> TextTable:
    """Injected and detected faults (`{kind, rank, step, evidence, ...}`), one row each."""
    table = TextTable(
        "Faults",
        ["", "kind", "rank", "step", "details"],
        note="injected: what the run was told to do; detected: what the coordinator found in "
        "the ranks' records.",
    )
    faults = result.get("faults") or {}
    for side in ("injected", "detected"):
        for f in faults.get(side) or []:
            if not isinstance(f, dict):
                table.rows.append([side, str(f), "", "", ""])
                continue
            # None: the key does not apply to this kind; from_step 0 is the default (first step)
            rest = sorted(
                k
                for k in f
                if k not in (*_FAULT_KEYS, *_NODE_KEYS)
                and f[k] is not None
                and (k, f[k]) != ("from_step", 0)
            )
            details = "; ".join(str(f[k]) if k == "evidence" else f"{k}={text(f[k])}" for k in rest)
            table.rows.append(
                [side, text(f.get("kind")), _fault_rank(f), text(f.get("step")), details]
            )
            if side == "detected":
                table.highlight.add(len(table.rows) - 1)
    return table


def _validation(result: dict[str, Any]) -> TextTable | None:
    """The correctness checks (`result["validation"]`: passed, reason, checks[{name, passed}])."""
    v = result.get("validation")
    if not isinstance(v, dict):
        return None
    verdict = "passed" if v.get("passed") else "FAILED"
    reason = f": {v['reason']}" if v.get("reason") else ""
    table = TextTable("Validation", ["check", "result", "details"], note=f"{verdict}{reason}")
    for c in v.get("checks") or []:
        rest = sorted(k for k in c if k not in ("name", "passed"))
        table.rows.append(
            [
                text(c.get("name")),
                "passed" if c.get("passed") else "FAILED",
                "; ".join(f"{k}={text(c[k])}" for k in rest),
            ]
        )
        if not c.get("passed"):
            table.highlight.add(len(table.rows) - 1)
    return table
