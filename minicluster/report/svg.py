"""The report's one SVG writer: a declarative `Chart` (marks: lines with markers, bars on rows,
bands, reference rules, points, labels; axes and legend) rendered by `render`, on top of the
primitives below, every text escaped; and the `Plot` a report embeds.

No plotting library: the HTML report must work offline and without JavaScript, and matplotlib's
SVG backend writes about 4x the bytes at hundreds of times the render time for these small plots
(scripts/bench_plots.py, BENCHMARKS.md). Coordinates are in SVG user units; a `Frame` maps data
values onto the plot area. Plot modules build a `Chart` from a result and never write SVG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

# Colour-blind-safe palette (Okabe-Ito), cycled by series index.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH = 760
HEIGHT = 340
MARGIN_LEFT = 64
MARGIN_RIGHT = 170
MARGIN_TOP = 34
MARGIN_BOTTOM = 48
LEGEND_CHARS = 22  # what fits in the right margin at 11 px; the full label is the hover title


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.3g}"
    return f"{v:g}"


@dataclass(frozen=True)
class Frame:
    """Maps data ranges onto the plot area; `log_x` uses log10 on x (values must be > 0)."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    log_x: bool = False
    width: int = WIDTH
    height: int = HEIGHT
    margin_left: int = MARGIN_LEFT

    @property
    def left(self) -> float:
        return self.margin_left

    @property
    def right(self) -> float:
        return self.width - MARGIN_RIGHT

    @property
    def top(self) -> float:
        return MARGIN_TOP

    @property
    def bottom(self) -> float:
        return self.height - MARGIN_BOTTOM

    def _xt(self, x: float) -> float:
        return math.log10(x) if self.log_x else x

    def x(self, v: float) -> float:
        lo, hi = self._xt(self.x_lo), self._xt(self.x_hi)
        span = hi - lo or 1.0
        return self.left + (self._xt(v) - lo) / span * (self.right - self.left)

    def y(self, v: float) -> float:
        span = self.y_hi - self.y_lo or 1.0
        return self.bottom - (v - self.y_lo) / span * (self.bottom - self.top)


