"""`minicluster node-check` on this machine, for real: the quick level gives a GEMM rate, the host
memory bandwidth and the list of what it could not check and why, in under a minute, exit 0; the
JSON the Slurm health check reads; bad input is one line and exit 2; the flags are frozen."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from minicluster.result.node_check import validate_node_check

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]  # the run_cli fixture (conftest)
NO_RANKS = "gemm,host_memory,gpu_state,xid,infiniband,dcgm"  # what needs no torchrun ranks


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_level_is_real_complete_and_under_a_minute(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "nc"
    t0 = time.perf_counter()
    proc = run_cli(
        "node-check", "--level", "quick", "--out", str(out), "--json", str(tmp_path / "v.json")
    )
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert wall < 60, wall
    r = json.loads((out / "result.json").read_text())
    validate_node_check(r)
    assert json.loads((tmp_path / "v.json").read_text()) == r
    assert r["metrics"]["gemm_tflops"]["value"] > 0
    assert r["metrics"]["gemm_tflops"]["conditions"] == {"dtype": "float32", "n": 1024}
    assert r["metrics"]["host_triad_gbps"]["value"] > 0
    assert r["metrics"]["busbw_gbps"]["value"] > 0  # 2 gloo ranks through `collectives`
    assert (out / "collectives" / "result.json").is_file()
    families = {c["family"]: c["verdict"] for c in r["checks"]}
    assert families["gemm"] == "ok" and families["host_triad"] == "ok"
    why = {i["check"]: i["reason"] for i in r["incomplete"]}
    assert why["gpu node"].startswith("no GPU to check")  # this machine has none
    assert "dcgm node" in why and "infiniband node" in why
    assert r["verdict"] == "incomplete" and r["exit_code"] == 0
    first = proc.stdout.splitlines()[0]
    assert first.startswith("node check quick on ") and ": INCOMPLETE (" in first
    assert "Could not check" in proc.stdout


@pytest.mark.timeout(90)
def test_json_to_stdout_is_the_machine_readable_verdict(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    proc = run_cli(
        "node-check", "--checks", NO_RANKS, "--out", str(tmp_path / "nc"), "--json", "-", "--quiet"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)  # stdout carries only the JSON; the tables went to stderr
    validate_node_check(r)
    assert r["schema_version"] == "minicluster-node-check/1"
    assert r["workload"] == {"name": "node-check", "workload_type": "node_check", "level": "quick"}
    assert r["verdict"] in ("ok", "incomplete") and r["exit_code"] == 0
    assert r["platform"]["device"] == "cpu" and r["platform"]["gpus_per_node"] == 0
    assert "node check quick on" in proc.stderr
    assert not any(c["family"] == "busbw" for c in r["checks"])  # not asked for


@pytest.mark.timeout(90)
def test_expect_gpus_on_a_cpu_node_is_a_finding(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    proc = run_cli(
        "node-check", "--checks", "gpu_state", "--expect-gpus", "8", "--out", str(tmp_path / "nc")
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert "failed gpu_count node: 0 GPU(s) visible, 8 expected" in proc.stdout.splitlines()[0]


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from minicluster.cli import main

    bad_ref = tmp_path / "ref.yaml"
    bad_ref.write_text("format: minicluster-reference/1\nname: x\n")
    small = tmp_path / "small.yaml"  # a run config, not a reference
    small.write_text("steps: {warmup: 1, measured: 2}\n")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "result.json").write_text("{}")
    cases = [
        (["--checks", "gemm,speed"], "--checks: unknown check 'speed'; allowed: gemm,"),
        (["--floor-pct", "0"], "--floor-pct must be in (0, 100], got 0"),
        (["--floor-pct", "150"], "--floor-pct must be in (0, 100], got 150"),
        (["--intervals", "3"], "--intervals must be >= 5"),
        (["--duration", "-1"], "--duration must be >= 0 seconds"),
        (["--reference", str(tmp_path / "none.yaml")], "no such reference file"),
        (["--reference", str(bad_ref)], "kind must be one of published, site"),
        (["--reference", str(small)], f"{small} is not a minicluster reference (no `format:"),
        (["--out", str(taken)], f"output directory {taken} already holds"),
        (["--json", "-", "--md", "-"], "only one of --json, --md, --html can be '-'"),
    ]
    for args, message in cases:
        assert main(["node-check", *args]) == 2, args
        captured = capsys.readouterr()
        lines = [ln for ln in captured.err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("minicluster: error:"), lines
        assert message in lines[0], (message, lines)
        assert captured.out == ""


def test_node_check_flags_are_frozen() -> None:
    """The command's flags are its interface (the Slurm health check calls it)."""
    import argparse

    from minicluster.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {s for s in sub.choices["node-check"]._option_string_actions if s.startswith("--")}
    assert flags == {
        "--help", "--level", "--duration", "--intervals", "--checks", "--reference",
        "--floor-pct", "--expect-gpus", "--out", "--json", "--md", "--html", "--quiet",
    }  # fmt: skip
    args = parser.parse_args(["node-check"])
    assert (args.level, args.duration, args.floor_pct, args.expect_gpus) == (
        "quick",
        None,
        None,
        None,
    )


@pytest.mark.timeout(120)
def test_an_interrupted_check_keeps_what_it_measured(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    import signal

    pytest.importorskip("torch")
    out = tmp_path / "nc"
    cmd = [python, "-m", "minicluster", "node-check", "--checks", "gemm,burn_in", "--duration",
           "60", "--out", str(out)]  # fmt: skip
    # a suite started in the background inherits SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: give the command the default disposition a terminal gives
    proc = subprocess.Popen(
        cmd,
        env=cli_env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "burn-in 1/20" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert "interrupted; kept what was measured" in rest
    r = json.loads((out / "result.json").read_text())
    assert r["status"] == "incomplete" and r["interrupted"] is True and r["exit_code"] == 130
    assert any(c["family"] == "gemm" and c["verdict"] == "ok" for c in r["checks"])
    validate_node_check(r)


@pytest.mark.timeout(90)
def test_a_node_check_leaves_runs_latest_to_the_newest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runs/latest` is the newest run (README): `compare runs/latest` after a node check failed
    with "JSON of an unknown format". A node check without --out points runs/latest-node-check."""
    from minicluster.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    (tmp_path / "runs" / "latest").symlink_to("r1")
    assert main(["node-check", "--checks", "host_memory", "--quiet"]) == 0
    assert (tmp_path / "runs" / "latest").readlink() == Path("r1")
    check = tmp_path / "runs" / "latest-node-check"
    assert check.is_symlink() and (check / "result.json").is_file()
