"""What a sweep (the scaling table) and a collectives run (the nccl-tests table, its summary and
ranks) add to a report, as text tables."""

from __future__ import annotations

from minicluster.core.collective_defs import BUSBW_FACTOR_TEXT, COUNT_MEANING, SIZE_MEANING
from minicluster.core.units import bytes_to_mib
from minicluster.report.text import (
    TextTable,
    completion,
    fmt_num,
    node_count,
    platform_rows,
    shown_ranks,
    text,
)
from minicluster.result.model import Collectives, CommSection, RunResult, Scaling, SweepRunEntry


def scaling_table(result: RunResult) -> TextTable | None:
    """One row per world size of a sweep (its `scaling` block, built by analysis.scaling)."""
    s = result.scaling
    if s is None:
        return None
    table = TextTable(
        "Scaling",
        [
            "world size",
            "runs ok",
            "batch/rank",
            "samples/s",
            "step p50 ms",
            "compute ms",
            "allreduce ms",
            "exposed %",
            "efficiency %",
            "range %",
            "stragglers",
            "note",
        ],
        note=_scaling_note(s),
        numeric=set(range(0, 10)),
        wrap={10, 11},
    )
    for p in s.points:
        runs = p.runs
        lo, hi = p.efficiency_pct_min, p.efficiency_pct_max
        spread = f"{fmt_num(lo)}-{fmt_num(hi)}" if lo is not None and hi is not None else ""
        if lo == hi:  # one round (or identical rounds): the median says it all
            spread = ""
        stragglers = [_straggler_note(r, runs) for r in p.stragglers]
        notes = [f"{r.dir} {r.status}" for r in runs if r.status != "ok"]
        if p.reason:
            notes.append(str(p.reason))
        if p.efficiency_pct is None or notes or stragglers:
            table.highlight.add(len(table.rows))
        runs_ok = "n/a" if p.runs_ok is None else p.runs_ok
        table.rows.append(
            [
                text(p.world_size),
                f"{runs_ok} / {len(runs)}" if runs else "n/a",
                fmt_num(p.per_rank_batch),
                fmt_num(p.throughput_samples_per_sec),
                fmt_num(p.step_time_p50_ms),
                fmt_num(p.compute_ms),
                fmt_num(p.allreduce_ms),
                fmt_num(p.communication_overhead_percent),
                fmt_num(p.efficiency_pct),
                spread,
                ", ".join(stragglers),
                "; ".join(notes),
            ]
        )
    return table


def collectives_table(coll: Collectives, world_size: int | None) -> TextTable:
    """nccl-tests' table: one row per (op, size) of a collectives block's results."""
    n = coll.world_size or world_size
    multiple = coll.size_multiple_bytes
    rounding = f" ({multiple} B here)" if multiple else ""
    calls = ""
    if coll.iters is not None:
        calls = f" {coll.iters} timed calls after {coll.warmup_iters} warm-up per size;"
    table = TextTable(
        "Collectives",
        [
            "op",
            "size (B)",
            "count (elements)",
            "time (us)",
            "algbw (GB/s)",
            "busbw (GB/s)",
            "#wrong",
            "status",
        ],
        numeric={1, 2, 3, 4, 5, 6},
        wrap={7},  # a status can carry a backend's reason: it wraps, the numbers stay whole
        note=f"{n} ranks, {text(coll.dtype)}.{calls} {coll.rule or 'time: n/a'}. "
        "algbw = size / time in decimal GB/s (1 GB = 1e9 B); busbw = algbw x "
        f"{_per_op(BUSBW_FACTOR_TEXT)} (nccl-tests doc/PERFORMANCE.md). "
        f"size, K = 1024 B, rounded down to a multiple of n x element size{rounding}: "
        f"{_per_op(SIZE_MEANING)}. count: {_per_op(COUNT_MEANING)}. "
        "#wrong: output elements that differ from the expected values, summed over ranks.",
    )
    for row in coll.results:
        wrong = row.wrong
        status = str(row.status)
        if status == "measured":
            status = "WRONG" if wrong else ("ok" if wrong == 0 else "measured, not checked")
        if row.reason:
            status += f": {row.reason}"
        if wrong:
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                str(row.op),
                text(row.size_bytes),
                text(row.count),
                fmt_num(row.time_us),
                fmt_num(row.algbw_gbps),
                fmt_num(row.busbw_gbps),
                text(wrong),
                status,
            ]
        )
    return table


def _straggler_note(rank: int, runs: list[SweepRunEntry]) -> str:
    """`rank`, and with repeats in how many of the world size's runs it was named."""
    if len(runs) < 2:
        return f"rank {rank}"
    named = sum(1 for r in runs if rank in r.stragglers)
    return f"rank {rank} ({named}/{len(runs)} runs)"


