"""`minicluster run --launcher ray` on real Ray: a local instance, two simulated nodes
(`ray.cluster_utils.Cluster`), and a worker killed mid-run.

Each test shuts down what it started (the CLI shuts its local instance down; the simulated
cluster is shut down here). Never `ray stop`: it kills every Ray process on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install 'minicluster[ray]'")

from minicluster.core import rank_format, rundir  # noqa: E402
from minicluster.result.schema import validate_result  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {**cli_env, "RAY_AUTH_MODE": "disabled"}


def _run(env: dict[str, str], *args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minicluster", "run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _result(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(rundir.result_path(out).read_text())
    validate_result(result)
    return result


def _shape(value: Any) -> Any:
    """Keys all the way down (lists by their first item); values by type."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def _align(a: Any, b: Any) -> tuple[Any, Any]:
    """Two shapes with a list empty on one side emptied on both: how many items a list holds
    (a bimodal step time found in one run, a straggler in the other) is data, not schema."""
    if isinstance(a, dict) and isinstance(b, dict):
        pairs = {k: _align(a[k], b[k]) for k in a.keys() & b.keys()}
        return (
            {k: pairs[k][0] if k in pairs else v for k, v in a.items()},
            {k: pairs[k][1] if k in pairs else v for k, v in b.items()},
        )
    if isinstance(a, list) and isinstance(b, list):
        if not a or not b:
            return [], []
        x, y = _align(a[0], b[0])
        return [x], [y]
    return a, b


