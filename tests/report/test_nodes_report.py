"""The per-node table in every renderer, and results from before the per-node section (1.1).

`run_2nodes.result.json` is real coordinator output of a two-agent job (see the golden
README); `run_ok` is a result from before 1.2 whose `nodes` is still the node count.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from minicluster.interop import load
from minicluster.interop.minicluster import to_result
from minicluster.report.content import run_view
from minicluster.report.html import render_html
from minicluster.report.markdown import render_markdown
from minicluster.report.node_table import nodes_table
from minicluster.report.terminal import print_run_summary
from minicluster.result.model import RunResult
from minicluster.result.schema import validate_result

REPORTS = Path(__file__).resolve().parents[1] / "golden" / "reports"


@pytest.fixture
def run_2nodes() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPORTS / "run_2nodes.result.json").read_text())
    return data


def _terminal(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    print_run_summary(RunResult.from_json(result), Console(file=buf, width=200, highlight=False))
    return buf.getvalue()


def test_two_node_result_has_a_nodes_table_everywhere(run_2nodes: dict[str, Any]) -> None:
    validate_result(run_2nodes)
    nodes = run_2nodes["nodes"]
    assert [n["node_rank"] for n in nodes] == [0, 1]
    md = render_markdown(RunResult.from_json(run_2nodes))
    assert "## Nodes" in md
    for n in nodes:
        assert f"| {n['node_rank']} | {n['hostname']} | {n['ranks'][0]} | ok |" in md
    assert 'data-table="Nodes"' in render_html(RunResult.from_json(run_2nodes))
    term = _terminal(run_2nodes)
    assert "Nodes" in term and "2 ranks on 2 node(s)" in term
    # the ranks table names each rank's node: two agents on one machine share the host
    host = nodes[0]["hostname"]
    assert f"node 0 ({host})" in md and f"node 1 ({host})" in md


def test_a_result_before_1_2_with_a_node_count_still_renders(run_ok: dict[str, Any]) -> None:
    assert run_ok["nodes"] == 1 and run_ok["schema_version"] == "minicluster/1"
    validate_result(run_ok)
    view = run_view(RunResult.from_json(run_ok))
    assert view.nodes is None
    assert ["world size", "2 ranks on 1 node(s)"] in view.summary.rows
    assert "## Nodes" not in render_markdown(RunResult.from_json(run_ok))
    assert "2 ranks on 1 node(s)" in _terminal(run_ok)


def test_importer_reads_both_forms_of_nodes(run_2nodes: dict[str, Any]) -> None:
    assert load(REPORTS / "run_ok.result.json").details["nodes"] == 1
    record = load(REPORTS / "run_2nodes.result.json")
    assert record.details["nodes"] == 2
    converted = to_result(record)  # an imported record keeps the count only
    validate_result(converted.to_json())
    assert converted.nodes == 2


def test_many_nodes_show_the_flagged_and_lowest_scores_first(run_2nodes: dict[str, Any]) -> None:
    result = copy.deepcopy(run_2nodes)
    template = result["nodes"][0]
    nodes = []
    for i in range(40):
        n = {**template, "node_rank": i, "ranks": [i], "performance_score": 1.0 - i / 1000}
        nodes.append(n)
    nodes[7] = {**nodes[7], "status": "missing", "missing_ranks": [7], "performance_score": None}
    nodes[30] = {**nodes[30], "performance_score": 0.4}
    result["nodes"] = nodes
    table = nodes_table(RunResult.from_json(result), max_rows=4)
    assert table is not None
    shown = [row[0] for row in table.rows]
    assert shown == ["7", "30", "38", "39"]  # the missing node, then the lowest scores
    assert "Showing 4 of 40 nodes" in table.note
    assert table.highlight == {0}
    assert "missing ranks 7" in table.rows[0][-1]
