"""`launch/slurm.sbatch` on a real one-node Slurm cluster started in a temp directory.

Debian's slurm-wlm and munge (`.ci/run` installs them) run a complete cluster as root with all
state under the test's temp directory and no system service touched: munged with its own key
and socket, slurmctld and slurmd in the foreground, stopped by the PIDs started here. Two tasks
on the one node are two torchrun agents: a two-node job. Skips, saying why, where Slurm is not
installed or the test does not run as root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minicluster.result.schema import validate_result

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "launch" / "slurm.sbatch"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "sacct")


def _missing() -> str | None:
    """Why a Slurm cluster cannot be started here, or None."""
    absent = [t for t in (*DAEMONS, *CLIENTS[:4]) if shutil.which(t) is None]
    if absent:
        return f"Slurm is not installed ({', '.join(absent)} not found; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a one-node Slurm cluster needs root here (SlurmUser=root)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SlurmCluster:
    """munged + slurmctld + slurmd for one node, all state under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        d = self.root
        (d / "state").mkdir()
        (d / "spool").mkdir()
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = d / "munge.socket"
        self._spawn(
            "munged", "--foreground", f"--key-file={key}", f"--socket={sock}",
            f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
            f"--seed-file={d / 'munged.seed'}", "--force",
        )  # fmt: skip
        self._wait(lambda: sock.exists(), 10, "munged never opened its socket")
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=minicluster-test",
                    f"SlurmctldHost={self.host}",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={sock}",
                    "CredType=cred/munge",
                    f"StateSaveLocation={d / 'state'}",
                    f"SlurmdSpoolDir={d / 'spool'}",
                    f"SlurmctldPidFile={d / 'slurmctld.pid'}",
                    f"SlurmdPidFile={d / 'slurmd.pid'}",
                    f"SlurmctldLogFile={d / 'slurmctld.log'}",
                    f"SlurmdLogFile={d / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "JobCompType=jobcomp/none",
                    "KillWait=30",
                    f"NodeName={self.host} CPUs={os.cpu_count() or 1} RealMemory=4000 State=UNKNOWN",
                    f"PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        self._spawn("slurmctld", "-D", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-f", str(self.conf))
        self._wait(lambda: self.sinfo() == "idle", 60, "the node never became idle")

    def _spawn(self, *args: str) -> None:
        log = open(self.root / f"{args[0]}.stdout", "wb")  # noqa: SIM115 (closed with the process)
        self.procs.append(
            subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        )
        log.close()

    def _wait(self, ready: Any, timeout_s: float, why: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.3)
        raise RuntimeError(f"{why}; logs:\n{self.logs()}")

    def sinfo(self) -> str:
        out = self.run("sinfo", "-h", "-o", "%T", check=False)
        return out.stdout.strip()

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, capture_output=True, text=True, env=self.env, timeout=30, check=check
        )

    def logs(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text()[-2000:]}")
        return "\n".join(parts)

    def job_state(self, job: str) -> str:
        out = self.run("scontrol", "show", "job", job, check=False).stdout
        for field in out.split():
            if field.startswith("JobState="):
                return field.split("=", 1)[1]
        return "GONE"

    def stop(self) -> None:
        """Stop what start() started, by PID, in reverse order."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[SlurmCluster]:
    why = _missing()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path / "slurm")
    cluster.root.mkdir()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _job_config(tmp_path: Path, measured: int) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 128, num_layers: 2}\n"
        f"steps: {{warmup: 2, measured: {measured}}}\n"
        "run: {nproc: 1, threads_per_rank: 1, collective_timeout_s: 20}\n"
    )
    return path


def _submit(slurm: SlurmCluster, tmp_path: Path, python: str, cli_env: dict[str, str],
            measured: int) -> str:  # fmt: skip
    env = {
        **cli_env,
        "SLURM_CONF": str(slurm.conf),
        "MINICLUSTER": f"{python} -m minicluster",
        "MASTER_PORT": str(_free_port()),
    }
    proc = subprocess.run(
        [
            "sbatch", "--parsable", "--nodes=1", "--ntasks=2", "--ntasks-per-node=2",
            "--cpus-per-task=1", "--time=5", f"--chdir={tmp_path}",
            f"--output={tmp_path / 'slurm-%j.out'}", str(SBATCH),
            "-c", str(_job_config(tmp_path, measured)),
        ],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + slurm.logs()
    return proc.stdout.strip().split(";")[0]


def _wait_done(slurm: SlurmCluster, job: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    state = "PENDING"
    while time.monotonic() < deadline:
        state = slurm.job_state(job)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {job} still {state} after {timeout_s} s\n{slurm.logs()}")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sbatch_two_tasks_make_a_two_node_job(
    slurm: SlurmCluster, tmp_path: Path, python: str, cli_env: dict[str, str]
) -> None:
    job = _submit(slurm, tmp_path, python, cli_env, measured=8)
    state = _wait_done(slurm, job, 240)
    log = (tmp_path / f"slurm-{job}.out").read_text()
    assert state == "COMPLETED", log[-3000:]
    out = tmp_path / "runs" / f"slurm-{job}"
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "ok" and result["world_size"] == 2
    nodes = result["nodes"]
    assert [(n["node_rank"], len(n["ranks"]), n["status"]) for n in nodes] == [
        (0, 1, "ok"),
        (1, 1, "ok"),
    ]
    assert f"slurm.sbatch: job {job}: exit 0" in log
    # Both agents wrote into one directory (one machine: as on a shared filesystem), so no
    # node.json: everything is beside the result.
    assert sorted(p.name for p in (out / "ranks").glob("*.jsonl")) == [
        "rank_00000.jsonl",
        "rank_00001.jsonl",
    ]
    assert not (out / "node.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_from_slurm_is_interrupted_not_failed(
    slurm: SlurmCluster, tmp_path: Path, python: str, cli_env: dict[str, str]
) -> None:
    """What the recipe's `--signal=TERM@60` does before the time limit (SIGTERM to every task of
    the job's steps, not the batch script): sent by scancel here."""
    job = _submit(slurm, tmp_path, python, cli_env, measured=100_000)
    out = tmp_path / "runs" / f"slurm-{job}"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        files = list((out / "ranks").glob("*.jsonl")) if (out / "ranks").is_dir() else []
        steps = [
            sum(1 for ln in f.read_text().splitlines() if '"type":"step"' in ln) for f in files
        ]
        if len(steps) == 2 and min(steps) >= 20:
            break
        assert slurm.job_state(job) in ("PENDING", "RUNNING", "CONFIGURING"), slurm.logs()
        time.sleep(0.5)
    else:
        pytest.fail("the job's ranks never got going\n" + slurm.logs())
    slurm.run("scancel", "--signal=TERM", job)
    _wait_done(slurm, job, 120)
    log = (tmp_path / f"slurm-{job}.out").read_text()
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["status"] == "incomplete", log[-3000:]
    assert not result["failed_ranks"]
    assert {r["status"] for r in result["ranks"]} <= {"interrupted", "ok"}
    assert result["interrupted"] is True
    assert any(e.startswith("interrupted before the planned steps ran") for e in result["errors"])
    assert not [
        d for d in result["faults"]["detected"] if d["kind"] in ("crash", "hang", "node_lost")
    ]
    kept = sum(r["steps_recorded"] for r in result["ranks"])
    assert kept >= 40
    assert f"slurm.sbatch: job {job}: exit 130" in log, log[-3000:]


