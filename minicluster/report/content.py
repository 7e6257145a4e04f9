"""What a run report shows, as plain-text tables shared by the terminal, Markdown and HTML renderers.

Everything here is selection and formatting of numbers aggregation already computed; the
text is raw (unescaped): each renderer escapes for its own output.
"""

from __future__ import annotations

from dataclasses import dataclass

from minicluster.analysis.verdicts import after_the_fact
from minicluster.core.units import bytes_to_mib, format_ranks
from minicluster.report import pairwise, scaling_text, sections
from minicluster.report.node_table import nodes_table
from minicluster.report.text import (
    TextTable,
    completion,
    fmt_num,
    headline,
    job_links,
    node_count,
    node_label,
    platform_rows,
    shown_ranks,
    text,
)
from minicluster.result.model import Finding, Incident, InjectedFault, RunResult, Straggler


@dataclass
class RunView:
    """The sections of a run report, in the order every renderer shows them."""

    title: str
    status: str  # the result's `status` (ok, failed, incomplete): how far the run got
    headline: str  # the verdict, first in every header: `ok`, `STRAGGLER`, `FAILED validation`
    headline_class: str  # ok, incomplete or failed: how a renderer colours the headline
    completion: str  # the kind and its status in words: run finished, sweep incomplete, run failed
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


def run_view(result: RunResult, max_rank_rows: int | None = None) -> RunView:
    """Pick and format what a report of one run result shows (no statistic is computed here).

    With `max_rank_rows`, the ranks table keeps failed ranks and stragglers, then the ranks with
    the slowest median step, and says how many it left out (the nodes table likewise).
    """
    pw = result.pairwise
    found = after_the_fact(result)  # what was found; `completion` says whether it was interrupted
    return RunView(
        title=f"minicluster {result.kind} {result.run_id}",
        status=str(result.status),
        headline=headline(found),
        headline_class="ok" if not found else "incomplete" if found == ["incomplete"] else "failed",
        completion=f"{_noun(result)} {completion(str(result.status), result.interrupted)}",
        verdict=pw.verdict if pw is not None and pw.verdict else _verdict(result),
        summary=_summary(result),
        sections=_sections(result, max_rank_rows),
        why=scaling_text.why_lines(result),
        why_note=scaling_text.why_note(result),
        metrics=_metrics(result),
        missing=_missing(result),
        nodes=nodes_table(result, max_rank_rows),
        ranks=_ranks(result, max_rank_rows),
        stragglers=[straggler_sentence(s) for s in result.stragglers],
        faults=_faults(result),
        validation=_validation(result),
        errors=[str(e) for e in result.errors],
    )


def _noun(result: RunResult) -> str:
    """What ran, as the header's completion names it: run, sweep, benchmark, link test, search."""
    return {
        "sweep": "sweep",
        "collectives": "benchmark",
        "pairwise": "link test",
        "isolate": "search",
    }.get(str(result.kind), "run")


def _sections(result: RunResult, max_rows: int | None = None) -> list[TextTable]:
    """The tables of a sweep (`scaling`), a collectives run (`collectives`) or a pairwise link
    test (`pairwise`; with `max_rows`, the worst pairs instead of a larger matrix)."""
    if result.pairwise is not None:
        return pairwise.pairwise_tables(result.pairwise, max_rows)
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
    if result.collectives is not None:
        tables.append(sections.collectives_table(result.collectives, result.world_size))
    if result.comm is not None and result.comm.kinds:
        tables.append(sections.comm_kinds_table(result.comm))
    return tables


def _summary(result: RunResult) -> TextTable:
    wl = result.workload
    if wl.workload_type == "collectives":
        summary = sections.collectives_summary(result)
        if result.pairwise is not None:
            ours = dict((r[0], r) for r in pairwise.pairwise_summary_rows(result.pairwise))
            summary.rows = [ours.get(r[0], r) for r in summary.rows]
        return summary
    steps = result.config.get("steps")
    steps = steps if isinstance(steps, dict) else {}  # `config` is free-form in the schema
    rows = [
        ["run id", str(result.run_id)],
        ["run", f"{completion(str(result.status), result.interrupted)} (status {result.status})"],
        ["created at (UTC)", text(result.created_at)],
        ["world size", f"{text(result.world_size)} ranks on {node_count(result)} node(s)"],
        ["launcher / backend", f"{result.launcher} / {text(result.backend)}"],
        *([["layout", sections.layout_text(result)]] if result.layout is not None else []),
        ["workload", f"{wl.name} ({wl.workload_type}), params {fmt_num(wl.params)}"],
        ["batch", f"global {text(wl.global_batch)} = {text(wl.per_rank_batch)} per rank"],
        [
            "steps",
            f"{text(steps.get('warmup'))} warm-up + {text(steps.get('measured'))} measured",
        ],
        *platform_rows(result),
    ]
    return TextTable("Summary", ["field", "value"], rows)


