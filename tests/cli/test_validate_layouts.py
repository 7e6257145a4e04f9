"""`validate --layouts`: layout names, the first diverging step, and a real run of three layouts
whose losses agree (same model, seed and global batch)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from minicluster.cli.validate_layouts import first_divergence, layout_specs
from minicluster.core.errors import InputError

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


def test_layout_names_and_degree_specs() -> None:
    assert layout_specs("ddp,fsdp,tp", 2) == [("ddp", None), ("fsdp", "dp_shard=2"), ("tp", "tp=2")]
    assert layout_specs("fsdp_tp;dp_shard=4", 4)[1] == ("dp_shard=4", "dp_shard=4")
    with pytest.raises(InputError, match="unknown layout 'zero3'"):
        layout_specs("ddp,zero3", 2)
    with pytest.raises(InputError, match="two layouts or more"):
        layout_specs("ddp", 2)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("layouts", "says"),
    [("ddp,fsdp,ddp", "ddp is given twice"), ("dp_replicate=2;dp_shard=2;dp_replicate=2", "twice")],
)
def test_a_layout_given_twice_is_one_line_exit_2(
    run_cli: RunCli, tmp_path: Path, layouts: str, says: str
) -> None:
    cfg = _tiny_llama(tmp_path)
    proc = run_cli("validate", "-c", str(cfg), "--layouts", layouts, "--out", str(tmp_path / "v"))
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "v").exists()


def test_the_first_step_beyond_the_tolerance_is_named() -> None:
    ref = {0: 5.0, 1: 4.9, 2: 4.8}
    assert first_divergence(ref, {0: 5.0, 1: 4.90001, 2: 4.80002}, 1e-4) is None
    div = first_divergence(ref, {0: 5.0, 1: 4.95, 2: 4.7}, 1e-4)
    assert div is not None and div["step"] == 1 and div["rel_diff"] == pytest.approx(0.05 / 4.9)
    gone = first_divergence(ref, {0: 5.0}, 1e-4)
    assert gone is not None and gone["step"] == 1 and gone["why"] == "a step is missing"


def _tiny_llama(tmp_path: Path) -> Path:
    """A config of a llama small enough for 4 layouts on 2 cores: 1 warm-up + 3 measured steps."""
    cfg = tmp_path / "llama.yaml"
    cfg.write_text(
        "workload: {name: llama, per_rank_batch: 2, seq_len: 16, vocab_size: 128, dim: 32, "
        "n_layers: 2, n_heads: 4, n_kv_heads: 2, multiple_of: 16}\n"
        "steps: {warmup: 1, measured: 3}\nrun: {threads_per_rank: 1, collective_timeout_s: 60}\n"
    )
    return cfg


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_fsdp2_and_tp_train_the_same_losses(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    cfg = _tiny_llama(tmp_path)
    out = tmp_path / "v"
    proc = run_cli(
        "validate", "-c", str(cfg), "--layouts", "ddp,fsdp,tp,pp", "--out", str(out), timeout=380
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PASS: ddp, fsdp, tp, pp agree on the loss at all 4 steps" in proc.stdout
    report = json.loads((out / "layouts.json").read_text())
    assert report["passed"] and report["rel_tolerance"] == 1e-4
    ddp, fsdp, tp, pp = (r["losses"] for r in report["runs"])
    # TP trains both data-parallel shards of DDP's global batch on every rank of its group
    assert tp == pytest.approx(ddp, rel=1e-5) and fsdp == pytest.approx(ddp, rel=1e-5)
    assert pp == pytest.approx(ddp, rel=1e-5)  # the last stage's loss: the mean of microbatches
    proc = run_cli("validate", "-c", str(cfg), "--layouts", "ddp,tp", "--parallel", "tp=2")
    assert proc.returncode == 2 and "leave out --parallel" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_corrupted_gradient_fails_validate_naming_the_layout_rank_and_step(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """`--fault` reaches every layout's run (it was dropped: corrupt_grad passed, uninjected),
    and a shard check that fails fails validate, naming the first such layout."""
    pytest.importorskip("torch")
    cfg = _tiny_llama(tmp_path)
    out = tmp_path / "v"
    proc = run_cli(
        "validate", "-c", str(cfg), "--layouts", "fsdp,tp", "--fault", "corrupt_grad:rank=1,step=2",
        "--out", str(out), timeout=380,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "FAIL: layout fsdp: replicas diverged at step 2, rank(s) 1" in proc.stdout
    assert "layout tp (tp=2): ok; check FAILED" in proc.stderr
    report = json.loads((out / "layouts.json").read_text())
    assert not report["passed"] and [r["checks_passed"] for r in report["runs"]] == [False, False]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", [True, False])  # with its kind, and as written before it had one
def test_report_aggregate_and_watch_read_a_validate_layouts_directory(
    run_cli: RunCli, tmp_path: Path, kind: bool
) -> None:
    """report/aggregate/watch said the directory holds no result or no rank records (exit 2)."""
    out = tmp_path / "v"
    out.mkdir()
    data = {
        "run_id": "v1",
        "reference": "ddp",
        "precision": "fp32",
        "rel_tolerance": 1e-4,
        "runs": [
            {"layout": "ddp", "label": "dp_replicate=2", "dir": "l0", "status": "ok",
             "losses": [2.0, 1.5]},
            {"layout": "tp", "label": "tp=2", "dir": "l1", "status": "ok", "losses": [2.0, 1.7],
             "divergence": {"step": 1, "loss": 1.7, "reference": 1.5}},
        ],
        "passed": False,
        "reason": "layout tp diverges from ddp at step 1",
    }  # fmt: skip
    if kind:
        data = {"kind": "layout_validation", **data}
    (out / "layouts.json").write_text(json.dumps(data))
    proc = run_cli("report", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("validate --layouts v1: FAIL: layout tp diverges")
    assert "tp (tp=2): ok, 2 steps, diverges at step 1 (1.7 vs 1.5)" in proc.stdout
    proc = run_cli("aggregate", str(out))
    assert proc.returncode == 1 and "FAIL" in proc.stdout, proc.stderr  # the verdict's exit
    proc = run_cli("watch", str(out), "--once")
    assert proc.returncode == 2 and f"minicluster watch {out}/l1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("aggregate", str(out), "--straggler-threshold", "30")
    assert proc.returncode == 2 and "re-judge one of its runs" in proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("layouts", "says"),
    [
        ("dp_shard=2;tp=0", "--layouts tp=0: parallel.tp is 0; must be >= 1"),
        ("dp_shard=2;tp=x", "--layouts tp=x: tp must be an integer, got 'x'"),
        ("dp_shard=2;zz=1", "--layouts zz=1: unknown key parallel.zz"),
        ("dp_shard=2;tp=2", "--layouts tp=2: parallel.tp needs workload.name: llama"),
    ],
)
def test_a_bad_layout_names_layouts_not_parallel(
    capsys: pytest.CaptureFixture[str], layouts: str, says: str
) -> None:
    """The trial's `validate --layouts "dp_shard=2;tp=0"` blamed `--parallel`, a flag not given."""
    from minicluster.cli import main

    assert main(["validate", "--layouts", layouts, "--dry-run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "--parallel" not in lines[0], lines
