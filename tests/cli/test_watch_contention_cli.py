"""Issue 25, one answer whatever the path, through the commands: `watch --once` (and `--json`) of
a finished run's rank files, `aggregate DIR` of them, and `watch --once` of the run once its
result.json exists all say NOT JUDGED for a straggler whose slowness was its threads waiting for
a CPU other processes held, and exit 2; a busy thread in the rank (its own CPU time) stays a
straggler, exit 1, in all three. Rank files: tests/fixtures/rank_writer.py (test inputs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures import rank_writer

STEPS = 40


def _paths(run_cli: Any, run_dir: Path) -> list[tuple[int, dict[str, Any], str]]:
    """(exit code, `watch --once --json` snapshot, `watch --once` text) before and after
    `aggregate DIR` (whose exit code is checked equal to the first watch's)."""
    out = []
    for i in range(2):
        as_json = run_cli("watch", str(run_dir), "--once", "--json", "--window", "100")
        text = run_cli("watch", str(run_dir), "--once", "--window", "100")
        assert as_json.returncode == text.returncode, (as_json.stderr, text.stderr)
        out.append((as_json.returncode, json.loads(as_json.stdout), text.stdout))
        if i == 0:
            agg = run_cli("aggregate", str(run_dir))
            assert agg.returncode == as_json.returncode, agg.stdout + agg.stderr
            assert (run_dir / "result.json").is_file()
    return out


@pytest.mark.timeout(120)
def test_a_straggler_that_waited_for_a_cpu_is_not_judged_on_every_path(
    tmp_path: Path, run_cli: Any
) -> None:
    rank_writer.write_slow_rank_1(tmp_path, STEPS, {1: (4.0, 5.2)})
    (live_code, live, live_text), (end_code, ended, end_text) = _paths(run_cli, tmp_path)
    assert (live_code, end_code) == (2, 2)
    result = json.loads((tmp_path / "result.json").read_text())
    (h,) = result["host_contention"]
    assert (h["finding"], h["rank"]) == ("straggler", 1)
    for snap, over in ((live, "window"), (ended, "run")):
        assert snap["stragglers"] == [] and snap["problems"] == [] and snap["healthy"] is False
        assert [
            (b["finding"], b["rank"], b["text"], b["over"]) for b in snap["host_contention"]
        ] == [("straggler", 1, h["text"], over)]
        assert h["text"] in snap["not_judged"]
    assert f"NOT JUDGED: {h['text']} (over the last" in " ".join(live_text.split())
    flat = " ".join(end_text.split())
    assert f"NOT JUDGED: {h['text']} (over the whole run)" in flat
    assert "ended: NOT JUDGED (run finished)" in flat


@pytest.mark.timeout(120)
def test_a_straggler_busy_on_its_own_threads_stays_named_on_every_path(
    tmp_path: Path, run_cli: Any
) -> None:
    rank_writer.write_slow_rank_1(tmp_path, STEPS, {1: (None, 5.2)})
    (live_code, live, _), (end_code, ended, _) = _paths(run_cli, tmp_path)
    assert (live_code, end_code) == (1, 1)
    result = json.loads((tmp_path / "result.json").read_text())
    assert [s["rank"] for s in result["stragglers"]] == [1] and "host_contention" not in result
    for snap in (live, ended):
        assert [s["rank"] for s in snap["stragglers"]] == [1]
        assert snap["host_contention"] == [] and snap["not_judged"] is None