def open_svg(frame: Frame, title: str, label: str) -> str:
    """The <svg> start tag with an accessible title; `label` names the plot for tests."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{escape(label)}" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{frame.left}" y="20" class="ptitle">{escape(title)}</text>'
    )


def axes(
    frame: Frame,
    x_label: str,
    y_label: str,
    x_ticks: list[float] | None = None,
    x_tick_text: list[str] | None = None,
) -> str:
    """Axis lines, grid, tick labels and axis titles (which carry the units)."""
    parts = [
        f'<line x1="{frame.left}" y1="{frame.bottom}" x2="{frame.right}" y2="{frame.bottom}" '
        'class="axis"/>',
        f'<line x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" y2="{frame.bottom}" '
        'class="axis"/>',
    ]
    for v in nice_ticks(frame.y_lo, frame.y_hi):
        y = frame.y(v)
        parts.append(
            f'<line x1="{frame.left}" y1="{y:.1f}" x2="{frame.right}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(tick_label(v))}</text>"
        )
    xs = x_ticks if x_ticks is not None else nice_ticks(frame.x_lo, frame.x_hi, 8)
    texts = x_tick_text or [tick_label(v) for v in xs]
    for v, t in zip(xs, texts, strict=True):
        x = frame.x(v)
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.bottom}" x2="{x:.1f}" y2="{frame.bottom + 4}" '
            'class="axis"/>'
            f'<text x="{x:.1f}" y="{frame.bottom + 17}" class="tick" text-anchor="middle">'
            f"{escape(t)}</text>"
        )
    mid_x = (frame.left + frame.right) / 2
    mid_y = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text x="{mid_x:.1f}" y="{frame.height - 10}" class="alabel" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="16" y="{mid_y:.1f}" class="alabel" text-anchor="middle" '
        f'transform="rotate(-90 16 {mid_y:.1f})">{escape(y_label)}</text>'
    )
    return "".join(parts)


def x_axis(
    frame: Frame, x_label: str, ticks: list[float], tick_text: list[str] | None = None
) -> str:
    """Only the x axis, its tick labels and title (for bar charts with category rows)."""
    parts = [
        f'<line x1="{frame.left}" y1="{frame.bottom}" x2="{frame.right}" y2="{frame.bottom}" '
        'class="axis"/>'
    ]
    for v, t in zip(ticks, tick_text or [tick_label(v) for v in ticks], strict=True):
        x = frame.x(v)
        parts.append(
            f'<text x="{x:.1f}" y="{frame.bottom + 17}" class="tick" text-anchor="middle">'
            f"{escape(t)}</text>"
        )
    parts.append(
        f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.height - 10}" class="alabel" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    return "".join(parts)


def polyline(
    frame: Frame, points: list[tuple[float, float]], stroke: str, label: str, dash: str = ""
) -> str:
    """A data series as one polyline; the series name is its hover title."""
    if not points:
        return ""
    coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<polyline class="series" points="{coords}" fill="none" stroke="{stroke}" '
        f'stroke-width="1.6"{dash_attr}><title>{escape(label)}</title></polyline>'
    )


def markers(
    frame: Frame, points: list[tuple[float, float]], fill: str, label: str, hollow: bool = False
) -> str:
    """Circles at data points; hollow ones mark projected/estimated values."""
    style = f'fill="white" stroke="{fill}" stroke-width="2"' if hollow else f'fill="{fill}"'
    return "".join(
        f'<circle class="point" cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="4" {style}>'
        f"<title>{escape(label)}: {escape(tick_label(x))}, {escape(tick_label(y))}</title></circle>"
        for x, y in points
    )


def hline(frame: Frame, y: float, stroke: str, label: str, inline: bool = True) -> str:
    """A dashed horizontal reference line; `inline` also writes its label above its right end."""
    py = frame.y(y)
    line = (
        f'<line class="ref" x1="{frame.left}" y1="{py:.1f}" x2="{frame.right}" y2="{py:.1f}" '
        f'stroke="{stroke}" stroke-width="1.4" stroke-dasharray="6 4">'
        f"<title>{escape(label)}</title></line>"
    )
    if not inline:
        return line
    return line + (
        f'<text x="{frame.right - 4}" y="{py - 4:.1f}" class="tick reflabel" '
        f'text-anchor="end" fill="{stroke}">{escape(label)}</text>'
    )


def vband(frame: Frame, x0: float, x1: float, label: str) -> str:
    """A shaded vertical band from x0 to x1 (e.g. warm-up steps)."""
    a, b = frame.x(x0), frame.x(x1)
    return (
        f'<rect class="band" x="{a:.1f}" y="{frame.top}" width="{max(b - a, 1):.1f}" '
        f'height="{frame.bottom - frame.top}" fill="#999" fill-opacity="0.18">'
        f"<title>{escape(label)}</title></rect>"
        f'<text x="{a + 3:.1f}" y="{frame.top + 12}" class="tick">{escape(label)}</text>'
    )


def rect(x: float, y: float, w: float, h: float, fill: str, label: str, outline: str = "") -> str:
    stroke = f' stroke="{outline}" stroke-width="2.5"' if outline else ""
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
        f'height="{max(h, 0):.1f}" fill="{fill}"{stroke}><title>{escape(label)}</title></rect>'
    )


def text(
    x: float, y: float, body: str, cls: str = "tick", anchor: str = "start", fill: str = ""
) -> str:
    fill_attr = f' fill="{fill}"' if fill else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}"{fill_attr}>'
        f"{escape(body)}</text>"
    )


def legend(frame: Frame, entries: list[tuple[str, str, str]]) -> str:
    """Legend at the right: (label, colour, kind) with kind 'line', 'dash', 'box', 'outline' or
    'hollow'."""
    x = frame.right + 12
    parts = []
    for i, (label, col, kind) in enumerate(entries):
        y = frame.top + 40 + i * 18
        if kind == "box":
            parts.append(f'<rect x="{x}" y="{y - 9}" width="14" height="10" fill="{col}"/>')
        elif kind == "outline":
            parts.append(
                f'<rect x="{x}" y="{y - 9}" width="14" height="10" fill="white" stroke="{col}" '
                'stroke-width="2.5"/>'
            )
        elif kind == "hollow":
            parts.append(
                f'<circle cx="{x + 7}" cy="{y - 4}" r="4" fill="white" stroke="{col}" '
                'stroke-width="2"/>'
            )
        else:
            dash = ' stroke-dasharray="6 4"' if kind == "dash" else ""
            parts.append(
                f'<line x1="{x}" y1="{y - 4}" x2="{x + 16}" y2="{y - 4}" stroke="{col}" '
                f'stroke-width="2"{dash}/>'
            )
        shown = label if len(label) <= LEGEND_CHARS else label[: LEGEND_CHARS - 1] + "…"
        parts.append(
            f'<text x="{x + 20}" y="{y}" class="tick">{escape(shown)}'
            f"<title>{escape(label)}</title></text>"
        )
    return f'<g class="legend">{"".join(parts)}</g>'


@dataclass(frozen=True)
class Plot:
    """One figure: `label` is a stable id (tests, anchors), `caption` says units and provenance."""

    label: str
    title: str
    svg: str
    caption: str


MAX_LEGEND = 12


# --- the declarative spec ---------------------------------------------------------------------

Key = tuple[str, str, str]
"""A legend entry: (label, colour, kind) with kind 'line', 'dash', 'box', 'outline' or 'hollow'."""


@dataclass(frozen=True)
class Line:
    """A data series: a polyline (unless `line` is False) and optional markers at its points."""

    points: Sequence[tuple[float, float]]
    color: str
    label: str
    dash: str = ""
    line: bool = True
    markers: Literal["", "filled", "hollow"] = ""


@dataclass(frozen=True)
class Band:
    """A shaded vertical band from x0 to x1 with its label at the top left."""

    x0: float
    x1: float
    label: str


@dataclass(frozen=True)
class Rule:
    """A reference line at `at` on the y axis (horizontal) or the x axis (vertical); `text`
    writes its label: 'end' above its right end (horizontal), 'top' / 'bottom' beside a
    vertical one; '' only as its hover title."""

    at: float
    color: str
    label: str
    axis: Literal["x", "y"] = "y"
    dash: str = "6 4"
    text: Literal["", "end", "top", "bottom"] = "end"
    row: int | None = None  # a vertical rule only across this row's bar (a per-row mark)
    width: float = 1.4
    cls: str = "ref"  # 'axis': drawn as an axis line (the page's style), no colour of its own


@dataclass(frozen=True)
class Bar:
    """A horizontal bar on row `row` from x0 to x1 (data units); `outline` strokes it, and with
    `color` "none" frames the row's bar instead."""

    row: int
    x0: float
    x1: float
    color: str
    label: str
    outline: str = ""


