"""Start ranks with torch.distributed.run (torchrun): N local ranks, or this node's share of a job
across nodes, c10d rendezvous either way.

A local run, and a job whose rendezvous endpoint is a loopback address (every agent on this
machine), listen on 127.0.0.1 only: the rendezvous store, the store the workers bootstrap from
and gloo's sockets. torchrun's own c10d store listens on every interface, so those runs use a
rendezvous backend registered here that binds the stores to loopback (it replaces one private
method of torch's rendezvous handler, behind a guard). A job across machines uses torchrun's c10d
as it is: the stores listen where the other nodes can reach them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from minicluster.core.config import default_threads

log = logging.getLogger(__name__)

_CHILD_ENV = (
    "OMP_NUM_THREADS",
    "MINICLUSTER_LAUNCHER",
    "MINICLUSTER_PROGRESS",
    "GLOO_SOCKET_IFNAME",
)
# A rank's exit code after Ctrl-C: 130 from minicluster's own handler, -2 killed by SIGINT.
_INTERRUPTED_EXIT_CODES = (130, -signal.SIGINT)
_USER_OMP_THREADS = os.environ.get("OMP_NUM_THREADS")  # as the user started us, before any launch
LOOPBACK_BACKEND = "minicluster-c10d-loopback"
DEFAULT_RDZV_ID = "minicluster"


@dataclass(frozen=True)
class Rendezvous:
    """How this node's agent meets the others: torchrun's `--nnodes`, `--node-rank`,
    `--rdzv-endpoint HOST:PORT` and `--rdzv-id` (c10d rendezvous).

    c10d hands out node ranks (torchrun's group rank) in its own order and ignores a requested
    one (torchrun says so), so `node_rank` is not passed on: it is what this node was started
    with, for the logs. The ranks record the group rank they got.
    """

    nnodes: int
    node_rank: int
    endpoint: str
    rdzv_id: str = DEFAULT_RDZV_ID

    @property
    def host(self) -> str:
        return self.endpoint.rsplit(":", 1)[0].strip("[]")

    @property
    def loopback(self) -> bool:
        """Whether the endpoint is a loopback address: every agent runs on this machine."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """`127.x.x.x`, `::1` or `localhost` (a name that could resolve elsewhere is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) -> (host, port); ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"port {port!r} is not a number (HOST:PORT)") from None
    if not 1 <= number <= 65535:
        raise ValueError(f"port {number} is outside 1..65535")
    return host, number


def launch_local(
    config_path: Path, nproc: int, out_dir: Path, run_id: str, threads_per_rank: int
) -> str | None:
    """Run `minicluster worker` on `nproc` local ranks; None on success, else why it failed.

    Raises KeyboardInterrupt when the user stopped the run (SIGINT or SIGTERM).
    """
    from minicluster.rank.dist import free_port

    rdzv = [
        "--nnodes=1",
        f"--rdzv-backend={LOOPBACK_BACKEND}",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        "--local-addr=127.0.0.1",
    ]
    worker = ["--run-id", run_id, "--no-aggregate"]
    return _launch(config_path, nproc, out_dir, rdzv, worker, threads_per_rank, loopback=True)


def launch_node(
    config_path: Path,
    nproc_per_node: int,
    out_dir: Path,
    run_id: str,
    threads_per_rank: int,
    rendezvous: Rendezvous,
) -> str | None:
    """This node's share of a job across `rendezvous.nnodes` nodes; None on success.

    Rank 0 (on whichever node c10d gives group rank 0) gathers every rank's records in-band and
    writes the complete result into its `out_dir`; a node that does not see rank 0's files
    writes `node.json` there instead (see `minicluster worker`). Raises KeyboardInterrupt when
    the agent was stopped (SIGINT, or SIGTERM from a scheduler's time limit).
    """
    loopback = rendezvous.loopback
    rdzv = [
        f"--nnodes={rendezvous.nnodes}",
        f"--rdzv-backend={LOOPBACK_BACKEND if loopback else 'c10d'}",
        f"--rdzv-endpoint={rendezvous.endpoint}",
        f"--rdzv-id={rendezvous.rdzv_id}",
    ]
    if loopback:
        rdzv.append("--local-addr=127.0.0.1")
    worker = ["--run-id", run_id, "--quiet"]
    return _launch(
        config_path, nproc_per_node, out_dir, rdzv, worker, threads_per_rank, loopback=loopback
    )


