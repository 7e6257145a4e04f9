"""The plots of a run, sweep, collectives or pairwise result as inline SVG, each drawn only when
the result holds its data.

Each function takes the whole result (a RunResult) and returns a `Plot`, or None when the data it
draws is absent. The numbers come from the result as they are; choosing axes, clipping the
view and picking colours is all that happens here.
"""

from __future__ import annotations

import math

from minicluster.report import svg
from minicluster.report.pairwise import heatmap_plot
from minicluster.report.scaling_loss_plot import scaling_loss_plot
from minicluster.report.svg import Plot
from minicluster.report.telemetry_plots import power_plot, temperature_plot
from minicluster.report.text import fmt_num
from minicluster.result.model import RankEntry, RunResult

STEP_SERIES_MAX = 64  # ranks drawn in the step-time plot; more would be an unreadable tangle


def run_plots(result: RunResult) -> list[Plot]:
    """Every plot this result has data for, in report order."""
    makers = (
        heatmap_plot,
        step_time_plot,
        rank_breakdown_plot,
        scaling_plot,
        scaling_loss_plot,
        busbw_plot,
        power_plot,
        temperature_plot,
    )
    return [p for p in (make(result) for make in makers) if p is not None]


def step_time_plot(result: RunResult) -> Plot | None:
    """Step time per rank over steps, warm-up shaded, run p50/p95 as dashed lines.

    Reads `steps.embedded`: `{rank (str): {"step": [int], "warmup": [bool],
    "step_time_ms": [float | None]}}`, and the metrics `latency_p50_ms` / `latency_p95_ms`.
    """
    steps = result.steps_section
    embedded = steps.embedded if steps is not None else None
    if not embedded:
        return None
    series: list[tuple[int, list[tuple[float, float]], list[tuple[float, bool]]]] = []
    ranks = sorted((k for k in embedded if str(k).isdigit()), key=int)
    for key in ranks[:STEP_SERIES_MAX]:
        rec = embedded[key]
        try:  # the schema leaves the series' shape open: a rank edited by hand is left out
            pts = [
                (float(s), float(t))
                for s, t in zip(rec["step"], rec["step_time_ms"], strict=True)
                if t is not None
            ]
            warmup = rec.get("warmup") or [False] * len(rec["step"])
            flags = list(zip(rec["step"], warmup, strict=True))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
        if pts:
            series.append((int(key), pts, flags))
    if not series:
        return None
    p50 = result.metric_value("latency_p50_ms")
    p95 = result.metric_value("latency_p95_ms")
    measured = [
        t for _, pts, flags in series for (s, t), (_, w) in zip(pts, flags, strict=False) if not w
    ]
    everything = [t for _, pts, _ in series for _, t in pts]
    # Warm-up steps (first iterations, allocator and thread-pool start-up) can be 10x the
    # measured ones: scale to the measured steps and say what is off the scale.
    basis = measured or everything
    y_hi = max(basis + [v for v in (p50, p95) if v is not None]) * 1.15
    off_scale = [t for t in everything if t > y_hi]
    x_lo = min(p[0] for _, pts, _ in series for p in pts)
    x_hi = max(p[0] for _, pts, _ in series for p in pts)
    title = "Step time per rank"
    chart = svg.Chart(
        "step_time", title, x_lo, max(x_hi, x_lo + 1), "step", 0.0, y_hi, "step time (ms)"
    )
    warm = sorted({s for _, _, flags in series for s, w in flags if w})
    if warm:
        chart.marks.append(svg.Band(max(warm[0] - 0.5, x_lo), min(warm[-1] + 0.5, x_hi), "warm-up"))
    for i, (rank, pts, _) in enumerate(series):
        clipped = [(s, min(t, y_hi)) for s, t in pts]
        chart.marks.append(svg.Line(clipped, svg.color(i), f"rank {rank}"))
        if i < svg.MAX_LEGEND:
            chart.legend.append((f"rank {rank}", svg.color(i), "line"))
    if len(series) > svg.MAX_LEGEND:
        chart.legend.append((f"+{len(series) - svg.MAX_LEGEND} more ranks", "#666", "line"))
    for name, v, col in (("p50", p50, "#333"), ("p95", p95, "#C00")):
        if v is not None:
            label = f"run {name} {fmt_num(v)} ms"
            chart.marks.append(svg.Rule(v, col, label, text=""))
            chart.legend.append((label, col, "dash"))
    if off_scale:
        chart.note = f"{len(off_scale)} point(s) above the axis, up to {fmt_num(max(off_scale))} ms"
    shown = (
        f"the first {STEP_SERIES_MAX} of {len(embedded)} ranks"
        if len(embedded) > STEP_SERIES_MAX
        else "every rank"
    )
    caption = (
        f"Step time in ms of {shown} per step: measured (perf_counter_ns, device synchronized "
        "before each clock read). Shaded: warm-up steps, recorded but excluded from statistics. "
        "Dashed: the run's p50 and p95 of the per-step slowest-rank step time over measured "
        "steps (metrics latency_p50_ms, latency_p95_ms; computed by the coordinator)."
    )
    return Plot("step_time", title, svg.render(chart), caption)


