"""Node checks against real slowdowns they did not make: a fleet of node checks on this machine
names the one run beside a CPU hog (a busy loop pinned to core 0, started and stopped by PID);
a burn-in that gets one, then two hogs part-way through is a drift finding."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("torch")

HOG = "while True: pass"


@contextmanager
def hog(core: int) -> Iterator[subprocess.Popen[bytes]]:
    """A busy loop pinned to `core`, stopped by its own PID."""
    proc = subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", HOG])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _cmd(python: str, *args: str) -> list[str]:
    return [python, "-m", "minicluster", *args]


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_the_node_checked_beside_a_cpu_hog_is_named(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Six node checks one after another (GEMM and host memory on both cores); the fourth runs
    beside a busy loop on core 0, so one of its two threads gets half a core. The fleet names it
    on the GEMM rate and nobody else. The MAD floor is 0.15 here, above the 10-run spread of the
    GEMM rate on this shared VM (MAD of ln 0.05-0.12, BENCHMARKS.md "Node checks"), so other
    jobs' load on this VM cannot name a clean node."""
    dirs = []
    for i in range(1, 7):
        out = tmp_path / f"node{i}"
        args = _cmd(python, "node-check", "--checks", "gemm,host_memory", "--out", str(out))
        if i == 4:
            with hog(0):
                proc = subprocess.run(
                    args, env=cli_env, capture_output=True, text=True, timeout=120
                )
        else:
            proc = subprocess.run(args, env=cli_env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        dirs.append(str(out))
    fleet = subprocess.run(
        _cmd(python, "fleet", *dirs, "--mad-floor", "0.15", "--json", "-"),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(fleet.stdout)
    gemm = next(m for m in report["metrics"] if m["name"] == "gemm_tflops")
    rates = {k: round(v["value"], 4) for k, v in gemm["per_node"].items()}
    assert fleet.returncode == 1, (report["verdict"], rates)
    assert report["outliers"] == ["node4"], (report["verdict"], rates)
    assert "gemm_tflops" in next(r for r in report["nodes"] if r["label"] == "node4")["outlier_on"]


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_a_burn_in_that_slows_down_is_a_drift_finding(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """12 one-second intervals of GEMM on both cores; a busy loop joins core 0 after interval 4
    and another core 1 after interval 8 (started when the progress line says so): the rate steps
    down twice, and the drift test (Theil-Sen, Mann-Kendall) calls it degraded."""
    out = tmp_path / "burn"
    args = _cmd(
        python, "node-check", "--checks", "burn_in", "--duration", "12", "--intervals", "12",
        "--out", str(out),
    )  # fmt: skip
    proc = subprocess.Popen(
        args, env=cli_env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            for step, core in (("burn-in 4/12", 0), ("burn-in 8/12", 1)):
                if step in line:
                    hogs.append(
                        subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", HOG])
                    )
        proc.wait(timeout=180)
    finally:
        for h in hogs:
            h.kill()
            h.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
    r = json.loads((out / "result.json").read_text())
    burn = next(c for c in r["checks"] if c["family"] == "burn_in")
    rates = [round(iv["devices"]["cpu"]["tflops"], 4) for iv in r["burn_in"]["intervals"]]
    assert len(hogs) == 2
    assert burn["verdict"] == "degraded", (burn["reason"], rates)
    assert burn["reason"].startswith("GEMM rate drifts under load: fell "), burn["reason"]
    assert proc.returncode == 1
