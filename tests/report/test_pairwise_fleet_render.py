"""Rendering the pairwise link test and the fleet: the verdict first, the matrix collapsed in the
terminal above 16 ranks and whole in Markdown, the heat map limited and escaped, the fleet's
strip plots with outliers off the axis still shown with their number."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from minicluster.report.fleet import fleet_html, fleet_markdown, print_fleet, strip_plot
from minicluster.report.html import render_html
from minicluster.report.markdown import render_markdown
from minicluster.report.pairwise import HEATMAP_MAX, heatmap_plot
from minicluster.report.terminal import print_run_summary
from minicluster.result.model import RunResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _pairwise_result() -> dict[str, Any]:
    """A real 4-rank pairwise run with the link 1-2 slowed in the transport."""
    return json.loads((FIXTURES / "pairwise" / "slow_link.result.json").read_text())


def _wide(n: int, host: str = "h") -> dict[str, Any]:
    """The real result's block stretched to n ranks (every pair at 1 GB/s but 0-1 at 0.1): the
    renderers' layout at sizes this machine cannot run."""
    r = copy.deepcopy(_pairwise_result())
    who = list(range(n))
    rows = []
    for a in who:
        for b in who[a + 1 :]:
            bw = 0.1 if (a, b) == (0, 1) else 1.0
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "round": 0,
                    "status": "measured",
                    "reason": None,
                    "time_us": 1000 / bw,
                    "busbw_ab_gbps": bw,
                    "busbw_ba_gbps": bw,
                    "busbw_gbps": bw,
                    "wrong": 0,
                    "z": -11.5 if bw < 1 else 0.0,
                    "slow": bw < 1,
                    "why_slow": "z -11.5 < -3.5" if bw < 1 else None,
                }
            )
    matrix = [[None if i == j else (0.1 if {i, j} == {0, 1} else 1.0) for j in who] for i in who]
    pw = r["pairwise"]
    pw.update(
        participants=who,
        labels=[f"rank {x}" for x in who],
        rank_nodes=[f"{host}{x // 8}" for x in who],
        pairs=rows,
        matrix_gbps=matrix,
        slow_pairs=[[0, 1]],
        per_rank=[
            {
                "rank": x,
                "node": f"{host}{x // 8}",
                "pairs": n - 1,
                "pairs_measured": n - 1,
                "busbw_gbps_median": 1.0,
                "time_us_median": 1000.0,
                "slow_pairs": int(x < 2),
            }
            for x in who
        ],  # fmt: skip
        per_node=[],
    )
    pw["distribution"]["median"] = 1.0
    r["world_size"] = n
    r["ranks"] = [{**r["ranks"][0], "rank": x} for x in who]
    return r


def test_the_verdict_comes_first_everywhere() -> None:
    result = _pairwise_result()
    verdict = result["pairwise"]["verdict"]
    assert verdict.startswith("pairwise: SLOW") and "rank 1 - rank 2" in verdict
    console = Console(record=True, width=160)  # the title line (verdict first) unwrapped
    print_run_summary(RunResult.from_json(result), console)
    lines = console.export_text().splitlines()
    assert "  SLOW LINK  (link test finished)  " in lines[0]  # the title leads with the verdict
    assert lines[1].startswith("pairwise: SLOW")  # right under the title line
    md = render_markdown(RunResult.from_json(result))
    assert md.index("**pairwise: SLOW") < md.index("## Summary")
    page = render_html(RunResult.from_json(result))
    assert page.index('class="verdict"') < page.index('data-plot="pairwise"')
    assert page.index('data-plot="pairwise"') < page.index('data-table="Summary"')


def test_the_terminal_shows_the_worst_pairs_above_16_ranks_the_files_everything() -> None:
    small, big = _wide(16), _wide(20)
    console = Console(record=True, width=200)
    print_run_summary(RunResult.from_json(small), console)
    assert "Bus bandwidth matrix (GB/s)" in console.export_text()
    console = Console(record=True, width=200)
    print_run_summary(RunResult.from_json(big), console)
    out = console.export_text()
    assert "Bus bandwidth matrix" not in out
    assert "Showing the worst 16 of 190 pairs" in " ".join(out.split())
    md = render_markdown(RunResult.from_json(big))
    assert "## Bus bandwidth matrix (GB/s)" in md
    header = next(line for line in md.splitlines() if line.startswith("| from \\ to"))
    assert header.count("|") == 22  # 20 receivers + the sender column
    pair_rows = [ln for ln in md.splitlines() if re.match(r"\| (\*\*)?rank \d+ - rank \d+", ln)]
    assert len(pair_rows) == 190


def test_the_heat_map_marks_the_slow_pair_and_stays_readable_at_1024_ranks() -> None:
    plot = heatmap_plot(RunResult.from_json(_wide(8)))
    assert plot is not None
    cells = re.findall(r'<rect class="bar"[^>]*>', plot.svg)
    assert len(cells) == 8 * 8  # every cell
    legend = plot.svg[plot.svg.index('<g class="legend">') :]
    assert legend.count("<rect") == 1 + 6 + 1  # its title row, six swatches, the slow-pair box
    assert plot.svg.count('stroke="#000000"') == 2 + 1  # both directions of 0-1, the legend
    big = heatmap_plot(RunResult.from_json(_wide(1024)))
    assert big is not None
    grid = re.findall(r"<title>rank \d+ -&gt; rank \d+", big.svg)
    assert len(grid) == HEATMAP_MAX * (HEATMAP_MAX - 1)
    assert "the 64 of 1024 participants with the lowest median busbw" in big.caption
    assert "rank 0 -&gt; rank 1:" in big.svg  # the slow pair's ranks are among them


