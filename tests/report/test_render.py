"""Markdown, HTML and terminal renderings of run results: content, plots, golden bytes."""

from __future__ import annotations

import copy
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from minicluster.report import plots, telemetry_plots
from minicluster.report.html import MAX_BYTES, render_html
from minicluster.report.markdown import render_markdown
from minicluster.report.terminal import print_run_summary
from minicluster.report.text import fmt_num
from minicluster.result.model import RunResult

GOLDEN_MD = Path(__file__).resolve().parents[1] / "golden" / "reports" / "run_ok.md"
GOLDEN_COLLECTIVES_MD = GOLDEN_MD.with_name("collectives.md")


def test_markdown_matches_golden(run_ok: dict[str, Any]) -> None:
    text = render_markdown(RunResult.from_json(run_ok))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN_MD.write_text(text, encoding="utf-8")
    assert text == GOLDEN_MD.read_text(encoding="utf-8")


def test_collectives_markdown_matches_golden(collectives: dict[str, Any]) -> None:
    text = render_markdown(RunResult.from_json(collectives))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN_COLLECTIVES_MD.write_text(text, encoding="utf-8")
    assert text == GOLDEN_COLLECTIVES_MD.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[:3] == ["Summary", "Collectives", "Metrics"]


def test_markdown_order_follows_the_result_and_is_stable(run_ok: dict[str, Any]) -> None:
    text = render_markdown(RunResult.from_json(run_ok))
    assert render_markdown(RunResult.from_json(run_ok)) == text
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[:8] == [
        "Summary",
        "Metrics",
        "Not measured, and why",
        "Ranks",
        "Stragglers",
        "Faults",
        "Errors",
        "Plots",
    ]
    measured = [n for n, mv in run_ok["metrics"].items() if mv["value"] is not None]
    positions = [text.index(f"| {n} |") for n in measured]
    assert positions == sorted(positions)


def test_markdown_shows_provenance_and_why_not_measured(run_ok: dict[str, Any]) -> None:
    text = render_markdown(RunResult.from_json(run_ok))
    tp = run_ok["metrics"]["throughput_samples_per_sec"]
    assert f"| {tp['status']} | {tp['method']} |" in text
    reason = run_ok["metrics"]["power_consumption_watts"]["reason"]
    assert f"| power_consumption_watts | W | {reason} |" in text
    # An unavailable metric never shows up with a value in the metrics table.
    metrics_section = text.split("## Not measured")[0]
    assert "power_consumption_watts" not in metrics_section


def test_straggler_row_is_emphasised_everywhere(run_straggler: dict[str, Any]) -> None:
    md = render_markdown(RunResult.from_json(run_straggler))
    row = next(ln for ln in md.splitlines() if ln.startswith("| **1** |"))
    assert "**straggler**" in row
    assert "- rank 1: median compute" in md
    # the verdict comes first, right under the status: what went wrong and where
    head = md.split("## ")[0]
    assert "**straggler rank 1" in head and "median compute 46.95 ms" in head
    assert "| injected | straggler | 1 | n/a | delay_ms=40 |" in md
    assert "| **detected** | **straggler** | **1** | **n/a** | **median compute 46.95 ms" in md
    assert "| replica_consistency | passed | steps_checked=55 |" in md

    html = render_html(RunResult.from_json(run_straggler))
    ranks = html.split('data-table="Ranks"')[1].split("</table>")[0]
    hl = re.findall(r'<tr class="hl">(.*?)</tr>', ranks)
    assert len(hl) == 1 and "<td>1</td>" in hl[0] and "straggler" in hl[0]
    bars = re.search(r'<svg [^>]*data-plot="rank_breakdown".*?</svg>', html, flags=re.S)
    assert bars and 'stroke="#C00"' in bars.group(0) and ">straggler<" in bars.group(0)

    out = io.StringIO()
    print_run_summary(
        RunResult.from_json(run_straggler), Console(file=out, width=120, color_system=None)
    )
    text = out.getvalue()
    assert "straggler: rank 1" in text
    # a fault without a step (a straggler is slow on every step) says no "step n/a"
    assert "fault injected: straggler rank 1: delay_ms=40" in text
    assert "fault detected: straggler rank 1: median compute" in text


def _plot_labels(html: str) -> list[str]:
    return re.findall(r'data-plot="([a-z_]+)"', html)