@pytest.mark.timeout(300)
def test_local_ray_gives_the_torchrun_result_schema_and_step_counts(
    ray_env: dict[str, str], tiny_config: Path, tmp_path: Path
) -> None:
    torchrun_out, ray_out = tmp_path / "torchrun", tmp_path / "ray"
    proc = _run(ray_env, "-c", str(tiny_config), "--out", str(torchrun_out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _run(ray_env, "-c", str(tiny_config), "--out", str(ray_out), "--launcher", "ray")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "result:" in proc.stdout and "Started a local Ray instance" not in proc.stderr
    assert "Ray" not in proc.stdout.split("result:")[0].replace("ray", "")  # no Ray lines
    assert rundir.ray_log_path(ray_out).is_file()  # Ray's own output went here

    a, b = _result(torchrun_out), _result(ray_out)
    assert b["status"] == "ok" and b["launcher"] == "ray" and a["launcher"] == "torchrun"
    assert b["ray"]["version"] and a["ray"] is None
    # Same schema: the same keys at every level, in ranks[], nodes[], steps and metrics (`ray`
    # is null under torchrun).
    left, right = _align(_shape({**b, "ray": None}), _shape(a))
    assert left == right
    assert [r["steps_recorded"] for r in b["ranks"]] == [r["steps_recorded"] for r in a["ranks"]]
    assert [r["measured_steps"] for r in b["ranks"]] == [r["measured_steps"] for r in a["ranks"]]
    assert len(b["steps"]["series"]["step_time_ms"]) == len(a["steps"]["series"]["step_time_ms"])
    node_ids = {r["ray_node_id"] for r in b["ranks"]}
    assert len(node_ids) == 1 and None not in node_ids
    assert [n["ray_node_id"] for n in b["nodes"]] == list(node_ids)
    header = json.loads(rundir.rank_jsonl(ray_out, 1).read_text().splitlines()[0])
    assert header["format"] == rank_format.FORMAT_VERSION and header["launcher"] == "ray"
    assert header["ray"]["node_id"] in node_ids and header["local_world_size"] == 2


@pytest.fixture
def two_node_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Two simulated Ray nodes of one CPU each on this machine, shut down afterwards."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


@pytest.mark.timeout(300)
def test_two_simulated_nodes_spread_the_ranks_and_the_result_says_so(
    two_node_cluster: Any, ray_env: dict[str, str], tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = _run(
        ray_env,
        *("-c", str(tiny_config), "--out", str(out), "--launcher", "ray"),
        *("--ray-address", two_node_cluster.address, "--placement", "spread"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _result(out)
    assert result["status"] == "ok" and result["launcher"] == "ray"
    nodes = result["nodes"]
    assert [n["node_rank"] for n in nodes] == [0, 1]
    assert [n["ranks"] for n in nodes] == [[0], [1]]
    assert len({n["ray_node_id"] for n in nodes}) == 2 and None not in {
        n["ray_node_id"] for n in nodes
    }
    by_rank = {r["rank"]: r for r in result["ranks"]}
    assert [by_rank[r]["node_rank"] for r in (0, 1)] == [0, 1]
    assert by_rank[0]["ray_node_id"] != by_rank[1]["ray_node_id"]
    assert all(n["measured_steps"] == 8 for n in nodes)
    # The cluster is still there for the next job: the CLI joined it and left it running.
    assert two_node_cluster.head_node.remaining_processes_alive()


@pytest.mark.timeout(300)
def test_a_killed_worker_is_named_and_the_run_exits_3_keeping_every_step(
    ray_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "long.yaml"
    config.write_text(
        "workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 128, "
        "num_layers: 2}\nsteps: {warmup: 2, measured: 5000}\n"
        "run: {nproc: 2, collective_timeout_s: 60}\n"
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "minicluster", "run", "-c", str(config), "--out", str(out)]
        + ["--launcher", "ray"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ray_env,
    )
    try:
        victim = rundir.rank_jsonl(out, 1)
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and proc.poll() is None:
            lines = victim.read_text().splitlines() if victim.exists() else []
            if sum('"type":"step"' in line for line in lines) >= 20:
                break
            time.sleep(0.2)
        else:
            pytest.fail("rank 1 never recorded 20 steps")
        os.kill(json.loads(lines[0])["pid"], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, stderr[-3000:]
    result = _result(out)
    assert result["status"] == "failed"
    assert result["failed_ranks"] == [1] and result["aborted_ranks"] == [0]  # rank 0 is healthy
    assert result["errors"][0].startswith("rank 1: died during step")
    crash = [d for d in result["faults"]["detected"] if d["rank"] == 1]
    assert crash and crash[0]["kind"] == "crash" and crash[0]["hostname"]
    assert crash[0]["node_rank"] == 0
    recorded = [
        sum('"type":"step"' in line for line in rundir.rank_jsonl(out, r).read_text().splitlines())
        for r in (0, 1)
    ]
    assert [r["steps_recorded"] for r in result["ranks"]] == recorded
    assert min(recorded) >= 20
    assert "FAILED  (run failed)" in stdout  # the verdict, then how far the run got


@pytest.mark.timeout(300)
def test_a_build_that_raises_under_ray_is_one_line_with_no_torch_lines(
    ray_env: dict[str, str], tmp_path: Path
) -> None:
    """The torchrun launcher holds back torch's E-lines about the failed workers (a handler
    filter, `HeldFailureLines`) under a bad-input error. Under Ray nothing of torch's or Ray's
    reaches the terminal at all: the driver's output goes to DIR/ray.log and the workers' to
    Ray's own logs (`log_to_driver=False`), so the one clear line stands alone (a guard: this
    held before the torchrun filter existed; measured 19 s here, 2 ranks)."""
    (tmp_path / "broken.py").write_text(
        "def build(ctx):\n    raise RuntimeError('weights file missing')\n"
    )
    cfg = tmp_path / "custom.yaml"
    cfg.write_text(
        'workload: {name: custom, factory: "broken.py:build"}\n'
        "steps: {warmup: 1, measured: 5}\nrun: {nproc: 2, collective_timeout_s: 60}\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "run", "-c", str(cfg), "--launcher", "ray"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        env=ray_env,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    said = proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("minicluster: error")]
    assert len(errors) == 1 and "build(ctx) raised RuntimeError: weights file missing" in errors[0]
    assert "Traceback" not in said and "failed (exitcode" not in said
    assert not [line for line in said.splitlines() if line[:1] == "E" and line[1:5].isdigit()]
    assert _result(out)["status"] == "failed"
