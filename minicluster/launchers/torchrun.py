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

import dataclasses
import ipaddress
import json
import logging
import os
import shlex
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from minicluster.core import launcher_env, rundir
from minicluster.core.config import RunConfig, default_threads
from minicluster.core.errors import EXIT_BAD_INPUT
from minicluster.launchers.base import LaunchOutcome, LaunchPlan, RankSlot, RecordsAt

log = logging.getLogger(__name__)

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


class LocalTorchrun:
    """`minicluster run --nproc N`: N ranks on this machine, started by torchrun's agent in this
    process (`torch.distributed.run`), rendezvous and every socket on 127.0.0.1. The ranks write
    their records to files here, which the launcher's process reads (no in-band gather)."""

    name = "torchrun"

    def plan(self, cfg: RunConfig, out_dir: Path, run_id: str) -> LaunchPlan:
        rdzv = [
            "--nnodes=1",
            f"--rdzv-backend={LOOPBACK_BACKEND}",
            f"--rdzv-endpoint=127.0.0.1:{_free_loopback_port()}",
            "--local-addr=127.0.0.1",
        ]
        return _plan(self.name, cfg, out_dir, run_id, rdzv, ["--no-aggregate"], loopback=True)

    def run(self, plan: LaunchPlan) -> LaunchOutcome:
        """Start the plan's ranks and wait for them; Ctrl-C or SIGTERM to this process (or the
        ranks all stopped by one) is an interrupted outcome."""
        return _run(plan, RecordsAt(plan.out_dir))


class NodeTorchrun:
    """This node's share of a job across `rendezvous.nnodes` nodes (started once per node; c10d
    rendezvous). Rank 0, on whichever node c10d gives group rank 0, gathers every rank's records
    in-band and writes the complete result into its output directory; a node that does not see
    rank 0's files writes `node.json` there instead (see `minicluster worker`)."""

    name = "torchrun-node"

    def __init__(self, rendezvous: Rendezvous) -> None:
        self.rendezvous = rendezvous

    def plan(self, cfg: RunConfig, out_dir: Path, run_id: str) -> LaunchPlan:
        rv = self.rendezvous
        rdzv = [
            f"--nnodes={rv.nnodes}",
            f"--rdzv-backend={LOOPBACK_BACKEND if rv.loopback else 'c10d'}",
            f"--rdzv-endpoint={rv.endpoint}",
            f"--rdzv-id={rv.rdzv_id}",
        ]
        if rv.loopback:
            rdzv.append("--local-addr=127.0.0.1")
        return _plan(self.name, cfg, out_dir, run_id, rdzv, ["--quiet"], rv.loopback, rv)

    def run(self, plan: LaunchPlan) -> LaunchOutcome:
        """As `LocalTorchrun.run`; when every rank finished, the records say where the result
        is: written here by rank 0, or on rank 0's node (node.json here says where, if written)."""
        outcome = _run(plan, RecordsAt(plan.out_dir))
        if not outcome.ok:
            return outcome
        result = rundir.result_path(plan.out_dir)
        where = RecordsAt(plan.out_dir, result=result if result.is_file() else None)
        if where.result is None:
            where = RecordsAt(plan.out_dir, on_rank0_node=True)
        return dataclasses.replace(outcome, records=where)


