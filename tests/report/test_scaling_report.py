"""Where a sweep's efficiency went and its projection, in the terminal, Markdown and HTML (the
`sweep_projected` fixture: a real 1-2-4 sweep with `--project 8,64`, see golden/reports/README)."""

from __future__ import annotations

import copy
import io
import re
from typing import Any

from rich.console import Console

from minicluster.report import plots, scaling_text
from minicluster.report.content import run_view
from minicluster.report.html import render_html
from minicluster.report.markdown import render_markdown
from minicluster.report.scaling_loss_plot import scaling_loss_plot
from minicluster.report.terminal import print_run_summary
from minicluster.report.text import fmt_num
from minicluster.result.model import RunResult

PAYLOAD = "<script>alert(1)</script>[bold]x[/bold]|"


def loss(result: dict[str, Any], n: int) -> dict[str, Any]:
    p = next(p for p in result["scaling"]["points"] if p["world_size"] == n)
    got: dict[str, Any] = p["breakdown"]["loss"]
    return got


def test_one_why_line_per_world_size_above_the_baseline(sweep_projected: dict[str, Any]) -> None:
    lines = scaling_text.why_lines(RunResult.from_json(sweep_projected))
    assert [ln.split(":")[0] for ln in lines] == ["2 ranks", "4 ranks"]
    two = loss(sweep_projected, 2)
    pts = two["parts_pts"]
    assert lines[0] == (
        f"2 ranks: {two['lost_pct']:.0f}% of the step lost: exposed all-reduce "
        f"{pts['exposed_comm']:.0f} pts, straggler wait {pts['straggler_wait']:.0f} pts, "
        f"compute growth {pts['compute_growth']:.0f} pts, other {pts['remainder']:.0f} pts"
    )
    assert lines[1].endswith(
        "(ranks shared cores: 4 rank(s) x 1 thread(s) on 2 CPU cores of host vm)"
    )


def test_why_line_leaves_out_zero_parts_but_always_shows_the_remainder(
    sweep_ok: dict[str, Any],
) -> None:
    point = {
        "world_size": 2,
        "status": "derived",
        "efficiency_pct": 54.0,
        "breakdown": {
            "status": "derived",
            "reason": None,
            "oversubscribed": False,
            "loss": {
                "lost_ms": 4.6,
                "lost_pct": 46.2,
                "parts_ms": {},
                "parts_pts": {
                    "exposed_comm": 38.1,
                    "straggler_wait": 0.2,
                    "compute_growth": 5.4,
                    "remainder": 2.5,
                },
            },
        },
    }
    gained = copy.deepcopy(point)
    gained["world_size"] = 4
    gained["breakdown"]["loss"] = {
        "lost_ms": -0.5,
        "lost_pct": -5.0,
        "parts_ms": {},
        "parts_pts": {"exposed_comm": 0.0, "straggler_wait": 0.0, "compute_growth": -5.0,
                      "remainder": 0.0},
    }  # fmt: skip
    missing = {
        "world_size": 8,
        "status": "unavailable",
        "efficiency_pct": None,
        "reason": "no ok run",
        "breakdown": {"status": "unavailable", "reason": "no ok run"},
    }
    result = copy.deepcopy(sweep_ok)
    result["scaling"]["baseline"]["world_size"] = 1
    result["scaling"]["points"] = [point, gained, missing]
    assert scaling_text.why_lines(RunResult.from_json(result)) == [
        "2 ranks: 46% of the step lost: exposed all-reduce 38 pts, compute growth 5 pts, "
        "other 2 pts",
        "4 ranks: 5% of the step gained over the ideal: compute growth -5 pts, other 0 pts",
        "8 ranks: n/a (no ok run)",
    ]


def test_terminal_prints_why_lines_and_the_projection(sweep_projected: dict[str, Any]) -> None:
    buf = io.StringIO()
    print_run_summary(
        RunResult.from_json(sweep_projected), Console(file=buf, width=200, color_system=None)
    )
    out = buf.getvalue()
    for line in scaling_text.why_lines(RunResult.from_json(sweep_projected)):
        assert f"why: {line}" in out
    assert "parts add up to the lost time" in out
    assert "Projection (estimated)" in out and "Projection check (leave-one-out)" in out
    proj = sweep_projected["scaling"]["projection"]
    for p in proj["points"]:
        assert fmt_num(p["step_time_ms"]) in out and fmt_num(p["efficiency_pct"]) in out
    largest = proj["check"]["entries"][-1]
    assert (
        f"Error at the largest measured size 4 (fitted on 1, 2): {fmt_num(largest['error_pct'])}%"
        in out
    )
    assert out.index("why: 2 ranks") < out.index("Projection (estimated)") < out.index("\nMetrics ")