def _scaling_note(s: Scaling) -> str:
    base = s.baseline
    parts = [
        f"{text(s.mode)} scaling: {text(s.formula)}, where {text(s.method)}.",
        "Per world size, medians over its ok runs of each run's metrics (exposed % is "
        "communication_overhead_percent).",
        f"Baseline: {text(base.kind)}: {fmt_num(base.value)} "
        f"{text(base.unit)} (median of {text(base.runs_ok)} ok run(s)).",
    ]
    if s.global_batch is not None:
        parts.append(f"Global batch {text(s.global_batch)} at every world size.")
    elif s.per_rank_batch is not None:
        parts.append(f"Per-rank batch {text(s.per_rank_batch)} at every world size.")
    if s.threads_per_rank is not None:
        parts.append(f"{text(s.threads_per_rank)} CPU thread(s) per rank at every world size.")
    if s.order:
        parts.append(f"Order: {s.order}.")
    parts += [f"Warning: {w}." for w in s.warnings]
    head = s.headline_run
    if head is not None:
        parts.append(
            f"Metrics, ranks and plots below come from run {text(head.dir)} "
            f"(world size {text(head.world_size)}, round {text(head.round)})."
        )
        if head.left_out:
            sizes = ", ".join(text(n) for n in head.left_out)
            parts.append(
                f"World size {sizes} is left out of them: no run there finished ok "
                "(its partial figures would mislead; see the errors)."
            )
    return " ".join(parts)


def _per_op(meaning: dict[str, str]) -> str:
    """`{op: text}` as "text for op, op; text for op", ops sharing a text grouped."""
    groups: dict[str, list[str]] = {}
    for op, meaning_text in meaning.items():
        groups.setdefault(meaning_text, []).append(op)
    return "; ".join(f"{words} for {', '.join(ops)}" for words, ops in groups.items())


def collectives_summary(result: RunResult) -> TextTable:
    """The summary of a collectives run: no batch and no training steps, its calls instead."""
    coll = result.collectives
    ops = (coll.ops or sorted({str(r.op) for r in coll.results})) if coll is not None else []
    dtype = coll.dtype if coll is not None else None
    iters = (coll.warmup_iters, coll.iters) if coll is not None else (None, None)
    rows = [
        ["run id", str(result.run_id)],
        ["run", f"{completion(str(result.status), result.interrupted)} (status {result.status})"],
        ["created at (UTC)", text(result.created_at)],
        ["world size", f"{result.world_size} ranks on {node_count(result)} node(s)"],
        ["launcher / backend", f"{result.launcher} / {text(result.backend)}"],
        ["workload", f"collectives: {', '.join(ops) or 'n/a'} ({text(dtype)})"],
        ["batch", "n/a (a collectives run has no batch)"],
        [
            "steps",
            f"n/a; {text(iters[0])} warm-up + {text(iters[1])} timed calls per (op, size)",
        ],
        *platform_rows(result),
    ]
    return TextTable("Summary", ["field", "value"], rows)


def collectives_ranks(result: RunResult, max_rows: int | None) -> TextTable:
    """Ranks of a collectives run: no steps, so status, records and memory only."""
    flagged = {r.rank for r in result.ranks if r.status != "ok"}
    shown = shown_ranks(result.ranks, flagged, max_rows)
    table = TextTable(
        "Ranks",
        ["rank", "host", "status", "records", "peak RSS MiB", "note"],
        note=(
            "records = the pairwise plan and the pair records the rank wrote (one per pair "
            "and pass). Per-rank times are in its rank file; the tables above show the max "
            "over each pair's two ranks."
            if result.pairwise is not None
            else "records = (op, size) records the rank wrote. Per-rank times are in its "
            "rank file; the table above shows the max across ranks."
        ),
        numeric={3, 4},
    )
    if len(shown) < len(result.ranks):
        table.note += (
            f" Showing {len(shown)} of {len(result.ranks)} ranks, failed ones first; "
            "every rank is in result.json."
        )
    for i, r in enumerate(shown):
        rss = r.rss_peak_bytes
        if r.rank in flagged:
            table.highlight.add(i)
        table.rows.append(
            [
                str(r.rank),
                text(r.hostname),
                str(r.status),
                text(r.collectives_recorded),
                fmt_num(bytes_to_mib(rss)) if rss is not None else "n/a",
                f"error: {r.error}" if r.error else "",
            ]
        )
    return table


def layout_text(result: RunResult) -> str:
    """`FSDP+TP (dp_shard=2,tp=2), bf16, compiled`: the layout line of every report header."""
    lay = result.layout
    if lay is None:
        return "n/a"
    extra: list[str] = [result.precision] if result.precision else []
    if result.compile:
        extra.append("compiled")
    return f"{lay.name} ({lay.label})" + "".join(f", {e}" for e in extra)


def comm_kinds_table(comm: CommSection) -> TextTable:
    """Communication per collective kind: per step, max over ranks, median over steps."""
    rows = []
    for k in comm.kinds:
        rows.append(
            [
                k.label or k.kind,
                fmt_num(k.calls_per_step),
                "n/a" if k.bytes_per_step is None else f"{bytes_to_mib(k.bytes_per_step):.3g}",
                fmt_num(k.time_ms),
                fmt_num(k.exposed_ms),
                fmt_num(k.transfer_ms),
                fmt_num(k.wait_ms),
                fmt_num(k.busbw_gbps),
                k.status if k.reason is None else f"{k.status}: {k.reason}",
            ]
        )
    return TextTable(
        "Communication per kind",
        [
            "kind",
            "calls/step",
            "MiB/step",
            "time ms",
            "exposed ms",
            "transfer ms",
            "wait ms",
            "busbw GB/s",
            "status",
        ],
        rows,
        note=f"timed by {comm.method}: per step the max over ranks, median over measured steps; "
        "busbw with nccl-tests' factors over the transfer time",
        numeric={1, 2, 3, 4, 5, 6, 7},
        wrap={8},
    )
