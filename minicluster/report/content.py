"""What a run report shows, as plain-text tables shared by the terminal, Markdown and HTML renderers.

Everything here is selection and formatting of numbers the coordinator already computed; the
text is raw (unescaped): each renderer escapes for its own output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minicluster.core.collective_defs import BUSBW_FACTOR_TEXT, COUNT_MEANING, SIZE_MEANING
from minicluster.core.units import bytes_to_mib


@dataclass
class TextTable:
    """A table of display strings; `highlight` holds row indices to emphasise (e.g. a straggler)."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    highlight: set[int] = field(default_factory=set)
    note: str = ""
    numeric: set[int] = field(default_factory=set)  # column indices to right-align
    wrap: set[int] = field(default_factory=set)  # text columns a narrow terminal may wrap


@dataclass
class RunView:
    """The sections of a run report, in the order every renderer shows them."""

    title: str
    status: str
    summary: TextTable
    sections: list[TextTable]  # what a sweep or a collectives run adds (scaling, bandwidth tables)
    metrics: TextTable
    missing: TextTable
    ranks: TextTable
    stragglers: list[str]
    faults: TextTable
    validation: TextTable | None
    errors: list[str]


def fmt_num(value: float | None) -> str:
    """A number for people: n/a for None, thousands separators above 100, 3 significant digits below 0.01."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"


def _text(value: Any) -> str:
    return "n/a" if value is None else str(value)


def run_view(result: dict[str, Any], max_rank_rows: int | None = None) -> RunView:
    """Pick and format what a report of one run result shows (no statistic is computed here).

    With `max_rank_rows`, the ranks table keeps failed ranks and stragglers, then the ranks with
    the slowest median step, and says how many it left out.
    """
    return RunView(
        title=f"minicluster {result_kind(result)} {result['run_id']}",
        status=str(result["status"]),
        summary=_summary(result),
        sections=_sections(result),
        metrics=_metrics(result),
        missing=_missing(result),
        ranks=_ranks(result, max_rank_rows),
        stragglers=[_straggler_sentence(s) for s in result.get("stragglers") or []],
        faults=_faults(result),
        validation=_validation(result),
        errors=[str(e) for e in result.get("errors") or []],
    )


def result_kind(result: dict[str, Any]) -> str:
    """What made the result: `sweep` (a scaling block), `collectives` (a collectives block) or `run`."""
    if isinstance(result.get("scaling"), dict):
        return "sweep"
    return "collectives" if isinstance(result.get("collectives"), dict) else "run"


def _sections(result: dict[str, Any]) -> list[TextTable]:
    """The tables of a sweep (`scaling`) or a collectives run (`collectives`), when present."""
    tables: list[TextTable] = []
    scaling = _scaling_table(result)
    if scaling is not None:
        tables.append(scaling)
    if isinstance(result.get("collectives"), dict):
        tables.append(_collectives_table(result))
    return tables


def _scaling_table(result: dict[str, Any]) -> TextTable | None:
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
                _text(p.get("world_size")),
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


def _collectives_table(result: dict[str, Any]) -> TextTable:
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
        note=f"{n} ranks, {_text(coll.get('dtype'))}.{calls} {coll.get('rule') or 'time: n/a'}. "
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
                _text(row.get("size_bytes")),
                _text(row.get("count")),
                fmt_num(row.get("time_us")),
                fmt_num(row.get("algbw_gbps")),
                fmt_num(row.get("busbw_gbps")),
                _text(wrong),
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
        f"{_text(s.get('mode'))} scaling: {_text(s.get('formula'))}, where "
        f"{_text(s.get('method'))}.",
        "Per world size, medians over its ok runs of each run's metrics (exposed % is "
        "communication_overhead_percent).",
        f"Baseline: {_text(base.get('kind'))}: {fmt_num(base.get('value'))} "
        f"{_text(base.get('unit'))} (median of {_text(base.get('runs_ok'))} ok run(s)).",
    ]
    if s.get("global_batch") is not None:
        parts.append(f"Global batch {_text(s['global_batch'])} at every world size.")
    elif s.get("per_rank_batch") is not None:
        parts.append(f"Per-rank batch {_text(s['per_rank_batch'])} at every world size.")
    if s.get("threads_per_rank") is not None:
        parts.append(f"{_text(s['threads_per_rank'])} CPU thread(s) per rank at every world size.")
    if s.get("order"):
        parts.append(f"Order: {s['order']}.")
    parts += [f"Warning: {w}." for w in s.get("warnings") or []]
    head = s.get("headline_run")
    if isinstance(head, dict):
        parts.append(
            f"Metrics, ranks and plots below come from run {_text(head.get('dir'))} "
            f"(world size {_text(head.get('world_size'))}, round {_text(head.get('round'))})."
        )
    return " ".join(parts)


def _per_op(meaning: dict[str, str]) -> str:
    """`{op: text}` as "text for op, op; text for op", ops sharing a text grouped."""
    groups: dict[str, list[str]] = {}
    for op, text in meaning.items():
        groups.setdefault(text, []).append(op)
    return "; ".join(f"{text} for {', '.join(ops)}" for text, ops in groups.items())


def _summary(result: dict[str, Any]) -> TextTable:
    wl = result["workload"]
    if wl.get("workload_type") == "collectives":
        return _collectives_summary(result)
    steps = (result.get("config") or {}).get("steps") or {}
    rows = [
        ["run id", str(result["run_id"])],
        ["status", str(result["status"])],
        ["created at (UTC)", _text(result.get("created_at"))],
        ["world size", f"{result['world_size']} ranks on {result['nodes']} node(s)"],
        ["launcher / backend", f"{result.get('launcher')} / {_text(result.get('backend'))}"],
        [
            "workload",
            f"{wl['name']} ({wl['workload_type']}), params {fmt_num(wl.get('params'))}",
        ],
        ["batch", f"global {wl['global_batch']} = {wl['per_rank_batch']} per rank"],
        [
            "steps",
            f"{_text(steps.get('warmup'))} warm-up + {_text(steps.get('measured'))} measured",
        ],
        *_platform_rows(result),
    ]
    return TextTable("Summary", ["field", "value"], rows)


def _collectives_summary(result: dict[str, Any]) -> TextTable:
    """The summary of a collectives run: no batch and no training steps, its calls instead."""
    coll = result.get("collectives") or {}
    ops = coll.get("ops") or sorted({str(r.get("op")) for r in coll.get("results") or []})
    rows = [
        ["run id", str(result["run_id"])],
        ["status", str(result["status"])],
        ["created at (UTC)", _text(result.get("created_at"))],
        ["world size", f"{result['world_size']} ranks on {result['nodes']} node(s)"],
        ["launcher / backend", f"{result.get('launcher')} / {_text(result.get('backend'))}"],
        ["workload", f"collectives: {', '.join(ops) or 'n/a'} ({_text(coll.get('dtype'))})"],
        ["batch", "n/a (a collectives run has no batch)"],
        [
            "steps",
            f"n/a; {_text(coll.get('warmup_iters'))} warm-up + {_text(coll.get('iters'))} "
            "timed calls per (op, size)",
        ],
        *_platform_rows(result),
    ]
    return TextTable("Summary", ["field", "value"], rows)


def _platform_rows(result: dict[str, Any]) -> list[list[str]]:
    platform = result.get("platform") or {}
    nodes = platform.get("nodes") or []
    hosts = ", ".join(str(n.get("hostname")) for n in nodes) or "n/a"
    cpus = sorted({str(n.get("cpu")) for n in nodes if n.get("cpu")})
    gpus = sorted(
        {str(g.get("name") or g.get("model") or g) for n in nodes for g in n.get("gpus") or []}
    )
    return [
        ["hosts", hosts],
        ["CPU", ", ".join(cpus) or "n/a"],
        ["GPU", ", ".join(gpus) or "none"],
        [
            "software",
            f"minicluster {result['tool']['version']}, torch {_text(platform.get('torch'))}, "
            f"python {_text(platform.get('python'))}",
        ],
    ]


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
            [name, fmt_num(mv["value"]), mv["unit"], mv["status"], _text(mv.get("method"))]
        )
    return table


def _missing(result: dict[str, Any]) -> TextTable:
    table = TextTable("Not measured, and why", ["metric", "unit", "reason"])
    for name, mv in result["metrics"].items():
        if mv.get("value") is None:
            table.rows.append([name, mv["unit"], _text(mv.get("reason"))])
    return table


def _shown_ranks(
    ranks: list[dict[str, Any]], flagged: set[int], max_rows: int | None
) -> list[dict[str, Any]]:
    if max_rows is None or len(ranks) <= max_rows:
        return ranks

    def slowness(r: dict[str, Any]) -> float:
        p50 = (r.get("step_time_ms") or {}).get("p50")
        return -p50 if isinstance(p50, (int, float)) else 0.0

    order = sorted(ranks, key=lambda r: (r["rank"] not in flagged, slowness(r)))
    keep = {r["rank"] for r in order[:max_rows]}
    return [r for r in ranks if r["rank"] in keep]


def _ranks(result: dict[str, Any], max_rows: int | None = None) -> TextTable:
    if result["workload"].get("workload_type") == "collectives":
        return _collectives_ranks(result, max_rows)
    stragglers = {s.get("rank") for s in result.get("stragglers") or []}
    failed = set(result.get("failed_ranks") or [])
    flagged = stragglers | failed | {r["rank"] for r in result["ranks"] if r["status"] != "ok"}
    shown = _shown_ranks(result["ranks"], flagged, max_rows)
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
            "peak RSS MiB",
            "note",
        ],
        note="Per-rank medians over measured steps (warm-up excluded), computed by the "
        "coordinator. steps = measured / recorded.",
        numeric=set(range(3, 12)),
    )
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
        table.rows.append(
            [
                str(r["rank"]),
                _text(r.get("hostname")),
                str(r["status"]),
                f"{r['measured_steps']} / {r['steps_recorded']}",
                fmt_num(st.get("p50")),
                fmt_num(st.get("p95")),
                fmt_num(r.get("compute_ms_median")),
                fmt_num(r.get("comm_ms_median")),
                fmt_num(r.get("wait_ms_median")),
                fmt_num(r.get("transfer_ms_median")),
                fmt_num(r.get("exposed_comm_ms_median")),
                fmt_num(bytes_to_mib(rss)) if isinstance(rss, (int, float)) else "n/a",
                "; ".join(notes),
            ]
        )
    return table


def _collectives_ranks(result: dict[str, Any], max_rows: int | None) -> TextTable:
    """Ranks of a collectives run: no steps, so status, records and memory only."""
    flagged = {r["rank"] for r in result["ranks"] if r["status"] != "ok"}
    shown = _shown_ranks(result["ranks"], flagged, max_rows)
    table = TextTable(
        "Ranks",
        ["rank", "host", "status", "records", "peak RSS MiB", "note"],
        note="records = (op, size) records the rank wrote. Per-rank times are in its "
        "rank file; the table above shows the max across ranks.",
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
                _text(r.get("hostname")),
                str(r["status"]),
                _text(r.get("collectives_recorded")),
                fmt_num(bytes_to_mib(rss)) if isinstance(rss, (int, float)) else "n/a",
                f"error: {r['error']}" if r.get("error") else "",
            ]
        )
    return table


def _straggler_sentence(s: dict[str, Any]) -> str:
    return (
        f"rank {s.get('rank')}: median compute {fmt_num(s.get('compute_ms_median'))} ms vs "
        f"{fmt_num(s.get('others_compute_ms_median'))} ms on the others "
        f"(+{fmt_num(s.get('excess_pct'))}%, threshold {fmt_num(s.get('threshold_pct'))}%, "
        f"attributed to {s.get('attributed_to', 'compute')})"
    )


_FAULT_KEYS = ("kind", "rank", "step")


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
                if k not in _FAULT_KEYS and f[k] is not None and (k, f[k]) != ("from_step", 0)
            )
            details = "; ".join(
                str(f[k]) if k == "evidence" else f"{k}={_text(f[k])}" for k in rest
            )
            table.rows.append([side, *(_text(f.get(k)) for k in _FAULT_KEYS), details])
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
                _text(c.get("name")),
                "passed" if c.get("passed") else "FAILED",
                "; ".join(f"{k}={_text(c[k])}" for k in rest),
            ]
        )
        if not c.get("passed"):
            table.highlight.add(len(table.rows) - 1)
    return table
