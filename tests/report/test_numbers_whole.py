"""No terminal table prints a number cut (a new user read `13,` for 13,951 and `0.0` for 0.0057 in
`compare` at COLUMNS=60): at 60, 80 and 120 columns every number of `compare`, `watch --once` and
`history list` is printed whole, or its column is named as left out for the terminal width.

The numbers expected are made from the data (the comparison's rows, the watch's JSON snapshot,
the database's run IDs), never read back from the table under test."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from minicluster.cli import main
from minicluster.report.text import fmt_num

FIX = Path(__file__).resolve().parents[1] / "fixtures"
A = FIX / "compare" / "trial_a1.result.json"
B = FIX / "compare" / "trial_strag.result.json"
WIDTHS = [60, 80, 120]


def _run(
    argv: list[str], width: int, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> str:
    mp.setenv("COLUMNS", str(width))
    main(argv)
    return capsys.readouterr().out


def _left_out(text: str) -> set[str]:
    """The column names of every `left out for the terminal width:` note (wrapped or not)."""
    flat = " ".join(text.split())
    notes = re.findall(r"left out for the terminal width: (.*?) \(--", flat)
    return {name for note in notes for name in note.split(", ")}


def _assert_whole(text: str, width: int, expected: dict[str, list[str]]) -> None:
    assert "…" not in text
    assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
    left = _left_out(text)
    for col, values in expected.items():
        if col in left:
            continue
        for v in values:
            whole = rf"(?<![\w.,]){re.escape(v)}(?![\w.,%])"
            assert re.search(whole, text), (width, col, v, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_compare(
    width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from minicluster.compare import compare
    from minicluster.interop import load
    from minicluster.report.comparison import cells_by_column

    c = compare([load(A), load(B)])
    rows = [cells_by_column(r, c.alpha) for r in c.pairs[0].rows]
    expected = {
        col: [row[col] for row in rows]
        for col in ("A", "B", "abs delta", "% delta", "B/A", "verdict", "metric")
    }
    assert "13,951.0" in expected["A"] and "0.0057" in expected["A"]  # the trial's figures
    text = _run(["compare", str(A), str(B)], width, capsys, monkeypatch)
    _assert_whole(text, width, expected)


@pytest.mark.parametrize("width", WIDTHS)
def test_watch(
    width: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "healthy"
    shutil.copytree(FIX / "recorded_runs" / "healthy", run)
    snap = json.loads(_run(["watch", str(run), "--once", "--json"], 200, capsys, monkeypatch))
    ranks = snap["ranks"]
    expected = {
        "rank": [str(r["rank"]) for r in ranks],
        "last step": [fmt_num(r["last_step"]) for r in ranks],
        "steps/s": [fmt_num(r["steps_per_sec"]) for r in ranks],
        "step": [fmt_num(r["step_time_ms_p50"]) for r in ranks],
        "compute": [fmt_num(r["compute_ms_p50"]) for r in ranks],
        "all-reduce": [fmt_num(r["comm_ms_p50"]) for r in ranks],
    }
    text = _run(["watch", str(run), "--once"], width, capsys, monkeypatch)
    _assert_whole(text, width, expected)
    assert "rank" not in _left_out(text)  # the rank is never left out


@pytest.mark.parametrize("width", [*WIDTHS, "piped"])
def test_history_list(
    width: int | str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "h.sqlite"
    main(["history", "add", str(A), str(B), "--db", str(db)])
    capsys.readouterr()
    if width == "piped":  # no COLUMNS, stdout not a terminal: 120 columns
        monkeypatch.delenv("COLUMNS", raising=False)
        main(["history", "list", "--db", str(db)])
        text, width = capsys.readouterr().out, 120
    else:
        text = _run(["history", "list", "--db", str(db)], width, capsys, monkeypatch)
    expected = {"#": ["1", "2"], "status": ["ok", "checks_failed"]}
    _assert_whole(text, int(width), expected)
    assert not {"#", "status"} & _left_out(text)  # `history show ID` needs #


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_busbw_per_size(
    width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The busbw-per-size table of two collectives runs (2 gloo ranks, sizes 1K-16K, this VM):
    at 60 columns it printed `busbw A (GB…` and `0.0005745` beside a cut size column."""
    from minicluster.compare import compare
    from minicluster.interop import load
    from minicluster.report.comparison import fmt_value

    a = FIX / "compare" / "collectives_sizes_a.result.json"
    b = FIX / "compare" / "collectives_sizes_b.result.json"
    sizes = compare([load(a), load(b)]).pairs[0].sizes
    assert sizes
    expected = {
        "size": [str(r["size"]) for r in sizes],
        "busbw A (GB/s)": [fmt_value(r["a"]) for r in sizes],  # type: ignore[arg-type]
        "busbw B (GB/s)": [fmt_value(r["b"]) for r in sizes],  # type: ignore[arg-type]
    }
    text = _run(["compare", str(a), str(b)], width, capsys, monkeypatch)
    text = text[text.index("busbw per message size") :]
    _assert_whole(text, width, expected)
