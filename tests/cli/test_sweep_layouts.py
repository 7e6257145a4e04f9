"""`sweep --layouts`: bad layouts refused before any run (exit 2, one line), the table from the
runs' results, and `report`/`aggregate`/`watch` pointed at a layout sweep's directory; one real
sweep of four layouts at 4 ranks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis import layout_sweep

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]

LLAMA = (
    "workload: {name: llama, per_rank_batch: 4, seq_len: 16, vocab_size: 128, dim: 32, "
    "n_layers: 2, n_heads: 4, n_kv_heads: 2, multiple_of: 16}\n"
    "steps: {warmup: 1, measured: 3}\n"
    "run: {collective_timeout_s: 60, threads_per_rank: 1}\n"
)
FOUR = "dp_replicate=4;dp_shard=4;dp_shard=2,tp=2;pp=2,dp_replicate=2"


def _result(step: float, kinds: dict[str, float], bubble: float | None = None) -> dict[str, Any]:
    metric = {"value": None, "reason": "the workload recorded no FLOPs per sample"}
    return {
        "status": "ok",
        "layout": {"name": "X"},
        "metrics": {
            "latency_p50_ms": {"value": step, "reason": None},
            "achieved_tflops": metric,
            "exposed_comm_ms": {"value": sum(kinds.values()), "reason": None},
            "memory_peak_mib": {"value": 300.0, "reason": None},
        },
        "comm": {"kinds": [{"kind": k, "exposed_ms": v} for k, v in kinds.items()]},
        "pipeline": None if bubble is None else {"bubble_pct": bubble, "bubble_pct_theory": 20.0},
        "ranks": [
            {"memory": {"params_bytes": 2**20, "grads_bytes": 2**20, "optimizer_bytes": 2**20}}
        ],
    }


def test_rows_and_table_show_each_layout_s_own_figures_side_by_side() -> None:
    rows = [
        layout_sweep.row(
            "dp_shard=4", "dp_shard=4", "l0", _result(12.5, {"all_gather": 3.0}), None
        ),
        layout_sweep.row("pp=2", "pp=2", "l1", _result(20.0, {"send_recv": 7.5}, 60.0), None),
        layout_sweep.row("tp=4", "tp=4", "l2", None, "the launch failed: no torchrun"),
    ]
    assert rows[0]["exposed_ms_by_kind"] == {"all_gather": {"exposed_ms": 3.0, "reason": None}}
    assert rows[0]["achieved_tflops"] is None and "no FLOPs" in rows[0]["achieved_tflops_reason"]
    assert rows[1]["bubble_pct"] == 60.0 and rows[2]["status"] == "failed"
    lines = layout_sweep.table(rows)
    assert "exposed all_gather ms" in lines[0] and "exposed send_recv ms" in lines[0]
    assert "all_reduce" not in lines[0]  # only the kinds some layout issued
    assert lines[2].startswith("| dp_shard=4 | ok | 12.5 | - | 3 | 3 | - | - | 300 | 3 |")
    assert "| 60 (20) |" in lines[3]
    assert lines[4].startswith("| tp=4 | failed | - |")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--layouts", "dp_replicate=4;tp=3"), "--layouts tp=3: parallel.tp (3) does not divide"),
        (("--layouts", "dp_shard=4"), "--layouts needs two layouts or more"),
        (("--layouts", "dp_shard=4;tp=x"), "--layouts tp=x: tp must be an integer"),
        (("--layouts", FOUR, "--world-sizes", "2,4"), "--world-sizes takes one number"),
        (("--layouts", FOUR, "--parallel", "tp=2"), "sweep --layouts takes no --parallel"),
        (("--layouts", "pp=4;dp_shard=4"), "parallel.pp_microbatches (8) does not divide"),
        (
            ("--layouts", "dp_shard=4;dp_replicate=4;dp_shard=4"),
            "the same layout as an earlier one",
        ),
        (("--layouts", "ddp,zero3"), "unknown layout 'zero3'; names: ddp, fsdp"),
        (("--layouts", "fsdp_tp,hsdp", "--world-sizes", "2"), "needs an even world size of 4"),
        (("--layouts", "ddp,fsdp,ddp", "--world-sizes", "2"), "the same layout as an earlier one"),
    ],
)
@pytest.mark.timeout(60)
def test_a_bad_layout_is_one_line_exit_2_before_any_run(
    run_cli: RunCli, tmp_path: Path, flags: tuple[str, ...], says: str
) -> None:
    cfg = tmp_path / "llama.yaml"
    cfg.write_text(LLAMA)
    proc = run_cli("sweep", "-c", str(cfg), *flags, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _fake_sweep(tmp_path: Path) -> Path:
    """A layout sweep's directory as `sweep --layouts` leaves it (two finished runs)."""
    out = tmp_path / "ls"
    out.mkdir()
    rows = [
        layout_sweep.row(
            "dp_shard=4", "dp_shard=4", "l0", _result(12.5, {"all_gather": 3.0}), None
        ),
        layout_sweep.row("tp=4", "tp=4", "l1", _result(20.0, {"all_reduce": 7.5}), None),
    ]
    plan = {
        "kind": layout_sweep.KIND,
        "sweep_id": "s1",
        "world_size": 4,
        "layouts": [{"label": "dp_shard=4", "dir": "l0"}, {"label": "tp=4", "dir": "l1"}],
        "rows": rows,
        "table": layout_sweep.table(rows),
    }
    (out / "layouts.json").write_text(json.dumps(plan))
    for sub in ("l0", "l1"):
        (out / sub / "ranks").mkdir(parents=True)
    return out


