"""The fleet report (`minicluster fleet`): the verdict, the per-metric distribution, the nodes worst
first, as terminal tables, Markdown, and one HTML page with a strip plot per metric. Renders,
never computes: every number comes from `analysis.fleet`'s report."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from rich.console import Console
from rich.markup import escape as rich_escape

from minicluster.report import svg
from minicluster.report.html import PAGE_CSS, figure
from minicluster.report.html import table_html as html_table
from minicluster.report.markdown import md_escape
from minicluster.report.markdown import table_lines as md_table
from minicluster.report.svg import Plot
from minicluster.report.terminal import make_console, print_fitted
from minicluster.report.text import TextTable, fmt_num, text

TERMINAL_MAX_NODES = 16


def _grouped(report: dict[str, Any]) -> bool:
    return len(report.get("groups") or []) > 1


def _metric_title(report: dict[str, Any], m: dict[str, Any]) -> str:
    return m["name"] + (f" [{m['group']}]" if _grouped(report) else "")


def distribution_table(report: dict[str, Any]) -> TextTable:
    table = TextTable(
        "Fleet distribution per metric"
        + (" and platform group (nodes are judged within their group)" if _grouped(report) else ""),
        ["metric", "unit", "bad side", "nodes", "median", "scale", "min", "max", "outliers"],
        note=(
            "scale: what z divides by, the median absolute deviation x 1.4826 of ln(value) (log "
            f"scale: relative), or the floor {fmt_num(report['mad_floor_frac'])} when the MAD is "
            "below it (marked floor). Outlier: robust z beyond "
            f"{fmt_num(report['outlier_z'])} on the bad side (the registry's direction)."
        ),
        numeric={3, 4, 5, 6, 7},
        wrap={8},
    )
    for m in report["metrics"]:
        side = {"lower": "high", "higher": "low"}.get(m["direction"], "none")
        outliers = ", ".join(m["outliers"]) or ("" if m["reason"] is None else m["reason"])
        if m["outliers"]:
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                _metric_title(report, m),
                m["unit"],
                side,
                text(m["n"]),
                fmt_num(m["median"]),
                _scale(m),
                fmt_num(m["min"]),
                fmt_num(m["max"]),
                outliers,
            ]
        )
    return table


def _scale(m: dict[str, Any]) -> str:
    """The scale z used: the MAD, or the floor (marked) when the MAD is below it."""
    if m.get("scale") is None:
        return fmt_num(m.get("mad"))
    return fmt_num(m["scale"]) + (" floor" if m.get("mad_floored") else "")


def nodes_table(report: dict[str, Any], max_rows: int | None = None) -> TextTable:
    """Nodes worst first (failed, then the highest bad-side z): value (z) per metric."""
    rows = report["nodes"]
    # one column per metric name; with platform groups each node reads its own group's entry
    metrics = list({m["name"]: m for m in report["metrics"]}.values())
    shown = rows if max_rows is None else rows[:max_rows]
    note = (
        "Worst first. Each cell: the node's value (its robust z; + is worse for a metric with a "
        "direction). score: the worst relative score of the node over the gated metrics "
        "(median / value, or value / median for higher-is-better; 1 = typical)."
    )
    judged_by = report.get("reference")
    if judged_by is not None:
        note += (
            " vs reference: each figure as % of the reference's (100% = as good; for "
            "lower-is-better metrics reference / value), below the floor a finding."
        )
    if len(shown) < len(rows):
        note += f" Showing the worst {len(shown)} of {len(rows)} nodes; all are in the JSON."
    table = TextTable(
        "Nodes",
        ["node", "status", "verdict", "score", *(m["name"] for m in metrics)]
        + (["vs reference"] if judged_by is not None else []),
        note=note,
        numeric={3, *range(4, 4 + len(metrics))},
        wrap={2, 4 + len(metrics)},
    )
    for r in shown:
        cells = []
        scores = []
        for m in metrics:
            cell = r["values"].get(m["name"]) or {}
            z = cell.get("bad_z") if m["direction"] != "none" else cell.get("z")
            value = fmt_num(cell.get("value"))
            cells.append(value if z is None else f"{value} ({z:+.1f})")
            if m["gated"] and cell.get("score") is not None and not cell.get("excluded"):
                scores.append(cell["score"])
        verdict = "ok" if r["worst_bad_z"] is not None else "not judged"
        if r["status"] != "ok":
            verdict = f"run {r['status']}: not judged"
        elif r.get("finding"):
            verdict = f"OWN CHECK: {r['finding']} (not in the distribution)"
        elif r["outlier_on"]:
            verdict = "OUTLIER: " + ", ".join(r["outlier_on"])
        elif r["verdict"] == "below_reference":
            verdict = "BELOW REFERENCE"
        if verdict not in ("ok", "not judged"):
            table.highlight.add(len(table.rows))
        if judged_by is not None:
            cells.append(against_reference_cell(r.get("against_reference")))
        table.rows.append(
            [r["label"], r["status"], verdict, fmt_num(min(scores) if scores else None), *cells]
        )
    return table


def against_reference_cell(against: dict[str, Any] | None) -> str:
    """A node's figures as % of the fleet's reference, or why it was not judged."""
    if against is None:
        return ""
    shown = [
        f"{m['metric']} {m['pct_of_reference']:.1f}%"
        + (" BELOW" if m["verdict"] == "below_floor" else "")
        for m in against["metrics"]
        if m["pct_of_reference"] is not None
    ]
    if shown:
        return ", ".join(shown)
    return f"not judged: {against['reason']}"


def reference_line(report: dict[str, Any]) -> str | None:
    """Which reference the nodes were judged against (None without --reference)."""
    ref = report.get("reference")
    if ref is None:
        return None
    platform = ", ".join(f"{k}={v}" for k, v in ref["platform"].items())
    return (
        f"Judged against reference {ref['name']} ({ref['kind']}, {ref['file']}; platform "
        f"{platform}), floor {ref['floor_pct']:g}% of it."
    )


def print_fleet(report: dict[str, Any], console: Console | None = None) -> None:
    """The verdict line, then the distribution and the worst nodes."""
    console = console or make_console()
    bad = (
        report["outliers"]
        or report["failed"]
        or report.get("findings")
        or report.get("below_reference")
    )
    style = "bold red" if bad else "green" if report.get("judged", True) else "bold yellow"
    console.print(f"[{style}]{rich_escape(report['verdict'])}[/{style}]")
    line = reference_line(report)
    if line is not None:
        console.print(rich_escape(line))
    for t in (distribution_table(report), nodes_table(report, TERMINAL_MAX_NODES)):
        print_fitted(console, t)
        console.print(f"[dim]{rich_escape(t.note)}[/dim]")


def per_metric_tables(report: dict[str, Any]) -> list[TextTable]:
    """One table per metric: every node's value, z, score and verdict (Markdown and HTML)."""
    tables = []
    for m in report["metrics"]:
        t = TextTable(
            f"{_metric_title(report, m)} ({m['unit']})",
            ["node", "value", "z", "score", "verdict"],
            note=m["reason"] or "",
            numeric={1, 2, 3},
        )
        cells = sorted(
            m["per_node"].items(),
            key=lambda kv: -(kv[1]["bad_z"] if kv[1]["bad_z"] is not None else kv[1]["z"]),
        )
        for label, c in cells:
            if c["outlier"] or c.get("excluded"):
                t.highlight.add(len(t.rows))
            verdict = "OUTLIER" if c["outlier"] else ""
            if c.get("excluded"):
                verdict = f"own check: {c['excluded']} (not in the distribution)"
            t.rows.append(
                [label, fmt_num(c["value"]), f"{c['z']:+.2f}", fmt_num(c["score"]), verdict]
            )
        tables.append(t)
    return tables