def _metrics(result: RunResult) -> TextTable:
    table = TextTable(
        "Metrics",
        ["metric", "value", "unit", "status", "method"],
        numeric={1},
        note="status: measured (read from a clock or counter), derived (computed from measured "
        "values), estimated (modelled).",
    )
    for name, mv in result.metrics.items():
        if mv.value is None:
            continue
        table.rows.append([name, fmt_num(mv.value), mv.unit, mv.status, text(mv.method)])
    return table


def _missing(result: RunResult) -> TextTable:
    table = TextTable("Not measured, and why", ["metric", "unit", "reason"])
    for name, mv in result.metrics.items():
        if mv.value is None:
            table.rows.append([name, mv.unit, text(mv.reason)])
    return table


def _ranks(result: RunResult, max_rows: int | None = None) -> TextTable:
    if result.workload.workload_type == "collectives":
        return sections.collectives_ranks(result, max_rows)
    stragglers = {s.rank for s in result.stragglers}
    failed = set(result.failed_ranks)
    flagged = {r for r in stragglers | failed if r is not None} | {
        r.rank for r in result.ranks if r.status != "ok"
    }
    shown = shown_ranks(result.ranks, flagged, max_rows)
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
    many_nodes = len(result.node_entries) > 1
    if len(shown) < len(result.ranks):
        table.note += (
            f" Showing {len(shown)} of {len(result.ranks)} ranks: failed ranks and stragglers "
            "first, then the slowest median step; every rank is in result.json."
        )
    for i, r in enumerate(shown):
        st = r.step_time_ms
        rss = r.rss_peak_bytes
        notes = []
        if r.rank in stragglers:
            notes.append("straggler")
            table.highlight.add(i)
        if r.rank in failed or r.status != "ok":
            table.highlight.add(i)
        if r.error:
            notes.append(f"error: {r.error}")
        host = text(r.hostname)
        if many_nodes:  # two agents on one machine share a host: the node rank tells them apart
            host = node_label(r.node_rank, r.hostname)
        table.rows.append(
            [
                str(r.rank),
                host,
                str(r.status),
                f"{r.measured_steps} / {r.steps_recorded}",
                fmt_num(st.p50 if st is not None else None),
                fmt_num(st.p95 if st is not None else None),
                fmt_num(r.compute_ms_median),
                fmt_num(r.comm_ms_median),
                fmt_num(r.wait_ms_median),
                fmt_num(r.transfer_ms_median),
                fmt_num(r.exposed_comm_ms_median),
                fmt_num(r.performance_score),
                fmt_num(bytes_to_mib(rss)) if rss is not None else "n/a",
                "; ".join(notes),
            ]
        )
    return table


def straggler_sentence(s: Straggler) -> str:
    """What named rank `s` a straggler: its compute against the others', the threshold, and what
    the time is attributed to."""
    where = f" on {node_label(s.node_rank, s.hostname)}" if s.placed else ""
    return (
        f"rank {s.rank}{where}: median compute {fmt_num(s.compute_ms_median)} ms vs "
        f"{fmt_num(s.others_compute_ms_median)} ms on the others "
        f"(+{fmt_num(s.excess_pct)}%, threshold {fmt_num(s.threshold_pct)}%, "
        f"attributed to {s.attributed_to or 'compute'})"
    )


def _verdict(result: RunResult) -> str | None:
    """One line naming what went wrong and where (failed run, detected faults such as a
    straggler or a slow link, a failed validation), or None when nothing did."""
    parts: list[str] = []
    errors = [str(e) for e in result.errors]
    if result.status == "failed":
        parts.append("FAILED: " + (errors[0] if errors else "see the errors below"))
    elif result.interrupted is True:
        parts.append("INTERRUPTED: the steps that ran are kept")
    for c in (result.culprits or [])[:1]:  # the most costly culprit leads
        parts.append(c.summary or f"rank {c.rank} cost the run {c.cost_pct:.0f}%: {c.kind}")
    for d in result.faults.detected:
        evidence = f": {d.evidence}" if d.evidence else ""
        link = fault_link(d)
        where = (
            f"on {link}"
            if link is not None
            else job_links(result.world_size)
            if d.rank is None and not d.ranks
            else f"rank {_fault_rank(d)}"
        )
        parts.append(f"{d.kind} {where}{evidence}")
    v = result.validation
    if v is not None and v.passed is False:
        parts.append(f"validation FAILED: {v.reason or 'see the checks'}")
    if result.incident is not None:
        parts.append(incident_phrase(result.incident))
    for h in result.host_contention or []:  # host CPU contention: NOT JUDGED, said per finding
        parts.append(f"NOT JUDGED: {h.text}")
    if not parts and result.not_judged:
        parts.append(f"NOT JUDGED: straggler and culprit checks: {result.not_judged}")
    return "; ".join(parts) or None


