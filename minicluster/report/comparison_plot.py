"""The comparison's plot: direction-normalized deltas per metric (right = better), by family."""

from __future__ import annotations

from typing import Any

from minicluster.core import metrics as metrics_registry
from minicluster.report import svg
from minicluster.report.svg import Plot

_VERDICT_COLOR = {"better": "#009E73", "worse": "#D55E00", "no_change": "#999999"}


def _normalized_pct(row: dict[str, Any]) -> float | None:
    """delta_pct turned so that positive is better (registry direction); None without one."""
    pct = row.get("delta_pct")
    direction = row.get("direction")
    if direction is None:
        m = metrics_registry.get(str(row.get("metric")))
        direction = m.direction if m else "none"
    if not isinstance(pct, (int, float)) or direction not in ("higher", "lower"):
        return None
    return float(pct) if direction == "higher" else -float(pct)


NOTE_CHARS = 46  # n/a notes in the comparison plot stop short of the legend


def _has_bar(row: dict[str, Any], norm: float | None) -> bool:
    return _delta_mark(row, norm) not in ("n/a", "?", "no direction")


def _delta_mark(row: dict[str, Any], norm: float | None) -> str:
    """What a row shows instead of (or beside) a bar: `~`, `?`, n/a, or the signed percent."""
    verdict = row.get("verdict")
    if verdict in ("not_comparable", "missing") or row.get("a") is None or row.get("b") is None:
        return "n/a"
    if row.get("delta_pct") is None:
        return "?"  # zero baseline: only the absolute delta exists
    if norm is None:
        return "no direction"
    if verdict == "no_change":
        return f"~ ({norm:+.1f}%)"
    return f"{norm:+.1f}%"


def comparison_plot(rows: list[dict[str, Any]], title: str = "B vs A") -> Plot | None:
    """Direction-normalized deltas per metric (right = better), grouped by family.

    Takes the comparator's rows (`Row.to_dict()`): `metric`, `unit`, `a`, `b`, `delta_abs`,
    `delta_pct` (None for a zero baseline), `verdict` (`better`, `worse`, `no_change`,
    `not_comparable`, `missing`), `reason`, and optionally `family` and `direction` (taken
    from the metric registry when absent). A metric that is `~`, `?` or n/a gets no bar, only
    its mark.
    """
    if not rows:
        return None

    def family(r: dict[str, Any]) -> str:
        m = metrics_registry.get(str(r.get("metric")))
        return str(r.get("family") or (m.family if m else "other"))

    families: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        families.setdefault(family(r), []).append(r)
    norms = [_normalized_pct(r) for r in rows]
    drawn = [n for r, n in zip(rows, norms, strict=True) if n is not None and _has_bar(r, n)]
    span = max([abs(n) for n in drawn] + [5.0]) * 1.15  # scaled by the bars it draws
    line_h = 20
    n_lines = len(rows) + len(families)
    height = svg.MARGIN_TOP + n_lines * line_h + svg.MARGIN_BOTTOM + 10
    frame = svg.Frame(-span, span, 0.0, 1.0, width=svg.WIDTH + 140, height=height, margin_left=230)
    label_x = 8
    parts = [svg.open_svg(frame, f"Direction-normalized deltas, {title}", "comparison")]
    ticks = svg.nice_ticks(-span, span, 6)
    for v in ticks:
        x = frame.x(v)
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}" '
            f'class="{"axis" if v == 0 else "grid"}"/>'
        )
    parts.append(
        svg.x_axis(
            frame, "change in % where right is better (direction from the metric registry)", ticks
        )
    )
    y = frame.top + 4
    for fam in families:
        parts.append(svg.text(label_x, y + 13, fam, cls="alabel"))
        y += line_h
        for r in families[fam]:
            norm = _normalized_pct(r)
            mark = _delta_mark(r, norm)
            name = str(r.get("metric"))
            parts.append(svg.text(label_x + 12, y + 13, name))
            verdict = str(r.get("verdict"))
            if norm is not None and _has_bar(r, norm):
                a, b = frame.x(min(0.0, norm)), frame.x(max(0.0, norm))
                col = _VERDICT_COLOR.get(verdict, "#999999")
                parts.append(
                    svg.rect(
                        a,
                        y + 3,
                        b - a,
                        line_h - 6,
                        col,
                        f"{name}: {mark} ({verdict}); {r.get('reason', '')}",
                    )
                )
                end = frame.x(norm) + (4 if norm >= 0 else -4)
                parts.append(svg.text(end, y + 14, mark, anchor="start" if norm >= 0 else "end"))
            else:
                note = f"{mark}: {r.get('reason', '')}"
                if len(note) > NOTE_CHARS:  # the full reason is in the table below the plot
                    note = note[: NOTE_CHARS - 1] + "…"
                parts.append(svg.text(frame.x(0) + 4, y + 14, note, fill="#666"))
            y += line_h
    parts.append(
        svg.legend(
            frame,
            [
                ("better", _VERDICT_COLOR["better"], "box"),
                ("worse", _VERDICT_COLOR["worse"], "box"),
                ("~ not significant", _VERDICT_COLOR["no_change"], "box"),
            ],
        )
    )
    parts.append("</svg>")
    caption = (
        "Percent change of B against A per metric, signed so that right is better (lower-is-better "
        "metrics flipped); colours are the comparator's verdicts. ~ = not significant, ? = zero "
        "baseline (absolute delta only), n/a = not measured on one side or not comparable. "
        "Values as derived by the comparator."
    )
    return Plot("comparison", f"Comparison, {title}", "".join(parts), caption)
