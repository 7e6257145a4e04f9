"""A sweep result's Scaling section in Markdown, HTML and the terminal; escaping of its text."""

from __future__ import annotations

import copy
import io
import re
from typing import Any

from rich.console import Console

from minicluster.report import plots, svg
from minicluster.report.content import run_view
from minicluster.report.html import render_html
from minicluster.report.markdown import render_markdown
from minicluster.report.terminal import print_run_summary
from minicluster.report.text import fmt_num
from minicluster.result.model import RunResult

PAYLOAD = "<script>alert(1)</script>[bold]x[/bold]|"


def test_a_run_without_scaling_has_no_sections(run_ok: dict[str, Any]) -> None:
    assert run_view(RunResult.from_json(run_ok)).sections == []
    assert run_view(RunResult.from_json(run_ok)).title.startswith("minicluster run ")


def test_markdown_has_the_scaling_table_after_the_summary(sweep_ok: dict[str, Any]) -> None:
    md = render_markdown(RunResult.from_json(sweep_ok))
    assert md.startswith(f"# minicluster sweep {sweep_ok['run_id']}\n")
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings[:3] == ["Summary", "Scaling", "Metrics"]
    section = md.split("## Scaling")[1].split("## Metrics")[0]
    rows = [ln for ln in section.splitlines() if re.match(r"\| \**\d", ln)]
    s = sweep_ok["scaling"]
    assert len(rows) == len(s["points"]) == 3
    for row, p in zip(rows, s["points"], strict=True):
        cells = [c.strip("* ") for c in row.strip("|").split("|")]
        assert cells[0] == str(p["world_size"])
        assert cells[3] == fmt_num(p["throughput_samples_per_sec"])
        assert cells[8] == fmt_num(p["efficiency_pct"])
    assert "**rank 0**" in rows[2]  # the straggler of the 4-rank run, row emphasised
    assert "E = X_N / (N * X_1)" in section
    assert s["baseline"]["kind"] in section
    assert f"{fmt_num(s['baseline']['value'])} samples/s" in section
    assert "come from run n4-r1 (world size 4, round 1)" in section
    assert "world size 4 &gt; 2 CPU cores" in section  # the oversubscription warning


def test_html_scaling_table_and_plot_come_from_the_points(sweep_ok: dict[str, Any]) -> None:
    html = render_html(RunResult.from_json(sweep_ok))
    assert f"<title>minicluster sweep {sweep_ok['run_id']}</title>" in html
    table = html.split('<table data-table="Scaling">')[1].split("</table>")[0]
    assert len(re.findall(r"<tr", table)) == 1 + 3
    assert re.findall(r'<tr class="hl">(.*?)</tr>', table)[0].startswith('<td class="num">4</td>')
    plot = plots.scaling_plot(RunResult.from_json(sweep_ok))
    assert plot is not None and plot.svg in html
    filled = re.findall(r'<circle class="point"[^>]*fill="#', plot.svg)
    assert len(filled) == 3


def test_scaling_plot_whiskers_show_the_spread_over_rounds(sweep_ok: dict[str, Any]) -> None:
    plot = plots.scaling_plot(RunResult.from_json(sweep_ok))
    assert plot is not None
    assert "range over rounds" not in plot.svg  # one round: no spread to draw
    assert "projected" not in plot.svg  # and no projected point to name in the legend
    spread = copy.deepcopy(sweep_ok)
    point = spread["scaling"]["points"][1]
    point["efficiency_pct_min"], point["efficiency_pct_max"] = 31.5, 180.0
    plot = plots.scaling_plot(RunResult.from_json(spread))
    assert plot is not None
    assert plot.svg.count("range over rounds 31.5-180%") == 1
    # The y axis grows to hold the top of the whisker: it stays inside the plot area.
    coords = re.search(r'<polyline class="series" points="([^"]+)"[^>]*><title>range', plot.svg)
    assert coords is not None
    ys = [float(xy.split(",")[1]) for xy in coords.group(1).split()]
    assert min(ys) >= svg.MARGIN_TOP


