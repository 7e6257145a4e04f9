"""Terminal summary of one run result (rich tables)."""

from __future__ import annotations

import os
import sys

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from minicluster.report.content import RunView, run_view
from minicluster.report.sections import layout_text
from minicluster.report.text import TextTable, ellipsize, node_count, text
from minicluster.result.model import RunResult

_STATUS_COLOR = {"ok": "green", "failed": "red", "incomplete": "yellow"}


def plain_table(title: str) -> Table:
    """The reports' terminal table: title at the left, one rule under the header, no edge."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def rich_table(t: TextTable, columns: list[int] | None = None, unit: str = "") -> Table:
    """`unit` moves a shared unit suffix from every header into the title (narrow terminals)."""
    cols = columns if columns is not None else list(range(len(t.headers)))
    title = f"{t.title} ({unit})" if unit else t.title
    table = plain_table(title)
    for i in cols:
        header = t.headers[i].removesuffix(f" {unit}") if unit else t.headers[i]
        header = header.removeprefix("step ")
        table.add_column(
            escape(header),
            justify="right" if i in t.numeric else "left",
            no_wrap=i not in t.wrap,
        )
    for r, row in enumerate(t.rows):
        style = "bold red" if r in t.highlight else None
        table.add_row(*(escape(row[i]) for i in cols), style=style)
    return table


def fitting_columns(t: TextTable, cols: list[int], width: int, unit: str = "") -> list[int]:
    """The columns of `t` that fit `width` without cutting a value: the last ones are left out
    first (a table lists its most needed columns first), never the first two."""

    def header(i: int) -> str:
        h = t.headers[i].removesuffix(f" {unit}") if unit else t.headers[i]
        return h.removeprefix("step ")

    need = {i: max([len(header(i))] + [len(r[i]) for r in t.rows]) for i in cols}
    wrap = {i: min(need[i], 12) for i in cols if i in t.wrap}  # wrapping columns fold to 12
    kept = list(cols)
    while len(kept) > 2 and sum(wrap.get(i, need[i]) for i in kept) + 2 * len(kept) > width:
        kept.pop()
    return kept


def print_fitted(
    console: Console,
    t: TextTable,
    columns: list[int] | None = None,
    unit: str = "",
    full: str = "--md and --html",
) -> None:
    """`t` with the columns that fit the console (a value is never cut: columns are left out
    whole, and said so; `full`: the command's outputs that have every column)."""
    cols = columns if columns is not None else list(range(len(t.headers)))
    shown = fitting_columns(t, cols, console.width, unit)
    console.print(rich_table(t, columns=shown, unit=unit))
    if len(shown) < len(cols):
        left = ", ".join(t.headers[i] for i in cols if i not in shown)
        console.print(
            f"[dim]left out for the terminal width: {escape(left)} ({full} have every column)[/dim]"
        )


TERMINAL_MAX_RANK_ROWS = 16
NOTE_CHARS = 32  # rank notes in the terminal table; the full text is printed below it
PIPED_WIDTH = 120  # columns when stdout is a file or pipe (CI logs): 80 squeezes the tables


class _PipeConsole(Console):
    """A rich Console that, when its reader goes away (`| head -1`), stops printing instead of
    exiting 1 as rich does: the command's own exit code (a regression, a failed run) stands."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console() -> Console:
    """A console on stdout: the terminal's width, or PIPED_WIDTH when piped (COLUMNS wins)."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return _PipeConsole(highlight=False, width=PIPED_WIDTH if piped else None)


def reference_lines(result: RunResult) -> list[tuple[str, bool]]:
    """The run judged against a reference (`aggregate --reference`): a line for the reference
    and one per metric, each with whether it is a finding; [] when not judged against one."""
    ref = result.reference
    if ref is None:
        return []
    if ref.verdict == "not_judged":
        return [(f"reference {ref.name} ({ref.kind}): not judged: {ref.reason}", False)]
    out = [
        (
            f"reference {ref.name} ({ref.kind}, {text(ref.file)}), floor {ref.floor_pct:g}%: "
            f"{ref.verdict.replace('_', ' ')}",
            ref.verdict == "below_floor",
        )
    ]
    for m in ref.metrics:
        if m.verdict == "not_judged":
            out.append((f"  {m.metric}: not judged: {m.reason}", False))
        else:
            out.append(
                (
                    f"  {m.metric}: {m.value:.4g} = {m.pct_of_reference:.1f}% of the reference "
                    f"{m.reference_value:.4g}: {m.verdict.replace('_', ' ')}",
                    m.verdict == "below_floor",
                )
            )
    return out


def print_run_header(result: RunResult, console: Console | None = None) -> None:
    """The summary's first line alone (`minicluster run ID  INCOMPLETE  (run incomplete:
    interrupted)  ...`) and the verdict sentence under it: what an interrupted run says before
    it exits 130 (the full summary is `minicluster report DIR`)."""
    console = console or make_console()
    _print_header(result, run_view(result, max_rank_rows=TERMINAL_MAX_RANK_ROWS), console)


def _print_header(result: RunResult, view: RunView, console: Console) -> None:
    """The summary's first line; one too wide for the console is broken between its parts, never
    inside a verdict (`BELOW REFERENCE` split over two lines read as a bare `REFERENCE`)."""
    wl = result.workload
    color = _STATUS_COLOR.get(view.headline_class, "white")
    batch = f" (global batch {wl.global_batch})" if wl.global_batch is not None else ""
    name = f"minicluster {result.kind} {result.run_id}"
    done = f"({view.completion})"
    rest = (
        f"{text(result.world_size)} ranks on {node_count(result)} node(s), backend "
        f"{text(result.backend)}, "
        + (f"layout {layout_text(result)}, " if result.layout is not None else "")
        + f"workload {wl.name}{batch}"
    )
    verdicts = view.headline.split(", ")  # each verdict's words (`FAILED validation`) stay whole
    kind_id = (
        f"[bold]minicluster[/bold] {escape(str(result.kind))} [cyan]{escape(result.run_id)}[/cyan]"
    )

    def verdict_text(heads: list[str], tail: str = "") -> str:
        return f"[bold {color}]{escape(', '.join(heads) + tail)}[/bold {color}]"

    width = console.width
    lead = f"{name}  {view.headline}  {done}"
    if cell_len(f"{lead}  {rest}") <= width:
        console.print(f"{kind_id}  {verdict_text(verdicts)}  {escape(done)}  {escape(rest)}")
        return _print_verdict(view, console)
    if cell_len(lead) <= width:
        console.print(f"{kind_id}  {verdict_text(verdicts)}  {escape(done)}")
    else:
        console.print(kind_id)
        line: list[str] = []
        for v in verdicts:  # filled line by line, a verdict never split over two
            if line and cell_len(", ".join([*line, v])) + 1 > width:
                console.print(verdict_text(line, ","))
                line = []
            line.append(v)
        if cell_len(f"{', '.join(line)}  {done}") <= width:
            console.print(f"{verdict_text(line)}  {escape(done)}")
        else:
            console.print(verdict_text(line))
            console.print(escape(done))
    console.print(escape(rest))  # wraps between words where it must: no verdict in it
    _print_verdict(view, console)


def _print_verdict(view: RunView, console: Console) -> None:
    if view.verdict:
        style = "green" if view.verdict.startswith("pairwise: ok") else "bold red"
        console.print(f"[{style}]{escape(view.verdict)}[/{style}]")


def print_run_summary(result: RunResult, console: Console | None = None) -> None:
    """Summary line, metrics with provenance, what was not measured and why, ranks, faults, errors."""
    console = console or make_console()
    view = run_view(result, max_rank_rows=TERMINAL_MAX_RANK_ROWS)
    _print_header(result, view, console)
    for section in view.sections:
        # Columns empty in every row (a range with one round, notes of a clean sweep) only
        # take width from the others.
        filled = [i for i in range(len(section.headers)) if any(r[i] for r in section.rows)]
        print_fitted(console, section, filled if section.rows else None)
        if section.note:
            console.print(f"[dim]{escape(section.note)}[/dim]")
        if section.title == "Scaling" and view.why:
            for line in view.why:
                console.print(f"[yellow]why:[/yellow] {escape(line)}")
            console.print(f"[dim]{escape(view.why_note)}[/dim]")
    # The method column is long; the terminal shows value, unit and status, files show all.
    console.print(rich_table(view.metrics, columns=[0, 1, 2, 3]))
    for line, bad in reference_lines(result):
        console.print(f"[bold red]{escape(line)}[/bold red]" if bad else escape(line))
    missing: dict[str, list[str]] = {}
    for name, _unit, reason in view.missing.rows:
        missing.setdefault(reason, []).append(name)
    for reason, names in missing.items():
        console.print(
            f"[dim]not measured:[/dim] {escape(', '.join(names))} [dim]({escape(reason)})[/dim]"
        )
    if view.nodes is not None:
        print_fitted(console, view.nodes)
        if len(view.nodes.rows) < len(result.node_entries):
            console.print(
                f"[dim]{len(result.node_entries) - len(view.nodes.rows)} more nodes not shown "
                "(nodes not ok, with a straggler, or scoring lowest are); all are in "
                "result.json[/dim]"
            )
    note = len(view.ranks.headers) - 1
    # A rank's note can hold a whole collective error: cut it here, errors follow in full below.
    for row in view.ranks.rows:
        if len(row[note]) > NOTE_CHARS:
            row[note] = ellipsize(row[note], NOTE_CHARS)
    if "step p50 ms" in view.ranks.headers:  # a training run: the step columns, in ms
        rank_cols = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
        if any(row[note] for row in view.ranks.rows):
            rank_cols.append(note)
        print_fitted(console, view.ranks, rank_cols, unit="ms")
    else:
        print_fitted(console, view.ranks)
    if len(view.ranks.rows) < len(result.ranks):
        console.print(
            f"[dim]{len(result.ranks) - len(view.ranks.rows)} more ranks not shown "
            "(failed ranks, stragglers and the slowest median steps are); all are in "
            "result.json[/dim]"
        )
    for s in view.stragglers:
        console.print(f"[yellow]straggler:[/yellow] {escape(s)}")
    for side, kind, rank, step, details in view.faults.rows:
        console.print(
            f"[magenta]fault {escape(side)}:[/magenta] {escape(kind)}"
            + (
                f" on {escape(rank)}"  # a link: `on the link between ranks 0 and 1`
                if rank.startswith(("the ", "one of "))
                else f" {'ranks' if ',' in rank else 'rank'} {escape(rank)}"
                if rank not in ("", "n/a")
                else ""
            )
            + (f" step {escape(step)}" if step not in ("", "n/a") else "")
            + (f": {escape(details)}" if details else "")
        )
    link = result.link
    if (
        link is not None
        and not link.judged
        and any(f.kind == "slow_link" for f in result.faults.injected)
    ):
        # the fault was injected and nothing judged it: say so where the user looks
        console.print(
            f"[magenta]link not judged:[/magenta] {escape(link.reason or 'no expected busbw')}; "
            "give --expect-busbw GBPS, or re-judge the run: minicluster aggregate DIR "
            "--expect-busbw GBPS"
        )
    if view.validation is not None:
        print_fitted(console, view.validation)
        console.print(f"validation: {escape(view.validation.note)}")
    for err in view.errors:
        console.print(f"[red]error:[/red] {escape(err)}", highlight=False)
