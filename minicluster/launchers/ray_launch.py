"""The Ray launcher (`--launcher ray`): start the job's Ray driver and read back how it ended,
without importing Ray here.

The Ray driver runs in a child process (`python -m minicluster.launchers.ray`) in a session of its
own, its stdout and stderr appended to `DIR/ray.log`: Ray prints to the driver's terminal from
background threads (a dead worker's notice goes to stdout), and none of it may reach the user's
terminal, where the progress bar and the summary are. The request goes to the child on stdin as
JSON; its outcome comes back as one JSON document on a pipe (rank 0's records, gathered in-band,
included), so no shared filesystem is needed between the driver and the ranks.

Ctrl-C (or SIGTERM, a scheduler's time limit) reaches this process only: it asks the driver to
stop the job (SIGINT), waits for it to say so, and returns an interrupted outcome; what the
ranks recorded stays in their files.

Also here, because both sides use them and neither needs Ray for it: the options of a Ray job
and where its ranks go (`layout`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from minicluster.core import launcher_env, rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError
from minicluster.core.rank_format import RankLog
from minicluster.launchers.base import LaunchOutcome, LaunchPlan, RankSlot, RecordsAt

PLACEMENTS = ("pack", "spread")
# How long the driver may take to stop the job after Ctrl-C before it is terminated.
STOP_WAIT_S = 60.0
OUTCOME_FD_ARG = "--outcome-fd"


@dataclass(frozen=True)
class RayOptions:
    """`--ray-address`, `--cpus-per-worker`, `--gpus-per-worker`, `--placement`.

    `address` None starts a local Ray instance sized to the job and shuts it down at the end;
    `auto` or HOST:PORT joins an existing cluster and leaves it running. `placement` is the
    placement group's strategy: `pack` (as few nodes as fit) or `spread` (across nodes).
    """

    address: str | None = field(
        default=None,
        metadata={
            "help": "an existing Ray cluster: auto (the one this machine belongs to, as inside "
            "`ray job submit`), or its GCS address"
        },
    )
    cpus_per_worker: float = field(
        default=1.0,
        metadata={"help": "CPUs each rank's worker reserves, and its CPU threads (whole CPUs)"},
    )
    gpus_per_worker: float = field(
        default=0.0,
        metadata={"help": "GPUs each rank's worker reserves (1 for one GPU per rank on NCCL)"},
    )
    placement: str = field(
        default="pack",
        metadata={"help": "pack the workers on as few nodes as fit, or spread them across nodes"},
    )

    def threads_per_rank(self) -> int:
        """CPU threads per rank: the worker's whole CPUs (at least one)."""
        return max(1, math.floor(self.cpus_per_worker))

    def local_cpus(self, nproc: int) -> int:
        """The CPUs a local Ray instance is started with: exactly the job's workers'."""
        return math.ceil(nproc * self.cpus_per_worker)


def check_options(options: RayOptions) -> RayOptions:
    """InputError naming the flag for a value Ray would refuse later (or hang on)."""
    if options.address is not None and options.address != "auto":
        from minicluster.launchers.torchrun import parse_endpoint

        try:
            parse_endpoint(options.address)
        except ValueError as e:
            raise InputError(f"--ray-address: {e} (or auto)") from None
    if not options.cpus_per_worker > 0:
        raise InputError(f"--cpus-per-worker must be > 0, got {options.cpus_per_worker:g}")
    if options.gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker must be >= 0, got {options.gpus_per_worker:g}")
    if options.placement not in PLACEMENTS:
        raise InputError(
            f"--placement must be one of {', '.join(PLACEMENTS)}, got {options.placement!r}"
        )
    return options


def ray_installed() -> None:
    """InputError with the install line when Ray is not importable here."""
    if importlib.util.find_spec("ray") is None:
        raise InputError(
            "--launcher ray needs Ray: pip install 'minicluster[ray]' "
            "(tested: ray[default,train]==2.60.0, constraints.txt)"
        )


