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


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_sweep_from_with_a_failed_largest_size_takes_its_headline_from_an_ok_run(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """Case 24's inputs: runs of 1 and 2 ranks ok, the 4-rank run's rank 3 crashes at step 20
    (exit 86). The sweep's headline metrics and ranks come from the 2-rank run, not from the
    failed run's partial figures, and the sweep says that world size 4 is left out."""
    pytest.importorskip("torch")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "name: case-tiny\n"
        "workload: {name: mlp, per_rank_batch: 64, input_dim: 512, hidden_dim: 1024, "
        "num_layers: 3}\n"
        "steps: {warmup: 3, measured: 40}\n"
        "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 30}\n"
    )
    for n, extra in ((1, []), (2, []), (4, ["--fault", "crash:rank=3,step=20"])):
        proc = run_cli(
            "run", "-c", str(cfg), "--nproc", str(n), *extra, "--out", f"n{n}",
            cwd=tmp_path, timeout=200,
        )  # fmt: skip
        assert proc.returncode == (3 if n == 4 else 0), proc.stderr[-2000:]
    proc = run_cli("sweep", "--from", "n1", "n2", "n4", "--out", "sweep", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    result = json.loads((tmp_path / "sweep" / "result.json").read_text())
    validate_result(result)
    n2 = json.loads((tmp_path / "n2" / "result.json").read_text())
    head = result["scaling"]["headline_run"]
    assert (head["world_size"], head["left_out"], head["run_id"]) == (2, [4], n2["run_id"])
    assert "left out: n4 (world size 4) failed" in head["why"]
    assert result["status"] == "failed" and result["world_size"] == 2
    assert [r["rank"] for r in result["ranks"]] == [0, 1]
    tput = result["metrics"]["throughput_samples_per_sec"]
    assert tput == n2["metrics"]["throughput_samples_per_sec"]
    eff = result["metrics"]["scaling_efficiency_pct"]
    assert eff["value"] == pytest.approx(result["scaling"]["points"][1]["efficiency_pct"])
    # the failure is still named, first failure first
    assert any(
        e.startswith("sweep run n4 (world size 4, round 1) failed: rank 3")
        for e in result["errors"]
    ), result["errors"]
    md = run_cli("report", "sweep/result.json", "--md", "sweep.md", cwd=tmp_path)
    assert md.returncode in (0, 3), md.stderr[-2000:]
    said = " ".join((tmp_path / "sweep.md").read_text().split())
    assert "come from run n2 (world size 2, round 1)" in said
    assert "World size 4 is left out" in said