def test_run_plots_drawn_from_the_result(run_ok: dict[str, Any]) -> None:
    html = render_html(RunResult.from_json(run_ok))
    assert _plot_labels(html) == ["step_time", "rank_breakdown"]
    step = re.search(r'data-plot="step_time".*?</svg>', html, flags=re.S)
    assert step is not None
    svg = step.group(0)
    assert svg.count("<polyline") == run_ok["world_size"]
    assert 'class="band"' in svg  # warm-up shaded
    p50 = plots.fmt_num(run_ok["metrics"]["latency_p50_ms"]["value"])
    p95 = plots.fmt_num(run_ok["metrics"]["latency_p95_ms"]["value"])
    assert f"run p50 {p50} ms" in svg and f"run p95 {p95} ms" in svg
    assert "step time (ms)" in svg
    # Every polyline has one vertex per recorded step of its rank.
    first = re.search(r'points="([^"]+)"', svg)
    assert first and len(first.group(1).split()) == len(run_ok["steps"]["embedded"]["0"]["step"])
    # The warm-up steps are far above the measured ones here: the view says what is off scale.
    assert "above the axis, up to" in svg


def test_every_plot_kind_draws_only_with_its_data(
    run_ok: dict[str, Any], run_all_plots: dict[str, Any]
) -> None:
    assert [p.label for p in plots.run_plots(RunResult.from_json(run_all_plots))] == [
        "step_time",
        "rank_breakdown",
        "scaling",
        "busbw",
        "power",
        "temperature",
    ]
    for fn in (
        plots.scaling_plot,
        plots.busbw_plot,
        telemetry_plots.power_plot,
        telemetry_plots.temperature_plot,
    ):
        assert fn(RunResult.from_json(run_ok)) is None
    scaling = plots.scaling_plot(RunResult.from_json(run_all_plots))
    assert scaling is not None
    hollow = re.findall(r'<circle class="point"[^>]*fill="white"', scaling.svg)
    filled = re.findall(r'<circle class="point"[^>]*fill="#', scaling.svg)
    assert (len(hollow), len(filled)) == (1, 3)  # projected hollow, measured filled
    assert "ideal 100%" in scaling.svg
    busbw = plots.busbw_plot(RunResult.from_json(run_all_plots))
    assert busbw is not None and busbw.svg.count("<polyline") == 3
    assert "log scale" in busbw.svg and "GB/s" in busbw.svg
    power = telemetry_plots.power_plot(RunResult.from_json(run_all_plots))
    assert power is not None and "power (W)" in power.svg and "NVML" in power.caption


def test_steps_not_embedded_means_no_step_plot(run_ok: dict[str, Any]) -> None:
    run_ok["steps"] = {"rank_files": "ranks/rank_{rank:05d}.jsonl", "embedded": None}
    assert plots.step_time_plot(RunResult.from_json(run_ok)) is None
    assert "<svg" in render_html(
        RunResult.from_json(run_ok)
    )  # the breakdown bars still come from the rank medians


def test_html_is_self_contained_and_small(run_all_plots: dict[str, Any]) -> None:
    html = render_html(RunResult.from_json(run_all_plots))
    assert len(html.encode()) < MAX_BYTES
    assert "<script" not in html and "<link" not in html and " src=" not in html
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}
    # Each plot says its units (axis titles) and where its numbers came from (caption).
    for caption in re.findall(r"<figcaption>(.*?)</figcaption>", html):
        assert re.search(r"measured|derived|estimated", caption), caption


def test_terminal_lists_what_was_not_measured(run_ok: dict[str, Any]) -> None:
    out = io.StringIO()
    print_run_summary(RunResult.from_json(run_ok), Console(file=out, width=100, color_system=None))
    text = out.getvalue()
    assert "not measured: tokens_per_sec (workload has no tokens)" in text
    assert "Ranks (ms)" in text and "Metrics" in text


def test_failed_rank_is_highlighted_and_its_error_shown(run_failed: dict[str, Any]) -> None:
    assert run_failed["status"] == "failed" and run_failed["failed_ranks"] == [1]
    html = render_html(RunResult.from_json(run_failed))
    assert 'class="status status-failed"' in html
    hl = re.findall(r'<tr class="hl">(.*?)</tr>', html)
    assert len(hl) == 1 and "<td>1</td>" in hl[0] and "<td>failed</td>" in hl[0]
    for err in run_failed["errors"]:
        assert f"<li>{err}</li>" in html
    md = render_markdown(RunResult.from_json(run_failed))
    assert "Verdict: **FAILED** (run failed)" in md
    assert "| **1** | **vm** | **failed** |" in md


