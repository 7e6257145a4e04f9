"""`minicluster sweep --from`: the scaling table from finished runs of separate jobs equals the
one a live sweep built from the same runs (same formulas, same output)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from minicluster.report.sections import scaling_table
from minicluster.result.model import RunResult
from minicluster.result.schema import validate_result

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

# Point fields that come from the runs' measurements (everything but where the runs lie).
_POINT_KEYS = (
    "world_size",
    "per_rank_batch",
    "global_batch",
    "status",
    "efficiency_pct",
    "efficiency_pct_min",
    "efficiency_pct_max",
    "reason",
    "runs_ok",
    "throughput_samples_per_sec",
    "step_time_p50_ms",
    "compute_ms",
    "allreduce_ms",
    "exposed_comm_ms",
    "communication_overhead_percent",
    "stragglers",
)


def _points(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: p.get(k) for k in _POINT_KEYS} for p in result["scaling"]["points"]]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["weak", "strong"])
def test_sweep_from_three_finished_runs_equals_the_live_sweep(
    run_cli: RunCli, tmp_path: Path, mode: str
) -> None:
    pytest.importorskip("torch")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "workload: {name: mlp, per_rank_batch: 12, input_dim: 64, hidden_dim: 128, num_layers: 2}\n"
        "steps: {warmup: 1, measured: 5}\nrun: {collective_timeout_s: 60}\n"
    )
    live_dir = tmp_path / "live"
    proc = run_cli(
        "sweep", "-c", str(cfg), "--world-sizes", "1,2,3", "--mode", mode, "--out", str(live_dir),
        cwd=tmp_path, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    live = json.loads((live_dir / "result.json").read_text())

    runs = [str(live_dir / f"n{n}-r1") for n in (3, 1, 2)]  # any order, as jobs finish
    from_dir = tmp_path / "from"
    proc = run_cli("sweep", "--from", *runs, "--out", str(from_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = json.loads((from_dir / "result.json").read_text())
    validate_result(built)
    s = built["scaling"]
    assert s["mode"] == mode  # from the batches: no --mode given
    assert s["world_sizes"] == [1, 2, 3] and s["formula"] == live["scaling"]["formula"]
    assert s["baseline"] == live["scaling"]["baseline"]
    assert _points(built) == _points(live)
    assert built["metrics"]["scaling_efficiency_pct"] == live["metrics"]["scaling_efficiency_pct"]
    assert [r["dir"] for p in s["points"] for r in p["runs"]] == sorted(runs, key=lambda d: d[-4])
    # The same table in every report (bar the note, which says where the runs came from).
    assert (
        scaling_table(RunResult.from_json(built)).rows
        == scaling_table(RunResult.from_json(live)).rows
    )  # type: ignore[union-attr]
    assert "finished runs of separate jobs" in s["order"]
    assert built["status"] == live["status"] == "ok"

    # `aggregate` re-builds it from the same runs.
    (from_dir / "result.json").unlink()
    proc = run_cli("aggregate", str(from_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((from_dir / "result.json").read_text())
    assert _points(again) == _points(built)


RECORDED = Path(__file__).resolve().parents[1] / "golden" / "sweep_tiny"
RUNS = [str(RECORDED / f"n{n}-r1.result.json") for n in (1, 2, 4)]


@pytest.mark.timeout(120)
def test_from_with_project_and_no_link_is_refused_not_dropped(
    run_cli: RunCli, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    proc = run_cli("sweep", "--from", *RUNS, "--project", "8,64", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--project on finished runs needs the link" in proc.stderr
    assert not out.exists()


@pytest.mark.timeout(120)
def test_from_with_project_projects_with_its_error_and_refuses_too_far(
    run_cli: RunCli, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    proc = run_cli(
        "sweep", "--from", *RUNS, "--project", "8,64,1024",
        "--collectives", str(RECORDED / "allreduce-n2.result.json"), "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    proj = result["scaling"]["projection"]
    assert proj["status"] == "estimated" and proj["fit_error_pct"] == pytest.approx(30.98, abs=0.01)
    p8, p64, p1024 = proj["points"]
    assert p8["status"] == p64["status"] == "estimated"
    assert all(p["fit_error_pct"] == proj["fit_error_pct"] and p["fit_on"] for p in proj["points"])
    assert p1024["status"] == "unavailable" and "256x the largest measured" in p1024["reason"]
    assert "Not projected: 1024: 1024 ranks is 256x" in proc.stdout
    assert "±30.98" in proc.stdout
