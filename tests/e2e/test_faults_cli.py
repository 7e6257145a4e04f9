"""`minicluster run --fault ...` end to end: each fault is detected, attributed, bounded in time."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("torch")

from minicluster.result.schema import validate_result  # noqa: E402

TIMEOUT_S = 5  # collective timeout for the failing runs: short, but far above a step here
# A run's own limit: under a load average of 20-30 (other jobs on the 2 cores) a healthy 10-step
# run took over 65 s to start, run and aggregate (issue 25); the pytest limits sit above it.
RUN_LIMIT_S = 150


def _config(tmp_path: Path, measured: int = 8) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "workload: {name: mlp, per_rank_batch: 32, input_dim: 128, hidden_dim: 256, num_layers: 2}\n"
        f"steps: {{warmup: 2, measured: {measured}}}\n"
        f"run: {{nproc: 2, threads_per_rank: 1, collective_timeout_s: {TIMEOUT_S}}}\n"
    )
    return path


def _run(
    python: str, env: dict[str, str], tmp_path: Path, *faults: str, measured: int = 8
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], float]:
    out = tmp_path / "out"
    args = ["run", "-c", str(_config(tmp_path, measured)), "--out", str(out)]
    for f in faults:
        args += ["--fault", f]
    start = time.monotonic()
    proc = subprocess.run(
        [python, "-m", "minicluster", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_LIMIT_S,
        cwd=tmp_path,
    )
    wall_s = time.monotonic() - start
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    _assert_no_rank_left(out)
    return proc, result, wall_s


def _assert_no_rank_left(out: Path) -> None:
    """Every rank process (pids from the rank headers) is gone once the command returned."""
    pids = []
    for path in sorted((out / "ranks").glob("rank_*.jsonl")):
        header = json.loads(path.read_text().splitlines()[0])
        pids.append(header["pid"])
    assert len(pids) == 2
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"rank processes outlived the run: {alive}"


def _steps(result: dict[str, Any], rank: int) -> list[int]:
    return result["steps"]["embedded"][str(rank)]["step"]


def _detected(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [d for d in result["faults"]["detected"] if d["kind"] == kind]


@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 30)
def test_straggler_is_attributed_by_compute(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc, result, _ = _run(python, cli_env, tmp_path, "straggler:rank=1,delay_ms=40")
    assert proc.returncode == 1, proc.stderr[-2000:]  # a straggler is a finding, as in watch
    assert result["status"] == "ok"
    assert result["faults"]["injected"][0]["kind"] == "straggler"
    (det,) = _detected(result, "straggler")
    assert det["rank"] == 1 and det["attributed_to"] == "compute"
    r0, r1 = result["ranks"]
    assert r1["compute_ms_median"] - r0["compute_ms_median"] > 30  # the 40 ms delay, less noise
    # The healthy rank's all-reduce waits for the straggler; the straggler itself does not wait.
    assert r0["wait_ms_median"] > 30
    assert r1["wait_ms_median"] < r0["wait_ms_median"] / 4
    inc = result["incident"]  # C4: slow in its own work, not in communication
    assert (inc["kind"], inc["ranks"], inc["decided_from"]) == ("non_comm_slow", [1], "stragglers")


@pytest.mark.slow
@pytest.mark.timeout(4 * RUN_LIMIT_S)
def test_slow_link_is_found_from_busbw_against_an_independent_expectation(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The expectation is measured apart from the run (an all_reduce benchmark at the
    gradient's size); the fault delays the slow rank's data in the transport. A clean run is
    judged and passes; the faulted run is named slow from its busbw alone."""
    job = tmp_path / "mlp.yaml"
    # A straggler is a finding (exit 1) like a slow link, and so is a culprit; neighbours on this
    # 2-core host can make one rank slower per step (see test_clean_run_reports_no_fault; once
    # rank 0 ran 28.5 ms against 7.4 ms of compute in all 12 steps, a real straggler): the floor
    # and the culprit threshold at 100% keep this test about the link.
    job.write_text(
        "steps: {warmup: 2, measured: 12}\nrun: {collective_timeout_s: 30}\n"
        "checks: {straggler_min_excess_ms: 10, culprit_cost_pct: 100}\n"
    )

    def cli(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        proc = subprocess.run(
            [python, "-m", "minicluster", *args, "--out", str(out)],
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=RUN_LIMIT_S + 30,
            cwd=tmp_path,
        )
        return proc, json.loads((out / "result.json").read_text())

    _, bench = cli("collectives", "--ops", "all_reduce", "--sizes", "6M", "--iters", "10")
    (row,) = bench["collectives"]["results"]
    expect = f"{row['busbw_gbps']:.4g}"

    proc, clean = cli("run", "-c", str(job), "--expect-busbw", expect)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert clean["link"]["judged"] and not clean["link"]["slow"], clean["link"]
    assert "incident" not in clean
    assert _detected(clean, "slow_link") == []

    # 120 ms, not 40: in a fresh-clone CI beside other jobs a 40 ms slow link was missed (exit 0),
    # the expectation having been measured under heavier load than the run; the independent
    # expectation is what this test is about, and a link slowed several times over is what it
    # must always name. Detection of a smaller delay under load is measured in
    # scripts/check_false_verdicts.py, not asserted here.
    proc, slow = cli(
        "run", "-c", str(job), "--expect-busbw", expect, "--fault", "slow_link:rank=1,delay_ms=120"
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # a slow link is a failed check
    assert slow["status"] == "ok" and slow["link"]["slow"] and slow["link"]["ratio"] < 0.5
    (det,) = _detected(slow, "slow_link")
    assert det["attributed_to"] == "communication" and "busbw" in det["evidence"]
    # The link's delay is not taken for compute: no rank's compute grows by anything near it.
    # (On this 2-core host one rank can share a core with the other's sender thread or the
    # launcher and be truly slower by a few ms in every step; the straggler rule may then name
    # it, rightly, by its own compute, far below the 40 ms the link adds.)
    for s in slow["stragglers"]:
        excess_ms = s["compute_ms_median"] - s["others_compute_ms_median"]
        assert excess_ms < 10.0, slow["stragglers"]
    # every rank felt the link: the transfer (the least any rank spent) grew by the delay
    assert slow["metrics"]["allreduce_transfer_ms"]["value"] > 30
    inc = slow["incident"]  # C4: the transfer itself is slow, whoever arrived last
    assert (inc["kind"], inc["ranks"], inc["decided_from"]) == ("comm_slow", [], "link")


@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 30)
def test_without_an_expectation_the_link_is_not_judged(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc, result, _ = _run(python, cli_env, tmp_path, "slow_link:rank=1,delay_ms=30")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["link"]["judged"] is False
    assert "not judged" in result["link"]["reason"]
    # and the summary says so beside the injected fault, with how to judge it
    assert "link not judged:" in proc.stdout and "--expect-busbw" in proc.stdout
    assert _detected(result, "slow_link") == []  # no guess without an expected figure


@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 30)
def test_crash_names_rank_and_step_and_keeps_records(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc, result, wall_s = _run(python, cli_env, tmp_path, "crash:rank=1,step=4")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert wall_s < TIMEOUT_S + 30
    assert result["status"] == "failed"
    assert 1 in result["failed_ranks"]
    (det,) = _detected(result, "crash")
    assert (det["rank"], det["step"]) == (1, 4)
    assert _detected(result, "hang") == []
    assert _steps(result, 0) == [0, 1, 2, 3]  # every step recorded before the crash is kept
    assert _steps(result, 1) == [0, 1, 2, 3]
    assert (result["incident"]["kind"], result["incident"]["ranks"]) == ("crash", [1])


@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 30)
def test_hang_fails_within_the_collective_timeout(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc, result, wall_s = _run(python, cli_env, tmp_path, "hang:rank=1,step=3")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert TIMEOUT_S <= wall_s < TIMEOUT_S + 30
    assert result["status"] == "failed"
    (det,) = _detected(result, "hang")
    assert (det["rank"], det["step"]) == (1, 3)
    assert _detected(result, "crash") == []
    assert _steps(result, 0) == [0, 1, 2]
    assert _steps(result, 1) == [0, 1, 2]
    r0 = result["ranks"][0]
    assert "Timed out" in r0["error"]
    inc = result["incident"]  # C4: rank 1 never entered the all-reduce rank 0 waited in
    assert (inc["kind"], inc["ranks"], inc["decided_from"]) == (
        "non_comm_hang",
        [1],
        "flight_recorder",
    )


@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 30)
def test_corrupt_grad_is_caught_by_the_replica_check(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc, result, _ = _run(python, cli_env, tmp_path, "corrupt_grad:rank=0,step=5")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert result["config"]["run"]["replica_check_every"] == 1  # turned on for the fault
    (det,) = _detected(result, "corrupt_grad")
    assert (det["rank"], det["step"]) == (0, 5)
    assert any("corrupt_grad at step 5" in e for e in result["errors"])
    ranks = [
        [r for r in map(json.loads, p.read_text().splitlines()) if r["type"] == "step"]
        for p in sorted((tmp_path / "out" / "ranks").glob("rank_*.jsonl"))
    ]
    same = [a["param_checksum"] == b["param_checksum"] for a, b in zip(*ranks, strict=True)]
    assert same == [True] * 5 + [False] * 5  # identical up to step 4, diverged from step 5


@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 30)
def test_clean_run_reports_no_fault(python: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    cfg = _config(tmp_path, measured=10)
    # Other jobs share this 2-core host: a rank descheduled for a few ms per step is then really
    # slower (seen: 3.1 vs 0.7 ms median compute). The floor keeps the test about the detectors,
    # not the neighbours; the fault tests inject 30-40 ms, far above it.
    cfg.write_text(
        cfg.read_text().replace(
            "threads_per_rank: 1,",
            "threads_per_rank: 1, replica_check_every: 1, straggler_min_excess_ms: 10, "
            "culprit_min_ms_per_step: 10,",
        )
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [python, "-m", "minicluster", "run", "-c", str(cfg), "--out", str(out)],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=RUN_LIMIT_S,
        cwd=tmp_path,
    )
    result = json.loads((out / "result.json").read_text())
    assert result["faults"] == {"injected": [], "detected": []}
    assert result["status"] == "ok" and result["errors"] == []
    assert "incident" not in result
    _assert_no_rank_left(out)
    # This test is about the fault detectors. A rank that the neighbours on this host really
    # slowed (measured in CI at load 7: the other rank waited 10 ms a step for it, 35% of the
    # run) is a culprit with its evidence and exits 1, as the findings policy says; nothing
    # else may make the run exit non-zero.
    if proc.returncode == 1:
        assert result["culprits"] or result["stragglers"], proc.stderr[-2000:]
        assert all(c["waited_for_ms"] >= 10 for c in result["culprits"]), result["culprits"]
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("meltdown:rank=1", "unknown fault kind 'meltdown'"),
        ("crash:rank=5,step=1", "rank 5 is outside the world"),
        ("crash:rank=1", "crash needs step"),
        ("straggler:rank=1,delay_ms=abc", "delay_ms must be an integer"),
        ("hang:rank=1,step=99", "step 99 is never reached"),
        ("crash:rank=1,step=2,delay_ms=3", "crash takes no key 'delay_ms'"),
    ],
)
def test_bad_fault_is_one_line_exit_2(
    python: str, cli_env: dict[str, str], tmp_path: Path, fault: str, message: str
) -> None:
    proc = subprocess.run(
        [
            python,
            "-m",
            "minicluster",
            "run",
            "-c",
            str(_config(tmp_path)),
            "--out",
            str(tmp_path / "o"),
            "--fault",
            fault,
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("minicluster: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "o" / "ranks").exists()  # caught before any rank started
