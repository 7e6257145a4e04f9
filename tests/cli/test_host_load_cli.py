"""Two identical runs, one on a busier host (recorded, tests/fixtures/recorded_runs/compare_*,
2026-12-07): `compare` called ten timing rows regressed (exit 1). The ranks' run-queue delay
covers 81% of the step-time change while their CPU time barely moved: the timing rows are not
judged, NOT JUDGED (exit 2), memory still judged. A sleep-injected straggler recorded at load 3
(`loaded_*`) stays a regression. `history check` applies the same rule against its baseline runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_runs"


def _result(run_cli: Any, tmp_path: Path, name: str) -> Path:
    run_dir = tmp_path / name
    shutil.copytree(RECORDED / name, run_dir)
    agg = run_cli("aggregate", str(run_dir))
    assert agg.returncode in (0, 1, 2), agg.stdout + agg.stderr
    result = run_dir / "result.json"
    assert json.loads(result.read_text())["host_cpu"]["threads"] == "all"
    return result


def test_a_busier_host_is_not_judged_a_regression(run_cli: Any, tmp_path: Path) -> None:
    quiet = _result(run_cli, tmp_path, "compare_quiet")
    busy = _result(run_cli, tmp_path, "compare_busy")
    out = tmp_path / "cmp.json"
    res = run_cli("compare", str(quiet), str(busy), "--json", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "NOT JUDGED: compare_busy ran on a busier host" in " ".join(res.stdout.split())
    pair = json.loads(out.read_text())["comparisons"][0]
    assert pair["regressions"] == []
    assert pair["host_load"].startswith("compare_busy ran on a busier host")
    rows = {r["metric"]: r for r in pair["rows"]}
    assert rows["step_time_mean_ms"]["verdict"] == "not_comparable"
    assert rows["busbw_gbps"]["verdict"] == "not_comparable"
    assert rows["memory_peak_mib"]["verdict"] == "no_change"


def test_a_straggler_on_a_loaded_host_is_still_a_regression(run_cli: Any, tmp_path: Path) -> None:
    clean = _result(run_cli, tmp_path, "loaded_clean")
    slow = _result(run_cli, tmp_path, "loaded_straggler20")
    out = tmp_path / "cmp.json"
    res = run_cli("compare", str(clean), str(slow), "--json", str(out))
    assert res.returncode == 1, res.stdout + res.stderr
    pair = json.loads(out.read_text())["comparisons"][0]
    assert pair["host_load"] is None
    assert "step_time_mean_ms" in pair["regressions"]


def test_history_check_does_not_judge_a_run_from_a_quieter_host(
    run_cli: Any, tmp_path: Path
) -> None:
    db = str(tmp_path / "h.sqlite")
    for name in ("loaded_clean", "compare_busy", "busy_host_3"):
        added = run_cli("history", "add", str(_result(run_cli, tmp_path, name)), "--db", db)
        assert added.returncode == 0, added.stdout + added.stderr
    quiet = _result(run_cli, tmp_path, "compare_quiet")
    out = tmp_path / "check.json"
    res = run_cli("history", "check", str(quiet), "--db", db, "--json", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    said = " ".join(res.stdout.split()) + " ".join(res.stderr.split())
    assert "ran on a busier host" in said
    checked = json.loads(out.read_text())
    assert checked["host_load"].startswith("the baseline runs #1-#3 ran on a busier host")
    assert "NOT JUDGED: the baseline runs #1-#3 ran on a busier host" in said
    verdicts = {m["metric"]: m["verdict"] for m in checked["metrics"]}
    assert verdicts["step_time_mean_ms"] == "not_judged"
    assert verdicts["memory_peak_mib"] != "not_judged"


def test_one_side_without_the_hosts_load_is_said(run_cli: Any, tmp_path: Path) -> None:
    quiet = _result(run_cli, tmp_path, "compare_quiet")
    busy = _result(run_cli, tmp_path, "compare_busy")
    data = json.loads(busy.read_text())
    del data["host_cpu"]
    older = tmp_path / "older.result.json"
    older.write_text(json.dumps(data))
    res = run_cli("compare", str(quiet), str(older))
    said = " ".join(res.stdout.split())
    assert "the hosts' CPU load is not compared: older.result.json records none" in said


def test_history_check_refuses_options_no_gate_can_run_with(run_cli: Any, tmp_path: Path) -> None:
    quiet = _result(run_cli, tmp_path, "compare_quiet")
    db = str(tmp_path / "h.sqlite")
    assert run_cli("history", "add", str(quiet), "--db", db).returncode == 0
    for flag, value, said in (
        ("--alpha", "5", "--alpha must be between 0 and 1"),
        ("--alpha", "0", "--alpha must be between 0 and 1"),
        ("--threshold", "-1", "--threshold must be a percent >= 0"),
        ("--settle", "1", "--settle must be >= 2"),
    ):
        res = run_cli("history", "check", str(quiet), "--db", db, flag, value)
        assert res.returncode == 2, (flag, value, res.stdout, res.stderr)
        assert said in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
