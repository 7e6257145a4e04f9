"""GitHub-flavoured Markdown report of one run result (stable ordering, every text escaped)."""

from __future__ import annotations

import html

from minicluster.report.content import RunView, run_view
from minicluster.report.late_strip import late_strip, strip_markdown
from minicluster.report.plots import run_plots
from minicluster.report.scaling_text import WHY_TITLE
from minicluster.report.text import TextTable
from minicluster.result.model import RunResult


def md_escape(text: str) -> str:
    """Text safe in a Markdown table cell: HTML entities for <, >, &; `|` and newlines neutralised.

    Underscores and asterisks stay as they are: inside words GitHub does not read them as
    emphasis, and metric names stay greppable in the raw file.
    """
    return (
        html.escape(str(text), quote=False)
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def table_lines(t: TextTable, emphasise: bool = True) -> list[str]:
    """`t` as Markdown lines: a `##` title, its note, the table (highlighted rows in bold)."""
    lines = [f"## {t.title}", ""]
    if t.note:
        lines += [md_escape(t.note), ""]
    if not t.rows:
        return lines + ["(none)", ""]
    lines.append("| " + " | ".join(md_escape(h) for h in t.headers) + " |")
    lines.append(
        "|" + "|".join(" ---: " if i in t.numeric else " --- " for i in range(len(t.headers))) + "|"
    )
    for i, row in enumerate(t.rows):
        cells = [md_escape(c) for c in row]
        if emphasise and i in t.highlight:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _bullets(title: str, items: list[str], empty: str) -> list[str]:
    lines = [f"## {title}", ""]
    lines += [f"- {md_escape(i)}" for i in items] or [empty]
    return lines + [""]


def render_markdown(result: RunResult) -> str:
    """The Markdown report of a run result."""
    view: RunView = run_view(result)
    lines = [f"# {md_escape(view.title)}", ""]
    lines += [f"Verdict: **{md_escape(view.headline)}** ({md_escape(view.completion)})", ""]
    if view.verdict:
        lines += [f"**{md_escape(view.verdict)}**", ""]
    lines += table_lines(view.summary, emphasise=False)
    for section in view.sections:
        lines += table_lines(section)
        if section.title == "Scaling" and view.why:
            lines += [f"## {WHY_TITLE}", "", md_escape(view.why_note), ""]
            lines += [f"- {md_escape(w)}" for w in view.why] + [""]
    lines += table_lines(view.metrics, emphasise=False)
    lines += table_lines(view.missing, emphasise=False)
    if view.nodes is not None:
        lines += table_lines(view.nodes)
    lines += table_lines(view.ranks)
    strip = late_strip(result)
    if strip is not None:
        lines += strip_markdown(strip)
    lines += _bullets("Stragglers", view.stragglers, "None detected.")
    lines += table_lines(view.faults)
    if view.validation is not None:
        lines += table_lines(view.validation)
    lines += _bullets("Errors", view.errors, "None.")
    plots = run_plots(result)
    if plots:
        lines += ["## Plots", "", "Drawn in the HTML report (`--html`):", ""]
        lines += [f"- {md_escape(p.title)}: {md_escape(p.caption)}" for p in plots]
        lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"
