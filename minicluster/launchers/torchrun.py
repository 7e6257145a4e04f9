"""Start N local ranks with torch.distributed.run (torchrun), c10d rendezvous on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_CHILD_ENV = ("OMP_NUM_THREADS", "MINICLUSTER_LAUNCHER", "MINICLUSTER_PROGRESS")
# A rank's exit code after Ctrl-C: 130 from minicluster's own handler, -2 killed by SIGINT.
_INTERRUPTED_EXIT_CODES = (130, -signal.SIGINT)
_USER_OMP_THREADS = os.environ.get("OMP_NUM_THREADS")  # as the user started us, before any launch


def launch_local(
    config_path: Path, nproc: int, out_dir: Path, run_id: str, threads_per_rank: int
) -> str | None:
    """Run `minicluster worker` on `nproc` local ranks; None on success, else why it failed.

    Raises KeyboardInterrupt when the user stopped the run (SIGINT or SIGTERM).
    """
    threads = threads_per_rank or max(1, (os.cpu_count() or 1) // nproc)
    # Workers inherit the environment. OMP_NUM_THREADS set here also silences torchrun's warning
    # about it; a user's own value wins. Restored afterwards: a sweep launches several world sizes
    # from one process, and each needs its own thread count.
    saved = {k: os.environ.get(k) for k in _CHILD_ENV}
    if _USER_OMP_THREADS is None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MINICLUSTER_LAUNCHER"] = "torchrun"
    os.environ["MINICLUSTER_PROGRESS"] = "0"  # the launcher shows progress; ranks stay quiet
    try:
        return _run_torchrun(config_path, nproc, out_dir, run_id)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_torchrun(config_path: Path, nproc: int, out_dir: Path, run_id: str) -> str | None:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from minicluster.core import rundir
    from minicluster.core.io import atomic_write_json
    from minicluster.rank.dist import free_port

    args = parse_args(
        [
            "--nnodes=1",
            f"--nproc-per-node={nproc}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{free_port()}",
            "--max-restarts=0",
            "--monitor-interval=0.2",
            "-m",
            "minicluster",
            "worker",
            "-c",
            str(config_path),
            "--out",
            str(out_dir),
            "--run-id",
            run_id,
            "--no-aggregate",
        ]
    )
    _quiet_elastic_logs()
    try:
        run(args)
    except SignalException as e:
        # torchrun's agent turns SIGINT/SIGTERM into this: the user stopped us, not a rank.
        raise KeyboardInterrupt(f"torchrun received {e.sigval.name}") from None
    except ChildFailedError as e:
        # Exit codes tell a crash (the rank's own code) from a hang (killed by a signal).
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


def _quiet_elastic_logs() -> None:
    """torchrun's agent logs every rendezvous detail at INFO; keep its warnings only."""
    for name in (
        "torch.distributed.elastic",
        "torch.distributed.run",
        "torch.distributed.launcher",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.stderr.flush()
