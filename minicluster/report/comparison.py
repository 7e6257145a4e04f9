"""Render a comparison as a terminal table, Markdown or a self-contained HTML page."""

from __future__ import annotations

import html
from functools import partial

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from minicluster.compare.engine import Comparison, PairComparison, Row, fmt_p
from minicluster.compare.stats import CONFIDENCE
from minicluster.core.exit_policy import code_for
from minicluster.core.units import format_value
from minicluster.report.fit import Fitted, fit_columns, print_folded
from minicluster.report.terminal import make_console, plain_table

_VERDICT_TEXT = {
    "better": "better",
    "worse": "worse",
    "no_change": "no change",
    "inconclusive": "inconclusive",
    "not_tested": "not tested",
    "not_comparable": "not comparable",
    "missing": "n/a",
}
_COLUMNS = (
    "metric",
    "unit",
    "A",
    "B",
    "abs delta",
    "% delta",
    "B/A",
    "verdict",
    "test (p, n)",
    "reason",
)
_NUMERIC = frozenset({"A", "B", "abs delta", "% delta", "B/A"})
_TERMINAL_COLUMNS = _COLUMNS[:-1]
# Left out of the terminal table in this order when it does not fit the width.
_DROPPABLE = ("test (p, n)", "abs delta", "B/A", "unit")
_TEST_COLUMN_MIN = 16  # the test column wraps down to this width


def fmt_value(value: float | None) -> str:
    """A value with enough digits to check its delta (`core.units.format_value`), n/a for None."""
    return "n/a" if value is None else format_value(value)


def _pct(r: Row) -> str:
    if r.delta_pct is not None:
        return f"{r.delta_pct:+.2f}%"
    return "?" if r.delta_abs is not None else "n/a"  # ? = measured, but the baseline is 0


def _delta(r: Row) -> str:
    return (
        "n/a" if r.delta_abs is None else ("+" if r.delta_abs > 0 else "") + fmt_value(r.delta_abs)
    )


def verdict_cell(r: Row) -> str:
    """The table's verdict cell of `r`: `~` within the spread, `inconclusive` where the runs
    cannot tell (its own verdict: not judged, never no change), else the verdict's words (with `(REGRESSION)`)."""
    text = _VERDICT_TEXT[r.verdict]
    if r.verdict == "no_change" and r.reason.startswith("~"):
        text = "~"
    return text + (" (REGRESSION)" if r.regression else "")


def _ratio(r: Row) -> str:
    return "n/a" if r.ratio is None else f"{r.ratio:.4g}"


_TEST_SHORT = {
    "mann-whitney-u": "MWU",
    "welch-t": "Welch",
    "quantile-exceedance-fisher": "tail",
    "runs-t": "runs t",
}


def _test(r: Row, alpha: float) -> str:
    if r.test is None:
        return ""
    return f"{_TEST_SHORT.get(r.test, r.test)} p={fmt_p(r.p_value, alpha)}, n={r.n_a}/{r.n_b}"


def _cells(r: Row, alpha: float) -> list[str]:
    return [
        r.metric,
        r.unit,
        fmt_value(r.a),
        fmt_value(r.b),
        _delta(r),
        _pct(r),
        _ratio(r),
        verdict_cell(r),
        _test(r, alpha),
        r.reason,
    ]


def cells_by_column(r: Row, alpha: float) -> dict[str, str]:
    """A row's cells as the tables print them, by column name."""
    return dict(zip(_COLUMNS, _cells(r, alpha), strict=True))


_EXCLUDED_TEXT = {
    "inconclusive": "inconclusive",
    "not_tested": "not tested",
    "below_noise_floor": "below the noise floor",
    "not_comparable": "not comparable",
    "missing": "not measured",
    "zero_value": "a zero value",
}


_SUMMARY_TEXT = {"inconclusive": "inconclusive (not judged)"}