HEALTHCHECK = REPO / "launch" / "slurm_healthcheck.sh"


def _node_state(slurm: SlurmCluster) -> tuple[str, str]:
    """The node's State and Reason as slurmctld holds them."""
    out = slurm.run("scontrol", "show", "node", slurm.host).stdout
    state = next((f.split("=", 1)[1] for f in out.split() if f.startswith("State=")), "")
    reason = out.split("Reason=", 1)[1].split("\n")[0].strip() if "Reason=" in out else ""
    return state, reason


def _healthcheck(
    slurm: SlurmCluster, tmp_path: Path, python: str, cli_env: dict[str, str], **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **cli_env,
        "SLURM_CONF": str(slurm.conf),
        "MINICLUSTER": f"{python} -m minicluster",
        "NODE": slurm.host,
        "OUT": str(tmp_path / "healthcheck"),
        "TIMEOUT_S": "200",
        **extra,
    }
    return subprocess.run(
        ["bash", str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=280
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_healthcheck_drains_a_failing_node_with_the_verdict(
    slurm: SlurmCluster, tmp_path: Path, python: str, cli_env: dict[str, str]
) -> None:
    """A slow link on the node (the slow_link fault on rank 1): isolate names rank 1, the
    script drains the node with that verdict as the reason, exit 1."""
    proc = _healthcheck(
        slurm, tmp_path, python, cli_env,
        ISOLATE_ARGS="--fault slow_link:rank=1,delay_ms=100", SKIP_RUN="1",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr + slurm.logs()
    state, reason = _node_state(slurm)
    assert "DRAIN" in state, (state, reason)
    assert reason.startswith("minicluster: isolate: isolate: BAD: rank 1"), reason


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_healthcheck_leaves_a_clean_node_idle(
    slurm: SlurmCluster, tmp_path: Path, python: str, cli_env: dict[str, str]
) -> None:
    proc = _healthcheck(slurm, tmp_path, python, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "healthy" in proc.stderr
    assert _node_state(slurm)[0] == "IDLE"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_healthcheck_that_cannot_run_never_drains(
    slurm: SlurmCluster, tmp_path: Path, python: str, cli_env: dict[str, str]
) -> None:
    proc = _healthcheck(slurm, tmp_path, python, cli_env, MINICLUSTER="/nonexistent/minicluster")
    assert proc.returncode == 2, proc.stderr
    assert "could not run" in proc.stderr and "not drained" in proc.stderr
    assert _node_state(slurm)[0] == "IDLE"
