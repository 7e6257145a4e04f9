"""What a sweep (the scaling table) and a collectives run (the nccl-tests table, its summary and
ranks) add to a report, as text tables."""

from __future__ import annotations

from typing import Any

from minicluster.core.collective_defs import BUSBW_FACTOR_TEXT, COUNT_MEANING, SIZE_MEANING
from minicluster.core.units import bytes_to_mib
from minicluster.report.text import (
    TextTable,
    fmt_num,
    node_count,
    platform_rows,
    shown_ranks,
    text,
)


def scaling_table(result: dict[str, Any]) -> TextTable | None:
    """One row per world size of a sweep (`result["scaling"]`, built by minicluster.analysis.scaling)."""
    s = result.get("scaling")
    if not isinstance(s, dict):
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
    for p in s.get("points") or []:
        runs = p.get("runs") or []
        lo, hi = p.get("efficiency_pct_min"), p.get("efficiency_pct_max")
        spread = f"{fmt_num(lo)}-{fmt_num(hi)}" if lo is not None and hi is not None else ""
        if lo == hi:  # one round (or identical rounds): the median says it all
            spread = ""
        stragglers = [_straggler_note(r, runs) for r in p.get("stragglers") or []]
        notes = [f"{r.get('dir')} {r.get('status')}" for r in runs if r.get("status") != "ok"]
        if p.get("reason"):
            notes.append(str(p["reason"]))
        if p.get("efficiency_pct") is None or notes or stragglers:
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                text(p.get("world_size")),
                f"{p.get('runs_ok', 'n/a')} / {len(runs)}" if runs else "n/a",
                fmt_num(p.get("per_rank_batch")),
                fmt_num(p.get("throughput_samples_per_sec")),
                fmt_num(p.get("step_time_p50_ms")),
                fmt_num(p.get("compute_ms")),
                fmt_num(p.get("allreduce_ms")),
                fmt_num(p.get("communication_overhead_percent")),
                fmt_num(p.get("efficiency_pct")),
                spread,
                ", ".join(stragglers),
                "; ".join(notes),
            ]
        )
    return table


def collectives_table(result: dict[str, Any]) -> TextTable:
    """nccl-tests' table: one row per (op, size) of `result["collectives"]["results"]`."""
    coll = result["collectives"]
    n = coll.get("world_size") or result.get("world_size")
    multiple = coll.get("size_multiple_bytes")
    rounding = f" ({multiple} B here)" if multiple else ""
    calls = ""
    if coll.get("iters") is not None:
        calls = (
            f" {coll.get('iters')} timed calls after {coll.get('warmup_iters')} warm-up per size;"
        )
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
        note=f"{n} ranks, {text(coll.get('dtype'))}.{calls} {coll.get('rule') or 'time: n/a'}. "
        "algbw = size / time in decimal GB/s (1 GB = 1e9 B); busbw = algbw x "
        f"{_per_op(BUSBW_FACTOR_TEXT)} (nccl-tests doc/PERFORMANCE.md). "
        f"size, K = 1024 B, rounded down to a multiple of n x element size{rounding}: "
        f"{_per_op(SIZE_MEANING)}. count: {_per_op(COUNT_MEANING)}. "
        "#wrong: output elements that differ from the expected values, summed over ranks.",
    )
    for row in coll.get("results") or []:
        wrong = row.get("wrong")
        status = str(row.get("status", "measured"))
        if status == "measured":
            status = "WRONG" if wrong else ("ok" if wrong == 0 else "measured, not checked")
        if row.get("reason"):
            status += f": {row['reason']}"
        if wrong:
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                str(row.get("op")),
                text(row.get("size_bytes")),
                text(row.get("count")),
                fmt_num(row.get("time_us")),
                fmt_num(row.get("algbw_gbps")),
                fmt_num(row.get("busbw_gbps")),
                text(wrong),
                status,
            ]
        )
    return table


def _straggler_note(rank: Any, runs: list[dict[str, Any]]) -> str:
    """`rank`, and with repeats in how many of the world size's runs it was named."""
    if len(runs) < 2:
        return f"rank {rank}"
    named = sum(1 for r in runs if rank in (r.get("stragglers") or []))
    return f"rank {rank} ({named}/{len(runs)} runs)"


