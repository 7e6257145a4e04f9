"""Launch plans: each launcher's `plan` says what it would start, and `--dry-run` prints it while
starting nothing and claiming nothing (torchrun here, a node of a job across nodes, Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minicluster.cli import main
from minicluster.core.config import RunConfig, override
from minicluster.launchers import torchrun
from minicluster.launchers.base import LaunchPlan
from minicluster.launchers.ray_launch import RayLauncher, RayOptions

REPO = Path(__file__).resolve().parents[2]


def _plan_of(launcher: object, nproc: int = 2, threads: int = 0) -> LaunchPlan:
    cfg = override(RunConfig(), nproc=nproc, threads_per_rank=threads or None)
    return launcher.plan(cfg, Path("/runs/r1"), "r1")  # type: ignore[attr-defined]


def test_a_local_plan_is_the_torchrun_command_its_run_starts() -> None:
    plan = _plan_of(torchrun.LocalTorchrun(), nproc=3, threads=2)
    assert (plan.launcher, plan.world_size, plan.nnodes, plan.nproc_per_node) == (
        "torchrun",
        3,
        1,
        3,
    )
    assert plan.node_rank is None and plan.records == "files"
    assert plan.config_path == Path("/runs/r1/config.json") and plan.threads_per_rank == 2
    args = torchrun_args(plan)
    assert args.nnodes == "1" and args.nproc_per_node == "3" and args.max_restarts == 0
    assert args.rdzv_backend == torchrun.LOOPBACK_BACKEND
    assert args.rdzv_endpoint.startswith("127.0.0.1:") and args.local_addr == "127.0.0.1"
    worker = args.training_script_args
    assert worker[:2] == ["worker", "-c"] and "--no-aggregate" in worker  # the launcher reads files
    assert plan.rendezvous.startswith(args.rdzv_endpoint)
    assert [(r.rank, r.local_rank) for r in plan.ranks] == [(0, 0), (1, 1), (2, 2)]
    assert plan.ranks[2].env["RANK"] == "2" and plan.ranks[2].env["WORLD_SIZE"] == "3"
    assert plan.rank_env["MINICLUSTER_LAUNCHER"] == "torchrun"
    assert plan.rank_env["MINICLUSTER_PROGRESS"] == "0"
    assert plan.rank_entry.endswith("--run-id r1 --no-aggregate")
    json.dumps(plan.to_dict())  # JSON data throughout


def test_a_node_plan_meets_at_the_endpoint_and_gathers_in_band() -> None:
    rdzv = torchrun.Rendezvous(4, 2, "head:29500", "job9")
    plan = _plan_of(torchrun.NodeTorchrun(rdzv), nproc=8)
    assert (plan.world_size, plan.nnodes, plan.nproc_per_node, plan.node_rank) == (32, 4, 8, 2)
    assert plan.records == "in-band" and "head:29500" in plan.rendezvous
    args = torchrun_args(plan)
    assert args.rdzv_backend == "c10d" and args.rdzv_id == "job9" and args.local_addr is None
    assert "--quiet" in args.training_script_args  # rank 0 aggregates in-band
    assert all(r.rank is None for r in plan.ranks)  # c10d hands out the global ranks
    assert "GLOO_SOCKET_IFNAME" not in plan.rank_env or "GLOO_SOCKET_IFNAME" in os.environ


def test_a_ray_plan_sizes_the_workers_and_threads() -> None:
    plan = _plan_of(RayLauncher(RayOptions(cpus_per_worker=2.5, placement="spread")), nproc=3)
    assert (plan.launcher, plan.world_size, plan.nnodes, plan.records) == (
        "ray",
        3,
        None,
        "in-band",
    )
    assert plan.threads_per_rank == 2 and plan.config.run.threads_per_rank == 2
    assert plan.rank_env["OMP_NUM_THREADS"] == "2"
    assert "8 CPUs" in plan.details["ray"]  # ceil(3 x 2.5): a local instance sized to the job
    assert plan.details["placement"].startswith("spread")
    assert plan.command[1:3] == ("-m", "minicluster.launchers.ray")


def torchrun_args(plan: LaunchPlan) -> object:
    """The plan's torchrun command as torchrun itself parses it."""
    pytest.importorskip("torch")
    from torch.distributed.run import parse_args

    assert plan.command[0] == "torchrun"
    return parse_args(list(plan.command[1:]))


