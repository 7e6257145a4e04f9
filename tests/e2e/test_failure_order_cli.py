"""Who failed first, on real runs: a rank killed from outside the launcher (as the kernel's OOM
killer or earlyoom would: a signal to that one process, pid from its own header), and a 4-rank
run where one rank crashed and torchrun stopped the others. The result, the FAILED line,
`watch` and `sweep --from` lead with the first failure; the others are victims."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from minicluster.result.schema import validate_result  # noqa: E402

TIMEOUT_S = 30  # the collective timeout: a kill must be told well inside it


def _config(tmp_path: Path, measured: int) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "workload: {name: mlp, per_rank_batch: 32, input_dim: 128, hidden_dim: 256, num_layers: 2}\n"
        f"steps: {{warmup: 2, measured: {measured}}}\n"
        f"run: {{nproc: 2, threads_per_rank: 1, collective_timeout_s: {TIMEOUT_S}}}\n"
    )
    return path


def _steps_written(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if '"type":"step"' in line)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_rank_killed_from_outside_is_a_kill_first_not_a_hang(
    python: str, cli_env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "out"
    cmd = [
        python,
        "-m",
        "minicluster",
        "run",
        "-c",
        str(_config(tmp_path, 2000)),
        "--out",
        str(out),
    ]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env, cwd=tmp_path
    )
    rank1 = out / "ranks" / "rank_00001.jsonl"
    try:
        deadline = time.monotonic() + 90
        while _steps_written(rank1) < 6:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "rank 1 wrote no steps"
            time.sleep(0.1)
        pid = json.loads(rank1.read_text().splitlines()[0])["pid"]
        os.kill(pid, sig)  # that rank only: the launcher and rank 0 are untouched
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    wall_s = time.monotonic() - start
    assert proc.returncode == 3, stderr[-2000:]
    assert "Traceback" not in stderr
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "failed"
    assert (result["failed_ranks"], result["aborted_ranks"]) == ([1], [0])
    first, victim = result["failure_order"]
    assert (first["rank"], first["kind"], first["signal"]) == (1, "kill", int(sig))
    assert first["signal_name"] == sig.name and first["cause"] is True
    assert (
        f"killed by signal {int(sig)} ({sig.name}) from outside the launcher" in first["evidence"]
    )
    if sig == signal.SIGKILL:
        assert "OOM killer" in first["evidence"] and "dmesg" in first["evidence"]
    assert (victim["rank"], victim["kind"], victim["cause"]) == (0, "aborted", False)
    kinds = [d["kind"] for d in result["faults"]["detected"]]
    assert kinds == ["kill"]  # not a hang: nothing waited out the collective timeout
    assert wall_s < TIMEOUT_S + 60
    launcher = json.loads((out / "launcher.json").read_text())
    assert launcher["stopped_by_launcher"] == {"0": int(signal.SIGTERM)}  # rank 0, afterwards
    failed_line = next(line for line in stdout.splitlines() if line.startswith("FAILED"))
    assert failed_line.startswith("FAILED: rank 1:")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_four_ranks_the_crashed_rank_leads_in_run_watch_and_sweep_from(
    run_cli: Any, tmp_path: Path
) -> None:
    """Case 24: rank 3 crashes (exit 86) at step 6; torchrun SIGTERMs ranks 0-2."""
    cfg = _config(tmp_path, 8)
    ok = run_cli("run", "-c", str(cfg), "--nproc", "1", "--out", "n1", cwd=tmp_path, timeout=200)
    assert ok.returncode == 0, ok.stderr[-2000:]
    proc = run_cli(
        "run", "-c", str(cfg), "--nproc", "4", "--fault", "crash:rank=3,step=6", "--out", "n4",
        cwd=tmp_path, timeout=200,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads((tmp_path / "n4" / "result.json").read_text())
    validate_result(result)
    first = result["failure_order"][0]
    assert (first["rank"], first["kind"], first["exit_code"], first["step"]) == (3, "crash", 86, 6)
    assert [e["cause"] for e in result["failure_order"]] == [True, False, False, False]
    assert result["failed_ranks"] == [3]
    assert result["aborted_ranks"] == [0, 1, 2]
    assert result["errors"][0].startswith("rank 3: died during step 6")
    failed_line = next(line for line in proc.stdout.splitlines() if line.startswith("FAILED"))
    assert failed_line.startswith("FAILED: rank 3:")

    watch = run_cli("watch", "n4", "--once", "--json", cwd=tmp_path, timeout=200)
    snap = json.loads(watch.stdout)
    assert snap["failed"][0]["rank"] == 3, snap["failed"]

    sweep = run_cli("sweep", "--from", "n1", "n4", "--out", "sw", cwd=tmp_path, timeout=200)
    assert sweep.returncode == 3, sweep.stderr[-2000:]
    said = [line for line in (sweep.stdout + sweep.stderr).splitlines() if "n4" in line]
    assert any("failed: rank 3: died during step 6" in line for line in said), said
    assert not any("failed: rank 0" in line or "failed: rank 1" in line for line in said), said


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_kill_fault_is_found_as_a_kill_with_its_signal(
    run_cli: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    cfg = _config(tmp_path, 8)
    proc = run_cli(
        "run", "-c", str(cfg), "--fault", f"kill:rank=1,step=4,signal={int(sig)}", "--out", "out",
        cwd=tmp_path, timeout=200,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    validate_result(result)
    assert result["faults"]["injected"][0]["signal"] == int(sig)
    (det,) = result["faults"]["detected"]
    assert (det["kind"], det["rank"], det["step"]) == ("kill", 1, 4)
    first = result["failure_order"][0]
    assert (first["rank"], first["kind"], first["signal"]) == (1, "kill", int(sig))
    assert (result["failed_ranks"], result["aborted_ranks"]) == ([1], [0])