def _launch(
    config_path: Path,
    nproc: int,
    out_dir: Path,
    rdzv: list[str],
    worker: list[str],
    threads_per_rank: int,
    loopback: bool,
) -> str | None:
    threads = threads_per_rank or default_threads(os.cpu_count(), nproc)
    # Workers inherit the environment. OMP_NUM_THREADS set here also silences torchrun's warning
    # about it; a user's own value wins. Restored afterwards: a sweep launches several world sizes
    # from one process, and each needs its own thread count.
    saved = {k: os.environ.get(k) for k in _CHILD_ENV}
    if _USER_OMP_THREADS is None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MINICLUSTER_LAUNCHER"] = "torchrun"
    os.environ["MINICLUSTER_PROGRESS"] = "0"  # the launcher shows progress; ranks stay quiet
    if loopback and saved["GLOO_SOCKET_IFNAME"] is None:
        lo = loopback_interface()
        if lo is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = lo  # gloo's sockets on 127.0.0.1 too
    args = [
        *rdzv,
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        "--monitor-interval=0.2",
        "-m",
        "minicluster",
        "worker",
        "-c",
        str(config_path),
        "--out",
        str(out_dir),
        *worker,
    ]
    try:
        return _run_torchrun(args, out_dir)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_torchrun(argv: list[str], out_dir: Path) -> str | None:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from minicluster.core import rundir
    from minicluster.core.io import atomic_write_json

    _register_loopback_rendezvous()
    args = parse_args(argv)
    _quiet_elastic_logs()
    try:
        run(args)
    except SignalException as e:
        # torchrun's agent turns SIGINT/SIGTERM into this: the user or a scheduler's time limit
        # stopped us, not a rank.
        raise KeyboardInterrupt(f"torchrun received {e.sigval.name}") from None
    except ChildFailedError as e:
        # Exit codes tell a crash (the rank's own code) from a hang (killed by a signal). Keyed
        # by global rank: across nodes, each node knows its own ranks' codes.
        codes = {str(rank): f.exitcode for rank, f in e.failures.items()}
        atomic_write_json(
            rundir.launcher_path(out_dir), {"launcher": "torchrun", "exit_codes": codes}
        )
        if all(f.exitcode in _INTERRUPTED_EXIT_CODES for f in e.failures.values()):
            # Ctrl-C in a terminal reaches the ranks too; they may exit before the agent sees it.
            raise KeyboardInterrupt("the ranks were interrupted") from None
        failures = ", ".join(
            f"rank {rank} exit code {f.exitcode}" for rank, f in sorted(e.failures.items())
        )
        return f"ranks failed: {failures}"
    except Exception as e:  # rendezvous or agent failure
        return f"torchrun failed: {type(e).__name__}: {e}"
    return None


def loopback_interface() -> str | None:
    """The name of the loopback network interface (`lo` on Linux), or None."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((n for n in names if n == "lo" or n.startswith("lo0")), None)


def _register_loopback_rendezvous() -> None:
    """Register LOOPBACK_BACKEND with torchrun (once per process; idempotent)."""
    from torch.distributed.elastic.rendezvous import registry

    registry.handler_registry.register(LOOPBACK_BACKEND, _loopback_handler)


def _loopback_handler(params: Any) -> Any:
    """torchrun's c10d rendezvous, with the rendezvous store and the workers' bootstrap store
    listening on the endpoint's loopback address instead of every interface."""
    from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import C10dRendezvousBackend
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import create_handler

    class LoopbackBackend(C10dRendezvousBackend):
        @property
        def name(self) -> str:
            return LOOPBACK_BACKEND  # create_handler checks it against --rdzv-backend

    host, port = parse_endpoint(params.endpoint)
    timeout = timedelta(seconds=params.get_as_int("read_timeout", 60) or 60)
    store = rendezvous_store(host, port, timeout)
    handler = create_handler(store, LoopbackBackend(store, params.run_id), params)
    # Private API (torch 2.4+): the method that makes the store rank 0's workers bootstrap
    # from. Without it the workers' store listens on every interface, as plain torchrun does.
    if callable(getattr(handler, "_create_tcp_store_server", None)):
        setattr(handler, "_create_tcp_store_server", _loopback_store_server)  # noqa: B010
    else:
        log.warning(
            "this torch has no DynamicRendezvousHandler._create_tcp_store_server: the workers' "
            "store listens on every interface"
        )
    return handler


def rendezvous_store(host: str, port: int, timeout: timedelta) -> Any:
    """The c10d rendezvous store at host:port: this agent hosts it when it can bind the port
    (the first agent on the machine), else it joins the one another agent hosts."""
    import torch.distributed as tdist

    sock = _bound_socket(host, port)
    if sock is None:
        return tdist.TCPStore(host, port, is_master=False, timeout=timeout)
    return tdist.TCPStore(
        host,
        port,
        is_master=True,
        multi_tenant=True,
        master_listen_fd=sock.detach(),
        timeout=timeout,
    )


def _loopback_store_server(master_addr: str, master_port: int) -> Any:
    """The store rank 0's workers bootstrap from, on `master_addr` (127.0.0.1 here) only."""
    import torch.distributed as tdist

    sock = _bound_socket(master_addr, master_port)
    if sock is None:
        raise RuntimeError(f"cannot listen on {master_addr}:{master_port} for the workers' store")
    bound_port = sock.getsockname()[1]
    return tdist.TCPStore(
        master_addr, bound_port, is_master=True, multi_tenant=True, master_listen_fd=sock.detach()
    )


def _bound_socket(host: str, port: int) -> socket.socket | None:
    """A listening TCP socket on host:port, or None when the port is taken (another agent on
    this machine hosts the store)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        return None
    return sock


def _quiet_elastic_logs() -> None:
    """torchrun's agent logs every rendezvous detail at INFO; keep its warnings only."""
    for name in (
        "torch.distributed.elastic",
        "torch.distributed.run",
        "torch.distributed.launcher",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.stderr.flush()
