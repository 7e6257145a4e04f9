"""`minicluster validate`: DDP equals one process on the global batch; replicas stay identical."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("torch")

from minicluster.result.schema import validate_result  # noqa: E402


def _validate(
    python: str, env: dict[str, str], tmp_path: Path, cfg: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "out"
    proc = subprocess.run(
        [python, "-m", "minicluster", "validate", "-c", str(cfg), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    return proc, result


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_validate_passes_on_a_healthy_run(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cfg = tmp_path / "lm.yaml"  # the transformer: embeddings, layer norms, attention
    cfg.write_text(
        "workload: {name: transformer, per_rank_batch: 2, seq_len: 16, vocab_size: 64, "
        "d_model: 32, n_layers: 1, n_heads: 2}\nsteps: {warmup: 1, measured: 5}\n"
        "run: {threads_per_rank: 1}\n"
    )
    proc, result = _validate(python, cli_env, tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "minicluster: validate: PASS" in proc.stdout
    v = result["validation"]
    assert v["passed"] is True and v["reason"] is None
    checks = {c["name"]: c for c in v["checks"]}
    eq = checks["ddp_equivalence"]
    assert eq["steps"] == 6 and eq["world_size"] == 2
    assert 0 <= eq["max_rel_diff"] <= eq["rel_tolerance"]
    assert eq["max_abs_diff"] >= 0
    assert checks["replica_consistency"]["steps_checked"] == 6
    assert result["faults"]["detected"] == []


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_validate_fails_with_one_line_naming_rank_and_step(
    python: str, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    proc, result = _validate(
        python, cli_env, tmp_path, tiny_config, "--fault", "corrupt_grad:rank=1,step=3"
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    verdict = [ln for ln in proc.stdout.splitlines() if ln.startswith("minicluster: validate:")]
    assert len(verdict) == 1
    assert verdict[0].startswith(
        "minicluster: validate: FAIL: replicas diverged at step 3, rank(s) 1"
    )
    checks = {c["name"]: c for c in result["validation"]["checks"]}
    assert checks["replica_consistency"]["divergence"] == {"step": 3, "ranks": [1]}
    assert result["validation"]["passed"] is False


@pytest.mark.timeout(60)
def test_validate_on_one_rank_is_bad_usage(
    python: str, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    proc = subprocess.run(
        [python, "-m", "minicluster", "validate", "-c", str(tiny_config), "--nproc", "1"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "minicluster: error: validate compares ranks: it needs --nproc 2 or more"
    )
