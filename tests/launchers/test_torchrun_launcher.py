"""The torchrun launchers' outcome mapping: a user's interrupt vs a rank's failure vs success.

torch.distributed.run.run is replaced, so no rank starts; the exceptions are torch's own.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

pytest.importorskip("torch")
import torch.distributed.run as torch_run  # noqa: E402
from torch.distributed.elastic.multiprocessing.api import SignalException  # noqa: E402
from torch.distributed.elastic.multiprocessing.errors import (  # noqa: E402
    ChildFailedError,
    ProcessFailure,
)

from minicluster.core.config import RunConfig, override  # noqa: E402
from minicluster.launchers import torchrun  # noqa: E402
from minicluster.launchers.base import LaunchOutcome, LaunchPlan, RecordsAt  # noqa: E402


def _failure(rank: int, exitcode: int, tmp_path: Path) -> ProcessFailure:
    return ProcessFailure(
        local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file=str(tmp_path / "none")
    )


def _plan(
    out: Path, nproc: int = 2, threads: int = 1, rdzv: torchrun.Rendezvous | None = None
) -> LaunchPlan:
    cfg = override(RunConfig(), nproc=nproc, threads_per_rank=threads)
    launcher = torchrun.LocalTorchrun() if rdzv is None else torchrun.NodeTorchrun(rdzv)
    return launcher.plan(cfg, out, "rid")


def _launch(tmp_path: Path, nproc: int = 2, threads: int = 1) -> LaunchOutcome:
    return torchrun.LocalTorchrun().run(_plan(tmp_path, nproc, threads))


def _node(tmp_path: Path, nproc: int, rdzv: torchrun.Rendezvous) -> LaunchOutcome:
    return torchrun.NodeTorchrun(rdzv).run(_plan(tmp_path, nproc, rdzv=rdzv))


def test_sigint_to_the_agent_is_an_interrupt_not_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(_args: object) -> None:
        raise SignalException("Process got signal: 2", signal.SIGINT)

    monkeypatch.setattr(torch_run, "run", run)
    outcome = _launch(tmp_path)
    assert outcome.interrupted and outcome.error is not None and "SIGINT" in outcome.error


def test_ranks_that_all_exit_interrupted_are_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(_args: object) -> None:
        failures = {0: _failure(0, 130, tmp_path), 1: _failure(1, -int(signal.SIGINT), tmp_path)}
        raise ChildFailedError("minicluster", failures)

    monkeypatch.setattr(torch_run, "run", run)
    outcome = _launch(tmp_path)
    assert outcome.interrupted
    assert outcome.exit_codes == {0: 130, 1: -2}  # kept for aggregate all the same


def test_a_crashed_rank_is_a_failed_run_with_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(_args: object) -> None:
        failures = {1: _failure(1, 3, tmp_path), 0: _failure(0, 130, tmp_path)}
        raise ChildFailedError("minicluster", failures)

    monkeypatch.setattr(torch_run, "run", run)
    outcome = _launch(tmp_path)
    assert outcome.error == "ranks failed: rank 0 exit code 130, rank 1 exit code 3"
    assert outcome.exit_codes == {0: 130, 1: 3} and not outcome.interrupted
    assert outcome.records == RecordsAt(tmp_path)  # the result comes from the files here


def test_launch_sets_threads_per_launch_and_restores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torchrun, "_USER_OMP_THREADS", None)
    monkeypatch.setattr(torch_run, "run", lambda _args: seen.append(os.environ["OMP_NUM_THREADS"]))
    assert _launch(tmp_path, 2, 3).ok
    assert _launch(tmp_path, 4, 1).ok
    assert seen == ["3", "1"]  # each launch its own count (a sweep launches several)
    assert "OMP_NUM_THREADS" not in os.environ
    assert "MINICLUSTER_LAUNCHER" not in os.environ


def _captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, dict[str, str | None]]]:
    seen: list[tuple[object, dict[str, str | None]]] = []

    def run(args: object) -> None:
        seen.append((args, {k: os.environ.get(k) for k in ("GLOO_SOCKET_IFNAME",)}))

    monkeypatch.setattr(torch_run, "run", run)
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    return seen


def test_a_loopback_job_binds_to_loopback_and_says_where_the_result_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _captured(monkeypatch)
    rdzv = torchrun.Rendezvous(2, 1, "127.0.0.1:29500", "job7")
    outcome = _node(tmp_path, 4, rdzv)
    assert outcome.ok and outcome.records == RecordsAt(tmp_path, on_rank0_node=True)
    (args, env) = seen[0]
    assert (args.nnodes, args.nproc_per_node) == ("2", "4")  # type: ignore[attr-defined]
    assert args.rdzv_backend == torchrun.LOOPBACK_BACKEND  # type: ignore[attr-defined]
    assert args.rdzv_endpoint == "127.0.0.1:29500"  # type: ignore[attr-defined]
    assert args.rdzv_id == "job7" and args.local_addr == "127.0.0.1"  # type: ignore[attr-defined]
    assert args.max_restarts == 0  # type: ignore[attr-defined]
    worker = args.training_script_args  # type: ignore[attr-defined]
    assert "--quiet" in worker and "--no-aggregate" not in worker  # rank 0 aggregates in-band
    assert env["GLOO_SOCKET_IFNAME"] == "lo"  # gloo on loopback too
    assert "GLOO_SOCKET_IFNAME" not in os.environ  # restored afterwards


def test_a_job_across_machines_uses_plain_c10d(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _captured(monkeypatch)
    rdzv = torchrun.Rendezvous(4, 0, "head-node:29500")
    (tmp_path / "result.json").write_text("{}")  # rank 0 wrote the result here
    outcome = _node(tmp_path, 8, rdzv)
    assert outcome.ok and outcome.records == RecordsAt(tmp_path, result=tmp_path / "result.json")
    (args, env) = seen[0]
    assert args.rdzv_backend == "c10d" and args.local_addr is None  # type: ignore[attr-defined]
    assert args.rdzv_id == torchrun.DEFAULT_RDZV_ID  # type: ignore[attr-defined]
    assert env["GLOO_SOCKET_IFNAME"] is None  # the user's network, the user's interface


def test_a_local_run_binds_to_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch)
    assert _launch(tmp_path).ok
    (args, env) = seen[0]
    assert args.rdzv_backend == torchrun.LOOPBACK_BACKEND  # type: ignore[attr-defined]
    assert args.rdzv_endpoint.startswith("127.0.0.1:")  # type: ignore[attr-defined]
    assert "--no-aggregate" in args.training_script_args  # type: ignore[attr-defined]
    assert env["GLOO_SOCKET_IFNAME"] == "lo"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:29500", ("127.0.0.1", 29500)), ("[::1]:80", ("::1", 80)), ("h:1", ("h", 1))],
)
def test_endpoints_parse(text: str, expected: tuple[str, int]) -> None:
    assert torchrun.parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["29500", "host:", "host:x", "host:70000", ":29500"])
def test_bad_endpoints_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError):
        torchrun.parse_endpoint(text)


def test_loopback_means_every_agent_on_this_machine() -> None:
    assert torchrun.is_loopback("127.0.0.1") and torchrun.is_loopback("::1")
    assert torchrun.is_loopback("localhost")
    assert not torchrun.is_loopback("10.0.0.1") and not torchrun.is_loopback("node-a")


def test_the_loopback_rendezvous_store_listens_on_loopback_only() -> None:
    """The first agent on the machine hosts the store on 127.0.0.1; a second one joins it."""
    from datetime import timedelta

    import psutil

    from minicluster.rank.dist import free_port

    port = free_port()
    host = torchrun.rendezvous_store("127.0.0.1", port, timedelta(seconds=10))
    guest = torchrun.rendezvous_store("127.0.0.1", port, timedelta(seconds=10))
    guest.set("k", "v")
    assert host.get("k") == b"v"
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {("127.0.0.1", port)}