# In a fresh interpreter: ray cannot be imported, and nothing may start a process.
_NOTHING_STARTS = """
import importlib.abc, os, subprocess, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'ray':
            raise ImportError('blocked: a dry run must not import ray')
sys.meta_path.insert(0, Block())
import importlib.util
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: object() if name == 'ray' else real_find_spec(name, *a)
def refuse(*a, **k):
    raise AssertionError('a dry run started a process')
subprocess.Popen = refuse
os.fork = refuse
from minicluster.cli import main
code = main(sys.argv[1:])
assert 'torch.distributed.run' not in sys.modules, 'torchrun was imported'
sys.exit(code)
"""


def _dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _NOTHING_STARTS, *args, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["run", "--nproc", "3"],
            ["launcher:      torchrun", "world size:    3 (3 ranks on this machine)", "127.0.0.1:"],
        ),
        (
            ["run", "--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "10.1.2.3:29400",
             "--rdzv-id", "j7", "--nproc-per-node", "4"],
            ["launcher:      torchrun-node", "world size:    8 (2 nodes x 4 ranks; this node "
             "started as node 1)", "10.1.2.3:29400 (c10d, rendezvous id j7)",
             "the job runs under rank 0's"],
        ),
        (
            ["run", "--launcher", "ray", "--nproc", "2", "--ray-address", "10.0.0.9:6379"],
            ["launcher:      ray", "the Ray cluster at 10.0.0.9:6379", "placement:     pack",
             "records:       gathered in-band"],
        ),
        (["validate"], ["dry run: validate", "launcher:      torchrun"]),
        (["collectives", "--ops", "all_reduce"], ["dry run: collectives: all_reduce"]),
        (["collectives", "--pattern", "pairwise"], ["pairwise link test of 2 ranks"]),
        (["sweep", "--world-sizes", "1,2"], ["world size 1:", "world size 2:", "n2-r1"]),
        (["sweep", "--world-sizes", "1,2", "--project", "8"],
         ["then, for --project: an all_reduce size sweep at world size 2"]),
    ],
)  # fmt: skip
def test_dry_run_prints_the_plan_and_starts_and_claims_nothing(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    out = tmp_path / "out"
    proc = _dry_run(tmp_path, *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for text in expected:
        assert text in proc.stdout, proc.stdout
    assert f"output:        {out}" in proc.stdout
    assert f"config:        {out}" in proc.stdout
    assert "each rank:" in proc.stdout and "rendezvous:" in proc.stdout
    assert not out.exists()  # nothing claimed, not even the directory
    assert not (tmp_path / "runs").exists()


def test_dry_run_checks_the_flags_as_a_run_would(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--dry-run", "--nproc", "0"]) == 2
    assert "--nproc must be >= 1" in capsys.readouterr().err
    assert main(["run", "--dry-run", "--fault", "crash:rank=5,step=1"]) == 2
    assert "rank 5 is outside the world" in capsys.readouterr().err
    assert main(["sweep", "--dry-run", "--from", "a", "b"]) == 2  # it would write, not start
    assert "--dry-run does not apply to --from" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "marker", "message"),
    [
        (["run"], "ranks", "already holds ranks of an earlier run"),
        (["collectives", "--ops", "all_reduce"], "result.json", "already holds result.json"),
        (["sweep", "--world-sizes", "1,2"], "ranks", "already holds ranks of an earlier run"),
        (["run"], ".claim", "is taken by run r-1"),
    ],
)
def test_dry_run_refuses_an_output_directory_the_run_would_refuse(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    marker: str,
    message: str,
) -> None:
    """The trial's `run --dry-run --out DIR` on an earlier run's DIR said 0 where the run says 2."""
    out = tmp_path / "earlier"
    out.mkdir()
    if marker == "ranks":
        (out / "ranks").mkdir()
    else:
        (out / marker).write_text('{"run_id": "r-1"}')
    before = sorted(p.name for p in out.iterdir())
    assert main([*args, "--dry-run", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err.replace("ranks/", "ranks")
    assert sorted(p.name for p in out.iterdir()) == before  # nothing touched
