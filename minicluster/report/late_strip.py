"""The "who was late" strip of a run report: per rank one row, per step one cell, marking the rank
that arrived last at the step's sync points (the step's culprit, `accounting.last_arrival`) and how
much later than the next one it arrived.

A run longer than MAX_CELLS steps is drawn in bins of consecutive steps: a cell then holds the
largest lateness of the rank over the bin's steps it arrived last in.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from minicluster.result.model import RunResult

TITLE = "Who was late"
MAX_CELLS = 400  # cells per row: a report people can mail (see html.MAX_BYTES)
GLYPHS = "▁▂▃▄▅▆▇█"  # lateness, up to the run's largest
NOT_LAST = "·"
MIN_RUN = 4  # a run of this many equal glyphs is written glyph×count in text


@dataclass
class Strip:
    """`late[i][j]`: the largest lateness (ms) of rank `ranks[i]` over the steps of cell `j`
    (`cells[j]`: first and last step) where it arrived last; None where it never did."""

    ranks: list[int]
    cells: list[tuple[int, int]]
    late: list[list[float | None]]
    last_steps: dict[int, int]  # per rank how many steps it arrived last in
    late_ms_total: dict[int, float]  # per rank its lateness summed over those steps

    @property
    def max_ms(self) -> float:
        return max((x for row in self.late for x in row if x is not None), default=0.0)

    @property
    def binned(self) -> bool:
        return any(a != b for a, b in self.cells)

    def note(self) -> str:
        per = (
            f"one cell per {self.cells[0][1] - self.cells[0][0] + 1} steps (its largest lateness)"
            if self.binned
            else "one cell per step"
        )
        return (
            "Per step the rank that arrived last at its sync points (the step's culprit) and how "
            f"much later than the next one; {per}, from step {self.cells[0][0]} to "
            f"{self.cells[-1][1]}."
        )


def late_strip(result: RunResult) -> Strip | None:
    """The strip of `result`'s accounting; None when it accounted for no step (one rank, records
    without the host time, a run that failed before its first measured step) and when its
    `last_arrival` is not three series of one length (a result edited by hand)."""
    acc: dict[str, Any] | None = result.accounting
    last = acc.get("last_arrival") if isinstance(acc, dict) else None
    if not isinstance(last, dict) or not last.get("step"):
        return None
    try:  # the schema leaves the section's shape open: an edited result draws no strip
        steps: list[int] = [int(s) for s in last["step"]]
        who: list[int] = [int(r) for r in last["rank"]]
        late_ms: list[float] = [float(x) for x in last["lateness_ms"]]
    except (KeyError, TypeError, ValueError):
        return None
    if not len(steps) == len(who) == len(late_ms):
        return None
    ranks = sorted({r.rank for r in result.ranks} | set(who))
    per = -(-len(steps) // MAX_CELLS)  # steps per cell, ceiling
    bins = [list(range(i, min(i + per, len(steps)))) for i in range(0, len(steps), per)]
    row = {r: i for i, r in enumerate(ranks)}
    late: list[list[float | None]] = [[None] * len(bins) for _ in ranks]
    for j, idx in enumerate(bins):
        for k in idx:
            cell = late[row[who[k]]]
            cell[j] = max(cell[j] or 0.0, late_ms[k])
    return Strip(
        ranks=ranks,
        cells=[(steps[idx[0]], steps[idx[-1]]) for idx in bins],
        late=late,
        last_steps={r: who.count(r) for r in ranks},
        late_ms_total={
            r: sum(x for w, x in zip(who, late_ms, strict=True) if w == r) for r in ranks
        },
    )


def _glyph(x: float | None, top: float) -> str:
    if x is None:
        return NOT_LAST
    if top <= 0:
        return GLYPHS[0]
    return GLYPHS[min(len(GLYPHS) - 1, int(len(GLYPHS) * x / top))]


def run_length(glyphs: str) -> str:
    """`glyphs` with each run of MIN_RUN or more equal glyphs written as glyph×count."""
    out: list[str] = []
    i = 0
    while i < len(glyphs):
        j = i
        while j < len(glyphs) and glyphs[j] == glyphs[i]:
            j += 1
        out.append(f"{glyphs[i]}×{j - i} " if j - i >= MIN_RUN else glyphs[i] * (j - i))
        i = j
    return "".join(out).strip()


def text_lines(strip: Strip) -> list[str]:
    """One line per rank: its strip run-length encoded, then how often and how late it was last."""
    top = strip.max_ms
    width = max(len(f"rank {r}") for r in strip.ranks)
    return [
        f"{f'rank {r}':<{width}}  {run_length(''.join(_glyph(x, top) for x in row))}  "
        f"(last in {_steps(strip.last_steps[r])}, {strip.late_ms_total[r]:.0f} ms late in all)"
        for r, row in zip(strip.ranks, strip.late, strict=True)
    ]


STRIP_CSS = """
.late-strip{overflow-x:auto;margin:6px 0 4px}
.late-strip table{border-collapse:separate;border-spacing:1px;margin:0}
.late-strip th{font-weight:500;background:none;border:0;padding:0 6px 0 0;font-size:12px}
.late-strip td.c{width:7px;min-width:7px;height:14px;padding:0;border:0;background:#eef0f2}
.late-strip td.sum{border:0;padding:0 0 0 8px;font-size:12px;color:#444;white-space:nowrap}
"""


def _cell_html(x: float | None, top: float, span: tuple[int, int]) -> str:
    where = f"step {span[0]}" if span[0] == span[1] else f"steps {span[0]}-{span[1]}"
    if x is None:
        return f'<td class="c" title="{where}"></td>'
    share = x / top if top > 0 else 0.0
    light = 88 - int(58 * share)  # pale red for a tie, dark red for the run's latest arrival
    return (
        f'<td class="c last" style="background:hsl(4,72%,{light}%)" '
        f'title="{where}: last, {x:.1f} ms late"></td>'
    )


def strip_html(strip: Strip) -> str:
    """The strip as an HTML section: one table row per rank, one coloured cell per step (a title
    on each says the step and the lateness), the rank's count and total beside it."""
    top = strip.max_ms
    rows = []
    for r, row in zip(strip.ranks, strip.late, strict=True):
        cells = "".join(_cell_html(x, top, span) for x, span in zip(row, strip.cells, strict=True))
        rows.append(
            f'<tr data-rank="{r}"><th>rank {r}</th>{cells}<td class="sum">last in '
            f"{_steps(strip.last_steps[r])}, {strip.late_ms_total[r]:.0f} ms late</td></tr>"
        )
    return (
        f'<h2>{escape(TITLE)}</h2><p class="note">{escape(strip.note())} Red: last, darker '
        f"later, up to {strip.max_ms:.1f} ms; grey: not last.</p>"
        f'<div class="late-strip" data-strip="late"><table>{"".join(rows)}</table></div>'
    )


def strip_markdown(strip: Strip) -> list[str]:
    """The strip as Markdown lines: a title, the note with the glyph legend, one code line per
    rank."""
    legend = (
        f"{NOT_LAST}: not last; {GLYPHS[0]} to {GLYPHS[-1]}: last, up to {strip.max_ms:.1f} ms "
        f"late; g×n: n cells of g."
    )
    return [f"## {TITLE}", "", f"{strip.note()} {legend}", "", "```", *text_lines(strip), "```", ""]


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"
