"""Start a Ray job for `--launcher ray` and read back how it ended, without importing Ray here.

The Ray driver runs in a child process (`python -m minicluster.launchers.ray`) in a session of its
own, its stdout and stderr appended to `DIR/ray.log`: Ray prints to the driver's terminal from
background threads (a dead worker's notice goes to stdout), and none of it may reach the user's
terminal, where the progress bar and the summary are. The request goes to the child on stdin as
JSON; its outcome comes back as one JSON document on a pipe (rank 0's records, gathered in-band,
included), so no shared filesystem is needed between the driver and the ranks.

Ctrl-C (or SIGTERM, a scheduler's time limit) reaches this process only: it asks the driver to
stop the job (SIGINT), waits for it to say so, and raises KeyboardInterrupt; what the ranks
recorded stays in their files.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from minicluster.core import rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError
from minicluster.core.io import atomic_write_json
from minicluster.core.rank_format import RankLog

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

    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    placement: str = "pack"

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


@dataclass(frozen=True)
class RayOutcome:
    """How a Ray job ended: `error` None when every rank finished; `gathered` rank 0's records
    of every rank (in-band), when it finished."""

    error: str | None
    gathered: list[RankLog] | None


def launch(cfg: RunConfig, out_dir: Path, run_id: str, options: RayOptions) -> RayOutcome:
    """Run the job's `cfg.run.nproc` ranks as Ray workers, each `minicluster.rank.worker.run`.

    Per-rank exit codes of a failed job go to DIR/launcher.json (as torchrun's do): 0 is not
    listed; a rank whose function raised has the error's exit code (1, or 2 for bad input); one
    the launcher killed after the others had failed (a hang) -9; one whose Ray worker process
    died on its own has none (Ray does not say its code). InputError when Ray refuses the job
    (no cluster at the address, not enough CPUs or GPUs); KeyboardInterrupt after Ctrl-C or
    SIGTERM, once the job is stopped.
    """
    ray_installed()
    request = {
        "config": cfg.to_dict(),
        "out_dir": str(out_dir.resolve()),
        "run_id": run_id,
        "options": asdict(options),
    }
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
        except KeyboardInterrupt:
            _stop(proc, pipe)
            raise
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


def read_outcome(data: bytes, returncode: int, out_dir: Path) -> RayOutcome:
    """The driver's outcome document -> RayOutcome; its exit codes go to DIR/launcher.json."""
    log = rundir.ray_log_path(out_dir)
    try:
        outcome = json.loads(data) if data else None
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict):
        return RayOutcome(
            f"the Ray driver exited with code {returncode} before saying how the job ended "
            f"(see {log})",
            None,
        )
    if outcome.get("input_error"):
        raise InputError(f"{outcome['input_error']} (Ray's log: {log})")
    keep_files(out_dir, outcome.get("files") or {})
    codes = outcome.get("exit_codes") or {}
    if codes or outcome.get("error"):
        atomic_write_json(rundir.launcher_path(out_dir), {"launcher": "ray", "exit_codes": codes})
    if outcome.get("interrupted"):
        raise KeyboardInterrupt("the Ray job was stopped")
    wire = outcome.get("gathered")
    gathered = None if wire is None else [RankLog.from_wire(w, "Ray rank records") for w in wire]
    return RayOutcome(outcome.get("error"), gathered)
