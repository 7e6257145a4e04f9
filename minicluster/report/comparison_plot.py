"""The comparison's plot: per judged metric, B/A turned so that right is better, on a log scale.

A log scale of the ratio keeps a 2% change and a 200x one readable side by side; a bar beyond
x4 either way is clipped at the edge and its value printed. Only rows the comparator judged
are drawn (measured on both sides, comparable, tested where they must be, above the noise
floor); the caption counts the others, which the table lists.
"""

from __future__ import annotations

import math
from typing import Any

from minicluster.core import metrics as metrics_registry
from minicluster.report import svg
from minicluster.report.svg import Plot

_VERDICT_COLOR = {
    "better": "#009E73",
    "worse": "#D55E00",
    "no_change": "#999999",
    "inconclusive": "#E69F00",
}
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
    if row.get("verdict") == "inconclusive":
        return f"? ({text})"  # the runs cannot tell: not judged
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
    edge = span / 1.25
    kept = [0.0]  # x1, then the largest ratios that fit, at least a quarter of the axis apart
    for tick_ratio in sorted(_TICK_RATIOS, reverse=True):
        v = math.log2(tick_ratio)
        if v <= edge + 1e-9 and all(abs(v - k) >= edge / 4 for k in kept):
            kept.append(v)
    ticks = sorted({*kept, *(-k for k in kept)})
    chart = svg.Chart(
        "comparison",
        "B/A per metric, right = better",
        -span,
        span,
        "B/A turned so right is better (log scale; bars past x4 clipped)",
        x_ticks=ticks,
        x_tick_text=[_tick_text(v) for v in ticks],
        rows=[],
        legend=[
            ("better", _VERDICT_COLOR["better"], "box"),
            ("worse", _VERDICT_COLOR["worse"], "box"),
            ("~ no change", _VERDICT_COLOR["no_change"], "box"),
        ]
        + (
            [("? inconclusive (not judged)", _VERDICT_COLOR["inconclusive"], "box")]
            if any(r.get("verdict") == "inconclusive" for r in shown)
            else []
        ),
        marks=[svg.Rule(0.0, "", "", axis="x", dash="", text="", cls="axis")],
        width=svg.WIDTH + 140,
        margin_left=230,
        row_pitch=20,
        bar_h=14,
        first_row=7,
        row_label_x=20,
    )
    assert chart.rows is not None
    for fam, fam_rows in families.items():
        chart.rows.append(svg.Row(fam, heading=True))
        for r in fam_rows:
            ratio = _normalized_ratio(r)
            assert ratio is not None
            v = math.log2(ratio)
            drawn_v = max(-edge, min(edge, v))
            name, verdict, mark = str(r.get("metric")), str(r.get("verdict")), _mark(r, ratio)
            row = len(chart.rows)
            chart.rows.append(svg.Row(name))
            tip = f"{name}: {mark} ({verdict}); {r.get('reason', '')}"
            chart.marks.append(
                svg.Bar(row, min(0.0, drawn_v), max(0.0, drawn_v), _VERDICT_COLOR[verdict], tip)
            )
            label = f"{mark} (clipped)" if abs(v) > edge else mark
            anchor = "start" if v >= 0 else "end"
            dx = 4 if drawn_v >= 0 else -4
            chart.marks.append(svg.Label(drawn_v, row, label, anchor=anchor, dx=dx))
    left_out = len(rows) - len(shown)
    caption = (
        f"{title}. B/A per metric, inverted for lower-is-better metrics so that right is better; "
        "log scale, so x2 and ÷2 are the same length; bars past x4 are clipped with the value "
        "printed. Colours are the comparator's verdicts; ~ = not significant or within the "
        f"run-to-run spread. {left_out} row(s) are not drawn (not measured, not comparable, not "
        "tested, below the noise floor or a zero on one side): see the table."
    )
    return Plot("comparison", f"Comparison, {title}", svg.render(chart), caption)
