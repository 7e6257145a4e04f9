"""`minicluster sweep`: one run per world size (and round) in this session, then the scaling
block over them; `sweep --from`: the same block from finished runs of separate jobs; and
re-building a sweep from its directory (`aggregate DIR`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from minicluster.analysis import scaling, sweep
from minicluster.analysis.sweep import PlannedRun, RunOutcome
from minicluster.analysis.sweep_from import from_finished_runs as sweep_from_runs
from minicluster.cli import orchestrate, sweep_projection
from minicluster.cli.run import launcher_from_args, launcher_text, load_training_config
from minicluster.cli.watch import watch_command
from minicluster.core import clock, fault_spec, host_fit, rundir
from minicluster.core import config as config_mod
from minicluster.core.choices import SWEEP_MODE, SWEEP_REPEATS, SWEEP_WORLD_SIZES
from minicluster.core.config import RunConfig
from minicluster.core.errors import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    InputError,
    MiniclusterError,
    RunFailedError,
)
from minicluster.core.io import atomic_write_json
from minicluster.launchers.base import Launcher
from minicluster.launchers.torchrun import LocalTorchrun
from minicluster.result import read_json, store
from minicluster.result.model import RunResult


def run_sweep(args: argparse.Namespace) -> int:
    """One run per world size (and round) in this session, then the scaling block over them."""
    if args.layouts is not None:  # `--layouts ""` is refused there, not a world-size sweep
        from minicluster.cli.sweep_layouts import sweep_layouts

        return sweep_layouts(args)
    if args.from_dirs:
        return sweep_from(args)
    args.mode = args.mode or SWEEP_MODE
    args.repeats = SWEEP_REPEATS if args.repeats is None else args.repeats
    given = SWEEP_WORLD_SIZES if args.world_sizes is None else args.world_sizes
    world_sizes = sweep.parse_world_sizes(given)
    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1, got {args.repeats}")
    if args.global_batch is not None and args.mode != "strong":
        raise InputError(
            "--global-batch applies to --mode strong; weak scaling keeps the config's "
            "per-rank batch on every rank"
        )
    cfg = config_mod.require(load_training_config(args.config), args.require)
    cfg = config_mod.with_parallel(cfg, args.parallel)
    launcher = launcher_from_args(args)
    per_rank_batch = cfg.workload.per_rank_batch
    global_batch = None
    if args.mode == "strong":
        if per_rank_batch is None:
            raise InputError(
                "--mode strong divides a global batch among the ranks: a custom workload needs "
                "workload.per_rank_batch (handed to build as ctx.per_rank_batch)"
            )
        global_batch = sweep.strong_global_batch(args.global_batch, per_rank_batch, world_sizes)
    # The same threads per rank at every world size: else the 1-rank baseline would get every
    # core and the efficiency would measure the thread count, not the scaling.
    cores = os.cpu_count()
    threads = cfg.run.threads_per_rank or config_mod.default_threads(cores, max(world_sizes))
    gpu = orchestrate.on_gpu(cfg)
    own_cores = [n for n in world_sizes if gpu or cores is None or n * threads <= cores]
    projection = sweep_projection.projection_plan(args, world_sizes, own_cores)
    total_steps = cfg.steps.warmup + cfg.steps.measured
    configs = {}
    for n in world_sizes:
        batch = per_rank_batch if global_batch is None else global_batch // n
        configs[n] = _sweep_run_config(cfg, n, batch, threads)
        fault_spec.check_against_run(cfg.faults, n, total_steps)
        config_mod.check_layout(cfg, n)
    orchestrate.check_required(cfg)
    if isinstance(launcher, LocalTorchrun):  # refuses a world size this host cannot hold
        host_fit.check_local_ranks(
            max(world_sizes),
            gpu,
            flag=f"--world-sizes {args.world_sizes} (world size {max(world_sizes)})",
        )
    warning = sweep.oversubscription_warning(max(world_sizes), cores, gpu)
    runs = sweep.plan(world_sizes, args.repeats)
    what = (
        f"{args.mode} scaling, world sizes {','.join(map(str, world_sizes))}, {args.repeats} "
        f"round(s) = {len(runs)} runs of {cfg.steps.warmup} warm-up + {cfg.steps.measured} "
        "measured steps"
    )
    if args.dry_run:
        probe = (projection or {}).get("probe_world_size")
        return _print_sweep_plan(launcher, configs, args.out, what, warning, probe)
    sweep_id, out_dir = store.new_output(args.out, "sweep")
    default_out = args.out is None
    if warning:
        print(f"minicluster: sweep: warning: {warning}", file=sys.stderr)
    # Written first: `minicluster aggregate DIR` re-builds the sweep result from it and the runs
    # that finished, also after a crash or Ctrl-C.
    plan = {
        "sweep_id": sweep_id,
        "created_at": clock.utc_now_iso(),
        "mode": args.mode,
        "world_sizes": world_sizes,
        "repeats": args.repeats,
        "per_rank_batch": per_rank_batch if args.mode == "weak" else None,
        "global_batch": global_batch,
        "threads_per_rank": threads,
        "warnings": [warning] if warning else [],
        "projection": projection,
    }
    atomic_write_json(rundir.plan_path(out_dir), plan)
    print(
        f"minicluster: sweep {sweep_id}: {what} via {launcher_text(launcher)} -> {out_dir}",
        file=sys.stderr,
    )
    print(f"minicluster: watch it live: {watch_command(out_dir)}", file=sys.stderr)
    outcomes: list[RunOutcome] = []
    try:
        for i, planned in enumerate(runs, start=1):
            print(
                f"sweep: [{i}/{len(runs)}] world size {planned.world_size}, round "
                f"{planned.round}/{args.repeats} -> {out_dir / planned.name}",
                file=sys.stderr,
            )
            run_id = f"{sweep_id}-{planned.name}"
            cfg_n = configs[planned.world_size]
            outcomes.append(_sweep_run(planned, cfg_n, out_dir, run_id, launcher))
    except KeyboardInterrupt:
        finished = len(outcomes)
        # The interrupted run's own result (what its ranks recorded) counts as a failed run,
        # as `aggregate DIR` will count it later.
        partial = runs[finished]
        try:
            result = read_json(out_dir / partial.name)
            outcomes.append(RunOutcome(partial, result, "interrupted by the user"))
        except MiniclusterError:
            pass  # its ranks left nothing: it stays among the runs that never ran
        print(
            f"minicluster: sweep interrupted during {partial.name} ({finished} of {len(runs)} "
            "runs finished); the result below is built from what ran",
            file=sys.stderr,
        )
        if outcomes:
            _finish_sweep(out_dir, plan, outcomes, args.md, args.html)
        raise
    try:
        sweep_projection.run_probe(out_dir, sweep_id, plan, cfg, threads, outcomes, launcher)
    except KeyboardInterrupt:
        print(
            "minicluster: sweep interrupted during the all_reduce probe; the result below has "
            "no projection",
            file=sys.stderr,
        )
        _finish_sweep(out_dir, plan, outcomes, args.md, args.html)
        raise
    if default_out:
        orchestrate.point_latest(out_dir)
    return _finish_sweep(out_dir, plan, outcomes, args.md, args.html)


def _print_sweep_plan(
    launcher: Launcher,
    configs: dict[int, RunConfig],
    out: Path | None,
    what: str,
    warning: str | None,
    probe: int | None,
) -> int:
    """`sweep --dry-run`: the sweep, then the launch plan of each world size's run (every round
    of a world size starts the same ranks); starts and claims nothing. `probe`: the world size
    of the all_reduce probe `--project` runs afterwards, if any."""
    sweep_id, sweep_dir = store.check_planned_output(out, "sweep")
    print(f"minicluster: dry run: sweep {sweep_id}: {what} -> {sweep_dir}; nothing started")
    if warning:
        print(f"  warning: {warning}")
    for n, cfg in configs.items():
        run_dir = sweep_dir / sweep.plan([n], 1)[0].name
        print(f"world size {n}:")
        for line in launcher.plan(cfg, run_dir, f"{sweep_id}-{run_dir.name}").lines():
            print(f"  {line}")
    if probe is not None:
        print(
            f"then, for --project: an all_reduce size sweep at world size {probe} -> "
            f"{rundir.allreduce_probe_dir(sweep_dir, probe)}"
        )
    return EXIT_OK


def sweep_from(args: argparse.Namespace) -> int:
    """`sweep --from DIR...`: the scaling block and sweep result from finished runs of different
    world sizes (separate jobs), written to a new sweep directory."""
    given = [
        flag
        for flag, value in (
            ("-c/--config", args.config),
            ("--world-sizes", args.world_sizes),
            ("--repeats", args.repeats),
            ("--global-batch", args.global_batch),
            ("--require", args.require or None),
            ("--launcher ray", "ray" if args.launcher == "ray" else None),
            ("--dry-run", True if args.dry_run else None),
        )
        if value is not None
    ]
    if given:
        raise InputError(
            f"{given[0]} does not apply to --from: the finished runs say what ran (drop it)"
        )
    runs = [(str(d), read_json(d)) for d in args.from_dirs]
    found = sweep_from_runs(runs, args.mode)
    # Finished runs start no probe: --project needs the link given, or a collectives result;
    # InputError (exit 2) here rather than a sweep without the projection it was asked for.
    projection = sweep_projection.projection_plan(args, found.world_sizes, None)
    sweep_id, out_dir = store.new_output(args.out, "sweep")
    plan = {
        "sweep_id": sweep_id,
        "created_at": clock.utc_now_iso(),
        "mode": found.mode,
        "world_sizes": found.world_sizes,
        "repeats": 1,
        "per_rank_batch": found.per_rank_batch,
        "global_batch": found.global_batch,
        "threads_per_rank": found.threads_per_rank,
        "warnings": found.warnings,
        sweep.FROM_KEY: [str(Path(o.dir).resolve()) for o in found.outcomes],
    }
    if projection is not None:
        plan["projection"] = projection
    atomic_write_json(rundir.plan_path(out_dir), plan)
    print(
        f"minicluster: sweep {sweep_id}: {found.mode} scaling from {len(runs)} finished runs, "
        f"world sizes {','.join(map(str, found.world_sizes))} -> {out_dir}",
        file=sys.stderr,
    )
    for w in found.warnings:
        print(f"minicluster: sweep: warning: {w}", file=sys.stderr)
    if args.out is None:
        orchestrate.point_latest(out_dir)
    return _finish_sweep(out_dir, plan, found.outcomes, args.md, args.html)


def _finish_sweep(
    out_dir: Path,
    plan: dict[str, Any],
    outcomes: list[RunOutcome],
    md: Path | None,
    html: Path | None,
) -> int:
    """Build, write and print the sweep result from the runs in `outcomes`; the exit code."""
    runs = sweep.plan(plan["world_sizes"], plan["repeats"])
    finished = plan.get(sweep.FROM_KEY)
    block = scaling.build_scaling(
        outcomes,
        plan["mode"],
        plan["world_sizes"],
        plan["repeats"],
        plan["per_rank_batch"],
        plan["global_batch"],
        plan["threads_per_rank"],
        plan["warnings"],
        order=f"finished runs of separate jobs: {', '.join(finished)}" if finished else None,
    )
    if plan.get("projection"):
        block["projection"] = sweep_projection.projection_block(block, plan, out_dir)
    now = clock.utc_now_iso()
    result = sweep.sweep_result(
        outcomes, block, plan["sweep_id"], plan["created_at"], now, planned_runs=len(runs)
    )
    failed = [o.dir for o in outcomes if o.status == "failed"]
    if result is None:
        raise RunFailedError(f"sweep: no run produced a result ({', '.join(failed)} failed)")
    orchestrate.write_and_print(out_dir, result.to_json())
    orchestrate.write_reports(result.to_result(), md, html)
    if len(outcomes) < len(runs):
        print(
            f"minicluster: sweep: {len(runs) - len(outcomes)} of {len(runs)} runs never ran "
            "(status incomplete)",
            file=sys.stderr,
        )
    if failed:
        print(
            f"minicluster: sweep: {len(failed)} of {len(runs)} runs failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    # A live sweep that was interrupted never gets here (KeyboardInterrupt: 130); `aggregate`
    # of one exits by what its runs found.
    # one policy over every run's verdicts (a straggler in one run, 1, outranks another run
    # not judged for too few steps, 2: a max of the codes would not)
    from minicluster.analysis.verdicts import after_the_fact
    from minicluster.core.exit_policy import code_for

    return code_for(
        v for o in outcomes if o.result for v in after_the_fact(RunResult.from_json(o.result))
    )


def aggregate_sweep(sweep_dir: Path) -> int:
    """Re-build every run of a sweep that left rank files, then the sweep result over them (a
    sweep built `--from` finished runs: from their results, read again)."""
    plan = sweep.load_plan(sweep_dir)
    if plan.get(sweep.FROM_KEY):
        found = sweep_from_runs(
            [(d, read_json(Path(d))) for d in plan[sweep.FROM_KEY]], plan["mode"]
        )
        return _finish_sweep(sweep_dir, plan, found.outcomes, None, None)
    outcomes: list[RunOutcome] = []
    for planned in sweep.plan(plan["world_sizes"], plan["repeats"]):
        run_dir = sweep_dir / planned.name
        if not rundir.ranks_dir(run_dir).is_dir():
            continue  # never started: the sweep stopped before it
        try:
            result = orchestrate.aggregate_dir(run_dir, None, quiet=True)
        except MiniclusterError as e:
            outcomes.append(RunOutcome(planned, None, str(e)))
            continue
        outcomes.append(RunOutcome(planned, result.to_json()))
        print(f"aggregate: {planned.name}: {result.status}", file=sys.stderr)
    if not outcomes:
        raise InputError(f"{sweep_dir}: a sweep directory, but none of its runs left rank files")
    sweep_projection.reaggregate_probe(sweep_dir, plan)
    return _finish_sweep(sweep_dir, plan, outcomes, None, None)


def _sweep_run_config(
    cfg: RunConfig, nproc: int, per_rank_batch: int | None, threads_per_rank: int
) -> RunConfig:
    """`cfg` for one run of a sweep: its world size, per-rank batch and threads per rank."""
    cfg = config_mod.override(cfg, nproc=nproc, threads_per_rank=threads_per_rank)
    if per_rank_batch is not None and cfg.workload.per_rank_batch != per_rank_batch:
        workload = dataclasses.replace(cfg.workload, per_rank_batch=per_rank_batch)
        cfg = dataclasses.replace(cfg, workload=workload)
    return cfg


def _sweep_run(
    planned: PlannedRun, cfg: RunConfig, sweep_dir: Path, run_id: str, launcher: Launcher
) -> RunOutcome:
    """Launch and aggregate one run of a sweep in its own sub-directory; one line says how it went."""
    from minicluster.report.text import fmt_num

    out_dir = sweep_dir / planned.name
    store.ensure_writable(out_dir)
    total = cfg.steps.warmup + cfg.steps.measured
    try:
        result = orchestrate.execute(cfg, launcher, out_dir, run_id, total, quiet=True)
    except RunFailedError as e:  # the launch failed before any rank recorded anything
        why = str(e)
        print(f"sweep: {planned.name}: failed: {why}", file=sys.stderr)
        return RunOutcome(planned, None, why)
    except MiniclusterError as e:  # no rank left a record to aggregate
        launcher_error = store.launcher_record(out_dir).get("error")
        why = f"launcher: {launcher_error}; {e}" if launcher_error else str(e)
        print(f"sweep: {planned.name}: failed: {why}", file=sys.stderr)
        return RunOutcome(planned, None, why)
    outcome = RunOutcome(planned, result.to_json() if result is not None else None)
    line = f"sweep: {planned.name}: {outcome.status}"
    if outcome.status == "ok":
        line += (
            f", {fmt_num(outcome.value('throughput_samples_per_sec'))} samples/s, "
            f"step p50 {fmt_num(outcome.value('latency_p50_ms'))} ms"
        )
    else:
        line += f": {outcome.why_not_ok()}"
    print(line, file=sys.stderr)
    return outcome