def _scaling_note(s: dict[str, Any]) -> str:
    base = s.get("baseline")
    if not isinstance(base, dict):
        base = {}
    parts = [
        f"{text(s.get('mode'))} scaling: {text(s.get('formula'))}, where {text(s.get('method'))}.",
        "Per world size, medians over its ok runs of each run's metrics (exposed % is "
        "communication_overhead_percent).",
        f"Baseline: {text(base.get('kind'))}: {fmt_num(base.get('value'))} "
        f"{text(base.get('unit'))} (median of {text(base.get('runs_ok'))} ok run(s)).",
    ]
    if s.get("global_batch") is not None:
        parts.append(f"Global batch {text(s['global_batch'])} at every world size.")
    elif s.get("per_rank_batch") is not None:
        parts.append(f"Per-rank batch {text(s['per_rank_batch'])} at every world size.")
    if s.get("threads_per_rank") is not None:
        parts.append(f"{text(s['threads_per_rank'])} CPU thread(s) per rank at every world size.")
    if s.get("order"):
        parts.append(f"Order: {s['order']}.")
    parts += [f"Warning: {w}." for w in s.get("warnings") or []]
    head = s.get("headline_run")
    if isinstance(head, dict):
        parts.append(
            f"Metrics, ranks and plots below come from run {text(head.get('dir'))} "
            f"(world size {text(head.get('world_size'))}, round {text(head.get('round'))})."
        )
    return " ".join(parts)


def _per_op(meaning: dict[str, str]) -> str:
    """`{op: text}` as "text for op, op; text for op", ops sharing a text grouped."""
    groups: dict[str, list[str]] = {}
    for op, meaning_text in meaning.items():
        groups.setdefault(meaning_text, []).append(op)
    return "; ".join(f"{words} for {', '.join(ops)}" for words, ops in groups.items())


def collectives_summary(result: dict[str, Any]) -> TextTable:
    """The summary of a collectives run: no batch and no training steps, its calls instead."""
    coll = result.get("collectives") or {}
    ops = coll.get("ops") or sorted({str(r.get("op")) for r in coll.get("results") or []})
    rows = [
        ["run id", str(result["run_id"])],
        ["status", str(result["status"])],
        ["created at (UTC)", text(result.get("created_at"))],
        ["world size", f"{result['world_size']} ranks on {node_count(result)} node(s)"],
        ["launcher / backend", f"{result.get('launcher')} / {text(result.get('backend'))}"],
        ["workload", f"collectives: {', '.join(ops) or 'n/a'} ({text(coll.get('dtype'))})"],
        ["batch", "n/a (a collectives run has no batch)"],
        [
            "steps",
            f"n/a; {text(coll.get('warmup_iters'))} warm-up + {text(coll.get('iters'))} "
            "timed calls per (op, size)",
        ],
        *platform_rows(result),
    ]
    return TextTable("Summary", ["field", "value"], rows)


def collectives_ranks(result: dict[str, Any], max_rows: int | None) -> TextTable:
    """Ranks of a collectives run: no steps, so status, records and memory only."""
    flagged = {r["rank"] for r in result["ranks"] if r["status"] != "ok"}
    shown = shown_ranks(result["ranks"], flagged, max_rows)
    table = TextTable(
        "Ranks",
        ["rank", "host", "status", "records", "peak RSS MiB", "note"],
        note=(
            "records = the pairwise plan and the pair records the rank wrote (one per pair "
            "and pass). Per-rank times are in its rank file; the tables above show the max "
            "over each pair's two ranks."
            if isinstance(result.get("pairwise"), dict)
            else "records = (op, size) records the rank wrote. Per-rank times are in its "
            "rank file; the table above shows the max across ranks."
        ),
        numeric={3, 4},
    )
    if len(shown) < len(result["ranks"]):
        table.note += (
            f" Showing {len(shown)} of {len(result['ranks'])} ranks, failed ones first; "
            "every rank is in result.json."
        )
    for i, r in enumerate(shown):
        rss = (r.get("memory") or {}).get("rss_peak_bytes")
        if r["rank"] in flagged:
            table.highlight.add(i)
        table.rows.append(
            [
                str(r["rank"]),
                text(r.get("hostname")),
                str(r["status"]),
                text(r.get("collectives_recorded")),
                fmt_num(bytes_to_mib(rss)) if isinstance(rss, (int, float)) else "n/a",
                f"error: {r['error']}" if r.get("error") else "",
            ]
        )
    return table
