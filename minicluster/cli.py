"""The `minicluster` command line: parse arguments, call one command, map errors to exit codes.

Heavy modules (torch, the launchers) are imported inside the commands that need them, so the
analysis commands start fast and run without torch installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minicluster import __version__
from minicluster.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECK,
    EXIT_OK,
    EXIT_RUN_FAILED,
    InputError,
    MiniclusterError,
)

log = logging.getLogger("minicluster.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicluster",
        description="Distributed-training validation harness: run instrumented DDP ranks, "
        "merge their records into one result, compare results honestly.",
    )
    parser.add_argument("--version", action="version", version=f"minicluster {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="launch N local ranks, run the workload, aggregate, summarize")
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--nproc", type=int, help="ranks to start (default: config run.nproc, 2)")
    p.add_argument(
        "--launcher",
        choices=["torchrun"],
        default="torchrun",
        help="how ranks are started (default: torchrun)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    _add_fault_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "validate",
        help="correctness: DDP equals one process on the global batch; replicas stay identical",
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--nproc", type=int, help="ranks to start (default: config run.nproc, 2)")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    _add_fault_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("worker", help="per-rank entry for an outside launcher (torchrun, srun)")
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--out", type=Path, required=True, help="output directory shared by the ranks")
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument(
        "--no-aggregate",
        action="store_true",
        help="rank 0 does not write result.json (the launcher aggregates)",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("aggregate", help="re-build result.json from the rank files of a run")
    p.add_argument("dir", type=Path, help="run directory (holds ranks/)")
    p.set_defaults(func=cmd_aggregate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from minicluster.log import setup_logging

    setup_logging()
    try:
        code: int = args.func(args)
        return code
    except MiniclusterError as e:
        print(f"minicluster: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("minicluster: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("MINICLUSTER_DEBUG"):
            raise
        print(
            f"minicluster: internal error: {type(e).__name__}: {e} "
            "(set MINICLUSTER_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    return _exit_for(_launch(args, validating=False))


def cmd_validate(args: argparse.Namespace) -> int:
    result = _launch(args, validating=True)
    if result["status"] == "failed":
        print("minicluster: validate: the run failed; see errors above", file=sys.stderr)
        return EXIT_RUN_FAILED
    verdict = result["validation"]
    if verdict["passed"]:
        eq = next(c for c in verdict["checks"] if c["name"] == "ddp_equivalence")
        rc = next(c for c in verdict["checks"] if c["name"] == "replica_consistency")
        print(
            f"minicluster: validate: PASS: DDP equals one process after {eq['steps']} steps "
            f"(max abs diff {eq['max_abs_diff']:.3g}, max relative L2 diff {eq['max_rel_diff']:.3g} "
            f"<= {eq['rel_tolerance']}); "
            f"replicas identical at {rc['steps_checked']} checked steps"
        )
        return EXIT_OK
    print(f"minicluster: validate: FAIL: {verdict['reason']}")
    return EXIT_FAILED_CHECK


def _launch(args: argparse.Namespace, validating: bool) -> dict[str, Any]:
    """Resolve the config, start the ranks, aggregate: the shared body of `run` and `validate`."""
    from minicluster import config as config_mod
    from minicluster.schema import atomic_write_json

    cfg = config_mod.load(args.config)
    if args.nproc is not None and args.nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {args.nproc}")
    cfg = config_mod.override(cfg, nproc=args.nproc)
    if validating:
        if cfg.run.nproc < 2:
            raise InputError("validate compares ranks: it needs --nproc 2 or more")
        every = cfg.run.replica_check_every or 1
        cfg = config_mod.override(cfg, replica_check_every=every, check_ddp_equivalence=True)
    cfg = _with_faults(cfg, args)
    run_id = _new_run_id()
    default_out = args.out is None
    out_dir = Path("runs") / run_id if default_out else args.out
    _ensure_writable(out_dir)
    resolved = out_dir / "config.json"  # JSON is YAML: the workers load it like any config
    atomic_write_json(resolved, cfg.to_dict())

    from minicluster.launchers.torchrun import launch_local

    total = cfg.steps.warmup + cfg.steps.measured
    print(
        f"minicluster: run {run_id}: {cfg.run.nproc} ranks via {getattr(args, 'launcher', 'torchrun')}, "
        f"{cfg.steps.warmup} warm-up + {cfg.steps.measured} measured steps -> {out_dir}",
        file=sys.stderr,
    )
    with _Progress(out_dir, total):
        launcher_error = launch_local(
            resolved, cfg.run.nproc, out_dir, run_id, cfg.run.threads_per_rank
        )
    result = _aggregate_dir(out_dir, launcher_error)
    if default_out:
        _point_latest(out_dir)
    return result


def _add_fault_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:key=value,...",
        help="inject a fault (repeatable): straggler:rank=R,delay_ms=D[,from_step=S], "
        "slow_link:rank=R,delay_ms=D[,from_step=S], crash:rank=R,step=S, hang:rank=R,step=S, "
        "corrupt_grad:rank=R,step=S",
    )
    p.add_argument(
        "--collective-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a rank waits in a collective before the run fails (default: config, 300)",
    )


def _with_faults(cfg: Any, args: argparse.Namespace) -> Any:
    """`cfg` with the --fault specs added, checked against the world before any rank starts."""
    import dataclasses

    from minicluster import config as config_mod
    from minicluster import fault_spec

    added = tuple(fault_spec.parse(text) for text in args.fault)
    cfg = dataclasses.replace(cfg, faults=cfg.faults + added)
    cfg = config_mod.override(cfg, collective_timeout_s=args.collective_timeout)
    if any(f.kind == "corrupt_grad" for f in cfg.faults) and cfg.run.replica_check_every == 0:
        cfg = config_mod.override(cfg, replica_check_every=1)  # else nothing could catch it
    fault_spec.check_against_run(cfg.faults, cfg.run.nproc, cfg.steps.warmup + cfg.steps.measured)
    return cfg


def cmd_worker(args: argparse.Namespace) -> int:
    from minicluster import config as config_mod
    from minicluster import worker

    cfg = config_mod.load(args.config)
    _ensure_writable(args.out)
    try:
        gathered = worker.run(cfg, args.out, run_id=args.run_id)
    except MiniclusterError:
        raise
    except Exception as e:
        raise _RankFailed(f"rank failed: {type(e).__name__}: {e}") from None
    if gathered is None or args.no_aggregate:
        return EXIT_OK
    from minicluster import coordinator

    result = coordinator.aggregate(coordinator.from_gathered(gathered))
    _write_and_print(args.out, result)
    return _exit_for(result)


def cmd_aggregate(args: argparse.Namespace) -> int:
    result = _aggregate_dir(args.dir, None)
    return _exit_for(result)


class _RankFailed(MiniclusterError):
    exit_code = EXIT_RUN_FAILED


def _aggregate_dir(out_dir: Path, launcher_error: str | None) -> dict[str, Any]:
    from minicluster import coordinator

    result = coordinator.aggregate(
        coordinator.read_run_dir(out_dir),
        launcher_error=launcher_error,
        exit_codes=_launcher_exit_codes(out_dir),
    )
    _write_and_print(out_dir, result)
    return result


def _launcher_exit_codes(out_dir: Path) -> dict[int, int] | None:
    """Per-rank exit codes the launcher left in DIR/launcher.json (a failed local run), or None."""
    import json

    try:
        data = json.loads((out_dir / "launcher.json").read_text(encoding="utf-8"))
        return {int(rank): int(code) for rank, code in data["exit_codes"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_and_print(out_dir: Path, result: dict[str, Any]) -> None:
    from minicluster.report.terminal import print_run_summary
    from minicluster.schema import atomic_write_json, validate_result

    validate_result(result)
    path = out_dir / "result.json"
    atomic_write_json(path, result)
    print_run_summary(result)
    print(f"result: {path}")


def _exit_for(result: dict[str, Any]) -> int:
    if result["status"] == "failed":
        return EXIT_RUN_FAILED
    from minicluster.fault_detect import CORRECTNESS_KINDS

    if any(d["kind"] in CORRECTNESS_KINDS for d in result["faults"]["detected"]):
        return EXIT_FAILED_CHECK
    return EXIT_OK


def _new_run_id() -> str:
    import uuid

    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]


def _ensure_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise InputError(f"output directory {out_dir} is not writable: {e.strerror or e}") from None


def _point_latest(out_dir: Path) -> None:
    """Make runs/latest point at this run (replaced atomically)."""
    latest = out_dir.parent / "latest"
    tmp = out_dir.parent / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out_dir.name)
        os.replace(tmp, latest)
    except OSError as e:
        log.warning("could not update %s: %s", latest, e)


class _Progress:
    """A progress bar fed by rank 0's step records while the ranks run."""

    def __init__(self, out_dir: Path, total: int) -> None:
        self.path = out_dir / "ranks" / "rank_00000.jsonl"
        self.total = total
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("rank 0 steps", total=self.total)
            while not self._stop.wait(0.25):
                bar.update(task, completed=self._count())
            bar.update(task, completed=self._count())

    def _count(self) -> int:
        try:
            with open(self.path, "rb") as f:
                return max(0, sum(1 for _ in f) - 1)  # minus the header line
        except OSError:
            return 0