@dataclass(frozen=True)
class Point:
    """One marker at (x, y) in data units, its label as the hover title."""

    x: float
    y: float
    color: str
    label: str
    r: float = 4.0


@dataclass(frozen=True)
class Label:
    """Text at data x (None: the plot's right edge) and, on a rows chart, beside row `y`'s bar,
    else at data y; `dx`, `dy` shift it in pixels."""

    x: float | None
    y: float
    text: str
    anchor: str = "start"  # start, middle or end
    fill: str = ""
    cls: str = "tick"
    dx: float = 0.0
    dy: float = 0.0


Mark = Line | Band | Rule | Bar | Point | Label


@dataclass(frozen=True)
class Row:
    """A row of a bar chart: its label at the left; a `heading` (a group's name) has no bar."""

    text: str
    heading: bool = False


@dataclass
class Chart:
    """What a plot shows, with no SVG in it: `render` draws it.

    An xy chart (no `rows`) has both axes with a grid; a rows chart (`rows` given: horizontal
    bars, one per row) and a strip (`y_axis` False) have only the x axis with vertical grid lines.
    """

    label: str
    title: str
    x_lo: float
    x_hi: float
    x_label: str
    y_lo: float = 0.0
    y_hi: float = 1.0
    y_label: str = ""
    log_x: bool = False
    x_ticks: list[float] | None = None
    x_tick_text: list[str] | None = None
    marks: list[Mark] = field(default_factory=list)
    legend: list[Key] = field(default_factory=list)
    rows: list[Row] | None = None
    y_axis: bool = True
    x_grid: bool = True  # rows chart or strip: vertical grid lines at the x ticks
    note: str = ""  # top right, e.g. what is off the scale
    width: int = WIDTH
    height: int = HEIGHT
    margin_left: int = MARGIN_LEFT
    row_pitch: int = 26  # rows chart: pixels per row
    bar_h: int = 18  # rows chart: bar height
    first_row: int = 6  # rows chart: the first bar's top below the plot area's top
    row_label_x: float | None = None  # rows chart: None puts row labels right-aligned at left
    bottom_extra: int = 10  # rows chart: pixels below the last row, above the margin

    def frame(self) -> Frame:
        height = self.height
        if self.rows is not None:
            height = MARGIN_TOP + len(self.rows) * self.row_pitch + MARGIN_BOTTOM
            height += self.bottom_extra
        return Frame(
            self.x_lo,
            self.x_hi,
            self.y_lo,
            self.y_hi,
            log_x=self.log_x,
            width=self.width,
            height=height,
            margin_left=self.margin_left,
        )

    def row_top(self, frame: Frame, row: int) -> float:
        return frame.top + self.first_row + row * self.row_pitch

    def row_text_y(self, frame: Frame, row: int) -> float:
        return self.row_top(frame, row) + self.bar_h / 2 + 4


