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
    bar_h, gap = 22, 12
    height = svg.MARGIN_TOP + len(bars) * (bar_h + gap) + svg.MARGIN_BOTTOM + 14
    pad = 0.08 * (hi - lo)
    # Room on the right for each bar's "lost N% (shared cores)" label, clear of the legend.
    frame = svg.Frame(
        lo - (pad if lo < 0 else 0.0), hi + 4.5 * pad, 0.0, 1.0, height=height, margin_left=84
    )
    title = "Where the efficiency went (points of the step lost)"
    parts_svg = [svg.open_svg(frame, title, "scaling_loss")]
    ticks = svg.nice_ticks(frame.x_lo, frame.x_hi, 6)
    for v in ticks:
        x = frame.x(v)
        parts_svg.append(
            f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}" class="grid"/>'
        )
    parts_svg.append(svg.x_axis(frame, "points of the world size's mean step time", ticks))
    zero = frame.x(0.0)
    parts_svg.append(
        f'<line x1="{zero:.1f}" y1="{frame.top}" x2="{zero:.1f}" y2="{frame.bottom}" class="axis"/>'
    )
    for i, (n, parts, loss, b) in enumerate(bars):
        y = frame.top + 8 + i * (bar_h + gap)
        right, left = 0.0, 0.0
        for key, value in parts.items():
            start = right if value >= 0 else left + value
            if value >= 0:
                right += value
            else:
                left += value
            a, z = frame.x(start), frame.x(start + abs(value))
            label = f"{n} ranks {PART_NAMES[key]}: {value:.1f} pts ({fmt_num(_ms(loss, key))} ms)"
            parts_svg.append(svg.rect(a, y, z - a, bar_h, PART_COLORS[key], label))
        lost = float(loss.lost_pct or 0.0)
        x = frame.x(lost)
        parts_svg.append(
            f'<line class="net" x1="{x:.1f}" y1="{y - 3}" x2="{x:.1f}" y2="{y + bar_h + 3}" '
            f'stroke="#000" stroke-width="2.5"><title>{n} ranks: net {lost:.1f}% of the step '
            "lost</title></line>"
        )
        parts_svg.append(svg.text(frame.left - 6, y + 15, f"{n} ranks", anchor="end"))
        note = f"lost {lost:.0f}%" + (" (shared cores)" if b.oversubscribed else "")
        parts_svg.append(svg.text(frame.x(right) + 6, y + 15, note, fill="#333"))
    entries = [(PART_NAMES[k], PART_COLORS[k], "box") for k in PART_NAMES]
    entries.append(("net lost % of the step", "#000", "line"))
    parts_svg.append(svg.legend(frame, entries))
    parts_svg.append("</svg>")
    caption = (
        "Lost step time per world size against the baseline (weak: t_N - t_N0; strong: "
        "t_N - t_N0 N0/N), in points of that world size's mean step time, split into exposed "
        "all-reduce, straggler wait, compute growth and the remainder (other: data, optimizer, "
        "framework, ranks sharing cores); the parts add up to the net loss (black mark). "
        "Derived by the coordinator from the runs' per-step series (see the method under "
        "'Where the efficiency went')."
    )
    return Plot("scaling_loss", title, "".join(parts_svg), caption)


def _ms(loss: LostTime, key: str) -> float | None:
    v = loss.parts_ms.get(key)
    return float(v) if isinstance(v, (int, float)) else None