def _inputs_table(report: dict[str, Any]) -> TextTable:
    t = TextTable("Inputs", ["node", "source", "run id", "hosts", "platform group", "status"])
    for r in report["nodes"]:
        t.rows.append(
            [
                r["label"],
                r["source"],
                r["run_id"],
                ", ".join(r["hosts"]),
                r.get("group") or "",
                r["status"],
            ]
        )
    return t


def fleet_markdown(report: dict[str, Any]) -> str:
    wl = report["workload"]
    lines = [f"# minicluster fleet: {md_escape(text(wl.get('name')))}", ""]
    lines += [f"**{md_escape(report['verdict'])}**", ""]
    lines += [
        md_escape(
            f"{len(report['nodes'])} nodes ({report['mode']}); workload {text(wl.get('name'))} "
            f"({text(wl.get('workload_type'))}), {text(wl.get('world_size'))} ranks each, backend "
            f"{text(wl.get('backend'))}. Rule: {report['rule']}."
        ),
        "",
    ]
    line = reference_line(report)
    if line is not None:
        lines += [md_escape(line), ""]
    for t in (distribution_table(report), nodes_table(report), *per_metric_tables(report)):
        lines += md_table(t)
    lines += md_table(_inputs_table(report), emphasise=False)
    return "\n".join(lines).rstrip("\n") + "\n"


