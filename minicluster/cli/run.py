"""The launching commands: `run`, `validate`, `collectives` (all ops, or the pairwise link test;
via `orchestrate.execute`), and `worker`, the per-rank entry for an outside launcher; plus the
configs they build from flags."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from minicluster.analysis.verdicts import exit_code
from minicluster.cli import orchestrate
from minicluster.cli.multinode import write_node_file
from minicluster.core import (
    choices,
    collective_defs,
    fault_spec,
    host_fit,
    launcher_env,
    pair_recheck,
    pairs,
)
from minicluster.core import config as config_mod
from minicluster.core.config import RunConfig
from minicluster.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    InputError,
    MiniclusterError,
    RunFailedError,
)
from minicluster.core.exit_policy import code_for
from minicluster.core.in_band import InBand
from minicluster.core.units import format_size, parse_size
from minicluster.launchers.base import Launcher
from minicluster.launchers.ray_launch import RayLauncher, RayOptions, check_options, ray_installed
from minicluster.launchers.torchrun import (
    DEFAULT_RDZV_ID,
    LocalTorchrun,
    NodeTorchrun,
    Rendezvous,
    parse_endpoint,
)
from minicluster.result import store
from minicluster.result.model import RunResult


def run(args: argparse.Namespace) -> int:
    """`minicluster run`: the training job on N local ranks, or this node's share of a job
    across nodes; exit code from the result (0 on a node that holds no result: its ranks
    finished and rank 0's node has the verdict)."""
    judge = _reference_judge(args)
    if getattr(args, "repeats", None) is not None:
        if judge is not None:
            raise InputError(
                "--reference judges one run: leave out --repeats (or judge each run after: "
                "minicluster aggregate DIR/rK --reference FILE)"
            )
        from minicluster.cli.repeats import run_repeats

        return run_repeats(args, lambda one: _launch_training(one, validating=False))
    result = _launch_training(args, validating=False, judge=judge)
    code = EXIT_OK if result is None else exit_code(result)
    write_junit(args, result, code)
    return code


def _reference_judge(args: argparse.Namespace) -> Any:
    """`--reference FILE [--floor-pct P]`: the hook that gives the result its `reference`
    section (each metric as % of the reference, below the floor a finding); the file is read
    now, so a bad one is refused before any rank starts. None without --reference."""
    from minicluster.cli.reference import check_flags, judge_hook

    reference = getattr(args, "reference", None)
    floor = getattr(args, "floor_pct", None)
    check_flags(reference, floor)
    return None if reference is None else judge_hook(reference, floor)


def write_junit(args: argparse.Namespace, result: RunResult | None, code: int) -> None:
    """`--junit F`: the run's verdicts as JUnit XML (nothing on a node that holds no result)."""
    if getattr(args, "junit", None) is None or result is None:
        return
    from minicluster.report.junit import run_cases, to_xml

    orchestrate.write_output(args.junit, to_xml("minicluster run", run_cases(result, code)))


def validate(args: argparse.Namespace) -> int:
    """`minicluster validate`: DDP equals one process; replicas identical (or, with `--layouts`,
    every layout trains the same losses). 0 pass, 1 fail."""
    if getattr(args, "layouts", None) is not None:  # `--layouts ""` is refused there
        if getattr(args, "parallel", None):
            raise InputError("--layouts gives the layouts to compare: leave out --parallel")
        from minicluster.cli.validate_layouts import validate_layouts

        cfg = config_mod.override(load_training_config(args.config), nproc=nproc_from_args(args))
        # --fault, --expect-busbw and --collective-timeout apply to every layout's run (a fault
        # was dropped here: `--fault corrupt_grad` passed, with nothing injected)
        cfg = with_faults(cfg, args)
        return validate_layouts(args, cfg, launcher_from_args(args))
    result = _launch_training(args, validating=True)
    if result is None:  # a dry run (validate runs on one node: a run's result is here)
        return EXIT_OK
    code = _validate_code(result)
    write_junit(args, result, code)
    return code


def _validate_code(result: RunResult) -> int:
    if result.status == "failed":
        print("minicluster: validate: the run failed; see errors above", file=sys.stderr)
        return code_for(["run_failed"])
    verdict = result.validation
    assert verdict is not None  # validate configures both checks
    if verdict.passed:
        eq = next(c for c in verdict.checks if c.name == "ddp_equivalence")
        rc = next(c for c in verdict.checks if c.name == "replica_consistency")
        print(
            f"minicluster: validate: PASS: DDP equals one process after {eq.steps} steps "
            f"(max abs diff {eq.max_abs_diff:.3g}, max relative L2 diff {eq.max_rel_diff:.3g} "
            f"<= {eq.rel_tolerance}); "
            f"replicas identical at {rc.steps_checked} checked steps"
        )
        return EXIT_OK
    print(f"minicluster: validate: FAIL: {verdict.reason}")
    return code_for(["validation_failed"])


def _launch_training(
    args: argparse.Namespace, validating: bool, judge: Any = None
) -> RunResult | None:
    """Resolve the config, start the ranks, aggregate: the shared body of `run` and `validate`.
    None on a node of a job across nodes that holds no result (see node.json), and on a dry
    run."""
    cfg = load_training_config(args.config)
    launcher = launcher_from_args(args)
    nproc = nproc_from_args(args)
    if nproc is not None and nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {nproc}")
    cfg = config_mod.override(cfg, nproc=nproc)
    cfg = config_mod.require(cfg, getattr(args, "require", []))
    orchestrate.check_required(cfg)
    if validating:
        if cfg.run.nproc < 2:
            raise InputError("validate compares ranks: it needs --nproc 2 or more")
        if (
            not config_mod.with_parallel(cfg, getattr(args, "parallel", None))
            .parallel.layout(cfg.run.nproc)
            .is_ddp
        ):
            raise InputError(
                "validate checks DDP against one process; for another layout compare it with "
                "DDP: validate --layouts ddp,fsdp,tp"
            )
        if isinstance(cfg.workload, config_mod.CustomConfig):
            raise InputError(
                "validate (DDP against one process) runs the built-in mlp and transformer "
                "workloads only: it does not build a custom model a second time on rank 0; for "
                "a custom model compare layouts instead: validate --layouts ddp,fsdp"
            )
        every = cfg.run.replica_check_every or 1
        cfg = config_mod.override(cfg, replica_check_every=every, check_ddp_equivalence=True)
    rendezvous = launcher.rendezvous if isinstance(launcher, NodeTorchrun) else None
    nnodes = rendezvous.nnodes if rendezvous else 1
    cfg = with_faults(cfg, args, world_size=cfg.run.nproc * nnodes)
    shared = None
    if isinstance(
        launcher, (LocalTorchrun, NodeTorchrun)
    ):  # this host's ranks (Ray places its own)
        shared = host_fit.check_local_ranks(cfg.run.nproc, orchestrate.on_gpu(cfg))
    what = "validate" if validating else "run"
    if args.dry_run:
        orchestrate.print_plan(launcher, cfg, args.out, f"{what}, {_steps_text(cfg)}", args.config)
        return None
    if shared:
        print(f"minicluster: {what}: warning: {shared}", file=sys.stderr)
    job = f"{rendezvous.endpoint}/{rendezvous.rdzv_id}" if rendezvous is not None else None
    run_id, out_dir = store.new_output(args.out, job=job)
    if rendezvous is None:
        print(
            f"minicluster: run {run_id}: {cfg.run.nproc} ranks via {launcher_text(launcher)}, "
            f"{_steps_text(cfg)} -> {out_dir}",
            file=sys.stderr,
        )
    else:
        # The job's run id is rank 0's, agreed at the rendezvous: not known on this node yet.
        print(
            f"minicluster: run: node {rendezvous.node_rank} of {nnodes} (c10d at "
            f"{rendezvous.endpoint}, id {rendezvous.rdzv_id}): {cfg.run.nproc} ranks here, "
            f"{cfg.run.nproc * nnodes} in all, via torchrun, {_steps_text(cfg)} -> {out_dir}; "
            "the run id is rank 0's, agreed at the rendezvous",
            file=sys.stderr,
        )
    from minicluster.cli.watch import watch_command

    print(f"minicluster: watch it live: {watch_command(out_dir)}", file=sys.stderr)
    return orchestrate.execute(
        cfg,
        launcher,
        out_dir,
        run_id,
        cfg.steps.warmup + cfg.steps.measured,
        point_at=args.out is None,
        md=args.md,
        html=args.html,
        judge=judge,
    )


def _steps_text(cfg: RunConfig) -> str:
    return f"{cfg.steps.warmup} warm-up + {cfg.steps.measured} measured steps"


def launcher_from_args(args: argparse.Namespace) -> Launcher:
    """The launcher the flags ask for: Ray (`--launcher ray`), this node's share of a job across
    nodes (`--nnodes` ...), or torchrun on this machine; InputError naming the flag."""
    rendezvous = rendezvous_from_args(args)
    ray = ray_from_args(args)
    if ray is not None and rendezvous is not None:
        raise InputError(
            "--nnodes/--rdzv-endpoint start torchrun agents; with --launcher ray, Ray places "
            "the ranks on its nodes (--ray-address, --placement)"
        )
    if ray is not None:
        return RayLauncher(ray)
    if rendezvous is not None:
        return NodeTorchrun(rendezvous)
    return LocalTorchrun()


def ray_from_args(args: argparse.Namespace) -> RayOptions | None:
    """The Ray options of `--launcher ray` (checked; InputError naming the flag), else None;
    a Ray flag without `--launcher ray` is an error, not ignored."""
    flags = {
        "--ray-address": getattr(args, "ray_address", None),
        "--cpus-per-worker": getattr(args, "cpus_per_worker", None),
        "--gpus-per-worker": getattr(args, "gpus_per_worker", None),
        "--placement": getattr(args, "placement", None),
    }
    if getattr(args, "launcher", "torchrun") != "ray":
        stray = [flag for flag, value in flags.items() if value is not None]
        if stray:
            raise InputError(f"{stray[0]} is for --launcher ray")
        return None
    given = {
        field: value
        for field, value in zip(
            ("address", "cpus_per_worker", "gpus_per_worker", "placement"),
            flags.values(),
            strict=True,
        )
        if value is not None
    }
    options = check_options(RayOptions(**given))
    ray_installed()
    return options


def launcher_text(launcher: Launcher) -> str:
    """How the ranks are started, for the run's first line."""
    if not isinstance(launcher, RayLauncher):
        return "torchrun"
    ray = launcher.options
    where = "a local Ray instance" if ray.address is None else f"the Ray cluster at {ray.address}"
    return f"Ray ({where}, {ray.placement}, {ray.cpus_per_worker:g} CPU per worker)"


def nproc_from_args(args: argparse.Namespace) -> int | None:
    """Ranks per node from `--nproc` or its torchrun name `--nproc-per-node` (one, or equal)."""
    nproc, per_node = args.nproc, getattr(args, "nproc_per_node", None)
    if nproc is not None and per_node is not None and nproc != per_node:
        raise InputError(
            f"--nproc {nproc} and --nproc-per-node {per_node} disagree: give one of them"
        )
    return per_node if per_node is not None else nproc


def rendezvous_from_args(args: argparse.Namespace) -> Rendezvous | None:
    """The multi-node flags checked as one: None without --nnodes; InputError naming the flag."""
    nnodes = getattr(args, "nnodes", None)
    given = [
        flag
        for flag, value in (
            ("--node-rank", getattr(args, "node_rank", None)),
            ("--rdzv-endpoint", getattr(args, "rdzv_endpoint", None)),
            ("--rdzv-id", getattr(args, "rdzv_id", None)),
        )
        if value is not None
    ]
    if nnodes is None:
        if given:
            raise InputError(f"{given[0]} is for a job across nodes: give --nnodes N as well")
        return None
    if nnodes < 1:
        raise InputError(f"--nnodes must be >= 1, got {nnodes}")
    if args.rdzv_endpoint is None:
        raise InputError(
            "--nnodes needs --rdzv-endpoint HOST:PORT: a host every node reaches and a free port"
        )
    try:
        parse_endpoint(args.rdzv_endpoint)
    except ValueError as e:
        raise InputError(f"--rdzv-endpoint: {e}") from None
    node_rank = 0 if args.node_rank is None else args.node_rank
    if not 0 <= node_rank < nnodes:
        raise InputError(f"--node-rank must be in 0..{nnodes - 1}, got {node_rank}")
    rdzv_id = args.rdzv_id if args.rdzv_id is not None else DEFAULT_RDZV_ID
    if not rdzv_id.strip():
        raise InputError("--rdzv-id must not be empty")
    return Rendezvous(nnodes, node_rank, args.rdzv_endpoint, rdzv_id)


def collectives(args: argparse.Namespace) -> int:
    """`minicluster collectives`: the nccl-tests-style benchmark, or the pairwise link test, on N
    local ranks."""
    cfg = collectives_config(args)
    launcher = launcher_from_args(args)
    section = cfg.collectives
    if section.pattern == "pairwise":
        if not isinstance(launcher, LocalTorchrun):
            raise InputError(
                "--pattern pairwise starts its ranks on this machine with torchrun: drop "
                "--launcher ray (the collectives benchmark, --pattern all, runs under Ray)"
            )
        return _pairwise(cfg, args, launcher)
    on_gpu = orchestrate.on_gpu(cfg)
    if section.max_bytes is None:  # pin the device's default so every rank uses the same sizes
        cfg = config_mod.with_collectives(cfg, max_bytes=section.max_bytes_for(on_gpu))
        section = cfg.collectives
    if section.root >= cfg.run.nproc:
        raise InputError(
            f"collectives.root is {section.root}; must be < the number of ranks ({cfg.run.nproc})"
        )
    sizes = section.sizes(on_gpu)
    unit = cfg.run.nproc * collective_defs.DTYPE_BYTES[section.dtype]
    span = (
        f"{len(sizes)} sizes {format_size(sizes[0])}..{format_size(sizes[-1])} "
        f"(x{section.step_factor}, K = 1024, "
        if len(sizes) > 1
        else f"size {format_size(sizes[0])} (K = 1024, "
    )
    what = (
        f"{', '.join(section.ops)}; {span}each rounded down to a "
        f"multiple of n x element size = {unit} B), {section.dtype}, "
        f"{section.warmup_iters} warm-up + {section.iters} timed calls per size"
    )
    if args.dry_run:
        orchestrate.print_plan(launcher, cfg, args.out, f"collectives: {what}", args.config)
        return EXIT_OK
    run_id, out_dir = store.new_output(args.out)
    print(
        f"minicluster: collectives {run_id}: {cfg.run.nproc} ranks via "
        f"{launcher_text(launcher)}, {what} -> {out_dir}",
        file=sys.stderr,
    )
    result = orchestrate.execute(
        cfg,
        launcher,
        out_dir,
        run_id,
        len(section.ops) * len(sizes),
        "rank 0 (op, size)",
        point_at=args.out is None,
        md=args.md,
        html=args.html,
    )
    assert result is not None  # one node: its result is always here
    return exit_code(result)


def _pairwise(cfg: RunConfig, args: argparse.Namespace, launcher: LocalTorchrun) -> int:
    """The pairwise link test on the local ranks; exit 1 when a pair is slow or wrong, 2 when
    the pairs' speed was NOT JUDGED (`not_judged`) and nothing else was found."""
    section, n = cfg.collectives, cfg.run.nproc
    if n < 2:
        raise InputError("--pattern pairwise tests links between ranks: it needs --nproc 2 or more")
    if section.per == "node":
        raise InputError(
            "--per node needs ranks on two nodes or more, and `minicluster collectives` starts "
            "its ranks on this node: run a config with collectives.per: node under a multi-node "
            "launcher (`torchrun --nnodes ... -m minicluster worker -c CONFIG`)"
        )
    rounds = pairs.round_robin(list(range(n)))
    n_pairs = sum(len(r) for r in rounds)
    if n_pairs == 1:
        order = "one round"
    elif section.schedule == "serial":
        order = f"{n_pairs} rounds of one pair (serial)"
    else:
        most = len(rounds[0])
        order = f"{len(rounds)} rounds of up to {most} pair{'s' if most != 1 else ''} at once (concurrent)"
    faults = "".join(f"; fault {f}" for f in cfg.faults)
    what = (
        f"pairwise link test of {n} ranks via torchrun: "
        f"{n_pairs} pair{'s' if n_pairs != 1 else ''} in {order}, send/recv of {format_size(section.pair_bytes)} each way "
        f"(K = 1024), {section.dtype}, {section.warmup_iters} warm-up + {section.iters} timed "
        f"transfers each way per pair, {section.passes} pass(es), "
        + pair_recheck.plan_text(section.recheck_rounds, n_pairs)
        + faults
    )
    if args.dry_run:
        orchestrate.print_plan(launcher, cfg, args.out, f"collectives: {what}", args.config)
        return EXIT_OK
    run_id, out_dir = store.new_output(args.out)
    print(f"minicluster: collectives {run_id}: {what} -> {out_dir}", file=sys.stderr)
    result = orchestrate.execute(
        cfg,
        launcher,
        out_dir,
        run_id,
        1 + (n - 1) * section.passes,  # rank 0's plan, then its n - 1 pairs in every pass
        "rank 0 plan + pairs",
        point_at=args.out is None,
        md=args.md,
        html=args.html,
    )
    return EXIT_OK if result is None else exit_code(result)


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
    store.ensure_writable(args.out)
    from minicluster.rank.workloads.custom import UserCodeError

    try:
        # --no-aggregate: the launcher reads the rank files, so nothing is gathered in-band.
        # A training job's records come by node: each node's leader sends rank 0 its node's
        # reduction (`analysis.node_reduce.reduce_logs`) instead of every rank's log.
        in_band: InBand | None = None
        if args.no_aggregate or cfg.job == "collectives":
            gathered = rank_worker.run(
                cfg, args.out, run_id=args.run_id, gather=not args.no_aggregate
            )
        else:
            from minicluster.analysis.node_reduce import reduce_logs

            in_band = rank_worker.run_in_band(cfg, args.out, args.run_id, reduce_logs)
            gathered = None
    except UserCodeError:
        if os.environ.get(launcher_env.LAUNCHER):
            # minicluster's own launcher prints it once, from the result (bad_input).
            return EXIT_BAD_INPUT
        raise
    except MiniclusterError:
        raise
    except OSError as e:
        if e.errno not in orchestrate.NO_SPACE:
            raise RunFailedError(f"rank failed: {type(e).__name__}: {e}") from None
        where = "" if e.filename else f" (writing under {args.out})"
        raise RunFailedError(
            f"rank {dist_rank()} failed: {orchestrate.no_space_text(e)}{where}"
        ) from None
    except Exception as e:
        raise RunFailedError(f"rank failed: {type(e).__name__}: {e}") from None
    if gathered is None and in_band is None:
        # A job across nodes: where this node's files do not sit beside rank 0's, say where the
        # result went (local rank 0 of the node, the one holding the job's roster).
        write_node_file(args.out, dist_rank())
        return EXIT_OK
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.node_reduce import aggregate_in_band
    from minicluster.analysis.records import from_gathered

    if in_band is not None:
        result = aggregate_in_band(in_band)
    else:
        assert gathered is not None
        result = aggregate(from_gathered(gathered))
    with orchestrate.ranks_started(args.out):
        path = orchestrate.write_result(args.out, result)
    typed = RunResult.from_json(result)
    if not args.quiet:
        orchestrate.print_summary(path, typed)
    return exit_code(typed)


def dist_rank() -> int:
    """This process's global rank as the launcher set it (RANK; 0 when run alone)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def load_training_config(path: Path | None) -> RunConfig:
    """The config at `path` (None: the default job); a collectives config is refused here. A
    custom model's factory is imported here, before any rank starts (its file recorded
    absolute, so that ranks started elsewhere find it)."""
    cfg = config_mod.load(path)
    if cfg.job == "collectives":
        raise InputError(
            f"{path} is a collectives config (job: collectives): "
            f"run it with `minicluster collectives -c {path}`"
        )
    return check_custom_workload(cfg)


def check_custom_workload(cfg: RunConfig) -> RunConfig:
    """A custom workload's factory imported in this process (UserCodeError, exit 2, when its
    file does not import or lacks the function), its file path made absolute; other workloads
    as they are. What `build(ctx)` returns is checked on the ranks (it needs their device)."""
    if not isinstance(cfg.workload, config_mod.CustomConfig):
        return cfg
    from minicluster.core import factory_spec
    from minicluster.rank.workloads.custom import load_factory

    spec = factory_spec.parse(cfg.workload.factory).absolute(Path.cwd())
    load_factory(str(spec))
    return dataclasses.replace(cfg, workload=dataclasses.replace(cfg.workload, factory=str(spec)))


def with_faults(
    cfg: RunConfig, args: argparse.Namespace, world_size: int | None = None
) -> RunConfig:
    """`cfg` with the --fault specs added, checked against the world before any rank starts
    (`world_size`: every node's ranks; default the config's ranks)."""
    added = tuple(fault_spec.parse(text) for text in args.fault)
    cfg = dataclasses.replace(cfg, faults=cfg.faults + added)
    cfg = config_mod.override(cfg, collective_timeout_s=args.collective_timeout)
    cfg = config_mod.with_checks(cfg, expect_busbw_gbps=args.expect_busbw)
    if any(f.kind == "corrupt_grad" for f in cfg.faults) and cfg.run.replica_check_every == 0:
        cfg = config_mod.override(cfg, replica_check_every=1)  # else nothing could catch it
    fault_spec.check_against_run(
        cfg.faults, world_size or cfg.run.nproc, cfg.steps.warmup + cfg.steps.measured
    )
    cfg = config_mod.with_parallel(cfg, getattr(args, "parallel", None))
    config_mod.check_layout(cfg, world_size or cfg.run.nproc)
    return cfg


def collectives_config(args: argparse.Namespace) -> RunConfig:
    """The collectives config: the file (which must say job: collectives) or the built-in one,
    with the command line's choices applied and checked (faults against the world too)."""
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
    cfg = config_mod.override(
        cfg, nproc=args.nproc, collective_timeout_s=getattr(args, "collective_timeout", None)
    )
    pattern = args.pattern or cfg.collectives.pattern
    _flags_fit_pattern(args, pattern)
    ops = None
    if args.ops is not None:
        ops = [op.strip() for op in args.ops.split(",") if op.strip()]
        unknown = [op for op in ops if op not in choices.OPS]
        if unknown or not ops:
            raise InputError(
                f"--ops: unknown collective {unknown[0] if unknown else args.ops!r}; "
                f"allowed: {', '.join(choices.OPS)}"
            )
    min_bytes = max_bytes = pair_bytes = None
    if args.sizes is not None:
        min_bytes, max_bytes = parse_sizes(args.sizes)
    if getattr(args, "size", None) is not None:
        pair_bytes, _ = parse_sizes(args.size, flag="--size", one=True)
    for flag, value, lo in (("--iters", args.iters, 1), ("--warmup-iters", args.warmup_iters, 0)):
        if value is not None and value < lo:
            raise InputError(f"{flag} must be >= {lo}, got {value}")
    cfg = config_mod.with_collectives(
        cfg,
        ops=ops,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        step_factor=args.step_factor,
        iters=args.iters,
        warmup_iters=args.warmup_iters,
        dtype=args.dtype,
        pattern=args.pattern,
        pair_bytes=pair_bytes,
        schedule=getattr(args, "schedule", None),
        per=getattr(args, "per", None),
        passes=getattr(args, "passes", None),
        recheck_rounds=getattr(args, "recheck_rounds", None),
        outlier_z=getattr(args, "outlier_z", None),
        min_busbw_gbps=getattr(args, "min_busbw", None),
    )
    added = tuple(fault_spec.parse(text) for text in getattr(args, "fault", []))
    cfg = dataclasses.replace(cfg, faults=cfg.faults + added)
    fault_spec.check_against_benchmark(
        cfg.faults, cfg.run.nproc, pattern in fault_spec.FAULT_PATTERNS
    )
    return cfg