@dataclass(frozen=True)
class Placed:
    """One rank of a Ray job: its placement-group bundle, Ray node and place on that node."""

    rank: int
    bundle: int
    node_id: str
    node_rank: int
    local_rank: int
    local_world_size: int


def layout(bundle_nodes: list[str], first_node: str | None = None) -> list[Placed]:
    """Ranks for the bundles of a placement group (`bundle_nodes[i]`: the Ray node ID bundle i
    landed on), in rank order.

    Nodes are numbered in order of their first bundle, except that `first_node` (the driver's
    node) comes first when it holds a bundle, so rank 0 and its files are where the driver is
    whenever they can be. Ranks are contiguous on a node (as torchrun numbers them), and each
    node's node rank is its index among the job's nodes.
    """
    order: list[str] = []
    for node in bundle_nodes:
        if node not in order:
            order.append(node)
    if first_node in order:
        order.remove(first_node)
        order.insert(0, first_node)
    placed: list[Placed] = []
    for node_rank, node in enumerate(order):
        bundles = [b for b, n in enumerate(bundle_nodes) if n == node]
        for local_rank, bundle in enumerate(bundles):
            placed.append(Placed(len(placed), bundle, node, node_rank, local_rank, len(bundles)))
    return placed


class RayLauncher:
    """`--launcher ray`: the job's `cfg.run.nproc` ranks as Ray workers, each running
    `minicluster.rank.worker.run`; rank 0's records of every rank come back in-band.

    Unless the config says otherwise, each rank gets one CPU thread per whole CPU its worker
    reserves."""

    name = "ray"

    def __init__(self, options: RayOptions) -> None:
        self.options = options

    def plan(self, cfg: RunConfig, out_dir: Path, run_id: str) -> LaunchPlan:
        """What `run` would start; starts nothing (Ray included)."""
        from minicluster.core.config import override

        options = self.options
        if not cfg.run.threads_per_rank:
            cfg = override(cfg, threads_per_rank=options.threads_per_rank())
        nproc = cfg.run.nproc
        where = (
            f"a local Ray instance with {options.local_cpus(nproc)} CPUs (started for this job, "
            "shut down at its end)"
            if options.address is None
            else f"the Ray cluster at {options.address} (joined, left running)"
        )
        gpus = f", {options.gpus_per_worker:g} GPU" if options.gpus_per_worker else ""
        return LaunchPlan(
            launcher=self.name,
            run_id=run_id,
            out_dir=out_dir,
            config_path=rundir.config_path(out_dir),
            config=cfg,
            world_size=nproc,
            nnodes=None,
            nproc_per_node=None,
            node_rank=None,
            rendezvous="rank 0's node, a free port its actor picks at launch (MASTER_ADDR/PORT)",
            command=(sys.executable, "-m", "minicluster.launchers.ray", OUTCOME_FD_ARG, "FD"),
            rank_entry="minicluster.rank.worker.run(config, out_dir, run_id) in a Ray actor",
            rank_env={
                "OMP_NUM_THREADS": str(options.threads_per_rank()),
                launcher_env.LAUNCHER: "ray",
                launcher_env.PROGRESS: "0",
                "WORLD_SIZE": str(nproc),
            },
            ranks=tuple(RankSlot(r, None, {"RANK": str(r)}) for r in range(nproc)),
            records="in-band",
            threads_per_rank=cfg.run.threads_per_rank,
            details={
                "ray": where,
                "placement": f"{options.placement}: one bundle of {options.cpus_per_worker:g} "
                f"CPU{gpus} per rank, ranks numbered by node (the driver's node first)",
                "ray log": str(rundir.ray_log_path(out_dir)),
            },
        )

    def run(self, plan: LaunchPlan) -> LaunchOutcome:
        """Run the job in a Ray driver child process and wait for it.

        Exit codes of a failed job: 0 is not listed; a rank whose function raised has the
        error's exit code (1, or 2 for bad input); one the launcher killed after the others had
        failed (a hang) -9; one whose Ray worker process died on its own has none (Ray does not
        say its code). InputError when Ray refuses the job (no cluster at the address, not
        enough CPUs or GPUs); Ctrl-C or SIGTERM stops the job and is an interrupted outcome.
        """
        ray_installed()
        request = {
            "config": plan.config.to_dict(),
            "out_dir": str(plan.out_dir.resolve()),
            "run_id": plan.run_id,
            "options": asdict(self.options),
        }
        return launch(request, plan.out_dir)