_SEGMENTS = (
    ("compute", "#0072B2"),
    ("all-reduce wait", "#D55E00"),
    ("all-reduce transfer", "#009E73"),
)


def _segments(r: RankEntry) -> list[tuple[float | None, str, str]]:
    """(median ms, name, colour) of a rank's compute, wait and transfer, in _SEGMENTS order."""
    values = (r.compute_ms_median, r.wait_ms_median, r.transfer_ms_median)
    return [(v, name, col) for v, (name, col) in zip(values, _SEGMENTS, strict=True)]


def rank_breakdown_plot(result: RunResult) -> Plot | None:
    """Per-rank compute / wait / transfer medians as horizontal stacked bars, straggler outlined.

    Reads `ranks[i]`: `rank`, `compute_ms_median`, `wait_ms_median`, `transfer_ms_median` (ms,
    None when the rank has no measured steps), and `stragglers[j].rank`.
    """
    ranks = [r for r in result.ranks if r.compute_ms_median is not None]
    if not ranks:
        return None
    stragglers = {s.rank for s in result.stragglers}
    segments = [_segments(r) for r in ranks]
    totals = [sum(v or 0.0 for v, _, _ in segs) for segs in segments]
    title = "Per-rank step breakdown (medians)"
    chart = svg.Chart(
        "rank_breakdown",
        title,
        0.0,
        max(totals) * 1.12 or 1.0,
        "median time per step (ms)",
        rows=[svg.Row(f"rank {r.rank}") for r in ranks],
        legend=[(n, c, "box") for n, c in _SEGMENTS],
    )
    for i, (r, segs) in enumerate(zip(ranks, segments, strict=True)):
        x0 = 0.0
        for ms, name, col in segs:
            if ms is None:
                continue
            label = f"rank {r.rank} {name}: {fmt_num(ms)} ms"
            chart.marks.append(svg.Bar(i, x0, x0 + ms, col, label))
            x0 += ms
        if r.rank in stragglers:
            chart.marks.append(
                svg.Bar(i, 0.0, x0, "none", f"rank {r.rank} is the straggler", outline="#C00")
            )
            chart.marks.append(svg.Label(x0, i, "straggler", fill="#C00", cls="tick strag", dx=6))
    caption = (
        "Median ms per step of each rank over measured steps (derived by the coordinator): "
        "compute = forward + backward - exposed communication; transfer = per step the minimum "
        "over ranks of all-reduce time; wait = all-reduce time - transfer (time spent waiting "
        "for slower ranks). The bars stack medians, so their length is not a median step time. "
        "A straggler (highest median compute above the threshold) is outlined in red."
    )
    return Plot("rank_breakdown", title, svg.render(chart), caption)