def incident_phrase(incident: Incident) -> str:
    """The incident's C4 class and where: "incident: non-comm hang on rank 1 (node 0 (vm))"."""
    kind = incident.kind.replace("non_comm", "non-comm").replace("_", " ")
    if incident.ranks:
        many = len(incident.ranks) > 1
        where = ("ranks " if many else "rank ") + format_ranks(incident.ranks)
        node = incident.node
        if node is not None and (node.node_rank is not None or node.hostname is not None):
            where += f" ({node_label(node.node_rank, node.hostname)})"
    else:
        where = text(incident.link or "the job")
    return f"incident: {kind} on {where}"


def _fault_rank(f: Finding | InjectedFault) -> str:
    """A fault's rank, and its node when the fault records one: `1 on node 0 (vm)`."""
    rank = text(f.rank)
    if f.rank is None and isinstance(f, Finding) and f.ranks:
        rank = ", ".join(map(str, f.ranks))  # a finding of several ranks (a slow node's)
    if isinstance(f, Finding) and f.placed:
        rank += f" on {node_label(f.node_rank, f.hostname)}"
    return rank


def fault_link(f: Finding | InjectedFault) -> str | None:
    """A slow link between a rank and its peer (pairwise, `slow_link:rank=1,peer=0`) named as
    the link, as elsewhere: `the link between ranks 0 and 1` (the pair's order is no direction:
    a pairwise result records the slow pair's lower rank); None for any other fault."""
    peer = f.to_json().get("peer")
    if f.kind != "slow_link" or not isinstance(f.rank, int) or not isinstance(peer, int):
        return None
    a, b = sorted((f.rank, peer))
    return f"the link between ranks {a} and {b}"


_FAULT_KEYS = ("kind", "rank", "step")
_NODE_KEYS = ("node_rank", "hostname")


def _faults(result: RunResult) -> TextTable:
    """Injected and detected faults (`{kind, rank, step, evidence, ...}`), one row each."""
    table = TextTable(
        "Faults",
        ["", "kind", "rank", "step", "details"],
        note="injected: what the run was told to do; detected: what the coordinator found in "
        "the ranks' records.",
    )
    sides: tuple[tuple[str, list[Finding] | list[InjectedFault]], ...] = (
        ("injected", result.faults.injected),
        ("detected", result.faults.detected),
    )
    for side, faults in sides:
        for f in faults:
            # Every key the fault has, whatever its kind (a slow link's peer, a delay, the
            # evidence); None: the key does not apply; from_step 0 is the default (first step)
            fields = f.to_json()
            link = fault_link(f)
            rest = sorted(
                k
                for k, v in fields.items()
                if k not in (*_FAULT_KEYS, *_NODE_KEYS)
                and v is not None
                and (k, v) != ("from_step", 0)
                and not (link is not None and k == "peer")  # the link names it
            )
            details = "; ".join(
                str(fields[k]) if k == "evidence" else f"{k}={text(fields[k])}" for k in rest
            )
            if link is not None and side == "injected":  # the rank that delays its sends
                details = "; ".join(x for x in (f"on rank {f.rank}'s side", details) if x)
            where = (
                link
                if link is not None
                else job_links(result.world_size).removeprefix("on ")  # a job link: not "n/a"
                if side == "detected" and f.rank is None and not getattr(f, "ranks", None)
                else _fault_rank(f)
            )
            table.rows.append([side, text(f.kind), where, text(f.step), details])
            if side == "detected":
                table.highlight.add(len(table.rows) - 1)
    # a late rank named by its cost (an intermittent straggler the median rule does not see):
    # found, so beside what was injected, as `culprits` in result.json
    for c in result.culprits or []:
        where = f"rank {c.rank}" if c.rank is not None else text(c.node)
        said = c.summary or f"cost the run {c.cost_pct:.0f}%: {c.evidence}"
        table.rows.append(["culprit", text(c.kind), where, "", said])
        table.highlight.add(len(table.rows) - 1)
    return table


def _validation(result: RunResult) -> TextTable | None:
    """The correctness checks (`validation`: passed, reason, checks[{name, passed, ...}])."""
    v = result.validation
    if v is None:
        return None
    verdict = "passed" if v.passed else "FAILED"
    reason = f": {v.reason}" if v.reason else ""
    table = TextTable("Validation", ["check", "result", "details"], note=f"{verdict}{reason}")
    for c in v.checks:
        fields = c.to_json()
        rest = sorted(k for k in fields if k not in ("name", "passed"))
        table.rows.append(
            [
                text(c.name),
                "passed" if c.passed else "FAILED",
                "; ".join(f"{k}={text(fields[k])}" for k in rest),
            ]
        )
        if not c.passed:
            table.highlight.add(len(table.rows) - 1)
    return table