def fleet_html(report: dict[str, Any]) -> str:
    wl = report["workload"]
    title = f"minicluster fleet: {text(wl.get('name'))}"
    bad = (
        report["outliers"]
        or report["failed"]
        or report.get("findings")
        or report.get("below_reference")
    )
    judged = report.get("judged", True)
    status = "failed" if bad else "ok" if judged else "incomplete"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{PAGE_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="verdict"><span class="status status-{status}">'
        f"{'outliers' if bad else 'ok' if judged else 'not judged'}</span> "
        f"{escape(report['verdict'])}</p>",
        f'<p class="note">{escape(report["rule"])}.</p>',
    ]
    line = reference_line(report)
    if line is not None:
        parts.append(f'<p class="note">{escape(line)}</p>')
    plots = (strip_plot(report, m, i) for i, m in enumerate(report["metrics"]))
    parts += [figure(p) for p in plots if p]
    for t in (distribution_table(report), nodes_table(report), *per_metric_tables(report)):
        parts.append(html_table(t))
    parts.append(html_table(_inputs_table(report)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def strip_plot(report: dict[str, Any], m: dict[str, Any], index: int = 0) -> Plot | None:
    """One metric: every node a dot on the value axis, the median and the outlier threshold as
    lines, outliers in red and named; a value past the axis is drawn at its edge with its number.

    Reads `m`: `median`, `scale`, `log_scale`, `direction`, `per_node{label: {value, outlier}}`.
    """
    cells = [(label, c) for label, c in m["per_node"].items() if c.get("value") is not None]
    if not cells or m["median"] is None:
        return None
    z = report["outlier_z"]
    log = bool(m["log_scale"])
    median, scale = m["median"], m["scale"] or 0.0

    def at_z(k: float) -> float:
        return median * math.exp(k * scale) if log else median + k * scale * abs(median)

    threshold = None
    if m["direction"] == "lower":
        threshold = at_z(z)
    elif m["direction"] == "higher":
        threshold = at_z(-z)
    normal = [c["value"] for _, c in cells if not c["outlier"] and not c.get("excluded")] or [
        median
    ]
    lo, hi = min([*normal, median]), max([*normal, median])
    span = (hi - lo) or abs(median) * 0.1 or 1.0
    # The threshold widens the axis only when it is near the nodes: far off, it would squash
    # them into one dot (a tight fleet's floor is far from every node); then it is written.
    near = threshold is not None and lo - span <= threshold <= hi + span
    if near:
        lo, hi = min(lo, threshold), max(hi, threshold)
    pad = (hi - lo) * 0.08 or abs(median) * 0.1 or 1.0
    lo, hi = (lo - pad, hi + pad) if not log else (lo / 1.1, hi * 1.1)
    title = f"{_metric_title(report, m)} ({m['unit']}) per node"
    chart = svg.Chart(
        f"fleet-{m['name']}" + (f"-{index}" if _grouped(report) else ""),
        title,
        lo,
        hi,
        f"{m['name']} ({m['unit']})",
        log_x=log and lo > 0,
        y_axis=False,
        x_grid=False,
        height=150,
    )
    chart.marks.append(
        svg.Rule(median, "#333", f"median {fmt_num(median)}", axis="x", dash="", text="top")
    )
    if threshold is not None and near:
        label = f"outlier beyond {fmt_num(threshold)}"
        chart.marks.append(svg.Rule(threshold, "#C00", label, axis="x", text="bottom"))
    elif threshold is not None:
        chart.marks.append(
            svg.Label(
                hi if threshold > hi else lo,
                0.0,
                f"outlier beyond {fmt_num(threshold)} (off axis)",
                anchor="end" if threshold > hi else "start",
                fill="#C00",
                dy=-6,
            )
        )
    plot_h = chart.frame().bottom - chart.frame().top
    for i, (label, c) in enumerate(sorted(cells)):
        v = c["value"]
        y = 1.0 - (12 + (i * 37 % 60)) / plot_h  # spread in rows so that close dots stay apart
        clipped = min(max(v, lo), hi)
        color = "#C00" if c["outlier"] else "#D97706" if c.get("excluded") else svg.color(0)
        tip = f"{label}: {fmt_num(v)} {m['unit']} (z {c['z']:+.2f})"
        chart.marks.append(svg.Point(clipped, y, color, tip, r=5 if c["outlier"] else 4))
        if c["outlier"] or c.get("excluded") or clipped != v:
            mark = f"{label}: {fmt_num(v)}" + (" (off axis)" if clipped != v else "")
            mark += " (own check)" if c.get("excluded") else ""
            anchor = "end" if clipped >= hi else "start"
            chart.marks.append(svg.Label(clipped, y, mark, anchor=anchor, fill="#C00", dy=-9))
    caption = (
        f"{m['name']} of each node (dots; red: outlier, named; orange: a node whose own check "
        "found a problem, placed against the others but not part of their distribution), the "
        "fleet median (solid) and the "
        f"outlier threshold (dashed, z {z:g} on the bad side, "
        + ("log scale" if log else "linear scale")
        + "). Values past the axis are drawn at its edge with their number."
    )
    return Plot(chart.label, title, svg.render(chart), caption)