# Flags of one pattern that the other would silently ignore.
_ALL_ONLY = (("ops", "--ops"), ("sizes", "--sizes"), ("step_factor", "--step-factor"))
_PAIRWISE_ONLY = (
    ("size", "--size"),
    ("schedule", "--serial/--concurrent"),
    ("per", "--per"),
    ("passes", "--passes"),
    ("recheck_rounds", "--recheck-rounds"),
    ("outlier_z", "--outlier-z"),
    ("min_busbw", "--min-busbw"),
)


def _flags_fit_pattern(args: argparse.Namespace, pattern: str) -> None:
    """InputError for a flag the chosen pattern does not use."""
    wrong = _ALL_ONLY if pattern == "pairwise" else _PAIRWISE_ONLY
    for attr, flag in wrong:
        if getattr(args, attr, None) is not None:
            other = "all" if pattern == "pairwise" else "pairwise"
            hint = " (one size per pair: --size)" if attr == "sizes" else ""
            raise InputError(
                f"{flag} applies to --pattern {other}, not to --pattern {pattern}{hint}"
            )


def parse_sizes(text: str, flag: str = "--sizes", one: bool = False) -> tuple[int, int]:
    """`MIN:MAX` or one size -> (min, max) bytes; K/M/G are powers of 1024 (nccl-tests -b/-e).
    `one`: only a single size is allowed (then min == max)."""
    parts = text.split(":")
    if len(parts) > (1 if one else 2):
        expected = "one size" if one else "MIN:MAX or one size"
        raise InputError(f"{flag}: expected {expected}, got {text!r}")
    try:
        lo, hi = (parse_size(p) for p in (parts * 2)[:2])
    except ValueError as e:
        raise InputError(f"{flag}: {e}") from None
    if lo < 1:
        raise InputError(f"{flag}: sizes must be >= 1 byte, got {text!r}")
    if hi < lo:
        raise InputError(f"{flag}: MAX ({format_size(hi)}) is below MIN ({format_size(lo)})")
    return lo, hi