def _summary_lines(p: PairComparison) -> list[str]:
    lines = []
    for fam, counts in p.families.items():
        # inconclusive rows are their own count, never folded into "no change"
        parts = [f"{n} {_SUMMARY_TEXT.get(v, _VERDICT_TEXT[v])}" for v, n in counts.items() if n]
        lines.append(f"{fam}: {', '.join(parts)}")
    left_out = ", ".join(
        f"{n} {_EXCLUDED_TEXT.get(k, k)}" for k, n in p.geomean_excluded.items() if n
    )
    left_out = f" (left out: {left_out})" if left_out else ""
    if p.geomean_ratio is None:
        lines.append(f"geometric mean: no judged row of {len(p.rows)}{left_out}")
    else:
        lines.append(
            f"geometric mean of direction-normalized ratios (B/A, >1 favours B): "
            f"{p.geomean_ratio:.3f} over {p.geomean_n} of {len(p.rows)} rows{left_out}"
        )
    return lines


def _title(p: PairComparison) -> str:
    return (
        f"A = {p.a.label} ({p.a.tool}, {p.a.workload_type}: {p.a.workload_name}) vs "
        f"B = {p.b.label} ({p.b.tool}, {p.b.workload_type}: {p.b.workload_name})"
    )


def _table(p: PairComparison, alpha: float, cols: list[str], test_cap: int | None) -> Table:
    """The terminal table of `cols`: numbers, metric names and verdicts `no_wrap`; the test
    column wraps down to `test_cap` when one is given."""
    table = plain_table(escape(_title(p)))
    order = [_COLUMNS.index(col) for col in cols]
    for col in cols:
        table.add_column(
            col,
            justify="right" if col in _NUMERIC else "left",
            no_wrap=col != "test (p, n)",
            max_width=test_cap if col == "test (p, n)" else None,
            overflow="fold",
        )
    for r in p.rows:
        cells = _cells(r, alpha)
        table.add_row(*(escape(cells[i]) for i in order), style=_style(r))
    return table


def _style(r: Row) -> str | None:
    return "red" if r.regression else ("green" if r.verdict == "better" else None)


def print_comparison(c: Comparison, console: Console | None = None) -> None:
    """The comparison as terminal tables, one per candidate, reasons listed under each."""
    console = console or make_console()
    for p in c.pairs:
        # Reasons are listed under the table: they do not fit a column. A number, a metric name
        # or a verdict is never cut: in a narrow terminal the least needed columns are left out
        # whole (and said so), the test column wraps; where even the rest is too wide, each
        # metric is printed as a block of `column value` pairs.
        every = list(_TERMINAL_COLUMNS)
        cap: int | None = None
        cols, fits = fit_columns(console, partial(_table, p, c.alpha, test_cap=None), every, ())
        if not fits:
            cap = _TEST_COLUMN_MIN
            cols, fits = fit_columns(
                console, partial(_table, p, c.alpha, test_cap=cap), every, _DROPPABLE
            )
        if fits:
            console.print(_table(p, c.alpha, cols, cap))
        else:
            console.print(escape(_title(p)))
            order = [_COLUMNS.index(col) for col in every]
            print_folded(
                console,
                every,
                [[_cells(r, c.alpha)[i] for i in order] for r in p.rows],
                [_style(r) for r in p.rows],
            )
            cols = every
        notes: dict[str, list[str]] = {}
        for r in p.rows:
            notes.setdefault(r.reason, []).append(r.metric)
        if p.sizes:
            console.print(_sizes_table(p))
        left_out = [col for col in _TERMINAL_COLUMNS if col not in cols]
        if left_out:
            console.print(
                f"[dim]left out for the terminal width: {', '.join(left_out)} (--md and --json "
                "have every column)[/dim]"
            )
        for reason, names in notes.items():
            console.print(f"[dim]{escape(', '.join(names))}:[/dim] {escape(reason)}")
        for w in p.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(w)}")
        for line in _summary_lines(p):
            console.print(escape(line))
        regs = ", ".join(r.metric for r in p.regressions) or "none"
        console.print(f"regressions beyond {c.threshold_pct:g}%: {escape(regs)}")
        for u in p.unfinished:
            console.print(f"[red]gate failed:[/red] {escape(u)} (a run that did not finish ok)")
        for u in p.own_failed:
            console.print(f"[red]gate failed:[/red] {escape(u)}")
        for u in p.own_not_judged:
            console.print(f"[yellow]NOT JUDGED:[/yellow] {escape(u)} (a gate never passes on it)")
        if p.host_load:
            console.print(
                f"[yellow]NOT JUDGED:[/yellow] {escape(p.host_load)} (a gate never passes on it)"
            )
        if p.nothing_judged:
            console.print(
                f"[yellow]NOT JUDGED:[/yellow] {escape(p.nothing_judged)} (a gate never passes "
                "on what it could not judge)"
            )
    console.print(f"[bold]{escape(verdict_line(c))}[/bold]")


