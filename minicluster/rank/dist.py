"""Rank identity from the launcher's environment, process-group set-up and a teardown that never deadlocks."""

from __future__ import annotations

import ctypes
import datetime
import gc
import logging
import os
import signal
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

from minicluster.core.errors import ConfigError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class RankInfo:
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    hostname: str
    node_rank: int | None = None  # torchrun's group rank; None when the launcher sets none

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or "MASTER_ADDR" in os.environ


LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def rank_info_from_env() -> RankInfo:
    """Read RANK/WORLD_SIZE/LOCAL_RANK/GROUP_RANK (torchrun, srun via torchrun, Ray); alone when
    none is set. GROUP_RANK is the node rank torchrun's agent got at rendezvous: two agents on one
    machine share a hostname and differ in it.

    ConfigError at once for an incomplete or inconsistent launcher environment (a stale `RANK`
    without `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`, or `RANK >= WORLD_SIZE`): joining a
    process group with it would hang until the collective timeout.
    """
    env = os.environ
    given = [v for v in LAUNCHER_VARS if v in env]
    if given:
        missing = [v for v in LAUNCHER_VARS if v not in env]
        if missing:
            raise ConfigError(
                f"incomplete launcher environment: {', '.join(given)} set but "
                f"{', '.join(missing)} not; run under torchrun/srun, or unset "
                f"{', '.join(given)} to run as one rank"
            )
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", "0"))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
        group = env.get("GROUP_RANK")
        node_rank = int(group) if group is not None else None
    except ValueError as e:
        raise ConfigError(f"launcher environment: not a whole number: {e}") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"launcher environment: RANK={rank} is outside WORLD_SIZE={world}")
    return RankInfo(
        rank=rank,
        local_rank=local_rank,
        world_size=world,
        local_world_size=local_world,
        hostname=socket.gethostname(),
        node_rank=node_rank,
    )


def die_with_launcher() -> None:
    """Under torchrun's agent, end this rank when the agent dies (Linux PR_SET_PDEATHSIG).

    The agent starts ranks in sessions of their own, so a SIGKILL of the agent (a node lost, a
    scheduler killing it) would leave them running with nobody to reap or report them; the
    other nodes would then wait on a job that can never finish cleanly. No-op elsewhere.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ or not hasattr(os, "getppid"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as e:
        log.warning("cannot tie this rank to its launcher's life (%s): it may outlive it", e)
        return
    if os.getppid() != parent:  # the agent died before the signal was armed
        os._exit(1)


def pick_device(requested: str, local_rank: int) -> torch.device:
    """`auto` is cuda:LOCAL_RANK when CUDA is available, else cpu."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("run.device is cuda but torch sees no CUDA device")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def pick_backend(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    return "nccl" if device.type == "cuda" else "gloo"


def init(info: RankInfo, backend: str, timeout_s: float) -> None:
    """Join the process group; with no launcher (WORLD_SIZE unset) a 1-rank group on loopback."""
    if not info.distributed:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    dist.init_process_group(
        backend=backend,
        rank=info.rank,
        world_size=info.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def teardown() -> None:
    """Destroy the process group. Callers drop DDP models and optimizers first; see worker.run."""
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cuda_available() -> bool:
    """Whether torch sees a CUDA device here (what `run.device: auto` picks)."""
    return bool(torch.cuda.is_available())