def test_host_names_are_escaped_in_every_output() -> None:
    evil = "<script>alert(1)</script>"
    result = _wide(4, host=evil)
    result["pairwise"]["labels"] = [f"{evil}{x}" for x in range(4)]
    page = render_html(RunResult.from_json(result))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script>" not in render_markdown(RunResult.from_json(result))


def _fleet_report() -> dict[str, Any]:
    from minicluster.analysis.fleet import fleet

    paths = [FIXTURES / "fleet" / f"node{i}" / "result.json" for i in range(1, 9)]
    return fleet([(str(p), json.loads(p.read_text())) for p in paths])


def test_the_fleet_report_names_the_straggler_first_and_plots_every_metric() -> None:
    report = _fleet_report()
    console = Console(record=True, width=160)
    print_fleet(report, console)
    out = console.export_text()
    # node6's own run named its straggler: named for it (issue 26), first in the table
    assert out.splitlines()[0].startswith(
        "fleet of 8 nodes: 1 node(s) whose own check found a problem: node6"
    )
    nodes_table = out[out.index("Nodes") :]
    assert nodes_table.index("node6") < nodes_table.index("node1")  # worst first
    page = fleet_html(report)
    for m in report["metrics"]:
        assert f'data-plot="fleet-{m["name"]}"' in page
    md = fleet_markdown(report)
    assert md.startswith(
        "# minicluster fleet: mlp\n\n**fleet of 8 nodes: 1 node(s) whose own check found a "
        "problem: node6"
    )


def test_an_outlier_past_the_axis_keeps_its_number() -> None:
    """The axis spans the normal nodes and the threshold; node6 (far beyond) sits at the edge
    with its value written, so it does not flatten the rest."""
    report = _fleet_report()
    compute = next(m for m in report["metrics"] if m["name"] == "compute_ms")
    plot = strip_plot(report, compute)
    assert plot is not None
    value = compute["per_node"]["node6"]["value"]
    assert f"node6: {value:,.1f} (off axis)" in plot.svg


def _fleet_with_slow_busbw(node: int = 3) -> dict[str, Any]:
    """The recorded fleet with one node's busbw (higher is better) cut to a fifth."""
    from minicluster.analysis.fleet import fleet

    results = []
    for i in range(1, 9):
        p = FIXTURES / "fleet" / f"node{i}" / "result.json"
        d = json.loads(p.read_text())
        if i == node:
            d["metrics"]["busbw_gbps"]["value"] *= 0.2
        results.append((str(p), d))
    return fleet(results)


def test_the_verdict_z_has_the_sign_of_the_table() -> None:
    """Issue 26: the verdict said "z -4.5" where the table said (+4.5): both give the bad-side z
    (+ is worse), so a low busbw reads + in both."""
    report = _fleet_with_slow_busbw()
    console = Console(record=True, width=200)
    print_fleet(report, console)
    out = console.export_text()
    said = re.search(r"node3 \(busbw_gbps z ([+-][0-9.]+)", report["verdict"])
    assert said is not None, report["verdict"]
    row = next(line for line in out.splitlines() if line.lstrip().startswith("node3"))
    assert f"({said.group(1)})" in row
    assert said.group(1).startswith("+")


@pytest.mark.parametrize("width", [80, 120])
def test_fleet_tables_never_cut_a_value(width: int) -> None:
    """Issue 26: fleet cut its values at 80 columns ("no…", "compute_ms 285.3 (+7…"): columns
    that do not fit are left out whole, and said so."""
    report = _fleet_with_slow_busbw()
    out = io.StringIO()
    print_fleet(report, Console(file=out, width=width, highlight=False, color_system=None))
    text = out.getvalue()
    assert "…" not in text, [line for line in text.splitlines() if "…" in line][:3]
    assert "node3" in text and "OUTLIER" in text
    if width == 80:
        assert "left out for the terminal width" in text


def test_a_pair_cleared_on_re_measure_reads_ok_with_why_it_was_flagged() -> None:
    """The real slow-link result with its pair 1-2 judged cleared (as a re-measure beside healthy
    pairs would): the pairs table says ok, that the passes flagged it, and the re-measure."""
    from minicluster.report.pairwise import pairs_table

    r = _pairwise_result()
    pw = r["pairwise"]
    (row,) = [p for p in pw["pairs"] if (p["a"], p["b"]) == (1, 2)]
    row.update(
        slow=False,
        flagged=True,
        recheck={
            "status": "cleared",
            "flagged_why": row["why_slow"],
            "rounds": 8,
            "text": "re-measured in 8 rounds beside healthy pairs: ...: cleared",
        },
        why_slow=None,
    )
    pw.update(recheck_rounds=8, flagged_pairs=[[1, 2]], cleared_pairs=[[1, 2]], slow_pairs=[])
    table = pairs_table(RunResult.from_json(r).pairwise)  # type: ignore[arg-type]
    (line,) = [t for t in table.rows if t[0] == "rank 1 - rank 2"]
    assert line[-1].startswith("ok: flagged by the passes (busbw ")
    assert line[-1].endswith("cleared") and "re-measured in 8 rounds" in table.note


def test_one_pair_is_not_promised_a_re_measure_beside_healthy_pairs() -> None:
    """A 2-rank run has one pair: nothing healthy to re-measure it beside, so the note says the
    passes decide, not that a flagged pair is re-measured beside healthy pairs."""
    from minicluster.report.pairwise import pairs_table

    r = _pairwise_result()
    pw = r["pairwise"]
    pw.update(pairs=pw["pairs"][:1], recheck_rounds=8)
    note = pairs_table(RunResult.from_json(r).pairwise).note  # type: ignore[arg-type]
    assert "beside healthy pairs and the only pair has none (the passes decide)" in note
    assert "re-measured in 8 rounds" not in note and "stays slow only when" not in note
