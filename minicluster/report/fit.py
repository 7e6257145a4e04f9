"""Terminal tables that never cut a value: columns are left out whole (and named), or the rows
fold to a vertical layout. Rich crops a `no_wrap` cell of a table wider than the console without
a mark (`13,951.2` printed as `13,`), so the width is measured before printing, never guessed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def natural_width(console: Console, options: ConsoleOptions, table: Table) -> int:
    """The width `table` takes with no cell cut or wrapped."""
    return Measurement.get(console, options.update_width(10**6), table).maximum


def fit_columns(
    console: Console,
    build: Callable[[list[str]], Table],
    columns: Sequence[str],
    droppable: Sequence[str],
    width: int | None = None,
) -> tuple[list[str], bool]:
    """The columns of the table `build(columns)` makes that fit `width` (the console's) whole:
    those in `droppable` are left out in its order until the table fits, and whether it fits
    then (when not, the caller folds the rows: `folded_lines`)."""
    width = console.width if width is None else width
    options = console.options
    kept = list(columns)
    for col in droppable:
        if natural_width(console, options, build(kept)) <= width:
            return kept, True
        if col in kept:
            kept.remove(col)
    return kept, natural_width(console, options, build(kept)) <= width


def folded_lines(
    width: int,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: Sequence[str | None] | None = None,
) -> list[Text]:
    """Rows too wide for a table, one block each: the first cell, then every other column as
    `header value`, lines broken between pairs, never inside a value."""
    out: list[Text] = []
    for i, row in enumerate(rows):
        style = (styles[i] if styles else None) or ""
        out.append(Text(row[0], style=f"bold {style}".strip()))
        line = ""
        for h, v in zip(headers[1:], row[1:], strict=True):
            if v == "":
                continue
            part = f"{h} {v}"
            if line and 2 + cell_len(line) + 3 + cell_len(part) > width:
                out.append(Text("  " + line, style=style))
                line = ""
            line += ("   " if line else "") + part
        if line:
            out.append(Text("  " + line, style=style))
    return out


def print_folded(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: Sequence[str | None] | None = None,
) -> None:
    for line in folded_lines(console.width, headers, rows, styles):
        console.print(line, soft_wrap=True)


def left_out_text(left_out: Iterable[str], full: str) -> Text:
    """Names the columns left out for the terminal width, and where every column is."""
    return Text(
        f"left out for the terminal width: {', '.join(left_out)} ({full} every column)",
        style="dim",
    )


class Fitted:
    """A renderable table fitted to the width it is given at render time (a `Live` view has no
    width before then): `build(columns)` makes the table; columns in `droppable` are left out
    in order, and named under it; if the rest is still too wide, the rows fold."""

    def __init__(
        self,
        build: Callable[[list[str]], Table],
        columns: Sequence[str],
        droppable: Sequence[str],
        rows: Callable[[], tuple[list[list[str]], list[str | None]]],
        title: str,
        full: str,
    ) -> None:
        self.build, self.columns, self.droppable = build, list(columns), droppable
        self.rows, self.title, self.full = rows, title, full

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterable[RenderableType]:
        kept, fits = fit_columns(
            console, self.build, self.columns, self.droppable, width=options.max_width
        )
        if fits:
            yield self.build(kept)
            if len(kept) < len(self.columns):
                yield left_out_text([c for c in self.columns if c not in kept], self.full)
            return
        yield Text(self.title)
        cells, styles = self.rows()  # every column, none left out
        yield from folded_lines(options.max_width, self.columns, cells, styles)
