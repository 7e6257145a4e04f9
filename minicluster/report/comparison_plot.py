"""The comparison's plot: per judged metric, B/A turned so that right is better, on a log scale.

A log scale of the ratio keeps a 2% change and a 200x one readable side by side; a bar beyond
x4 either way is clipped at the edge and its value printed. Only rows the comparator judged
are drawn (measured on both sides, comparable, tested where they must be, above the noise
floor); the caption counts the others, which the table lists.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from minicluster.core import metrics as metrics_registry
from minicluster.report import svg
from minicluster.report.svg import Plot

_VERDICT_COLOR = {"better": "#009E73", "worse": "#D55E00", "no_change": "#999999"}
CLIP_LOG2 = 2.0  # bars stop at x4 / ÷4 and print their value
_MIN_LOG2 = math.log2(1.1)  # the axis spans at least ÷1.1 .. x1.1
_TICK_RATIOS = (1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0)


def _direction(row: dict[str, Any]) -> str:
    direction = row.get("direction")
    if direction is None:
        m = metrics_registry.get(str(row.get("metric")))
        direction = m.direction if m else "none"
    return str(direction)


def _normalized_ratio(row: dict[str, Any]) -> float | None:
    """B/A turned so > 1 is better (registry direction); None without a positive ratio."""
    a, b, direction = row.get("a"), row.get("b"), _direction(row)
    ratio = row.get("ratio")
    if ratio is None and isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0:
        ratio = b / a if b > 0 else None
    if not isinstance(ratio, (int, float)) or ratio <= 0 or direction not in ("higher", "lower"):
        return None
    return float(ratio) if direction == "higher" else 1.0 / float(ratio)


def _drawn(row: dict[str, Any]) -> bool:
    """Rows with a bar: better, worse or no change, above the noise floor, with a ratio."""
    return (
        row.get("verdict") in _VERDICT_COLOR
        and not row.get("below_floor")
        and _normalized_ratio(row) is not None
    )


def _mark(row: dict[str, Any], ratio: float) -> str:
    """The printed value: the table's own percent change of the metric, with its sign (a
    latency +134.9% is "+134.9%" on a bar pointing left, worse); a factor B/A from 1,000 % on
    (`x200`); `~` when no change. Never the change turned by direction: that printed a latency
    +134.9% as "-134.9%" and a +329% as an impossible "-329%"."""
    pct = row.get("delta_pct")
    if not isinstance(pct, (int, float)):
        return ""
    if abs(pct) < 1000:
        text = f"{pct:+.1f}%"
    else:
        raw = ratio if _direction(row) == "higher" else 1.0 / ratio  # B/A as in the table
        text = f"x{raw:.3g}" if raw >= 1 else f"÷{1 / raw:.3g}"
    return f"~ ({text})" if row.get("verdict") == "no_change" else text


def _tick_text(v: float) -> str:
    if v == 0:
        return "x1"
    r = 2.0 ** abs(v)
    return f"{'x' if v > 0 else '÷'}{r:.3g}"


def comparison_plot(rows: list[dict[str, Any]], title: str = "B vs A") -> Plot | None:
    """Direction-normalized B/A per judged metric (right = better), log scale, by family.

    Takes the comparator's rows (`Row.to_dict()`): `metric`, `a`, `b`, `ratio` (b/a),
    `verdict`, `below_floor`, `reason`, and optionally `family` and `direction` (from the
    registry when absent). None when no row can be drawn.
    """
    shown = [r for r in rows if _drawn(r)]
    if not shown:
        return None

    def family(r: dict[str, Any]) -> str:
        m = metrics_registry.get(str(r.get("metric")))
        return str(r.get("family") or (m.family if m else "other"))

    families: dict[str, list[dict[str, Any]]] = {}
    for r in shown:
        families.setdefault(family(r), []).append(r)
    logs = [abs(math.log2(_normalized_ratio(r) or 1.0)) for r in shown]
    span = min(max(logs + [_MIN_LOG2]), CLIP_LOG2) * 1.25  # room for the printed value
    line_h = 20
    n_lines = len(shown) + len(families)
    height = svg.MARGIN_TOP + n_lines * line_h + svg.MARGIN_BOTTOM + 10
    frame = svg.Frame(-span, span, 0.0, 1.0, width=svg.WIDTH + 140, height=height, margin_left=230)
    parts = [svg.open_svg(frame, "B/A per metric, right = better", "comparison")]
    edge = span / 1.25
    kept = [0.0]  # x1, then the largest ratios that fit, at least a quarter of the axis apart
    for tick_ratio in sorted(_TICK_RATIOS, reverse=True):
        v = math.log2(tick_ratio)
        if v <= edge + 1e-9 and all(abs(v - k) >= edge / 4 for k in kept):
            kept.append(v)
    ticks = sorted({*kept, *(-k for k in kept)})
    for v in ticks:
        x = frame.x(v)
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}" '
            f'class="{"axis" if v == 0 else "grid"}"/>'
            f'<text x="{x:.1f}" y="{frame.bottom + 17}" class="tick" text-anchor="middle">'
            f"{escape(_tick_text(v))}</text>"
        )
    parts.append(
        f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.height - 10}" class="alabel" '
        'text-anchor="middle">B/A turned so right is better (log scale; bars past x4 clipped)'
        "</text>"
    )
    y = frame.top + 4
    for fam, fam_rows in families.items():
        parts.append(svg.text(8, y + 13, fam, cls="alabel"))
        y += line_h
        for r in fam_rows:
            ratio = _normalized_ratio(r)
            assert ratio is not None
            v = math.log2(ratio)
            clipped = abs(v) > edge
            drawn_v = max(-edge, min(edge, v))
            name, verdict, mark = str(r.get("metric")), str(r.get("verdict")), _mark(r, ratio)
            parts.append(svg.text(20, y + 13, name))
            a, b = frame.x(min(0.0, drawn_v)), frame.x(max(0.0, drawn_v))
            parts.append(
                svg.rect(
                    a,
                    y + 3,
                    b - a,
                    line_h - 6,
                    _VERDICT_COLOR[verdict],
                    f"{name}: {mark} ({verdict}); {r.get('reason', '')}",
                )
            )
            end = frame.x(drawn_v) + (4 if drawn_v >= 0 else -4)
            label = f"{mark} (clipped)" if clipped else mark
            parts.append(svg.text(end, y + 14, label, anchor="start" if v >= 0 else "end"))
            y += line_h
    parts.append(
        svg.legend(
            frame,
            [
                ("better", _VERDICT_COLOR["better"], "box"),
                ("worse", _VERDICT_COLOR["worse"], "box"),
                ("~ no change", _VERDICT_COLOR["no_change"], "box"),
            ],
        )
    )
    parts.append("</svg>")
    left_out = len(rows) - len(shown)
    caption = (
        f"{title}. B/A per metric, inverted for lower-is-better metrics so that right is better; "
        "log scale, so x2 and ÷2 are the same length; bars past x4 are clipped with the value "
        "printed. Colours are the comparator's verdicts; ~ = not significant or within the "
        f"run-to-run spread. {left_out} row(s) are not drawn (not measured, not comparable, not "
        "tested, below the noise floor or a zero on one side): see the table."
    )
    return Plot("comparison", f"Comparison, {title}", "".join(parts), caption)