def verdict_line(c: Comparison) -> str:
    """The comparison's verdict and exit code, the last line a CI log shows: a skim of the
    lines above it ("regressions beyond 5%: none") read as a pass what exited 2."""
    code = code_for([] if c.verdict == "ok" else [c.verdict])
    if c.verdict == "regression":
        regs = list(dict.fromkeys(r.metric for p in c.pairs for r in p.regressions))
        why = [f"regressed: {', '.join(regs)}"] if regs else []
        why += [*c.unfinished, *c.own_failed]
        return f"compare: REGRESSION, the gate fails (exit {code}): {'; '.join(why)}"
    if c.verdict == "not_judged":
        return f"compare: NOT JUDGED (exit {code}): see the NOT JUDGED line(s) above"
    return f"compare: no regression beyond {c.threshold_pct:g}% (exit {code})"


_SIZE_COLUMNS = ("op", "size", "busbw A (GB/s)", "busbw B (GB/s)", "% delta", "verdict")


def _size_cells(row: dict[str, object]) -> list[str]:
    pct = row["delta_pct"]
    return [
        str(row["op"]),
        str(row["size"]),
        fmt_value(row["a"]),  # type: ignore[arg-type]
        fmt_value(row["b"]),  # type: ignore[arg-type]
        "n/a" if pct is None else f"{pct:+.2f}%",
        _VERDICT_TEXT[str(row["verdict"])],
    ]


def _sizes_table(p: PairComparison) -> Fitted:
    """busbw per op and size of two collective benchmarks (compare/collective_sizes.py), fitted
    to the terminal: `% delta` left out first (named), then the rows fold."""
    title = "busbw per message size (not gated: one number per size; the peak row is)"
    cells = [_size_cells(row) for row in p.sizes]

    def build(cols: list[str]) -> Table:
        table = plain_table(title)
        for col in cols:
            table.add_column(
                col, justify="left" if col in ("op", "verdict") else "right", no_wrap=True
            )
        keep = [_SIZE_COLUMNS.index(c) for c in cols]
        for row in cells:
            table.add_row(*(escape(row[i]) for i in keep))
        return table

    return Fitted(
        build, _SIZE_COLUMNS, ("% delta",), lambda: (cells, []), title, "--md and --json have"
    )