def scaling_plot(result: RunResult) -> Plot | None:
    """Scaling efficiency vs world size with the ideal (100%) line; projected points hollow.

    Reads the sweep's `scaling`: `mode`, `points[]` (`world_size`, `efficiency_pct`, `status`:
    measured, derived or estimated, `efficiency_pct_min/max`) and `projection.points[]`
    (`world_size`, `efficiency_pct`). Estimated points and the projection's are hollow.
    """
    scaling = result.scaling
    if scaling is None:
        return None
    pts = [p for p in scaling.points if p.efficiency_pct is not None]
    if not pts:
        return None
    real = sorted(
        (float(p.world_size), float(p.efficiency_pct))
        for p in pts
        if p.status != "estimated" and p.efficiency_pct is not None
    )
    estimated = [(p.world_size, p.efficiency_pct) for p in pts if p.status == "estimated"]
    if scaling.projection is not None:
        estimated += [(p.world_size, p.efficiency_pct) for p in scaling.projection.points]
    proj = sorted((float(n), float(e)) for n, e in estimated if isinstance(e, (int, float)))
    sizes = sorted({p[0] for p in real + proj})
    # Min-max over the sweep's rounds, drawn as whiskers where the rounds disagree.
    ranges = [
        (float(p.world_size), float(p.efficiency_pct_min), float(p.efficiency_pct_max))
        for p in pts
        if isinstance(p.efficiency_pct_min, (int, float))
        and isinstance(p.efficiency_pct_max, (int, float))
        and p.efficiency_pct_max > p.efficiency_pct_min
    ]
    y_hi = max([100.0] + [p[1] for p in real + proj] + [r[2] for r in ranges]) * 1.1
    title = f"Scaling efficiency ({scaling.mode} scaling)"
    chart = svg.Chart(
        "scaling",
        title,
        min(sizes),
        max(sizes[-1], sizes[0] + 1),
        "world size (ranks)",
        0.0,
        y_hi,
        "scaling efficiency (%)",
        log_x=len(sizes) > 2 and sizes[0] > 0,
        x_ticks=sizes,
        x_tick_text=[f"{s:g}" for s in sizes],
    )
    chart.marks.append(svg.Rule(100.0, "#333", "ideal 100%"))
    for x, lo, hi in ranges:
        label = f"range over rounds {lo:g}-{hi:g}%"
        chart.marks.append(svg.Line([(x, lo), (x, hi)], svg.color(0), label))
    chart.marks.append(svg.Line(real, svg.color(0), "measured", markers="filled"))
    # The projection is drawn apart from the measured line: it starts from its reference size,
    # which need not be the last measured one (a size whose ranks shared cores is never it).
    chart.marks.append(
        svg.Line(proj, svg.color(1), "projected", dash="4 3", line=bool(proj), markers="hollow")
    )
    chart.legend.append(("measured", svg.color(0), "line"))
    if proj:
        chart.legend.append(("projected / estimated", svg.color(1), "hollow"))
    chart.legend.append(("ideal", "#333", "dash"))
    formula = scaling.formula or "weak: X_N / (N X_1); strong: t_1 / (N t_N)"
    caption = (
        f"Scaling efficiency in % per world size, from the sweep ({formula}), derived from "
        "throughput or step times measured in this session; "
        "filled points: median over rounds, vertical bars: min-max over rounds"
        + (
            "; hollow: estimated by the projection (alpha-beta all-reduce model, see the "
            "Projection table), not measured."
            if proj
            else "."
        )
    )
    return Plot("scaling", title, svg.render(chart), caption)


def _size_text(n_bytes: float) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:g}{unit}"
    return f"{n_bytes:g}B"


def busbw_plot(result: RunResult) -> Plot | None:
    """Bus bandwidth vs message size per collective, log x.

    Reads `collectives.results[]`: `op`, `size_bytes`, `busbw_gbps` (collective benchmark
    results; a training run has no collectives block).
    """
    coll = result.collectives
    points = [
        (str(r.op), float(r.size_bytes), float(r.busbw_gbps))
        for r in (coll.results if coll is not None else [])
        if r.busbw_gbps is not None and r.size_bytes > 0
    ]
    if not points:
        return None
    ops = sorted({op for op, _, _ in points})
    sizes = sorted({size for _, size, _ in points})
    y_hi = max(busbw for _, _, busbw in points) * 1.15 or 1.0
    step = max(1, math.ceil(len(sizes) / 8))
    ticks = sizes[::step]
    chart = svg.Chart(
        "busbw",
        "Bus bandwidth vs message size",
        sizes[0],
        max(sizes[-1], sizes[0] * 2),
        "message size (bytes, log scale; K = 1024)",
        0.0,
        y_hi,
        "busbw (GB/s, 1 GB = 1e9 B)",
        log_x=True,
        x_ticks=ticks,
        x_tick_text=[_size_text(s) for s in ticks],
    )
    for i, op in enumerate(ops):
        pts = sorted((size, busbw) for name, size, busbw in points if name == op)
        chart.marks.append(svg.Line(pts, svg.color(i), op, markers="filled"))
        chart.legend.append((op, svg.color(i), "line"))
    caption = (
        "Bus bandwidth in decimal GB/s per message size (nccl-tests convention: algbw x "
        "2(n-1)/n for all_reduce, (n-1)/n for all_gather, reduce_scatter, all_to_all, 1 for "
        "broadcast), derived from measured collective times."
    )
    return Plot("busbw", chart.title, svg.render(chart), caption)
