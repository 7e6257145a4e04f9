"""The stacked bar of where a sweep's lost step time went, one bar per world size, as inline SVG."""

from __future__ import annotations

from minicluster.report import svg
from minicluster.report.scaling_text import PART_NAMES
from minicluster.report.svg import Plot
from minicluster.report.text import fmt_num
from minicluster.result.model import Breakdown, LostTime, RunResult

PART_COLORS = {
    "exposed_comm": "#D55E00",
    "straggler_wait": "#E69F00",
    "jitter_wait": "#F0E442",
    "compute_growth": "#0072B2",
    "remainder": "#999999",
}


def scaling_loss_plot(result: RunResult) -> Plot | None:
    """Per world size above the baseline, its lost step time in points of the step, stacked by
    part (positive parts right of 0, negative ones left of it), the net loss marked.

    Reads the sweep's `scaling.points[i]`: `world_size` and `breakdown.loss.parts_pts`
    (`{exposed_comm, straggler_wait, jitter_wait, compute_growth, remainder}`: floats) and `lost_pct`, as
    minicluster.analysis.scaling_loss writes them. None when no point has a loss.
    """
    scaling = result.scaling
    if scaling is None:
        return None
    bars: list[tuple[int, dict[str, float], LostTime, Breakdown]] = []
    for p in scaling.points:
        b = p.breakdown
        loss = b.loss if b is not None else None
        if b is None or loss is None:
            continue
        pts = loss.parts_pts
        # jitter_wait is absent from results before 1.5 (straggler_wait held it): not drawn
        values = {k: pts.get(k) for k in PART_NAMES if k != "jitter_wait" or k in pts}
        if any(not isinstance(v, (int, float)) for v in values.values()):
            continue
        bars.append((p.world_size, {k: float(v or 0.0) for k, v in values.items()}, loss, b))
    if not bars:
        return None
    lo = min([0.0] + [sum(v for v in parts.values() if v < 0) for _, parts, _, _ in bars])
    hi = max([1.0] + [sum(v for v in parts.values() if v > 0) for _, parts, _, _ in bars])
    pad = 0.08 * (hi - lo)
    entries = [(PART_NAMES[k], PART_COLORS[k], "box") for k in PART_NAMES]
    entries.append(("net lost % of the step", "#000", "line"))
    title = "Where the efficiency went (points of the step lost)"
    # Room on the right for each bar's "lost N% (shared cores)" label, clear of the legend.
    chart = svg.Chart(
        "scaling_loss",
        title,
        lo - (pad if lo < 0 else 0.0),
        hi + 4.5 * pad,
        "points of the world size's mean step time",
        rows=[svg.Row(f"{n} ranks") for n, _, _, _ in bars],
        legend=entries,
        margin_left=84,
        row_pitch=34,
        bar_h=22,
        first_row=8,
        bottom_extra=14,
        marks=[svg.Rule(0.0, "", "", axis="x", dash="", text="", cls="axis")],
    )
    for i, (n, parts, loss, b) in enumerate(bars):
        right, left = 0.0, 0.0
        for key, value in parts.items():
            start = right if value >= 0 else left + value
            if value >= 0:
                right += value
            else:
                left += value
            label = f"{n} ranks {PART_NAMES[key]}: {value:.1f} pts ({fmt_num(_ms(loss, key))} ms)"
            chart.marks.append(svg.Bar(i, start, start + abs(value), PART_COLORS[key], label))
        lost = float(loss.lost_pct or 0.0)
        net = f"{n} ranks: net {lost:.1f}% of the step lost"
        chart.marks.append(
            svg.Rule(lost, "#000", net, axis="x", dash="", text="", row=i, width=2.5, cls="net")
        )
        note = f"lost {lost:.0f}%" + (" (shared cores)" if b.oversubscribed else "")
        chart.marks.append(svg.Label(right, i, note, fill="#333", dx=6))
    caption = (
        "Lost step time per world size against the baseline (weak: t_N - t_N0; strong: "
        "t_N - t_N0 N0/N), in points of that world size's mean step time, split into exposed "
        "all-reduce, straggler wait, compute growth and the remainder (other: data, optimizer, "
        "framework, ranks sharing cores); the parts add up to the net loss (black mark). "
        "Derived by the coordinator from the runs' per-step series (see the method under "
        "'Where the efficiency went')."
    )
    return Plot("scaling_loss", title, svg.render(chart), caption)


def _ms(loss: LostTime, key: str) -> float | None:
    v = loss.parts_ms.get(key)
    return float(v) if isinstance(v, (int, float)) else None