def test_markdown_sections_follow_the_scaling_table(sweep_projected: dict[str, Any]) -> None:
    md = render_markdown(RunResult.from_json(sweep_projected))
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings[:6] == [
        "Summary",
        "Scaling",
        "Where the efficiency went",
        "Projection (estimated)",
        "Projection check (leave-one-out)",
        "Metrics",
    ]
    section = md.split("## Where the efficiency went")[1].split("## Projection")[0]
    bullets = [ln[2:] for ln in section.splitlines() if ln.startswith("- ")]
    assert bullets == scaling_text.why_lines(RunResult.from_json(sweep_projected))
    table = md.split("## Projection (estimated)")[1].split("## Projection check")[0]
    rows = [ln for ln in table.splitlines() if re.match(r"\| \d", ln)]
    assert [r.split("|")[1].strip() for r in rows] == ["8", "64"]
    assert all("| estimated |" in r for r in rows)
    link = sweep_projected["scaling"]["projection"]["link"]["link"]
    assert f"alpha {fmt_num(link['alpha_us'])} us, beta {fmt_num(link['beta_gbps'])} GB/s" in table


def test_html_leads_with_the_efficiency_and_where_it_went(sweep_projected: dict[str, Any]) -> None:
    html = render_html(RunResult.from_json(sweep_projected))
    labels = re.findall(r'data-plot="([a-z_]+)"', html)
    assert labels[:2] == ["scaling", "scaling_loss"]
    assert html.index('data-plot="scaling_loss"') < html.index('<table data-table="Summary">')
    assert '<ul class="why">' in html
    for line in scaling_text.why_lines(RunResult.from_json(sweep_projected)):
        assert f"<li>{line}</li>" in html


def test_loss_bars_stack_every_part_and_mark_the_net_loss(sweep_projected: dict[str, Any]) -> None:
    plot = scaling_loss_plot(RunResult.from_json(sweep_projected))
    assert plot is not None and plot.label == "scaling_loss"
    bars = re.findall(
        r'<rect class="bar"[^>]*width="([0-9.]+)"[^>]*><title>([^<]+)</title>', plot.svg
    )
    assert len(bars) == 2 * 4  # two world sizes above the baseline, four parts each
    two = loss(sweep_projected, 2)
    assert f"2 ranks exposed all-reduce: {two['parts_pts']['exposed_comm']:.1f} pts" in plot.svg
    nets = re.findall(r'<line class="net"[^>]*><title>(\d+) ranks: net ([-0-9.]+)%', plot.svg)
    assert [(int(n), float(v)) for n, v in nets] == [
        (n, round(loss(sweep_projected, n)["lost_pct"], 1)) for n in (2, 4)
    ]
    # A negative part (compute growth at 4 ranks) is drawn left of zero, not hidden.
    four = loss(sweep_projected, 4)
    assert four["parts_pts"]["compute_growth"] < 0
    assert "4 ranks compute growth: -" in plot.svg


def test_projected_points_are_hollow_beside_the_measured_ones(
    sweep_projected: dict[str, Any],
) -> None:
    plot = plots.scaling_plot(RunResult.from_json(sweep_projected))
    assert plot is not None
    filled = re.findall(r'<circle class="point"[^>]*fill="#', plot.svg)
    hollow = re.findall(r'<circle class="point"[^>]*fill="white"', plot.svg)
    assert len(filled) == 3 and len(hollow) == 2
    assert "hollow: estimated by the projection" in plot.caption
    assert ">1024<" not in plot.svg and ">64<" in plot.svg  # the axis reaches the projection


def test_an_unavailable_projection_says_why_and_draws_nothing(
    sweep_projected: dict[str, Any],
) -> None:
    result = copy.deepcopy(sweep_projected)
    proj = result["scaling"]["projection"]
    proj.update(status="unavailable", reason="the probe failed", points=[], check=None)
    view = run_view(RunResult.from_json(result))
    table = next(t for t in view.sections if t.title == "Projection (estimated)")
    assert table.rows == [["8, 64", "unavailable", *["n/a"] * 7, "the probe failed"]]
    assert not any(t.title.startswith("Projection check") for t in view.sections)
    plot = plots.scaling_plot(RunResult.from_json(result))
    assert plot is not None and 'fill="white"' not in plot.svg


def test_a_sweep_from_before_the_breakdown_renders_as_before(sweep_ok: dict[str, Any]) -> None:
    assert scaling_text.why_lines(RunResult.from_json(sweep_ok)) == []
    assert scaling_loss_plot(RunResult.from_json(sweep_ok)) is None
    assert "Where the efficiency went" not in render_markdown(RunResult.from_json(sweep_ok))


def test_user_text_in_the_breakdown_is_escaped(sweep_projected: dict[str, Any]) -> None:
    result = copy.deepcopy(sweep_projected)
    result["scaling"]["points"][2]["breakdown"]["placement"] = PAYLOAD
    result["scaling"]["projection"]["link"]["link"]["source"] = PAYLOAD
    html = render_html(RunResult.from_json(result))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    md = render_markdown(RunResult.from_json(result))
    assert "<script>" not in md and "\\|" in md
    buf = io.StringIO()
    print_run_summary(RunResult.from_json(result), Console(file=buf, width=200, color_system=None))
    assert "[bold]x[/bold]" in buf.getvalue()  # printed as text, not rich markup
