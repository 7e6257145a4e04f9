"""The "who was late" strip, on a result aggregated from a real run's records (rank 1 late in
every other step): one row per rank, one cell per step, the last arrival of each step marked
with its lateness, in Markdown as a run-length line per rank; long runs binned."""

from __future__ import annotations

import copy
from pathlib import Path

from minicluster.analysis.aggregate import aggregate
from minicluster.analysis.records import read_run_dir
from minicluster.report import late_strip
from minicluster.report.html import render_html
from minicluster.report.markdown import render_markdown
from minicluster.result.model import RunResult

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs" / "intermittent_every2"


def _result() -> RunResult:
    data = aggregate(read_run_dir(RUN, workers=1), aggregated_at="2026-01-01T00:00:00+00:00")
    return RunResult.from_json(data)


def test_the_strip_marks_each_steps_last_arrival() -> None:
    result = _result()
    strip = late_strip.late_strip(result)
    assert strip is not None and strip.ranks == [0, 1]
    last = result.accounting["last_arrival"]  # type: ignore[index]
    assert len(strip.cells) == len(last["step"]) == 50 and not strip.binned
    for j, (rank, late) in enumerate(zip(last["rank"], last["lateness_ms"], strict=True)):
        assert strip.late[rank][j] == late and strip.late[1 - rank][j] is None
    # rank 1 is late every other step (the injected 40 ms): its row holds most of the lateness
    assert strip.last_steps[1] >= 25 and strip.late_ms_total[1] > 10 * strip.late_ms_total[0]


def test_markdown_has_one_run_length_line_per_rank() -> None:
    md = render_markdown(_result())
    block = md.split("## Who was late", 1)[1].split("```")[1].strip().splitlines()
    assert [line.split()[:2] for line in block] == [["rank", "0"], ["rank", "1"]]
    assert "█" in block[1] and "(last in" in block[1]


def test_run_length_writes_long_runs_as_counts() -> None:
    assert late_strip.run_length("···█··") == "···█··"
    assert late_strip.run_length("······█") == "·×6 █"


def test_html_has_a_cell_per_step_and_rank() -> None:
    html = render_html(_result())
    assert 'data-strip="late"' in html
    assert html.count('<td class="c') == 2 * 50


def test_a_long_run_is_binned_to_at_most_max_cells() -> None:
    data = _result().to_json()
    n = 3 * late_strip.MAX_CELLS + 7
    data = copy.deepcopy(data)
    last = data["accounting"]["last_arrival"]
    last.update(
        step=list(range(n)),
        rank=[s % 2 for s in range(n)],
        lateness_ms=[float(s % 7) for s in range(n)],
    )
    strip = late_strip.late_strip(RunResult.from_json(data))
    assert strip is not None and strip.binned
    assert len(strip.cells) <= late_strip.MAX_CELLS
    assert strip.cells[0] == (0, 3) and strip.cells[-1][1] == n - 1
    assert strip.last_steps == {0: (n + 1) // 2, 1: n // 2}


def test_no_strip_without_accounting() -> None:
    data = _result().to_json()
    data.pop("accounting")
    assert late_strip.late_strip(RunResult.from_json(data)) is None
    assert "Who was late" not in render_markdown(RunResult.from_json(data))