def _plan(
    name: str,
    cfg: RunConfig,
    out_dir: Path,
    run_id: str,
    rdzv: list[str],
    worker_flags: list[str],
    loopback: bool,
    rendezvous: Rendezvous | None = None,
) -> LaunchPlan:
    nproc = cfg.run.nproc
    threads = cfg.run.threads_per_rank or default_threads(os.cpu_count(), nproc)
    config_path = rundir.config_path(out_dir)
    worker = [
        "-m",
        "minicluster",
        "worker",
        "-c",
        str(config_path),
        "--out",
        str(out_dir),
        "--run-id",
        run_id,
        *worker_flags,
    ]
    args = [*rdzv, f"--nproc-per-node={nproc}", "--max-restarts=0", "--monitor-interval=0.2"]
    # Workers inherit the environment. OMP_NUM_THREADS set here also silences torchrun's warning
    # about it; a user's own value wins.
    env = {
        "OMP_NUM_THREADS": _USER_OMP_THREADS or str(threads),
        launcher_env.LAUNCHER: "torchrun",
        launcher_env.PROGRESS: "0",  # the launcher shows progress; ranks stay quiet
    }
    user_ifname = os.environ.get("GLOO_SOCKET_IFNAME")
    if user_ifname is not None:
        env["GLOO_SOCKET_IFNAME"] = user_ifname
    elif loopback and (lo := loopback_interface()) is not None:
        env["GLOO_SOCKET_IFNAME"] = lo  # gloo's sockets on 127.0.0.1 too
    nnodes = 1 if rendezvous is None else rendezvous.nnodes
    world = nproc * nnodes
    if rendezvous is None:
        ranks = tuple(
            RankSlot(r, r, {"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world)})
            for r in range(nproc)
        )
        meet = f"{rdzv[2].split('=', 1)[1]} (c10d on loopback, a free port)"
    else:
        # c10d hands out the group (node) ranks, so the global ranks here are known only then.
        ranks = tuple(
            RankSlot(None, r, {"LOCAL_RANK": str(r), "WORLD_SIZE": str(world)})
            for r in range(nproc)
        )
        backend = "c10d on loopback" if loopback else "c10d"
        meet = f"{rendezvous.endpoint} ({backend}, rendezvous id {rendezvous.rdzv_id})"
    return LaunchPlan(
        launcher=name,
        run_id=run_id,
        out_dir=out_dir,
        config_path=config_path,
        config=cfg,
        world_size=world,
        nnodes=nnodes,
        nproc_per_node=nproc,
        node_rank=None if rendezvous is None else rendezvous.node_rank,
        rendezvous=meet,
        command=("torchrun", *args, *worker),
        rank_entry=shlex.join([sys.executable, *worker]),
        rank_env=env,
        ranks=ranks,
        records="files" if rendezvous is None else "in-band",
        threads_per_rank=threads,
    )


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run(plan: LaunchPlan, records: RecordsAt) -> LaunchOutcome:
    """Run torchrun's agent with the plan's arguments and environment (restored afterwards: a
    sweep launches several world sizes from one process, each with its own thread count)."""
    saved = {k: os.environ.get(k) for k in plan.rank_env}
    os.environ.update(plan.rank_env)
    try:
        return _run_torchrun(list(plan.command[1:]), records)
    except KeyboardInterrupt as e:
        return LaunchOutcome(records, error=str(e) or None, interrupted=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_torchrun(argv: list[str], records: RecordsAt) -> LaunchOutcome:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    _register_loopback_rendezvous()
    args = parse_args(argv)
    _quiet_elastic_logs()
    closing = ClosingSignals()
    held = HeldFailureLines()
    try:
        with closing, QuietOnDeathSignal(), held:
            run(args)
    except SignalException as e:
        # torchrun's agent turns SIGINT/SIGTERM into this: the user or a scheduler's time limit
        # stopped us, not a rank.
        return LaunchOutcome(records, f"torchrun received {e.sigval.name}", interrupted=True)
    except ChildFailedError as e:
        # Exit codes tell a crash (the rank's own code) from a hang (killed by a signal). Keyed
        # by global rank: across nodes, each node knows its own ranks' codes.
        codes = {int(rank): f.exitcode for rank, f in e.failures.items()}
        stopped = closing.by_rank({int(rank): f.pid for rank, f in e.failures.items()})
        if rejected_as_bad_input(records.dir, codes, stopped):
            # The ranks refused the input and said why in their summaries: minicluster's one
            # line says it; torch's "failed (exitcode: 2)" and closing signals would only stand
            # above it.
            held.drop()
        if all(f.exitcode in _INTERRUPTED_EXIT_CODES for f in e.failures.values()):
            # Ctrl-C in a terminal reaches the ranks too; they may exit before the agent sees it.
            return LaunchOutcome(records, "the ranks were interrupted", codes, interrupted=True)
        failures = ", ".join(
            f"rank {rank} exit code {code}" for rank, code in sorted(codes.items())
        )
        return LaunchOutcome(records, f"ranks failed: {failures}", codes, stopped=stopped)
    except Exception as e:  # rendezvous or agent failure
        return LaunchOutcome(records, f"torchrun failed: {type(e).__name__}: {e}")
    finally:
        held.release()
    return LaunchOutcome(records)


def rejected_as_bad_input(run_dir: Path, codes: dict[int, int], stopped: dict[int, int]) -> bool:
    """Whether the ranks failed only for bad input: a rank exited with the bad-input code after
    writing its reason in its summary (`bad_input`), and every other failed rank did the same or
    was stopped by the agent once one had (`stopped`). The result carries that reason, the user
    gets it as one line."""
    from minicluster.core.rank_format import RecordError, decode_summary

    refused = [rank for rank, code in codes.items() if code == EXIT_BAD_INPUT]
    if not refused or any(r not in stopped for r in codes if r not in refused):
        return False
    for rank in refused:
        path = rundir.rank_summary(run_dir, rank)
        try:
            summary = decode_summary(json.loads(path.read_bytes()), path.name)
        except (OSError, ValueError, RecordError):
            return False
        if not summary.bad_input:
            return False
    return True


# torchrun's agent logs every signal it sends to a worker it stops (torch 2.x,
# torch.distributed.elastic.multiprocessing.api: `SubprocessContext._close`); these are the
# messages' format strings, pinned by tests/launchers/test_torchrun_signals.py.
ELASTIC_API_LOGGER = "torch.distributed.elastic.multiprocessing.api"
CLOSING_SIGNAL_MSG = "Sending process %s closing signal %s"
FORCED_KILL_MSG = "Unable to shutdown process %s via %s, forcefully exiting via %s"


# torchrun's agent when a worker failed (`SubprocessContext._poll`), one line above whatever
# minicluster says of the failure.
FAILED_MSG = "failed (exitcode: %s) local_rank: %s (pid: %s) of binary: %s"


# torchrun's agent on Ctrl-C or SIGTERM (`SimpleElasticAgent.run`): it warns that it received
# the signal, then one warning per worker it stops; minicluster says "interrupted" itself.
ELASTIC_AGENT_LOGGER = "torch.distributed.elastic.agent.server.api"
DEATH_SIGNAL_MSG = "Received %s death signal, shutting down workers"


class QuietOnDeathSignal(logging.Filter):
    """Drops torchrun's agent warnings about a Ctrl-C (or SIGTERM) it received and the closing
    signals it then sends its workers (`with QuietOnDeathSignal():`): the launcher's own
    "interrupted" line says it, without torch's log lines around it. Closing signals sent
    because a worker failed (no death signal first) still go through (`ClosingSignals`)."""

    def __init__(self) -> None:
        super().__init__()
        self.dying = False
        self._loggers = [
            logging.getLogger(ELASTIC_AGENT_LOGGER),
            logging.getLogger(ELASTIC_API_LOGGER),
        ]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == DEATH_SIGNAL_MSG:
            self.dying = True
            return False
        return not (self.dying and record.msg in (CLOSING_SIGNAL_MSG, FORCED_KILL_MSG))

    def __enter__(self) -> QuietOnDeathSignal:
        for logger in self._loggers:
            logger.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)


class ClosingSignals(logging.Handler):
    """The signals torchrun's agent sent to its workers (pid -> signal number), read from its own
    log records while the agent runs (`with ClosingSignals() as c:`). The agent signals the
    workers still running once one has failed: those are the victims; a worker killed by a
    signal that is not here was killed from outside the launcher."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.sent: dict[int, int] = {}
        self._logger = logging.getLogger(ELASTIC_API_LOGGER)

    def __enter__(self) -> ClosingSignals:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg == CLOSING_SIGNAL_MSG and len(args) == 2:
            pid, sig = args
        elif record.msg == FORCED_KILL_MSG and len(args) == 3:
            pid, sig = args[0], args[2]
        else:
            return
        number = _signal_number(sig)
        if isinstance(pid, int) and number is not None:
            self.sent[pid] = number  # a forced SIGKILL after SIGTERM replaces it

    def by_rank(self, pids: dict[int, int]) -> dict[int, int]:
        """The signals sent, keyed by the global rank of each pid in `pids` (rank -> pid)."""
        return {rank: self.sent[pid] for rank, pid in pids.items() if pid in self.sent}


class HeldFailureLines:
    """Holds back torchrun's lines about a failed worker (`FAILED_MSG`, the closing signals)
    on their way to the handlers that print them (`with HeldFailureLines() as held:`), then
    prints them (`release`) unless the launcher has a clearer line of its own (`drop`: every
    rank refused the input). A filter on each handler, not on the logger: `ClosingSignals`
    still reads every record."""

    HELD = (FAILED_MSG, CLOSING_SIGNAL_MSG, FORCED_KILL_MSG)

    def __init__(self) -> None:
        self._held: list[tuple[logging.Handler, logging.LogRecord]] = []
        self._filters: list[tuple[logging.Handler, _HoldOn]] = []

    def __enter__(self) -> HeldFailureLines:
        logger: logging.Logger | None = logging.getLogger(ELASTIC_API_LOGGER)
        while logger is not None:
            for handler in logger.handlers:
                if not isinstance(handler, logging.StreamHandler):
                    continue  # a reader such as `ClosingSignals`, not a printer
                hold = _HoldOn(handler, self._held)
                handler.addFilter(hold)
                self._filters.append((handler, hold))
            logger = logger.parent if logger.propagate else None
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, hold in self._filters:
            handler.removeFilter(hold)
        self._filters.clear()

    def drop(self) -> None:
        """Forget the lines held so far."""
        self._held.clear()

    def release(self) -> None:
        """Print the lines held so far, each through the handler it was held from."""
        held = list(self._held)
        self._held.clear()
        for handler, record in held:
            handler.handle(record)


class _HoldOn(logging.Filter):
    """`HeldFailureLines`' filter on one handler: keeps the record back, with that handler."""

    def __init__(
        self, handler: logging.Handler, held: list[tuple[logging.Handler, logging.LogRecord]]
    ) -> None:
        super().__init__()
        self._handler = handler
        self._held = held

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ELASTIC_API_LOGGER and record.msg in HeldFailureLines.HELD:
            self._held.append((self._handler, record))
            return False
        return True


def _signal_number(sig: object) -> int | None:
    """A signal given as `signal.Signals`, its name (`SIGTERM`) or its number."""
    if isinstance(sig, int):
        return int(sig)
    try:
        return int(signal.Signals[str(sig)])
    except KeyError:
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
