"""`minicluster collectives` end to end: real torchrun, 2 gloo ranks, small sizes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)

REPO = Path(__file__).resolve().parents[2]
OPS = ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"]
FACTOR = {"all_reduce": 2 * (2 - 1) / 2, "broadcast": 1.0}  # n = 2; the rest (n-1)/n = 0.5
SIZES = [1024 * 2**i for i in range(7)]  # 1K:64K


def assert_one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("minicluster: error:"), proc.stderr
    assert text in lines[0]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_collectives_measures_checks_and_reports_every_op(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from minicluster.result.schema import validate_result

    out = tmp_path / "coll"
    md, html = tmp_path / "c.md", tmp_path / "c.html"
    proc = run_cli(
        "collectives",
        "--nproc",
        "2",
        "--sizes",
        "1K:64K",
        "--iters",
        "3",
        "--warmup-iters",
        "1",
        "--out",
        str(out),
        "--md",
        str(md),
        "--html",
        str(html),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rounded down to a multiple of n x element size = 8 B" in proc.stderr
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok" and result["backend"] == "gloo"
    coll = result["collectives"]
    assert (coll["iters"], coll["warmup_iters"], coll["world_size"]) == (3, 1, 2)
    rows = coll["results"]
    # gloo in this torch runs every op: none may be missing, none unavailable
    assert [(r["op"], r["size_bytes"]) for r in rows] == [(op, s) for op in OPS for s in SIZES]
    for r in rows:
        assert r["status"] == "measured", r
        assert r["wrong"] == 0, r
        assert r["time_us"] > 0 and r["busbw_gbps"] > 0
        assert r["algbw_gbps"] == pytest.approx(r["size_bytes"] / (r["time_us"] * 1e-6) / 1e9)
        assert r["busbw_gbps"] == r["algbw_gbps"] * FACTOR.get(r["op"], (2 - 1) / 2)
        elems = r["size_bytes"] // 4
        assert r["count"] == (elems if r["op"] in ("all_reduce", "broadcast") else elems // 2)
    peak = max(r["busbw_gbps"] for r in rows if r["op"] == "all_reduce")
    assert result["metrics"]["busbw_gbps"]["value"] == peak
    # each rank wrote a header (rank 0, local rank 0 of its node, then the job's roster), then
    # one flushed line per (op, size)
    for rank in (0, 1):
        lines = (out / "ranks" / f"rank_{rank:05d}.jsonl").read_text().splitlines()
        assert json.loads(lines[0])["job"] == "collectives"
        roster = 1 if rank == 0 else 0
        assert [json.loads(x)["type"] for x in lines[1 : 1 + roster]] == ["roster"] * roster
        assert len(lines) == 1 + roster + len(OPS) * len(SIZES)
    assert "busbw (GB/s)" in proc.stdout and "all_to_all" in proc.stdout
    md_text = md.read_text()
    assert "## Collectives" in md_text and "| all_to_all | 65536 | 8192 |" in md_text
    html_text = html.read_text()
    assert 'data-table="Collectives"' in html_text and 'data-plot="busbw"' in html_text

    # rebuilt from the rank files alone, the result is the same
    (out / "result.json").unlink()
    again = run_cli("aggregate", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    rebuilt = json.loads((out / "result.json").read_text())
    assert rebuilt["collectives"] == coll


@pytest.mark.timeout(60)
def test_bad_ops_and_sizes_are_one_line_exit_2(run_cli: RunCli, tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("collectives", "--ops", "all_reduce,reduce", cwd=tmp_path),
        "--ops: unknown collective 'reduce'; allowed: all_reduce, all_gather",
    )
    assert_one_line_error(
        run_cli("collectives", "--sizes", "1K:lots", cwd=tmp_path),
        "--sizes: not a size: 'lots'",
    )
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "64K:1K"], "--sizes: MAX (1K) is below MIN (64K)"),
        (["--sizes", "1K:2K:4K"], "--sizes: expected MIN:MAX or one size"),
        (["--sizes", "0"], "--sizes: sizes must be >= 1 byte"),
        (["--ops", ","], "--ops: unknown collective ','"),
        (["--iters", "0"], "--iters must be >= 1, got 0"),
        (["--nproc", "0"], "--nproc must be >= 1, got 0"),
        (["-c", str(REPO / "configs" / "default.yaml")], "is a training config (job: train)"),
    ],
)
def test_more_bad_input_is_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from minicluster.cli import main

    assert main(["collectives", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicluster: error:") and message in err, err


def test_run_refuses_a_collectives_config(capsys: pytest.CaptureFixture[str]) -> None:
    from minicluster.cli import main

    assert main(["run", "-c", str(REPO / "configs" / "collectives.yaml")]) == 2
    assert "run it with `minicluster collectives -c" in capsys.readouterr().err


@pytest.mark.timeout(30)
def test_aggregate_exits_1_on_wrong_elements(run_cli: RunCli, tmp_path: Path) -> None:
    """A run dir whose ranks saw wrong elements (written by the recorder): a correctness
    failure."""
    from fixtures import recorded

    recorded.collectives_run(tmp_path, wrong_on_rank1=3)
    proc = run_cli("aggregate", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "3 wrong elements (rank 1)" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_outside_torchrun_runs_a_collectives_config(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The cluster recipe with a collectives config: rank 0 aggregates in-band."""
    pytest.importorskip("torch")
    from minicluster.result.schema import validate_result

    cfg = tmp_path / "coll.yaml"
    cfg.write_text(
        "job: collectives\n"
        "collectives: {ops: [all_reduce, broadcast], min_bytes: 1K, max_bytes: 4K, iters: 2, "
        "warmup_iters: 1, dtype: bfloat16, root: 1}\n"
        "run: {collective_timeout_s: 60}\n"
    )
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
            str(cfg),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**cli_env, "OMP_NUM_THREADS": "1"},
        timeout=140,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok" and result["launcher"] == "outside"
    rows = result["collectives"]["results"]
    assert [(r["op"], r["size_bytes"]) for r in rows] == [
        (op, s) for op in ("all_reduce", "broadcast") for s in (1024, 2048, 4096)
    ]
    assert all(r["wrong"] == 0 and r["busbw_gbps"] > 0 for r in rows)
    assert result["collectives"]["dtype"] == "bfloat16" and result["collectives"]["root"] == 1
    assert "broadcast done: peak busbw" in proc.stderr  # rank 0's progress, one line per op


def test_collectives_flags_are_frozen() -> None:
    """The command's flags are its interface: a change here is a change for every user."""
    import argparse

    from minicluster.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {s for s in sub.choices["collectives"]._option_string_actions if s.startswith("--")}
    assert flags == {
        "--help",
        "--config",
        "--nproc",
        "--ops",
        "--sizes",
        "--step-factor",
        "--iters",
        "--warmup-iters",
        "--dtype",
        "--out",
        "--md",
        "--html",
        # the pairwise link test (--pattern pairwise)
        "--pattern",
        "--size",
        "--concurrent",
        "--serial",
        "--per",
        "--passes",
        "--recheck-rounds",
        "--outlier-z",
        "--min-busbw",
        "--fault",
        "--collective-timeout",
        "--launcher",
        "--ray-address",
        "--cpus-per-worker",
        "--gpus-per-worker",
        "--placement",
        "--dry-run",
    }
    args = parser.parse_args(["collectives"])
    assert (args.config, args.nproc, args.ops, args.sizes, args.dtype, args.out) == (None,) * 6
    assert (args.pattern, args.size, args.schedule, args.per, args.fault) == (None,) * 4 + ([],)