def _x_grid(c: Chart, frame: Frame, ticks: list[float]) -> str:
    return "".join(
        f'<line x1="{frame.x(v):.1f}" y1="{frame.top}" x2="{frame.x(v):.1f}" '
        f'y2="{frame.bottom}" class="grid"/>'
        for v in ticks
    )


def _rule(c: Chart, frame: Frame, m: Rule) -> str:
    if m.axis == "y":
        return hline(frame, m.at, m.color, m.label, inline=m.text == "end")
    px = frame.x(m.at)
    y0, y1 = float(frame.top), float(frame.bottom)
    if m.row is not None:
        y0 = c.row_top(frame, m.row) - 3
        y1 = y0 + c.bar_h + 6
    if m.cls == "axis":
        return f'<line x1="{px:.1f}" y1="{y0:g}" x2="{px:.1f}" y2="{y1:g}" class="axis"/>'
    dash = f' stroke-dasharray="{m.dash}"' if m.dash else ""
    title = f"<title>{escape(m.label)}</title>" if m.label else ""
    out = (
        f'<line class="{m.cls}" x1="{px:.1f}" y1="{y0:.1f}" x2="{px:.1f}" y2="{y1:.1f}" '
        f'stroke="{m.color}" stroke-width="{m.width:g}"{dash}>{title}</line>'
    )
    if m.text in ("top", "bottom"):
        y = frame.bottom - 6 if m.text == "bottom" else frame.top + 10
        out += text(px + 4, y, m.label, fill=m.color)
    return out


def _mark(c: Chart, frame: Frame, m: Mark) -> str:
    if isinstance(m, Line):
        out = polyline(frame, list(m.points), m.color, m.label, m.dash) if m.line else ""
        if m.markers:
            out += markers(frame, list(m.points), m.color, m.label, m.markers == "hollow")
        return out
    if isinstance(m, Band):
        return vband(frame, m.x0, m.x1, m.label)
    if isinstance(m, Rule):
        return _rule(c, frame, m)
    if isinstance(m, Bar):
        a, b = frame.x(m.x0), frame.x(m.x1)
        y = c.row_top(frame, m.row)
        if m.outline and m.color == "none":  # a frame around the row's bar
            return rect(a, y - 2, b - a, c.bar_h + 4, "none", m.label, outline=m.outline)
        return rect(a, y, b - a, c.bar_h, m.color, m.label, outline=m.outline)
    if isinstance(m, Point):
        return (
            f'<circle class="point" cx="{frame.x(m.x):.1f}" cy="{frame.y(m.y):.1f}" '
            f'r="{m.r:g}" fill="{m.color}"><title>{escape(m.label)}</title></circle>'
        )
    x = frame.right if m.x is None else frame.x(m.x)
    y = c.row_text_y(frame, int(m.y)) if c.rows is not None else frame.y(m.y)
    return text(x + m.dx, y + m.dy, m.text, cls=m.cls, anchor=m.anchor, fill=m.fill)


def render(c: Chart) -> str:
    """The chart as one inline <svg>: bands, axes and grid, marks in order, row labels, the
    note, the legend."""
    frame = c.frame()
    parts = [open_svg(frame, c.title, c.label)]
    parts += [_mark(c, frame, m) for m in c.marks if isinstance(m, Band)]
    if c.rows is None and c.y_axis:
        parts.append(axes(frame, c.x_label, c.y_label, c.x_ticks, c.x_tick_text))
    else:
        ticks = c.x_ticks if c.x_ticks is not None else nice_ticks(c.x_lo, c.x_hi, 6)
        if c.log_x:
            ticks = [t for t in ticks if t > 0]
        if c.x_grid:
            parts.append(_x_grid(c, frame, ticks))
        parts.append(x_axis(frame, c.x_label, ticks, c.x_tick_text))
    parts += [_mark(c, frame, m) for m in c.marks if not isinstance(m, Band)]
    if c.rows is not None and c.y_label:
        mid_y = (frame.top + frame.bottom) / 2
        parts.append(
            f'<text x="16" y="{mid_y:.1f}" class="alabel" text-anchor="middle" '
            f'transform="rotate(-90 16 {mid_y:.1f})">{escape(c.y_label)}</text>'
        )
    for i, row in enumerate(c.rows or []):
        y = c.row_text_y(frame, i)
        if row.heading:
            parts.append(text(8, y, row.text, cls="alabel"))
        elif c.row_label_x is not None:
            parts.append(text(c.row_label_x, y, row.text))
        else:
            parts.append(text(frame.left - 6, y, row.text, anchor="end"))
    if c.note:
        parts.append(text(frame.right, 20, c.note, anchor="end", fill="#666"))
    if c.legend:
        parts.append(legend(frame, c.legend))
    parts.append("</svg>")
    return "".join(parts)