@pytest.mark.timeout(60)
def test_report_renders_the_table_and_watch_points_at_a_run(
    run_cli: RunCli, tmp_path: Path
) -> None:
    out = _fake_sweep(tmp_path)
    proc = run_cli("report", str(out), "--md", str(tmp_path / "t.md"))
    assert proc.returncode == 0, proc.stderr
    assert "layout sweep s1: world size 4" in proc.stdout and "| tp=4 | ok | 20 |" in proc.stdout
    assert "| dp_shard=4 |" in (tmp_path / "t.md").read_text()
    # `--md -`: the table on stdout, the summary on stderr; never a file named '-' (it wrote one)
    proc = run_cli("report", str(out), "--md", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("| layout |") and "layout sweep s1" in proc.stderr
    assert not (tmp_path / "-").exists()
    proc = run_cli("watch", str(out), "--once")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"minicluster watch {out}/l1" in proc.stderr and f"report {out}" in proc.stderr
    proc = run_cli("aggregate", str(out), "--straggler-threshold", "10")
    assert proc.returncode == 2 and "is a layout sweep" in proc.stderr, proc.stderr
    # a new sweep never writes over it
    cfg = tmp_path / "llama.yaml"
    cfg.write_text(LLAMA)
    proc = run_cli("sweep", "-c", str(cfg), "--layouts", "dp_shard=2;tp=2", "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_four_layouts_at_4_ranks_side_by_side(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    cfg = tmp_path / "llama.yaml"
    cfg.write_text(LLAMA)
    out = tmp_path / "ls"
    proc = run_cli("sweep", "-c", str(cfg), "--layouts", FOUR, "--out", str(out), timeout=850)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "layouts.json").read_text())
    assert data["kind"] == "layout_sweep" and data["world_size"] == 4
    rows = {r["label"]: r for r in data["rows"]}
    assert list(rows) == FOUR.split(";")
    for label, row in rows.items():
        assert row["status"] == "ok" and row["step_time_ms"] > 0, row
        assert row["memory_peak_mib"] > 0
        result = json.loads((out / row["dir"] / "result.json").read_text())
        assert result["layout"]["label"] == label
    assert set(rows["dp_shard=4"]["exposed_ms_by_kind"]) == {"all_gather", "reduce_scatter"}
    assert set(rows["dp_shard=2,tp=2"]["exposed_ms_by_kind"]) == {
        "all_gather",
        "reduce_scatter",
        "all_reduce",
    }
    assert set(rows["pp=2,dp_replicate=2"]["exposed_ms_by_kind"]) == {"send_recv", "all_reduce"}
    assert rows["pp=2,dp_replicate=2"]["bubble_pct"] is not None
    assert rows["dp_replicate=4"]["bubble_pct"] is None
    table = (out / "layouts.md").read_text()
    assert all(f"| {label} | ok |" in table for label in rows)
    # aggregate re-builds the table from the runs' rank files, with the same rows
    proc = run_cli("aggregate", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((out / "layouts.json").read_text())
    assert [r["label"] for r in again["rows"]] == list(rows)


@pytest.mark.timeout(60)
def test_layouts_by_name_as_validate_takes_them(run_cli: RunCli, tmp_path: Path) -> None:
    cfg = tmp_path / "llama.yaml"
    cfg.write_text(LLAMA)
    proc = run_cli("sweep", "-c", str(cfg), "--layouts", "ddp,fsdp,tp", "--world-sizes", "2",
                   "--dry-run", "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "3 layouts at world size 2 (ddp (dp_replicate=2); fsdp (dp_shard=2); tp (tp=2))" in (
        proc.stdout
    )
    upper = run_cli("sweep", "-c", str(cfg), "--layouts", "DDP,FSDP", "--world-sizes", "2",
                    "--dry-run", "--out", str(tmp_path / "out"))  # fmt: skip
    assert upper.returncode == 0 and "fsdp (dp_shard=2)" in upper.stdout, upper.stderr
    joined = run_cli("sweep", "-c", str(cfg), "--layouts", "ddp,tp=2", "--dry-run",
                     "--out", str(tmp_path / "out"))  # fmt: skip
    assert joined.returncode == 2 and "separate layouts with ';'" in joined.stderr
    assert "(ddp;tp=2)" in joined.stderr
    mixed = run_cli("sweep", "-c", str(cfg), "--layouts", "ddp;dp_shard=2,tp=2", "--dry-run",
                    "--out", str(tmp_path / "out"))  # fmt: skip
    assert mixed.returncode == 0, mixed.stderr
    assert "2 layouts at world size 4 (ddp (dp_replicate=4); dp_shard=2,tp=2)" in mixed.stdout