def test_unavailable_points_and_repeats_render(sweep_ok: dict[str, Any]) -> None:
    r = copy.deepcopy(sweep_ok)
    p2, p4 = r["scaling"]["points"][1], r["scaling"]["points"][2]
    p2.update(efficiency_pct_min=40.0, efficiency_pct_max=45.5)
    p4.update(
        efficiency_pct=None,
        efficiency_pct_min=None,
        efficiency_pct_max=None,
        status="unavailable",
        reason="no ok run at world size 4 (n4-r1 failed: rank 3 hung)",
        stragglers=[],
    )
    p4["runs"][0]["status"] = "failed"
    md = render_markdown(RunResult.from_json(r))
    row2 = next(ln for ln in md.splitlines() if ln.startswith("| 2 |"))
    assert "| 40.00-45.50 |" in row2
    row4 = next(ln for ln in md.splitlines() if ln.startswith("| **4** |"))
    assert "| **n/a** |" in row4
    assert "**n4-r1 failed; no ok run at world size 4 (n4-r1 failed: rank 3 hung)**" in row4
    assert [p.label for p in plots.run_plots(RunResult.from_json(r))].count(
        "scaling"
    ) == 1  # 2 points still drawn

    out = io.StringIO()
    print_run_summary(RunResult.from_json(r), Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert text.startswith(f"minicluster sweep {r['run_id']}")
    assert "range %" in text and "40.00-45.50" in text
    assert "rank 3 hung" in text  # the note column wraps instead of cutting the reason


def test_terminal_drops_columns_empty_in_every_row(sweep_ok: dict[str, Any]) -> None:
    out = io.StringIO()
    print_run_summary(
        RunResult.from_json(sweep_ok), Console(file=out, width=120, color_system=None)
    )
    text = out.getvalue()
    header = next(ln for ln in text.splitlines() if "world size" in ln and "samples/s" in ln)
    assert "efficiency %" in header and "stragglers" in header
    assert "range %" not in header and "note" not in header  # one round, no failure
    assert "…" not in header  # fits 120 columns


def _poison(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _poison(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_poison(v) for v in node]
    return node + PAYLOAD if isinstance(node, str) else node


def test_scaling_text_is_escaped_everywhere(sweep_ok: dict[str, Any]) -> None:
    r = copy.deepcopy(sweep_ok)
    r["scaling"] = _poison(r["scaling"])
    r["scaling"]["points"][2]["reason"] = PAYLOAD
    r["scaling"]["points"][2]["runs"][0]["status"] = PAYLOAD
    r["scaling"]["points"][2]["stragglers"] = [PAYLOAD]

    html = render_html(RunResult.from_json(r))
    assert "<script" not in html.lower()
    scaling_html = html.split('<table data-table="Scaling">')[0].split("<h2>Scaling</h2>")[1]
    scaling_html += html.split('<table data-table="Scaling">')[1].split("</table>")[0]
    # mode, formula, method, baseline kind, order, warning, headline dir, reason, status, rank
    assert scaling_html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10

    md = render_markdown(RunResult.from_json(r))
    assert "<script" not in md.lower()
    row = next(ln for ln in md.splitlines() if ln.startswith("| **4** |"))
    assert "&lt;script&gt;" in row and "]\\|" in row  # a `|` cannot split the cell

    out = io.StringIO()
    print_run_summary(RunResult.from_json(r), Console(file=out, width=200, color_system=None))
    assert "[bold]x[/bold]" in out.getvalue()  # rich markup printed literally


def test_scaling_plot_caption_states_the_sweeps_own_formula(sweep_ok: dict[str, Any]) -> None:
    shifted = copy.deepcopy(sweep_ok)
    shifted["scaling"]["formula"] = "E = N0 * X_N / (N * X_N0), N0 = 2"
    plot = plots.scaling_plot(RunResult.from_json(shifted))
    assert plot is not None and "E = N0 * X_N / (N * X_N0), N0 = 2" in plot.caption
