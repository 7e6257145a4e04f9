"""`minicluster run --nnodes 2`: two torchrun agents on 127.0.0.1 form a two-node job.

Each agent gets its own --out (no shared filesystem): rank 0's node holds the complete result
(gathered in-band), the other node its own ranks' files and node.json. Killing one agent
(SIGKILL) mid-run ends the survivor with exit 3 within collective_timeout + 30 s, the dead node
named and every step the survivor recorded kept.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("torch")

from minicluster.result.schema import validate_result  # noqa: E402

COLLECTIVE_TIMEOUT_S = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, measured: int) -> Path:
    path = tmp_path / "job.yaml"
    # One thread per rank: both agents share this machine's cores.
    path.write_text(
        "workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 128, num_layers: 2}\n"
        f"steps: {{warmup: 2, measured: {measured}}}\n"
        f"run: {{nproc: 1, threads_per_rank: 1, collective_timeout_s: {COLLECTIVE_TIMEOUT_S}}}\n"
    )
    return path


def _start_agents(
    python: str, env: dict[str, str], tmp_path: Path, measured: int
) -> list[tuple[subprocess.Popen[str], Path]]:
    config = _config(tmp_path, measured)
    endpoint = f"127.0.0.1:{_free_port()}"
    agents = []
    for node in (0, 1):
        out = tmp_path / f"node{node}"
        log = open(tmp_path / f"node{node}.log", "w")  # noqa: SIM115 (closed with the process)
        args = [python, "-m", "minicluster", "run", "-c", str(config), "--out", str(out)]
        args += ["--nnodes", "2", "--node-rank", str(node), "--rdzv-endpoint", endpoint]
        args += ["--rdzv-id", "e2e", "--nproc-per-node", "1"]
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        log.close()
        agents.append((proc, out))
    return agents


def _listening(procs: list[subprocess.Popen[str]]) -> set[str]:
    """Local addresses the agents and their ranks listen on right now."""
    addrs = set()
    for p in procs:
        try:
            tree = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in tree:
            try:
                conns = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            addrs |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return addrs


def _log(tmp_path: Path) -> str:
    return "\n".join((tmp_path / f"node{n}.log").read_text()[-2500:] for n in (0, 1))


def _kill_tree(procs: list[subprocess.Popen[str]]) -> None:
    """Clean-up after a failed assertion: the agents we started and their ranks, by PID."""
    for p in procs:
        try:
            for child in psutil.Process(p.pid).children(recursive=True):
                child.kill()
        except psutil.NoSuchProcess:
            pass
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_agents_form_a_two_node_job(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    agents = _start_agents(python, cli_env, tmp_path, measured=8)
    procs = [p for p, _ in agents]
    listening: set[str] = set()
    try:
        deadline = time.monotonic() + 200
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            listening |= _listening(procs)
            time.sleep(0.2)
        codes = [p.wait(timeout=5) for p in procs]
    finally:
        _kill_tree(procs)
    assert codes == [0, 0], _log(tmp_path)
    # Every agent was on this machine: the stores and gloo listened on loopback only.
    assert listening and all(ip in ("127.0.0.1", "::1") for ip in listening), listening

    outs = [out for _, out in agents]
    (holder,) = [o for o in outs if (o / "result.json").exists()]
    (other,) = [o for o in outs if o != holder]
    result = json.loads((holder / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok" and result["world_size"] == 2
    nodes = result["nodes"]
    assert [n["node_rank"] for n in nodes] == [0, 1]
    assert sorted(r for n in nodes for r in n["ranks"]) == [0, 1]
    assert all(len(n["ranks"]) == 1 and n["status"] == "ok" for n in nodes)
    assert all(n["measured_steps"] == 8 and 0 < n["performance_score"] <= 1 for n in nodes)
    assert {n["hostname"] for n in nodes} == {socket.gethostname()}
    by_rank = {r["rank"]: r for r in result["ranks"]}
    assert {by_rank[n["ranks"][0]]["node_rank"] for n in nodes} == {0, 1}

    # The other node kept its own rank's files and said where the result went.
    node = json.loads((other / "node.json").read_text())
    assert node["run_id"] == result["run_id"]
    assert node["result"]["path"] == str((holder / "result.json").resolve())
    (its_rank,) = node["ranks"]
    assert node["ranks_ok"] == [its_rank]
    assert (other / "ranks" / f"rank_{its_rank:05d}.jsonl").exists()
    assert not (other / "result.json").exists()

    # `aggregate` there says where the complete result is instead of calling rank 0 missing.
    proc = subprocess.run(
        [python, "-m", "minicluster", "aggregate", str(other)],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert str((holder / "result.json").resolve()) in proc.stderr
    assert not (other / "result.json").exists()

    # On rank 0's node, `aggregate` keeps the in-band result built from both ranks.
    proc = subprocess.run(
        [python, "-m", "minicluster", "aggregate", str(holder)],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert "kept" in proc.stderr, proc.stderr
    again = json.loads((holder / "result.json").read_text())
    assert [r["status"] for r in again["ranks"]] == ["ok", "ok"]


def _steps_in(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.startswith('{"type":"step"'))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kill", ["the node without rank 0", "rank 0's node"])
def test_killing_one_agent_fails_the_other_within_the_bound(
    python: str, cli_env: dict[str, str], tmp_path: Path, kill: str
) -> None:
    agents = _start_agents(python, cli_env, tmp_path, measured=3000)
    procs = [p for p, _ in agents]
    try:
        # Wait until both ranks are stepping, then find which agent holds rank 0.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            files = [out / "ranks" / f"rank_{r:05d}.jsonl" for _, out in agents for r in (0, 1)]
            counts = [_steps_in(f) for f in files if f.exists()]
            if len(counts) == 2 and min(counts) >= 20:
                break
            assert all(p.poll() is None for p in procs), _log(tmp_path)
            time.sleep(0.2)
        else:
            pytest.fail("the ranks never got going:\n" + _log(tmp_path))
        holds_rank0 = [(out / "ranks" / "rank_00000.jsonl").exists() for _, out in agents]
        victim = holds_rank0.index(kill == "rank 0's node")
        survivor = 1 - victim
        victim_pid = procs[victim].pid
        victim_ranks = [c.pid for c in psutil.Process(victim_pid).children(recursive=True)]
        killed_at = time.monotonic()
        os.kill(victim_pid, signal.SIGKILL)
        code = procs[survivor].wait(timeout=COLLECTIVE_TIMEOUT_S + 60)
        took_s = time.monotonic() - killed_at
        procs[victim].wait(timeout=10)
    finally:
        _kill_tree(procs)
    assert code == 3, _log(tmp_path)
    assert took_s <= COLLECTIVE_TIMEOUT_S + 30, f"survivor took {took_s:.1f} s"
    # The dead agent's ranks went with it (they die with their agent).
    time.sleep(1)
    assert not [p for p in victim_ranks if psutil.pid_exists(p) and _alive(p)]

    out = agents[survivor][1]
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "failed"
    (mine,) = [int(p.name[5:10]) for p in (out / "ranks").glob("rank_*.jsonl")]
    dead_rank = 1 - mine
    (lost,) = [d for d in result["faults"]["detected"] if d["kind"] == "node_lost"]
    assert lost["ranks"] == [dead_rank]
    dead_node = next(n for n in result["nodes"] if n["ranks"] == [dead_rank])
    assert dead_node["status"] == "missing" and lost["node_rank"] == dead_node["node_rank"]
    assert any(e.startswith(f"node lost: node {dead_node['node_rank']}") for e in result["errors"])
    # No fault is pinned on the surviving rank; every step it recorded is kept.
    assert not [
        d for d in result["faults"]["detected"] if d["rank"] == mine and d["kind"] != "straggler"
    ]
    recorded = _steps_in(out / "ranks" / f"rank_{mine:05d}.jsonl")
    entry: dict[str, Any] = next(r for r in result["ranks"] if r["rank"] == mine)
    assert entry["steps_recorded"] == recorded >= 20


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_minicluster_worker_under_an_outside_two_node_torchrun(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """`torchrun --nnodes 2 ... -m minicluster worker` (the cluster operator's own launcher):
    rank 0 writes and prints the complete result, the other node node.json."""
    config = _config(tmp_path, measured=6)
    endpoint = f"127.0.0.1:{_free_port()}"
    procs = []
    for node in (0, 1):
        args = [python, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
        args += ["--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=outside"]
        args += ["-m", "minicluster", "worker", "-c", str(config)]
        args += ["--out", str(tmp_path / f"node{node}")]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=cli_env))  # fmt: skip
    try:
        logs = [p.communicate(timeout=200)[0] for p in procs]
    finally:
        _kill_tree(procs)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(s[-2000:] for s in logs)
    holders = [n for n in (0, 1) if (tmp_path / f"node{n}" / "result.json").exists()]
    assert len(holders) == 1
    (other,) = [n for n in (0, 1) if n not in holders]
    result = json.loads((tmp_path / f"node{holders[0]}" / "result.json").read_text())
    assert result["status"] == "ok" and len(result["nodes"]) == 2
    assert "2 ranks on 2 node(s)" in logs[holders[0]]  # rank 0 printed the summary
    node = json.loads((tmp_path / f"node{other}" / "node.json").read_text())
    assert node["run_id"] == result["run_id"] and node["ranks_ok"] == node["ranks"]
