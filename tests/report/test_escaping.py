"""User-controlled text never reaches a report unescaped: `<script>` through every string field."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from minicluster.report.html import render_html
from minicluster.report.markdown import render_markdown
from minicluster.report.terminal import print_run_summary
from minicluster.result.model import RunResult

PAYLOAD = "<script>alert(1)</script>[bold]x[/bold]|"
# Enum-like fields stay valid so the renderers take their usual paths; their text is a
# fixed set the code chooses, not the user.
KEEP = {"status", "workload_type", "unit"}


def _poison(node: Any, key: str = "") -> Any:
    """Append the payload to every string in the result (dict keys of the step series stay)."""
    if isinstance(node, dict):
        return {k: _poison(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_poison(v, key) for v in node]
    if isinstance(node, str) and key not in KEEP:
        return node + PAYLOAD
    return node


def _poisoned(result: dict[str, Any]) -> dict[str, Any]:
    r: dict[str, Any] = _poison(result)
    # Fields that are null in a healthy run get text too.
    r["ranks"][1]["error"] = "boom " + PAYLOAD
    r["errors"].append("rank 1: " + PAYLOAD)
    r["metrics"]["tokens_per_sec"]["reason"] = PAYLOAD
    r["stragglers"] = [
        {"rank": 1, "compute_ms_median": 9.0, "attributed_to": PAYLOAD, "excess_pct": 30.0}
    ]
    r["faults"] = {
        "injected": [{"kind": PAYLOAD, "rank": 1, PAYLOAD: PAYLOAD}],
        "detected": [{"kind": "hang", "rank": 1, "step": 3, "evidence": PAYLOAD}],
    }
    r["validation"] = {
        "passed": False,
        "reason": PAYLOAD,
        "checks": [{"name": PAYLOAD, "passed": False, PAYLOAD: PAYLOAD}],
    }
    r["telemetry"] = {
        "series": [
            {"name": PAYLOAD, "unit": "W", "method": PAYLOAD, "t_s": [0, 1], "values": [1, 2]}
        ]
    }
    r["scaling"] = {
        "mode": PAYLOAD,
        "world_sizes": [1],
        "repeats": 1,
        "metric": PAYLOAD,
        "formula": PAYLOAD,
        "baseline": {"world_size": 1, "kind": PAYLOAD, "value": 1.0, "unit": PAYLOAD},
        "points": [{"world_size": 1, "efficiency_pct": 100.0, "status": "measured"}],
    }
    r["collectives"] = {"results": [{"op": PAYLOAD, "size_bytes": 1024, "busbw_gbps": 1.0}]}
    return r


def test_payload_reaches_every_field_it_should(run_ok: dict[str, Any]) -> None:
    r = _poisoned(run_ok)
    assert r["run_id"].endswith(PAYLOAD)
    assert r["platform"]["nodes"][0]["hostname"].endswith(PAYLOAD)
    assert r["workload"]["name"].endswith(PAYLOAD)
    assert r["metrics"]["power_consumption_watts"]["reason"].endswith(PAYLOAD)


def test_html_escapes_every_string(run_ok: dict[str, Any]) -> None:
    html = render_html(RunResult.from_json(_poisoned(run_ok)))
    assert "<script" not in html.lower()
    # Escaped, the text is still there: in tables, SVG titles, legends and captions.
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") > 20
    assert (
        "<title>&lt;script&gt;" in html or "&lt;script&gt;alert(1)&lt;/script&gt;</title>" in html
    )


def test_markdown_escapes_every_string(run_ok: dict[str, Any]) -> None:
    md = render_markdown(RunResult.from_json(_poisoned(run_ok)))
    assert "<script" not in md.lower()
    assert "&lt;script&gt;" in md
    # A `|` from user text cannot split a table cell.
    for line in md.splitlines():
        if line.startswith("| ") and "&lt;script&gt;" in line:
            assert "]\\|" in line


def test_terminal_does_not_interpret_markup(run_ok: dict[str, Any]) -> None:
    out = io.StringIO()
    print_run_summary(
        RunResult.from_json(_poisoned(run_ok)), Console(file=out, width=200, color_system=None)
    )
    # Rich markup in user text is printed literally, not applied.
    assert "[bold]x[/bold]" in out.getvalue()


@pytest.mark.parametrize("name", ["collectives", "sweep_ok"])
def test_sweep_and_collectives_results_escape_every_string(
    name: str, request: pytest.FixtureRequest
) -> None:
    """Every string of a real sweep / collectives result, poisoned (ops, reasons, notes, runs)."""
    result = _poison(request.getfixturevalue(name))
    html = render_html(RunResult.from_json(result))
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") > 5
    md = render_markdown(RunResult.from_json(result))
    assert "<script" not in md.lower() and "&lt;script&gt;" in md
    out = io.StringIO()
    print_run_summary(RunResult.from_json(result), Console(file=out, width=300, color_system=None))
    assert "[bold]x[/bold]" in out.getvalue()
