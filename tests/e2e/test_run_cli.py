"""`minicluster run` end to end: real torchrun, 2 gloo ranks, the canonical result on disk."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

pytest.importorskip("torch")

from minicluster.result.schema import validate_result  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_run_writes_a_valid_ok_result(run_cli: RunCli, tmp_path: Path, tiny_config: Path) -> None:
    proc = run_cli("run", "-c", str(tiny_config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink()
    result = json.loads((latest / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok"
    assert result["world_size"] == 2
    assert result["launcher"] == "torchrun"
    assert result["backend"] == "gloo"
    assert f"result: runs/{result['run_id']}/result.json" in proc.stdout
    for r in result["ranks"]:
        assert r["measured_steps"] == 8
        assert 0 < r["comm_ms_median"] < r["step_time_ms"]["p50"]
    m = result["metrics"]
    assert m["allreduce_ms"]["value"] > 0
    assert m["throughput_samples_per_sec"]["value"] > 0
    for name in ("power_consumption_watts", "energy_per_step_joules", "temperature_celsius"):
        assert m[name]["value"] is None and m[name]["reason"]
    assert m["memory_peak_mib"]["status"] == "measured"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_transformer_reports_tokens_per_sec(run_cli: RunCli, tmp_path: Path) -> None:
    cfg = tmp_path / "lm.yaml"
    cfg.write_text(
        "workload: {name: transformer, per_rank_batch: 2, seq_len: 16, vocab_size: 64, "
        "d_model: 32, n_layers: 1, n_heads: 2}\nsteps: {warmup: 1, measured: 5}\n"
    )
    out = tmp_path / "lm"
    proc = run_cli("run", "-c", str(cfg), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    tps = result["metrics"]["tokens_per_sec"]["value"]
    sps = result["metrics"]["throughput_samples_per_sec"]["value"]
    assert tps == pytest.approx(sps * 16)
    assert result["workload"]["seq_len"] == 16


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_worker_runs_alone_without_a_launcher(
    run_cli: RunCli, tmp_path: Path, tiny_config: Path
) -> None:
    proc = run_cli(
        "worker",
        "-c",
        str(tiny_config),
        "--out",
        str(tmp_path / "w"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "w" / "result.json").read_text())
    assert result["world_size"] == 1
    assert result["status"] == "ok"
    assert result["metrics"]["allreduce_ms"]["value"] is None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_aggregate_after_a_rank_died_keeps_its_steps(
    run_cli: RunCli, tmp_path: Path, tiny_config: Path
) -> None:
    out = tmp_path / "run"
    assert run_cli("run", "-c", str(tiny_config), "--out", str(out), cwd=tmp_path).returncode == 0
    # make rank 1 look like it died after step 4: no summary, JSONL cut mid-line
    (out / "ranks" / "rank_00001.summary.json").unlink()
    f = out / "ranks" / "rank_00001.jsonl"
    lines = f.read_text().splitlines()
    first_step = next(i for i, line in enumerate(lines) if '"type":"step"' in line)
    keep = first_step + 5  # header lines, then steps 0-4 whole, step 5 cut mid-line
    f.write_text("\n".join(lines[:keep]) + "\n" + lines[keep][:20])
    # The result built from every step is never replaced by one built from fewer ...
    proc = run_cli("aggregate", str(out), cwd=tmp_path)
    assert proc.returncode == 0 and "kept" in proc.stderr, proc.stderr
    assert json.loads((out / "result.json").read_text())["status"] == "ok"
    # ... so, as after a real death (no result was written), aggregate without it.
    (out / "result.json").unlink()
    proc = run_cli("aggregate", str(out), cwd=tmp_path)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["failed_ranks"] == [1]
    assert result["ranks"][1]["steps_recorded"] == 5
    assert result["ranks"][0]["steps_recorded"] == 10
    assert any("truncated last line skipped" in e for e in result["errors"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_outside_torchrun_aggregates_in_band_on_rank_0(
    python: str, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    """The cluster recipe: torchrun starts `minicluster worker`; rank 0 writes result.json from
    records gathered in-band (no shared filesystem needed)."""
    out = tmp_path / "outside"
    proc = subprocess.run(
        [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "minicluster",
            "worker",
            "-c",
            str(tiny_config),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**cli_env, "OMP_NUM_THREADS": "1"},
        timeout=150,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok"
    assert result["world_size"] == 2
    assert result["launcher"] == "outside"
    assert [r["measured_steps"] for r in result["ranks"]] == [8, 8]
    assert result["metrics"]["allreduce_ms"]["value"] > 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_1200_step_run_aggregates_and_re_judges_with_the_sign_test(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """2 real ranks x 1,200 measured steps. Healthy ranks are each the slowest in about half the
    steps; with the straggler thresholds at 0 the sign test runs on them, where the hand-summed
    binomial tail overflowed a float (an internal error, no result)."""
    job = tmp_path / "long.yaml"
    job.write_text(
        "workload: {name: mlp, per_rank_batch: 4, input_dim: 8, hidden_dim: 16, num_layers: 1}\n"
        "steps: {warmup: 2, measured: 1200}\n"
        "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 60}\n"
    )
    out = tmp_path / "run"
    proc = run_cli("run", "-c", str(job), "--out", str(out), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert [r["measured_steps"] for r in result["ranks"]] == [1200, 1200]
    proc = run_cli(
        "aggregate", str(out), "--straggler-threshold", "0", "--straggler-min-excess", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rejudged,) = out.glob("result.rejudged-*.json")
    again = json.loads(rejudged.read_text())
    validate_result(again)
    assert again["status"] == "ok"
