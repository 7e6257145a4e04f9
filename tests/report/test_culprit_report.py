"""The verdict line names the top culprit and its cost, in the terminal, Markdown and HTML, on a
result aggregated from a real run's records (an intermittent straggler the median rule misses),
and re-judging with a higher threshold clears it."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.records import read_run_dir
from minicluster.core.checks import ChecksSection
from minicluster.report.html import render_html
from minicluster.report.markdown import render_markdown
from minicluster.report.terminal import print_run_summary
from minicluster.result.model import RunResult
from minicluster.result.schema import validate_result

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs" / "intermittent_straggler"


def _result(checks: ChecksSection | None = None) -> RunResult:
    data = aggregate(read_run_dir(RUN), checks=checks, aggregated_at="2026-01-01T00:00:00+00:00")
    validate_result(data)
    return RunResult.from_json(data)


def test_the_verdict_names_the_culprit_and_its_cost_everywhere() -> None:
    result = _result()
    assert result.status == "ok" and result.stragglers == []  # the median rule sees nothing
    (culprit,) = result.culprits or []
    assert culprit.rank == 1 and culprit.kind == "intermittent"
    assert culprit.shape is not None and culprit.shape["period_steps"] == 5
    assert 30 < culprit.cost_pct < 60
    line = f"rank 1 cost the run {culprit.cost_pct:.0f}%: intermittent, every 5th step, +8"
    buf = io.StringIO()
    print_run_summary(RunResult.from_json(result.to_json()), Console(file=buf, width=200))
    assert line in buf.getvalue()
    assert line in render_markdown(result)
    assert line in render_html(result)
    assert result.accounting is not None and result.accounting["holds"] is True
    costs = {r.rank: r.cost for r in result.ranks}
    assert costs[0] is not None and costs[0].culprit is False


def test_a_higher_threshold_clears_the_culprit() -> None:
    result = _result(ChecksSection(culprit_cost_pct=80.0))
    assert result.culprits == []
    assert "cost the run" not in render_markdown(result)
