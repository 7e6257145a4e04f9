"""Terminal tables never cut a value at 80 or 100 columns (issue 26: "p50 71…"): columns that do
not fit are left out whole, and said so."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from minicluster.report.terminal import print_run_summary
from minicluster.result.model import RunResult

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "reports").glob("*.result.json")) + [
    ROOT
    / "tests"
    / "fixtures"
    / "cases"
    / "23-thermal-drift-excused-by-spread"
    / "clean.result.json"
]


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_no_value_is_cut(path: Path, width: int) -> None:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    print_run_summary(RunResult.from_json(json.loads(path.read_text())), console)
    text = out.getvalue()
    cut = [line for line in text.splitlines() if "…" in line]
    assert not cut, cut[:3]
    if width == 80 and "Ranks (ms)" in text:
        assert "left out for the terminal width" in text or all(
            len(x) <= 80 for x in text.splitlines()
        )


def test_a_long_gloo_error_in_a_rank_note_is_cut_at_a_break_with_an_ellipsis() -> None:
    """A rank's gloo error in the terminal's note column: cut after a word or a path's slash,
    with "…", never inside a word (the full error is printed below the table)."""
    from minicluster.report.text import ellipsize

    data = json.loads(EXAMPLES[-1].read_text())
    error = "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer"
    data["ranks"][1]["error"] = error
    out = io.StringIO()
    console = Console(file=out, width=200, highlight=False, color_system=None)
    print_run_summary(RunResult.from_json(data), console)
    rows = [line for line in out.getvalue().splitlines() if "error: [/pytorch/" in line]
    assert rows and all("/…" in line for line in rows), rows
    assert ellipsize("gloo: Connection closed by peer [127.0.0.1]:29500", 32) == (
        "gloo: Connection closed by…"
    )
    assert ellipsize("short", 32) == "short"
    assert ellipsize("x" * 40, 32) == "x" * 31 + "…"  # no break at all: cut, still said


STRAGGLER_RUN = ROOT / "tests" / "fixtures" / "cases" / "30-history-noisy-baselines"


@pytest.mark.parametrize("width", [60, 80, 120])
@pytest.mark.parametrize(
    "found",
    [
        ["run_failed", "wrong_numbers", "validation_failed", "slow_link", "straggler", "culprit"]
        + ["below_reference"],
        ["slow_link", "straggler", "culprit", "below_reference", "validation_failed"],
        ["straggler", "culprit"],
    ],
)
def test_the_header_never_splits_a_verdict_over_two_lines(
    monkeypatch: pytest.MonkeyPatch, width: int, found: list[str]
) -> None:
    """At COLUMNS=120 a header with several verdicts wrapped inside one (`... CULPRIT, BELOW` /
    `REFERENCE  (run failed) ...`): the second line began with a bare `REFERENCE`. A header too
    wide is broken between its parts (the run, the verdicts, the rest), a verdict never split."""
    from minicluster.report import content
    from minicluster.report.text import VERDICT_WORDS

    monkeypatch.setattr(content, "after_the_fact", lambda result: list(found))
    result = RunResult.from_json(json.loads((STRAGGLER_RUN / "strag.result.json").read_text()))
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    print_run_summary(result, console)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"minicluster run {result.run_id}")
    header = lines[: next(i for i, x in enumerate(lines) if "cost the run" in x)]
    assert all(len(x) <= width for x in header), header
    for name in found:
        phrase = VERDICT_WORDS[name]
        assert any(phrase in x for x in header), (phrase, header)
    for x in header[1:]:
        first = x.split(",")[0].split("  ")[0]
        assert not any(w.endswith(" " + first) for w in VERDICT_WORDS.values() if " " in w), x
    assert "(run finished)" in "\n".join(header) and "ranks on 1 node(s)" in "\n".join(header)