def launch(request: dict[str, Any], out_dir: Path) -> LaunchOutcome:
    """Start the Ray driver with `request`, wait for its outcome document (see the module
    docstring), and read it."""
    log_path = rundir.ray_log_path(out_dir)
    read_fd, write_fd = os.pipe()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minicluster.launchers.ray", OUTCOME_FD_ARG, str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not Ray's processes
        )
    os.close(write_fd)
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(json.dumps(request).encode())
    with os.fdopen(read_fd, "rb") as pipe, _sigterm_interrupts():
        try:
            data = pipe.read()
            proc.wait()
        except KeyboardInterrupt as e:
            _stop(proc, pipe)
            return LaunchOutcome(
                RecordsAt(out_dir), f"the Ray job was stopped ({e or 'SIGINT'})", interrupted=True
            )
    return read_outcome(data, proc.returncode, out_dir)


def _stop(proc: subprocess.Popen[bytes], pipe: Any) -> None:
    """Ask the driver to stop the job (SIGINT) and wait for it; kill it when it does not stop in
    STOP_WAIT_S (stuck inside Ray: its local instance goes with it, by Ray's own reaper)."""
    print("minicluster: stopping the Ray job ...", file=sys.stderr)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    pipe.read()


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a scheduler's time limit) stops the job like Ctrl-C while it runs."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def keep_files(out_dir: Path, files: dict[str, dict[str, str]]) -> None:
    """Write the rank files failed ranks sent back (by rank, by name under `ranks/`) that this
    node does not hold (their node's disk is not shared), so the result covers them; a file
    already here (a shared or local disk) is never replaced."""
    ranks = rundir.ranks_dir(out_dir)
    for rank, named in files.items():
        for name, text in named.items():
            if rundir.rank_from_name(name) != int(rank) or "/" in name:
                continue  # only a rank's own files, by their own names
            ranks.mkdir(parents=True, exist_ok=True)
            try:
                with open(ranks / name, "x", encoding="utf-8") as f:
                    f.write(text)
            except FileExistsError:
                pass


def read_outcome(data: bytes, returncode: int, out_dir: Path) -> LaunchOutcome:
    """The driver's outcome document -> LaunchOutcome (InputError when Ray refused the job)."""
    log = rundir.ray_log_path(out_dir)
    files = RecordsAt(out_dir)
    try:
        outcome = json.loads(data) if data else None
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict):
        return LaunchOutcome(
            files,
            f"the Ray driver exited with code {returncode} before saying how the job ended "
            f"(see {log})",
        )
    if outcome.get("input_error"):
        raise InputError(f"{outcome['input_error']} (Ray's log: {log})")
    keep_files(out_dir, outcome.get("files") or {})
    codes = {int(rank): int(code) for rank, code in (outcome.get("exit_codes") or {}).items()}
    if outcome.get("interrupted"):
        return LaunchOutcome(files, "the Ray job was stopped", codes, interrupted=True)
    error = outcome.get("error")
    wire = outcome.get("gathered")
    if error is None and wire is not None:
        gathered = [RankLog.from_wire(w, "Ray rank records") for w in wire]
        return LaunchOutcome(RecordsAt(out_dir, in_band=gathered), None, codes)
    return LaunchOutcome(files, error, codes)
