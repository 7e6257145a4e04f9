"""Render a `history check`: the terminal verdict and table, and one HTML page with a trend plot
per gated metric (the history's runs, the new one, the baseline level and the change points)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from minicluster.compare.history_check import MIN_HISTORY
from minicluster.core.units import format_pct, format_value
from minicluster.report import svg
from minicluster.report.terminal import make_console, print_fitted
from minicluster.report.text import TextTable

if TYPE_CHECKING:
    from minicluster.compare.history_check import CheckResult, MetricCheck

_VERDICT = {
    "regression": "REGRESSION",
    "improvement": "better",
    "no_change": "no change",
    "not_judged": "not judged",
}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{format_pct(v)}%"


def _value(v: float | None) -> str:
    return "n/a" if v is None else format_value(v)


def headline(r: CheckResult) -> str:
    """The check's verdict in one line: FAILED / REGRESSION / NOT JUDGED (with why) / no
    regression, and how many comparable runs it stood against."""
    against = f"(against {r.history_runs} comparable run{'' if r.history_runs == 1 else 's'})"
    if r.unfinished is not None:
        return (
            f"history check {r.candidate}: FAILED: {r.unfinished.split(': ', 1)[-1]}, a run "
            f"that did not finish ok never passes the gate {against}"
        )
    parts = []
    if r.regressions:
        parts.append(f"REGRESSION on {', '.join(m.metric for m in r.regressions)}")
    if r.own_checks_failed:
        parts.append(
            f"FAILED its own checks ({', '.join(r.own_checks_failed)}): a run whose own checks "
            "failed never passes the gate"
        )
    if not r.judged:
        parts.append(f"NOT JUDGED: {_not_judged_why(r)}")
    if parts:
        return f"history check {r.candidate}: {'; '.join(parts)} {against}"
    return f"history check {r.candidate}: no regression {against}"


def _not_judged_why(r: CheckResult) -> str:
    if r.own_unjudged:
        why = "; ".join(r.own_not_judged) or "its own verdict was NOT JUDGED"
        return f"the candidate's own run was not judged ({why})"
    if r.history_runs < MIN_HISTORY:
        aside = ", ".join(f"{n} {status}" for status, n in sorted(r.set_aside.items()))
        more = (
            f"; {sum(r.set_aside.values())} more recorded but never baselines ({aside}: "
            "`history list` shows them)"
            if aside
            else ""
        )
        return f"{r.history_runs} comparable earlier run(s), at least {MIN_HISTORY} needed" + more
    if not r.metrics:
        return "no gated metric measured in the candidate"
    if r.host_load:
        return r.host_load
    names = ", ".join(m.metric for m in r.not_judged)
    return f"{names} could not be judged (inconclusive, or too few runs with it: see below)"


def print_check(r: CheckResult, console: Console | None = None) -> None:
    console = console or make_console()
    console.print(f"[bold]{escape(headline(r))}[/bold]")
    if r.own_verdicts or r.own_findings:
        own = ", ".join(r.own_verdicts) or "none"
        console.print(f"candidate's own verdict: {escape(own)}")
        for line in r.own_findings:
            console.print(f"  candidate's own finding: {escape(line)}")
    # The verdict and the change first: a narrow terminal leaves out the last columns whole.
    table = TextTable(
        "Metrics against the history",
        ["metric", "verdict", "change", "interval", "level", "baseline level", "MDE"],
        numeric={2, 3, 4, 5, 6},
    )
    for m in r.metrics:
        interval = (
            "n/a"
            if m.low_pct is None or m.high_pct is None
            else f"[{format_pct(m.low_pct)}, {format_pct(m.high_pct)}]%"
        )
        if m.verdict == "regression":
            table.highlight.add(len(table.rows))
        table.rows.append(
            [
                m.metric,
                _VERDICT[m.verdict],
                _pct(m.change_pct),
                interval,
                _level_cell(m),
                _value(m.baseline_level),
                "n/a" if m.mde_pct is None else f"{format_pct(m.mde_pct, signed=False)}%",
            ]
        )
    print_fitted(console, table, full="--html and --json")  # history check has no --md
    console.print(
        "[dim]level: the geometric mean of a level's runs (the log-scale model's level; the run "
        "checked alone unless earlier runs are already at its level, marked *); change = level / "
        "baseline level - 1[/dim]"
    )
    for m in r.metrics:
        console.print(f"[dim]{escape(m.metric)}:[/dim] {escape(m.reason)}")
        for cp in m.change_points:
            console.print(
                f"[dim]  change point at run #{cp['run'] if cp['run'] is not None else 'new'}"
                f" (commit {escape(str(cp['git_commit'] or 'unknown'))}): "
                f"{format_pct(cp['change_pct'])}%[/dim]"
            )
    for line in r.changed:
        console.print(f"[yellow]changed since the last comparable run:[/yellow] {escape(line)}")
    for n in r.notes:
        console.print(f"[yellow]note:[/yellow] {escape(n)}")


def _level_cell(m: MetricCheck) -> str:
    """The candidate's level: its value, or the new level's geometric mean marked `*` when
    earlier runs are at it too; its value when no level was computed."""
    if m.level is None:
        return _value(m.value)
    shared = any(i is not None for i in m.level_runs)
    return format_value(m.level) + ("*" if shared else "")


def trend_plot(m: MetricCheck) -> svg.Plot | None:
    """The metric's value per run (oldest left), the new run marked, the baseline level (the
    geometric mean the change is measured against) as a dashed line, change points as bands."""
    values = [p["value"] for p in m.trend]
    if len(values) < 2:
        return None
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.15 or abs(hi) * 0.1 or 1.0
    title = f"{m.metric} over the history"
    pts = [(float(i), float(v)) for i, v in enumerate(values)]
    chart = svg.Chart(
        f"trend-{m.metric}",
        title,
        0,
        len(values) - 1,
        "run (oldest left; the last is the one checked)",
        max(0.0, lo - pad),
        hi + pad,
        f"{m.metric} ({m.unit})",
    )
    for cp in m.change_points:
        x = float(cp["index"])
        chart.marks.append(svg.Band(x - 0.5, x + 0.5, f"change point: {cp['change_pct']:+.3g}%"))
    if m.baseline_level is not None:
        chart.marks.append(svg.Rule(m.baseline_level, "#555", "baseline level (geometric mean)"))
    fill = "#b3261e" if m.verdict == "regression" else "#2a7d2e"
    chart.marks += [
        svg.Line(pts, svg.color(0), m.metric),
        svg.Line(pts[:-1], svg.color(0), "earlier run", line=False, markers="filled"),
        svg.Line(pts[-1:], fill, "this run", line=False, markers="filled"),
    ]
    caption = (
        f"{m.metric} ({m.unit}) of the comparable runs in the history and of the run checked "
        f"(last point); dashed: the baseline level, the geometric mean of the baseline runs, which the change is measured against; bands: change points. {m.reason}"
    )
    return svg.Plot(chart.label, title, svg.render(chart), caption)


def history_html(r: CheckResult) -> str:
    from minicluster.report.html import PAGE_CSS, figure

    e = html.escape
    regs = ", ".join(m.metric for m in r.regressions) or "none"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>minicluster history check</title>',
        f"<style>{PAGE_CSS}</style></head><body>",
        f"<h1>History check of {e(r.candidate)}</h1>",
        f"<p class='verdict'>{e(headline(r))}</p>",
        f"<p class='verdict'>regressions: {e(regs)} (against {r.history_runs} comparable runs; "
        f"threshold {r.threshold_pct:g}%, alpha {r.alpha:g} split over {len(r.metrics)} metrics)</p>",
    ]
    if r.unfinished is not None:
        parts.append(
            f"<p class='verdict'>FAILED: {e(r.unfinished)}: a run that did not finish ok never "
            "passes the gate</p>"
        )
    parts += [f"<p class='note'>candidate's own finding: {e(f)}</p>" for f in r.own_findings]
    parts += [f"<p class='note'>changed: {e(c)}</p>" for c in r.changed]
    parts += [f"<p class='note'>note: {e(n)}</p>" for n in r.notes]
    for m in r.metrics:
        plot = trend_plot(m)
        parts.append(f"<h2>{e(m.metric)}: {e(_VERDICT[m.verdict])}</h2>")
        if plot is not None:
            parts.append(figure(plot))
        else:
            parts.append(f"<p class='note'>{e(m.reason)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