def _md_escape(text: str) -> str:
    """User text made inert in GitHub Markdown: HTML escaped, table pipes and backslashes too."""
    text = html.escape(text, quote=False)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def to_markdown(c: Comparison) -> str:
    out = [
        "# Comparison",
        "",
        f"Baseline: {_md_escape(c.baseline.label)}; threshold {c.threshold_pct:g}%; "
        f"alpha {c.alpha:g} (with >= 4 samples a side: Mann-Whitney U for a median, Welch's t for a "
        "mean, a tail-exceedance test for p90/p95/p99, and a "
        f"{CONFIDENCE:.0%} prediction interval of the difference over blocks of steps; with several "
        "runs a side: t over the runs' values).",
        "",
    ]
    for p in c.pairs:
        out += [f"## {_md_escape(_title(p))}", ""]
        out += [f"- warning: {_md_escape(w)}" for w in p.warnings]
        if p.warnings:
            out.append("")
        out.append("| " + " | ".join(_COLUMNS) + " |")
        out.append("|" + "---|" * len(_COLUMNS))
        out += ["| " + " | ".join(_md_escape(x) for x in _cells(r, c.alpha)) + " |" for r in p.rows]
        if p.sizes:
            out += ["", "### busbw per message size (not gated; the peak row is)", ""]
            out.append("| " + " | ".join(_SIZE_COLUMNS) + " |")
            out.append("|" + "---|" * len(_SIZE_COLUMNS))
            out += [
                "| " + " | ".join(_md_escape(x) for x in _size_cells(r)) + " |" for r in p.sizes
            ]
        out += ["", "### Summary per family", ""]
        out += [f"- {_md_escape(line)}" for line in _summary_lines(p)]
        regs = ", ".join(r.metric for r in p.regressions) or "none"
        out += [f"- regressions beyond {c.threshold_pct:g}%: {_md_escape(regs)}"]
        out += [
            f"- gate failed: {_md_escape(u)} (a run that did not finish ok)" for u in p.unfinished
        ]
        out += [f"- gate failed: {_md_escape(u)}" for u in p.own_failed]
        out += [f"- NOT JUDGED: {_md_escape(u)}" for u in p.own_not_judged]
        if p.host_load:
            out.append(f"- NOT JUDGED: {_md_escape(p.host_load)}")
        if p.nothing_judged:
            out.append(f"- NOT JUDGED: {_md_escape(p.nothing_judged)}")
        out.append("")
    out.append(
        "`?` = percent undefined (baseline 0); `~` = difference not significant or within the "
        "run-to-run spread, where a regression could have been seen; inconclusive = a change "
        "the test or the spread can neither confirm nor rule out (not judged, never gated); not "
        "tested = a per-step metric without per-step samples (never gated); n/a = not measured "
        "(reason given)."
    )
    return "\n".join(out) + "\n"


def to_html(c: Comparison) -> str:
    """One self-contained page: per pair, the direction-normalized delta plot and the table."""
    from minicluster.report.comparison_plot import comparison_plot
    from minicluster.report.html import PAGE_CSS, figure

    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>minicluster comparison</title>',
        f"<style>{PAGE_CSS}tr.worse td{{background:#fdd}}tr.better td{{background:#dfd}}</style>",
        "</head><body>",
        f"<h1>Comparison (baseline {e(c.baseline.label)})</h1>",
    ]
    for p in c.pairs:
        parts.append(f"<h2>{e(_title(p))}</h2>")
        parts += [f"<p class='warning'>warning: {e(w)}</p>" for w in p.warnings]
        parts += [
            f"<p class='warning'>gate failed: {e(u)} (a run that did not finish ok)</p>"
            for u in p.unfinished
        ]
        parts += [f"<p class='warning'>gate failed: {e(u)}</p>" for u in p.own_failed]
        parts += [f"<p class='warning'>NOT JUDGED: {e(u)}</p>" for u in p.own_not_judged]
        if p.host_load:
            parts.append(f"<p class='warning'>NOT JUDGED: {e(p.host_load)}</p>")
        if p.nothing_judged:
            parts.append(f"<p class='warning'>NOT JUDGED: {e(p.nothing_judged)}</p>")
        plot = comparison_plot([r.to_dict() for r in p.rows], title=_title(p))
        if plot is not None:
            parts.append(figure(plot))
        parts.append("<table><tr>" + "".join(f"<th>{e(col)}</th>" for col in _COLUMNS) + "</tr>")
        for r in p.rows:
            cls = "worse" if r.regression else r.verdict
            parts.append(
                f"<tr class='{e(cls)}'>"
                + "".join(f"<td>{e(x)}</td>" for x in _cells(r, c.alpha))
                + "</tr>"
            )
        parts.append(
            "</table><ul>" + "".join(f"<li>{e(x)}</li>" for x in _summary_lines(p)) + "</ul>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
