"""Self-contained HTML report of one run result: tables plus inline SVG plots, no script, no network."""

from __future__ import annotations

from html import escape

from minicluster.report.content import RunView, run_view
from minicluster.report.late_strip import STRIP_CSS, late_strip, strip_html
from minicluster.report.plots import Plot, run_plots
from minicluster.report.scaling_text import WHY_TITLE
from minicluster.report.text import TextTable
from minicluster.result.model import RunResult

MAX_BYTES = 5 * 1024 * 1024  # a report people can mail and open anywhere
LEAD_PLOTS = ("pairwise",)  # shown before the tables: the heat map is the pairwise answer

PAGE_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
  margin:0 auto;max-width:1100px;padding:18px 28px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:26px 0 8px;
  border-bottom:1px solid #ddd;padding-bottom:3px}
.status{display:inline-block;padding:1px 9px;border-radius:10px;font-weight:600;color:#fff}
.status-ok{background:#2a7d2e}.status-failed{background:#b3261e}
.status-incomplete{background:#a86b00}
table{border-collapse:collapse;margin:6px 0 4px;font-size:13px}
th,td{border:1px solid #d8d8d8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.hl td{background:#fde8e6;font-weight:600}
.note{color:#555;font-size:12.5px;margin:2px 0 6px}
figure{margin:14px 0 22px}figcaption{color:#444;font-size:12.5px;max-width:760px}
svg.plot{max-width:100%;height:auto;background:#fff;border:1px solid #e3e3e3}
svg .axis{stroke:#444;stroke-width:1}svg .grid{stroke:#e6e6e6;stroke-width:1}
svg .tick{font-size:11px;fill:#333}svg .alabel{font-size:12px;fill:#222}
svg .ptitle{font-size:14px;font-weight:600;fill:#111}svg .strag{font-weight:700}
ul{margin:4px 0}code{background:#f3f4f6;padding:0 3px}
.verdict{font-weight:600;margin:6px 0 10px}
"""


def table_html(t: TextTable) -> str:
    """`t` as an HTML section: its title, note and table (highlighted rows marked), escaped."""
    out = [f"<h2>{escape(t.title)}</h2>"]
    if t.note:
        out.append(f'<p class="note">{escape(t.note)}</p>')
    if not t.rows:
        out.append("<p>(none)</p>")
        return "".join(out)
    numeric = [i in t.numeric for i in range(len(t.headers))]
    out.append(f'<table data-table="{escape(t.title)}"><thead><tr>')
    out += [f"<th>{escape(h)}</th>" for h in t.headers]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(t.rows):
        out.append('<tr class="hl">' if i in t.highlight else "<tr>")
        for cell, num in zip(row, numeric, strict=True):
            cls = ' class="num"' if num else ""
            out.append(f"<td{cls}>{escape(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _list(title: str, items: list[str], empty: str) -> str:
    body = "".join(f"<li>{escape(i)}</li>" for i in items) if items else f"<li>{escape(empty)}</li>"
    return f"<h2>{escape(title)}</h2><ul>{body}</ul>"


SWEEP_FIRST = ("scaling", "scaling_loss")


def _why(plots: list[Plot], view: RunView) -> str:
    """A sweep's efficiency plot, where the lost time went (bars and one line per world size)."""
    if not plots and not view.why:
        return ""
    out = [f"<h2>{escape(WHY_TITLE)}</h2>", *(figure(p) for p in plots)]
    if view.why:
        items = "".join(f"<li>{escape(w)}</li>" for w in view.why)
        out.append(f'<ul class="why">{items}</ul><p class="note">{escape(view.why_note)}</p>')
    return "".join(out)


def figure(p: Plot) -> str:
    """One plot as an HTML figure: the inline SVG and its escaped caption."""
    return (
        f'<figure id="plot-{escape(p.label)}">{p.svg}'
        f"<figcaption>{escape(p.caption)}</figcaption></figure>"
    )


def render_html(result: RunResult) -> str:
    """The HTML report of a run result: one file, inline CSS and SVG, readable without JavaScript."""
    view: RunView = run_view(result)
    plots = run_plots(result)
    # The plot that answers the command's question comes right after the verdict: a sweep's
    # efficiency and where it went (with the why lines), a pairwise test's heat map.
    first = [p for p in plots if p.label in SWEEP_FIRST]
    lead = [p for p in plots if p.label in LEAD_PLOTS]
    plots = [p for p in plots if p.label not in SWEEP_FIRST + LEAD_PLOTS]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(view.title)}</title><style>{PAGE_CSS}{STRIP_CSS}</style></head><body>",
        f"<h1>{escape(view.title)}</h1>",
        f'<p>Verdict <span class="status status-{view.headline_class}">'
        f"{escape(view.headline)}</span> ({escape(view.completion)})</p>",
        f'<p class="verdict">{escape(view.verdict)}</p>' if view.verdict else "",
        _why(first, view),
        *(figure(p) for p in lead),
        table_html(view.summary),
        *(table_html(t) for t in view.sections),
        table_html(view.metrics),
        table_html(view.missing),
        table_html(view.nodes) if view.nodes is not None else "",
        table_html(view.ranks),
        strip_html(strip) if (strip := late_strip(result)) is not None else "",
    ]
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [figure(p) for p in plots]
    parts += [
        _list("Stragglers", view.stragglers, "None detected."),
        table_html(view.faults),
        table_html(view.validation) if view.validation is not None else "",
        _list("Errors", view.errors, "None."),
        f'<p class="note">Generated by minicluster {escape(str(result.tool.version))} '
        "from result.json; every number comes from the result as the coordinator wrote it.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
