"""A pairwise slow link between two ranks is named as the link, as elsewhere (`the link between
ranks 0 and 1`): the trial's report said "fault detected: slow_link rank 0" for a fault injected
on rank 1 toward peer 0, which reads as the wrong rank."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from minicluster.report.markdown import render_markdown
from minicluster.report.terminal import print_run_summary
from minicluster.result.model import RunResult

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "pairwise"


def test_the_slow_pair_is_named_as_the_link_between_its_ranks() -> None:
    result = RunResult.from_json(
        json.loads((FIX / "two_ranks_slow_link_peer.result.json").read_text())
    )
    assert result.faults.detected[0].rank == 0  # the finding records the pair's lower rank
    out = io.StringIO()
    print_run_summary(result, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    detected = [line for line in text.splitlines() if line.startswith("fault detected:")]
    assert detected == [
        "fault detected: slow_link on the link between ranks 0 and 1: busbw 0.0488 GB/s < "
        "--min-busbw 0.3"
    ], detected
    injected = [line for line in text.splitlines() if line.startswith("fault injected:")]
    assert injected and "the link between ranks 0 and 1" in injected[0]
    assert "rank 1's side" in injected[0]  # where the delay was injected stays said
    assert "slow_link rank 0" not in text
    assert "slow_link rank 0" not in render_markdown(result)


def test_junit_names_the_link_too() -> None:
    from minicluster.report.junit import run_cases, to_xml

    result = RunResult.from_json(
        json.loads((FIX / "two_ranks_slow_link_peer.result.json").read_text())
    )
    xml = to_xml("run", run_cases(result, 1))
    assert "slow_link on the link between ranks 0 and 1" in xml and "slow_link rank 0" not in xml
