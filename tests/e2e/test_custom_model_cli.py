"""`minicluster run` of a user's own model end to end: the shipped example on 2 gloo ranks, and
broken factories refused in one line with exit 2 (before any rank starts where it can be)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

pytest.importorskip("torch")

from minicluster.result.schema import validate_result  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, factory: str, extra: str = "") -> Path:
    cfg = tmp_path / "custom.yaml"
    cfg.write_text(
        f"workload: {{name: custom, factory: {json.dumps(factory)}{extra}}}\n"
        "steps: {warmup: 1, measured: 4}\nrun: {nproc: 2, collective_timeout_s: 60}\n"
    )
    return cfg


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_example_runs_on_two_ranks(run_cli: RunCli, tmp_path: Path) -> None:
    # The shipped config, from the repository root as the README says.
    out = tmp_path / "out"
    proc = run_cli("run", "-c", "examples/custom_model.yaml", "--out", str(out), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok" and result["world_size"] == 2
    assert result["workload"]["name"] == "custom"
    assert result["workload"]["global_batch"] == 2 * result["workload"]["per_rank_batch"]
    assert result["workload"]["params"] > 0
    factory = result["config"]["workload"]["factory"]
    assert factory == f"{REPO / 'examples' / 'custom_model.py'}:build"  # recorded absolute
    assert all(r["measured_steps"] == 10 for r in result["ranks"])
    assert result["metrics"]["allreduce_ms"]["value"] > 0
    assert "bad_input" not in result
    # FLOPs from the factory's flops_per_sample; no peak for a CPU, said
    tflops = result["metrics"]["achieved_tflops"]
    assert tflops["value"] > 0 and "custom_model.py:build" in tflops["method"]
    assert result["metrics"]["mfu_pct"]["value"] is None
    assert "CPU" in result["metrics"]["mfu_pct"]["reason"]
    for r in result["ranks"]:
        assert r["achieved_tflops"] > 0
        mem = r["memory"]
        assert mem["params_bytes"] == mem["grads_bytes"] == mem["optimizer_bytes"] > 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_build_that_raises_is_one_line_and_exit_2_with_records_kept(
    run_cli: RunCli, tmp_path: Path
) -> None:
    model = tmp_path / "broken.py"
    model.write_text("def build(ctx):\n    raise RuntimeError('weights file missing')\n")
    out = tmp_path / "out"
    proc = run_cli(
        "run", "-c", str(_config(tmp_path, "broken.py:build")), "--out", str(out), cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("minicluster: error")]
    assert len(errors) == 1, proc.stderr
    assert f"{model}:build: build(ctx) raised RuntimeError: weights file missing" in errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    result = json.loads((out / "result.json").read_text())  # what the ranks recorded is kept
    validate_result(result)
    assert result["status"] == "failed" and "weights file missing" in result["bad_input"]
    assert (out / "ranks" / "rank_00000.summary.json").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("body", "factory", "says"),
    [
        ("import not_a_module_xyz\n", "m.py:build", "ModuleNotFoundError"),
        ("def make(ctx):\n    pass\n", "m.py:build", "has no function 'build'"),
        ("", "absent.py:build", "no such file"),
    ],
)
def test_a_factory_that_does_not_import_stops_before_any_rank_starts(
    run_cli: RunCli, tmp_path: Path, body: str, factory: str, says: str
) -> None:
    (tmp_path / "m.py").write_text(body)
    out = tmp_path / "out"
    proc = run_cli("run", "-c", str(_config(tmp_path, factory)), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert "workload.factory" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # nothing was started, nothing claimed


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("validate",), "validate runs the mlp and transformer workloads"),
        (("sweep", "--world-sizes", "1,2", "--mode", "strong"), "needs workload.per_rank_batch"),
    ],
)
def test_what_a_custom_model_cannot_do_yet_is_refused_up_front(
    run_cli: RunCli, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    cfg = _config(tmp_path, f"{REPO / 'examples' / 'custom_model.py'}:build")
    out = tmp_path / "out"
    proc = run_cli(*args, "-c", str(cfg), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert not out.exists()
