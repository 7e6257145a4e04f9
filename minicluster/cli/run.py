"""The launching commands: `run`, `validate`, `collectives` (via `orchestrate.execute`), and
`worker`, the per-rank entry for an outside launcher; plus the configs they build from flags."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from minicluster.analysis.verdicts import exit_code
from minicluster.cli import orchestrate
from minicluster.core import choices, collective_defs, fault_spec
from minicluster.core import config as config_mod
from minicluster.core.config import RunConfig
from minicluster.core.errors import (
    EXIT_FAILED_CHECK,
    EXIT_OK,
    EXIT_RUN_FAILED,
    InputError,
    MiniclusterError,
    RunFailedError,
)
from minicluster.core.units import format_size, parse_size


def run(args: argparse.Namespace) -> int:
    """`minicluster run`: the training job on N local ranks; exit code from the result."""
    return exit_code(_launch_training(args, validating=False))


def validate(args: argparse.Namespace) -> int:
    """`minicluster validate`: DDP equals one process; replicas identical. 0 pass, 1 fail."""
    result = _launch_training(args, validating=True)
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


def _launch_training(args: argparse.Namespace, validating: bool) -> dict[str, Any]:
    """Resolve the config, start the ranks, aggregate: the shared body of `run` and `validate`."""
    cfg = load_training_config(args.config)
    if args.nproc is not None and args.nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {args.nproc}")
    cfg = config_mod.override(cfg, nproc=args.nproc)
    cfg = config_mod.require(cfg, getattr(args, "require", []))
    orchestrate.check_required(cfg)
    if validating:
        if cfg.run.nproc < 2:
            raise InputError("validate compares ranks: it needs --nproc 2 or more")
        every = cfg.run.replica_check_every or 1
        cfg = config_mod.override(cfg, replica_check_every=every, check_ddp_equivalence=True)
    cfg = with_faults(cfg, args)
    run_id, out_dir = orchestrate.new_output(args.out)
    print(
        f"minicluster: run {run_id}: {cfg.run.nproc} ranks via {getattr(args, 'launcher', 'torchrun')}, "
        f"{cfg.steps.warmup} warm-up + {cfg.steps.measured} measured steps -> {out_dir}",
        file=sys.stderr,
    )
    from minicluster.cli.watch import watch_command

    print(f"minicluster: watch it live: {watch_command(out_dir)}", file=sys.stderr)
    return orchestrate.execute(
        cfg,
        out_dir,
        run_id,
        cfg.steps.warmup + cfg.steps.measured,
        point_at=args.out is None,
        md=args.md,
        html=args.html,
    )


def collectives(args: argparse.Namespace) -> int:
    """`minicluster collectives`: the nccl-tests-style benchmark on N local ranks."""
    cfg = collectives_config(args)
    on_gpu = orchestrate.on_gpu(cfg)
    section = cfg.collectives
    if section.max_bytes is None:  # pin the device's default so every rank uses the same sizes
        cfg = config_mod.with_collectives(cfg, max_bytes=section.max_bytes_for(on_gpu))
        section = cfg.collectives
    if section.root >= cfg.run.nproc:
        raise InputError(
            f"collectives.root is {section.root}; must be < the number of ranks ({cfg.run.nproc})"
        )
    sizes = section.sizes(on_gpu)
    run_id, out_dir = orchestrate.new_output(args.out)
    unit = cfg.run.nproc * collective_defs.DTYPE_BYTES[section.dtype]
    span = (
        f"{len(sizes)} sizes {format_size(sizes[0])}..{format_size(sizes[-1])} "
        f"(x{section.step_factor}, K = 1024, "
        if len(sizes) > 1
        else f"size {format_size(sizes[0])} (K = 1024, "
    )
    print(
        f"minicluster: collectives {run_id}: {cfg.run.nproc} ranks via torchrun, "
        f"{', '.join(section.ops)}; {span}each rounded down to a "
        f"multiple of n x element size = {unit} B), {section.dtype}, "
        f"{section.warmup_iters} warm-up + {section.iters} timed calls per size -> {out_dir}",
        file=sys.stderr,
    )
    result = orchestrate.execute(
        cfg,
        out_dir,
        run_id,
        len(section.ops) * len(sizes),
        "rank 0 (op, size)",
        point_at=args.out is None,
        md=args.md,
        html=args.html,
    )
    return exit_code(result)


def worker(args: argparse.Namespace) -> int:
    """`minicluster worker`: this process is one rank of a job an outside launcher started."""
    from minicluster.rank import worker as rank_worker

    cfg = config_mod.load(args.config)
    if cfg.job == "collectives" and args.require:
        raise InputError(
            "--require applies to training jobs; a collectives job samples no telemetry"
        )
    cfg = config_mod.require(cfg, args.require)
    orchestrate.check_required(cfg)
    orchestrate.ensure_writable(args.out)
    try:
        gathered = rank_worker.run(cfg, args.out, run_id=args.run_id)
    except MiniclusterError:
        raise
    except Exception as e:
        raise RunFailedError(f"rank failed: {type(e).__name__}: {e}") from None
    if gathered is None or args.no_aggregate:
        return EXIT_OK
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import from_gathered

    result = aggregate(from_gathered(gathered))
    orchestrate.write_and_print(args.out, result)
    return exit_code(result)


def load_training_config(path: Path | None) -> RunConfig:
    """The config at `path` (None: the default job); a collectives config is refused here."""
    cfg = config_mod.load(path)
    if cfg.job == "collectives":
        raise InputError(
            f"{path} is a collectives config (job: collectives): "
            f"run it with `minicluster collectives -c {path}`"
        )
    return cfg


def with_faults(cfg: RunConfig, args: argparse.Namespace) -> RunConfig:
    """`cfg` with the --fault specs added, checked against the world before any rank starts."""
    added = tuple(fault_spec.parse(text) for text in args.fault)
    cfg = dataclasses.replace(cfg, faults=cfg.faults + added)
    cfg = config_mod.override(
        cfg, collective_timeout_s=args.collective_timeout, expect_busbw_gbps=args.expect_busbw
    )
    if any(f.kind == "corrupt_grad" for f in cfg.faults) and cfg.run.replica_check_every == 0:
        cfg = config_mod.override(cfg, replica_check_every=1)  # else nothing could catch it
    fault_spec.check_against_run(cfg.faults, cfg.run.nproc, cfg.steps.warmup + cfg.steps.measured)
    return cfg


def collectives_config(args: argparse.Namespace) -> RunConfig:
    """The collectives config: the file (which must say job: collectives) or the built-in one,
    with the command line's choices applied and checked."""
    if args.config is None:
        cfg = RunConfig(name="collectives", job="collectives")
    else:
        cfg = config_mod.load(args.config)
        if cfg.job != "collectives":
            raise InputError(
                f"{args.config} is a training config (job: {cfg.job}); give one with "
                "job: collectives (see configs/collectives.yaml) or none"
            )
    if args.nproc is not None and args.nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {args.nproc}")
    cfg = config_mod.override(cfg, nproc=args.nproc)
    ops = None
    if args.ops is not None:
        ops = [op.strip() for op in args.ops.split(",") if op.strip()]
        unknown = [op for op in ops if op not in choices.OPS]
        if unknown or not ops:
            raise InputError(
                f"--ops: unknown collective {unknown[0] if unknown else args.ops!r}; "
                f"allowed: {', '.join(choices.OPS)}"
            )
    min_bytes = max_bytes = None
    if args.sizes is not None:
        min_bytes, max_bytes = parse_sizes(args.sizes)
    for flag, value, lo in (("--iters", args.iters, 1), ("--warmup-iters", args.warmup_iters, 0)):
        if value is not None and value < lo:
            raise InputError(f"{flag} must be >= {lo}, got {value}")
    return config_mod.with_collectives(
        cfg,
        ops=ops,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        step_factor=args.step_factor,
        iters=args.iters,
        warmup_iters=args.warmup_iters,
        dtype=args.dtype,
    )


def parse_sizes(text: str) -> tuple[int, int]:
    """`MIN:MAX` or one size -> (min, max) bytes; K/M/G are powers of 1024 (nccl-tests -b/-e)."""
    parts = text.split(":")
    if len(parts) > 2:
        raise InputError(f"--sizes: expected MIN:MAX or one size, got {text!r}")
    try:
        lo, hi = (parse_size(p) for p in (parts * 2)[:2])
    except ValueError as e:
        raise InputError(f"--sizes: {e}") from None
    if lo < 1:
        raise InputError(f"--sizes: sizes must be >= 1 byte, got {text!r}")
    if hi < lo:
        raise InputError(f"--sizes: MAX ({format_size(hi)}) is below MIN ({format_size(lo)})")
    return lo, hi