def test_terminal_caps_rank_rows_keeping_flagged_and_slowest(run_ok: dict[str, Any]) -> None:
    import json

    from minicluster.report.content import run_view
    from minicluster.report.terminal import TERMINAL_MAX_RANK_ROWS

    result = run_ok
    template = result["ranks"][0]
    ranks = []
    for rank in range(100):
        r = json.loads(json.dumps(template))
        r["rank"] = rank
        r["step_time_ms"]["p50"] = 10.0 + rank % 7  # slowest: ranks with rank % 7 == 6
        ranks.append(r)
    ranks[42]["status"] = "failed"
    result["ranks"], result["world_size"], result["failed_ranks"] = ranks, 100, [42]
    view = run_view(RunResult.from_json(result), max_rank_rows=TERMINAL_MAX_RANK_ROWS)
    shown = [int(row[0]) for row in view.ranks.rows]
    assert len(shown) == TERMINAL_MAX_RANK_ROWS
    assert 42 in shown
    slowest = {rank for rank in range(100) if rank % 7 == 6}  # 14 ranks at p50 16 ms
    assert slowest <= set(shown)
    assert all(rank % 7 in (5, 6) for rank in shown if rank != 42)  # then the 15 ms ones
    assert "Showing 16 of 100 ranks" in view.ranks.note
    assert len(run_view(RunResult.from_json(result)).ranks.rows) == 100  # files keep every rank
    out = io.StringIO()
    print_run_summary(RunResult.from_json(result), Console(file=out, width=120))
    assert "84 more ranks not shown" in out.getvalue()


def test_a_long_collectives_status_wraps_instead_of_hiding_the_numbers(
    collectives: dict[str, Any],
) -> None:
    result = copy.deepcopy(collectives)
    row = result["collectives"]["results"][0]
    row["status"], row["reason"] = "unavailable", "could not allocate the buffers: " + "x" * 300
    out = io.StringIO()
    print_run_summary(RunResult.from_json(result), Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    # Every other row still shows its op and busbw in full.
    busbw = fmt_num(result["collectives"]["results"][1]["busbw_gbps"])
    assert re.search(rf"all_reduce .*{re.escape(busbw)}", text)


_SLOW_LINK = {"kind": "slow_link", "rank": None, "step": None, "evidence": "busbw 25% of 0.7"}
_VALIDATION = {"passed": False, "reason": "replicas diverged at step 5", "checks": []}


@pytest.mark.parametrize(
    ("edit", "head", "completion", "css"),
    [
        ({}, "STRAGGLER", "finished", "failed"),  # run_straggler as it is: status ok
        (
            {"faults": {"injected": [], "detected": [_SLOW_LINK]}, "stragglers": []},
            "SLOW LINK",
            "finished",
            "failed",
        ),
        (
            {
                "validation": _VALIDATION,
                "stragglers": [],
                "faults": {"injected": [], "detected": []},
            },
            "FAILED validation",
            "finished",
            "failed",
        ),
        (
            {
                "status": "incomplete",
                "interrupted": True,
                "stragglers": [],
                "faults": {"injected": [], "detected": []},
            },
            "INCOMPLETE",
            "incomplete: interrupted",
            "incomplete",
        ),
    ],
)
def test_the_verdict_is_the_header_and_the_completion_is_said_apart(
    run_straggler: dict[str, Any], edit: dict[str, Any], head: str, completion: str, css: str
) -> None:
    """A new user's trial: "status ok" printed right above "validation FAILED" (rc 1), and
    "Status: **ok**" above a straggler or a slow link. The first status word of every report is
    the verdict; how far the run got (finished, incomplete) is said beside it, not as `status`."""
    result = RunResult.from_json({**run_straggler, **edit})
    md = render_markdown(result)
    first = md.splitlines()[2]
    assert first == f"Verdict: **{head}** (run {completion})"
    assert "Status: **" not in md
    html = render_html(result)
    assert f'<p>Verdict <span class="status status-{css}">{head}</span> (run {completion})' in html
    out = io.StringIO()
    print_run_summary(result, Console(file=out, width=200, color_system=None))
    line = out.getvalue().splitlines()[0]
    assert f"  {head}  (run {completion})  " in line and "status" not in line
    assert "rank n/a" not in md and "rank n/a" not in out.getvalue()
    if edit.get("faults", {}).get("detected") == [_SLOW_LINK]:
        assert "slow_link on the link between ranks 0 and 1: busbw 25% of 0.7" in md
        # the Faults table's rank cell names the link too (it read "n/a")
        assert "| **slow_link** | **the link between ranks 0 and 1** |" in md
