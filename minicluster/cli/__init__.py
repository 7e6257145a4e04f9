"""The `minicluster` command line: parse arguments, call one command, map errors to exit codes.

Heavy modules (torch, the launchers) are imported inside the commands that need them, so the
analysis commands start fast and run without torch installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minicluster import __version__
from minicluster.analysis.verdicts import exit_code
from minicluster.core import collective_defs, rundir
from minicluster.core.config import REQUIRABLE_MEASUREMENTS
from minicluster.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECK,
    EXIT_OK,
    EXIT_RUN_FAILED,
    InputError,
    MiniclusterError,
    RunFailedError,
)
from minicluster.core.units import format_size, parse_size

if TYPE_CHECKING:
    from minicluster.analysis.scaling import PlannedRun, RunOutcome

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
    _add_report_flags(p)
    _add_require(p)
    _add_fault_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "validate",
        help="correctness: DDP equals one process on the global batch; replicas stay identical",
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--nproc", type=int, help="ranks to start (default: config run.nproc, 2)")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    _add_report_flags(p)
    _add_fault_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "sweep", help="one run per world size in one session; scaling efficiency table and plot"
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument(
        "--world-sizes",
        default="1,2,4",
        metavar="N,N,...",
        help="world sizes to run, comma-separated; the smallest is the baseline (default: 1,2,4)",
    )
    p.add_argument(
        "--mode",
        choices=["weak", "strong"],
        default="weak",
        help="weak: the config's per-rank batch on every rank; strong: one global batch split "
        "over the ranks (default: weak)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        metavar="K",
        help="rounds over all world sizes, interleaved (1,2,4,1,2,4,...); efficiency is the "
        "median over rounds (default: 1)",
    )
    p.add_argument(
        "--global-batch",
        type=int,
        metavar="B",
        help="strong mode: the fixed global batch; every world size must divide it "
        "(default: config per-rank batch x largest world size)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<sweep_id>)")
    _add_report_flags(p)
    _add_require(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "collectives",
        help="collective micro-benchmarks (nccl-tests style): time, algbw, busbw, #wrong per size",
        description="Time each collective at message sizes min..max (doubling) on N local ranks, "
        "after checking its result element by element. time = mean over iterations after "
        "warm-up, max across ranks; algbw = size / time; busbw = algbw x factor (all_reduce "
        "2(n-1)/n; all_gather, reduce_scatter, all_to_all (n-1)/n; broadcast 1), as nccl-tests "
        "reports them. GB/s are decimal (1e9 B/s); sizes use K = 1024.",
    )
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        help="YAML config with job: collectives (default: built-in, see configs/collectives.yaml)",
    )
    p.add_argument("--nproc", type=int, help="ranks to start (default: config run.nproc, 2)")
    p.add_argument(
        "--ops",
        metavar="OP,OP",
        help=f"comma list of {', '.join(collective_defs.OPS)} (default: config, all five)",
    )
    p.add_argument(
        "--sizes",
        metavar="MIN:MAX",
        help="message sizes in bytes, MIN:MAX doubling or one size; K/M/G = 1024^n "
        f"(default: config, else {format_size(collective_defs.DEFAULT_MIN_BYTES)}:"
        f"{format_size(collective_defs.GPU_DEFAULT_MAX_BYTES)} on a GPU, "
        f"{format_size(collective_defs.DEFAULT_MIN_BYTES)}:"
        f"{format_size(collective_defs.CPU_DEFAULT_MAX_BYTES)} on CPU)",
    )
    p.add_argument(
        "--step-factor",
        type=int,
        metavar="F",
        help="multiply the size by F from MIN to MAX (nccl-tests -f; default: config, 2)",
    )
    p.add_argument("--iters", type=int, help="timed calls per size (default: config, 20)")
    p.add_argument(
        "--warmup-iters", type=int, help="untimed calls before them (default: config, 5)"
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        help="element type (default: float32)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: runs/<run_id>)")
    _add_report_flags(p)
    p.set_defaults(func=cmd_collectives)

    p = sub.add_parser("worker", help="per-rank entry for an outside launcher (torchrun, srun)")
    p.add_argument("-c", "--config", type=Path, help="YAML config (default: built-in default job)")
    p.add_argument("--out", type=Path, required=True, help="output directory shared by the ranks")
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument(
        "--no-aggregate",
        action="store_true",
        help="rank 0 does not write result.json (the launcher aggregates)",
    )
    _add_require(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("aggregate", help="re-build result.json from the rank files of a run")
    p.add_argument("dir", type=Path, help="run directory (holds ranks/)")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("report", help="render a result: terminal summary, Markdown, HTML")
    p.add_argument("result", type=Path, help="a result.json, or a run or sweep directory")
    _add_report_flags(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "compare", help="compare results of any supported format; exit 1 on a gated regression"
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="minicluster result (file or run dir), TrackIQ JSON, vLLM JSON, markdown report",
    )
    p.add_argument(
        "--baseline", type=Path, help="the input the others are compared to (default: the first)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="percent change that counts as a regression (default: 5)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="significance level of the Mann-Whitney U test (default: 0.05)",
    )
    p.add_argument(
        "--format",
        choices=["minicluster", "trackiq", "vllm", "markdown"],
        help="force the input format (default: detected from content)",
    )
    p.add_argument("--md", type=Path, help="write the comparison as Markdown")
    p.add_argument("--html", type=Path, help="write the comparison as a minimal HTML table")
    p.add_argument("--json", type=Path, help="write the comparison as JSON data")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("convert", help="convert a result of any supported format")
    p.add_argument("input", type=Path, metavar="IN")
    p.add_argument(
        "--to",
        required=True,
        choices=["trackiq", "csv", "parquet", "minicluster"],
        help="output format",
    )
    p.add_argument(
        "--format",
        choices=["minicluster", "trackiq", "vllm", "markdown"],
        help="force the input format (default: detected from content)",
    )
    p.add_argument("-o", "--out", type=Path, help="output file (default: stdout)")
    p.set_defaults(func=cmd_convert)
    p = sub.add_parser("doctor", help="what this machine can measure (GPU, NVML, RAPL, thermal)")
    p.set_defaults(func=cmd_doctor)
    return parser


def _add_report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--md", type=Path, metavar="FILE", help="also write a Markdown report here")
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML report here"
    )


def _add_require(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="WHAT",
        choices=REQUIRABLE_MEASUREMENTS,
        help="fail up front (exit 2) when WHAT cannot be measured here "
        "(repeatable; also config telemetry.require)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from minicluster.core.log import setup_logging

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
    return exit_code(_launch(args, validating=False))


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
    from minicluster.core import config as config_mod
    from minicluster.core.io import atomic_write_json

    cfg = _load_training_config(args.config)
    if args.nproc is not None and args.nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {args.nproc}")
    cfg = config_mod.override(cfg, nproc=args.nproc)
    cfg = config_mod.require(cfg, getattr(args, "require", []))
    _check_required(cfg)
    if validating:
        if cfg.run.nproc < 2:
            raise InputError("validate compares ranks: it needs --nproc 2 or more")
        every = cfg.run.replica_check_every or 1
        cfg = config_mod.override(cfg, replica_check_every=every, check_ddp_equivalence=True)
    cfg = _with_faults(cfg, args)
    run_id, out_dir = _new_output(args.out)
    default_out = args.out is None
    resolved = rundir.config_path(out_dir)  # JSON is YAML: the workers load it like any config
    atomic_write_json(resolved, cfg.to_dict())

    total = cfg.steps.warmup + cfg.steps.measured
    print(
        f"minicluster: run {run_id}: {cfg.run.nproc} ranks via {getattr(args, 'launcher', 'torchrun')}, "
        f"{cfg.steps.warmup} warm-up + {cfg.steps.measured} measured steps -> {out_dir}",
        file=sys.stderr,
    )
    launcher_error = _launch_ranks(resolved, cfg, out_dir, run_id, total)
    result = _aggregate_dir(out_dir, launcher_error)
    if default_out:
        _point_latest(out_dir)
    _write_reports(result, getattr(args, "md", None), getattr(args, "html", None))
    return result


def _launch_ranks(
    resolved: Path, cfg: Any, out_dir: Path, run_id: str, total: int, label: str = "rank 0 steps"
) -> str | None:
    """Start the ranks under a progress bar; None on success, else why they failed.

    On Ctrl-C the ranks' records so far still become `out_dir/result.json` (status failed,
    every recorded step kept) before the interrupt goes on up.
    """
    from minicluster.launchers.torchrun import launch_local

    try:
        with _Progress(out_dir, total, label):
            error = launch_local(resolved, cfg.run.nproc, out_dir, run_id, cfg.run.threads_per_rank)
    except KeyboardInterrupt:
        print(
            f"minicluster: interrupted; keeping what the ranks recorded in {out_dir}",
            file=sys.stderr,
        )
        _record_launcher_error(out_dir, INTERRUPTED)
        try:
            _aggregate_dir(out_dir, INTERRUPTED, quiet=True)
        except MiniclusterError as e:
            print(f"minicluster: nothing to keep: {e}", file=sys.stderr)
        raise
    if error is not None:
        _record_launcher_error(out_dir, error)
    return error


INTERRUPTED = "interrupted by the user before the ranks finished"


def _record_launcher_error(out_dir: Path, error: str) -> None:
    """Keep why the launch failed in DIR/launcher.json, so `aggregate DIR` says it again later."""
    from minicluster.core.io import atomic_write_json

    path = rundir.launcher_path(out_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    try:
        atomic_write_json(path, {**data, "error": error})
    except OSError as e:
        log.warning("could not write %s: %s", path, e)


def cmd_sweep(args: argparse.Namespace) -> int:
    """One run per world size (and round) in this session, then the scaling block over them."""
    from datetime import datetime, timezone

    from minicluster.analysis import scaling
    from minicluster.core import config as config_mod
    from minicluster.core import fault_spec
    from minicluster.core.io import atomic_write_json
    from minicluster.result.schema import load_result

    world_sizes = scaling.parse_world_sizes(args.world_sizes)
    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1, got {args.repeats}")
    if args.global_batch is not None and args.mode != "strong":
        raise InputError(
            "--global-batch applies to --mode strong; weak scaling keeps the config's "
            "per-rank batch on every rank"
        )
    cfg = config_mod.require(_load_training_config(args.config), args.require)
    per_rank_batch = cfg.workload.per_rank_batch
    global_batch = None
    if args.mode == "strong":
        global_batch = scaling.strong_global_batch(args.global_batch, per_rank_batch, world_sizes)
    # The same threads per rank at every world size: else the 1-rank baseline would get every
    # core and the efficiency would measure the thread count, not the scaling.
    cores = os.cpu_count()
    threads = cfg.run.threads_per_rank or max(1, (cores or 1) // max(world_sizes))
    total_steps = cfg.steps.warmup + cfg.steps.measured
    configs = {}
    for n in world_sizes:
        batch = per_rank_batch if global_batch is None else global_batch // n
        configs[n] = _sweep_run_config(cfg, n, batch, threads)
        fault_spec.check_against_run(cfg.faults, n, total_steps)
    _check_required(cfg)
    sweep_id, out_dir = _new_output(args.out, "sweep")
    default_out = args.out is None
    warning = scaling.oversubscription_warning(max(world_sizes), cores, _on_gpu(cfg))
    if warning:
        print(f"minicluster: sweep: warning: {warning}", file=sys.stderr)
    # Written first: `minicluster aggregate DIR` re-builds the sweep result from it and the runs
    # that finished, also after a crash or Ctrl-C.
    plan = {
        "sweep_id": sweep_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": args.mode,
        "world_sizes": world_sizes,
        "repeats": args.repeats,
        "per_rank_batch": per_rank_batch if args.mode == "weak" else None,
        "global_batch": global_batch,
        "threads_per_rank": threads,
        "warnings": [warning] if warning else [],
    }
    atomic_write_json(rundir.plan_path(out_dir), plan)
    runs = scaling.plan(world_sizes, args.repeats)
    print(
        f"minicluster: sweep {sweep_id}: {args.mode} scaling, world sizes "
        f"{','.join(map(str, world_sizes))}, {args.repeats} round(s) = {len(runs)} runs of "
        f"{cfg.steps.warmup} warm-up + {cfg.steps.measured} measured steps -> {out_dir}",
        file=sys.stderr,
    )
    outcomes: list[RunOutcome] = []
    try:
        for i, planned in enumerate(runs, start=1):
            print(
                f"sweep: [{i}/{len(runs)}] world size {planned.world_size}, round "
                f"{planned.round}/{args.repeats} -> {out_dir / planned.name}",
                file=sys.stderr,
            )
            run_id = f"{sweep_id}-{planned.name}"
            outcomes.append(_sweep_run(planned, configs[planned.world_size], out_dir, run_id))
    except KeyboardInterrupt:
        finished = len(outcomes)
        # The interrupted run's own result (what its ranks recorded) counts as a failed run,
        # as `aggregate DIR` will count it later.
        partial = runs[finished]
        try:
            result = load_result(out_dir / partial.name)
            outcomes.append(scaling.RunOutcome(partial, result, "interrupted by the user"))
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
    if default_out:
        _point_latest(out_dir)
    return _finish_sweep(out_dir, plan, outcomes, args.md, args.html)


def _finish_sweep(
    out_dir: Path,
    plan: dict[str, Any],
    outcomes: list[RunOutcome],
    md: Path | None,
    html: Path | None,
) -> int:
    """Build, write and print the sweep result from the runs in `outcomes`; the exit code."""
    from datetime import datetime, timezone

    from minicluster.analysis import scaling

    runs = scaling.plan(plan["world_sizes"], plan["repeats"])
    block = scaling.build_scaling(
        outcomes,
        plan["mode"],
        plan["world_sizes"],
        plan["repeats"],
        plan["per_rank_batch"],
        plan["global_batch"],
        plan["threads_per_rank"],
        plan["warnings"],
    )
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = scaling.sweep_result(
        outcomes, block, plan["sweep_id"], plan["created_at"], now, planned_runs=len(runs)
    )
    failed = [o.planned.name for o in outcomes if o.status == "failed"]
    if result is None:
        raise RunFailedError(f"sweep: no run produced a result ({', '.join(failed)} failed)")
    _write_and_print(out_dir, result)
    _write_reports(result, md, html)
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
    return max(exit_code(o.result) for o in outcomes if o.result is not None)


def _aggregate_sweep(sweep_dir: Path) -> int:
    """Re-build every run of a sweep that left rank files, then the sweep result over them."""
    from minicluster.analysis import scaling

    plan = scaling.load_plan(sweep_dir)
    outcomes: list[RunOutcome] = []
    for planned in scaling.plan(plan["world_sizes"], plan["repeats"]):
        run_dir = sweep_dir / planned.name
        if not rundir.ranks_dir(run_dir).is_dir():
            continue  # never started: the sweep stopped before it
        try:
            result = _aggregate_dir(run_dir, None, quiet=True)
        except MiniclusterError as e:
            outcomes.append(scaling.RunOutcome(planned, None, str(e)))
            continue
        outcomes.append(scaling.RunOutcome(planned, result))
        print(f"aggregate: {planned.name}: {result['status']}", file=sys.stderr)
    if not outcomes:
        raise InputError(f"{sweep_dir}: a sweep directory, but none of its runs left rank files")
    return _finish_sweep(sweep_dir, plan, outcomes, None, None)


def _sweep_run_config(cfg: Any, nproc: int, per_rank_batch: int, threads_per_rank: int) -> Any:
    """`cfg` for one run of a sweep: its world size, per-rank batch and threads per rank."""
    import dataclasses

    from minicluster.core import config as config_mod

    cfg = config_mod.override(cfg, nproc=nproc, threads_per_rank=threads_per_rank)
    if cfg.workload.per_rank_batch != per_rank_batch:
        workload = dataclasses.replace(cfg.workload, per_rank_batch=per_rank_batch)
        cfg = dataclasses.replace(cfg, workload=workload)
    return cfg


def _sweep_run(planned: PlannedRun, cfg: Any, sweep_dir: Path, run_id: str) -> RunOutcome:
    """Launch and aggregate one run of a sweep in its own sub-directory; one line says how it went."""
    from minicluster.analysis.scaling import RunOutcome
    from minicluster.core.io import atomic_write_json
    from minicluster.report.content import fmt_num

    out_dir = sweep_dir / planned.name
    _ensure_writable(out_dir)
    resolved = rundir.config_path(out_dir)
    atomic_write_json(resolved, cfg.to_dict())
    launcher_error = _launch_ranks(
        resolved, cfg, out_dir, run_id, cfg.steps.warmup + cfg.steps.measured
    )
    try:
        result = _aggregate_dir(out_dir, launcher_error, quiet=True)
    except MiniclusterError as e:  # no rank left a record to aggregate
        why = f"launcher: {launcher_error}; {e}" if launcher_error else str(e)
        print(f"sweep: {planned.name}: failed: {why}", file=sys.stderr)
        return RunOutcome(planned, None, why)
    outcome = RunOutcome(planned, result)
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


def cmd_collectives(args: argparse.Namespace) -> int:
    """Launch the collective micro-benchmark on N local ranks, aggregate, print the table."""
    from minicluster.core import config as config_mod
    from minicluster.core.io import atomic_write_json

    cfg = _collectives_config(args)
    on_gpu = _on_gpu(cfg)
    section = cfg.collectives
    if section.max_bytes is None:  # pin the device's default so every rank uses the same sizes
        cfg = config_mod.with_collectives(cfg, max_bytes=section.max_bytes_for(on_gpu))
        section = cfg.collectives
    if section.root >= cfg.run.nproc:
        raise InputError(
            f"collectives.root is {section.root}; must be < the number of ranks ({cfg.run.nproc})"
        )
    sizes = section.sizes(on_gpu)
    run_id, out_dir = _new_output(args.out)
    default_out = args.out is None
    resolved = rundir.config_path(out_dir)  # JSON is YAML: the workers load it like any config
    atomic_write_json(resolved, cfg.to_dict())

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
    launcher_error = _launch_ranks(
        resolved, cfg, out_dir, run_id, len(section.ops) * len(sizes), "rank 0 (op, size)"
    )
    result = _aggregate_dir(out_dir, launcher_error)
    if default_out:
        _point_latest(out_dir)
    _write_reports(result, args.md, args.html)
    return exit_code(result)


def _collectives_config(args: argparse.Namespace) -> Any:
    """The collectives config: the file (which must say job: collectives) or the built-in one,
    with the command line's choices applied and checked."""
    from minicluster.core import config as config_mod

    if args.config is None:
        cfg = config_mod.RunConfig(name="collectives", job="collectives")
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
        unknown = [op for op in ops if op not in collective_defs.OPS]
        if unknown or not ops:
            raise InputError(
                f"--ops: unknown collective {unknown[0] if unknown else args.ops!r}; "
                f"allowed: {', '.join(collective_defs.OPS)}"
            )
    min_bytes = max_bytes = None
    if args.sizes is not None:
        min_bytes, max_bytes = _parse_sizes(args.sizes)
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


def _parse_sizes(text: str) -> tuple[int, int]:
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


def _load_training_config(path: Path | None) -> Any:
    """The config at `path` (None: the default job); a collectives config is refused here."""
    from minicluster.core import config as config_mod

    cfg = config_mod.load(path)
    if cfg.job == "collectives":
        raise InputError(
            f"{path} is a collectives config (job: collectives): "
            f"run it with `minicluster collectives -c {path}`"
        )
    return cfg


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

    from minicluster.core import config as config_mod
    from minicluster.core import fault_spec

    added = tuple(fault_spec.parse(text) for text in args.fault)
    cfg = dataclasses.replace(cfg, faults=cfg.faults + added)
    cfg = config_mod.override(cfg, collective_timeout_s=args.collective_timeout)
    if any(f.kind == "corrupt_grad" for f in cfg.faults) and cfg.run.replica_check_every == 0:
        cfg = config_mod.override(cfg, replica_check_every=1)  # else nothing could catch it
    fault_spec.check_against_run(cfg.faults, cfg.run.nproc, cfg.steps.warmup + cfg.steps.measured)
    return cfg


def cmd_worker(args: argparse.Namespace) -> int:
    from minicluster.core import config as config_mod
    from minicluster.rank import worker

    cfg = config_mod.load(args.config)
    if cfg.job == "collectives" and args.require:
        raise InputError(
            "--require applies to training jobs; a collectives job samples no telemetry"
        )
    cfg = config_mod.require(cfg, args.require)
    _check_required(cfg)
    _ensure_writable(args.out)
    try:
        gathered = worker.run(cfg, args.out, run_id=args.run_id)
    except MiniclusterError:
        raise
    except Exception as e:
        raise _RankFailed(f"rank failed: {type(e).__name__}: {e}") from None
    if gathered is None or args.no_aggregate:
        return EXIT_OK
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import from_gathered

    result = aggregate(from_gathered(gathered))
    _write_and_print(args.out, result)
    return exit_code(result)


def cmd_aggregate(args: argparse.Namespace) -> int:
    if rundir.plan_path(args.dir).is_file() and not rundir.ranks_dir(args.dir).is_dir():
        return _aggregate_sweep(args.dir)
    result = _aggregate_dir(args.dir, None)
    return exit_code(result)


def cmd_report(args: argparse.Namespace) -> int:
    from minicluster.report.terminal import print_run_summary
    from minicluster.result.schema import load_result

    result = load_result(args.result)
    print_run_summary(result)
    _write_reports(result, args.md, args.html)
    return EXIT_OK


def _write_reports(result: dict[str, Any], md: Path | None, html: Path | None) -> None:
    """Write the requested Markdown and HTML reports of `result`."""
    if md is not None:
        from minicluster.report.markdown import render_markdown

        _write_file(md, render_markdown(result), announce="report")
    if html is not None:
        from minicluster.report.html import render_html

        _write_file(html, render_html(result), announce="report")


def _write_file(path: Path, data: str | bytes, announce: str | None = None) -> None:
    """Atomic write of a user-named output file; a failure is one line and exit 2."""
    from minicluster.core.io import atomic_write_bytes

    try:
        atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    if announce:
        print(f"{announce}: {path}")


def cmd_compare(args: argparse.Namespace) -> int:
    from minicluster.compare import compare
    from minicluster.compare.data import to_dict
    from minicluster.core.errors import EXIT_FAILED_CHECK
    from minicluster.interop import load
    from minicluster.report.comparison import print_comparison, to_html, to_markdown

    inputs = list(args.inputs)
    if args.baseline is not None and args.baseline not in inputs:
        inputs.insert(0, args.baseline)
    if len(inputs) < 2:
        raise InputError("compare needs at least two inputs")
    records = [load(path, args.format) for path in inputs]
    base = inputs.index(args.baseline) if args.baseline is not None else 0
    comparison = compare(records, base, args.threshold, args.alpha)
    print_comparison(comparison)
    if args.json:
        try:
            text = json.dumps(to_dict(comparison), indent=2, allow_nan=False) + "\n"
        except ValueError as e:
            raise InputError(f"cannot write output: {e}") from None
        _write_file(args.json, text)
    if args.md:
        _write_file(args.md, to_markdown(comparison))
    if args.html:
        _write_file(args.html, to_html(comparison))
    return EXIT_FAILED_CHECK if comparison.has_regression else EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from minicluster.interop import export, load

    data = export(load(args.input, args.format), args.to)
    if args.out is not None:
        _write_file(args.out, data)
    elif isinstance(data, bytes):
        raise InputError(f"--to {args.to} writes binary output: give a file with -o")
    else:
        sys.stdout.write(data)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from minicluster.rank import telemetry
    from minicluster.report.terminal import make_console

    table = Table(title="What this machine can measure", title_justify="left")
    table.add_column("source", no_wrap=True)
    table.add_column("readable")
    table.add_column("detail / why not")
    for row in telemetry.doctor_rows():
        ok = "[green]yes[/green]" if row.available else "[red]no[/red]"
        table.add_row(escape(row.name), ok, escape(row.detail or row.reason or ""))
    make_console().print(table)
    return EXIT_OK


def _check_required(cfg: Any) -> None:
    """Fail before any rank starts when the config requires a measurement this machine lacks."""
    if not cfg.telemetry.require:
        return
    from minicluster.rank import telemetry

    telemetry.check_required(cfg.telemetry.require, _on_gpu(cfg))


def _on_gpu(cfg: Any) -> bool:
    """Whether the ranks will run on CUDA devices (`auto` asks torch)."""
    if cfg.run.device == "auto":
        import torch

        return bool(torch.cuda.is_available())
    return bool(cfg.run.device == "cuda")


class _RankFailed(MiniclusterError):
    exit_code = EXIT_RUN_FAILED


def _aggregate_dir(
    out_dir: Path, launcher_error: str | None, quiet: bool = False
) -> dict[str, Any]:
    """Aggregate the rank files of `out_dir` into its result.json; `quiet`: no summary."""
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.records import read_run_dir

    launcher = _launcher_record(out_dir)
    if launcher_error is None and isinstance(launcher.get("error"), str):
        launcher_error = launcher["error"]  # recorded when the run was launched
    result = aggregate(
        read_run_dir(out_dir),
        launcher_error=launcher_error,
        exit_codes=_exit_codes(launcher),
    )
    if quiet:
        _write_result(out_dir, result)
    else:
        _write_and_print(out_dir, result)
    return result


def _launcher_record(out_dir: Path) -> dict[str, Any]:
    """What the launcher left in DIR/launcher.json (a failed or interrupted local run), or {}."""
    try:
        data = json.loads(rundir.launcher_path(out_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _exit_codes(launcher: dict[str, Any]) -> dict[int, int] | None:
    """Per-rank exit codes from a launcher record, or None."""
    try:
        return {int(rank): int(code) for rank, code in launcher["exit_codes"].items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _write_and_print(out_dir: Path, result: dict[str, Any]) -> None:
    from minicluster.report.terminal import print_run_summary

    path = _write_result(out_dir, result)
    print_run_summary(result)
    print(f"result: {path}")


def _write_result(out_dir: Path, result: dict[str, Any]) -> Path:
    """Validate `result` and write it atomically to DIR/result.json."""
    from minicluster.core.io import atomic_write_json
    from minicluster.result.schema import validate_result

    validate_result(result)
    path = rundir.result_path(out_dir)
    atomic_write_json(path, result)
    return path


def _new_run_id() -> str:
    import uuid

    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]


def _new_output(out: Path | None, what: str = "run") -> tuple[str, Path]:
    """A new id and its output directory: `out`, or runs/<id>; checked by _ensure_new_run_dir."""
    new_id = _new_run_id()
    out_dir = Path("runs") / new_id if out is None else out
    _ensure_new_run_dir(out_dir, what)
    return new_id, out_dir


def _ensure_new_run_dir(out_dir: Path, what: str = "run") -> None:
    """`out_dir` is writable and holds no earlier run: its rank files would mix with the new
    ones (a rank that dies early would leave the old run's summary standing for it)."""
    taken = rundir.holds_run(out_dir)
    if taken:
        why = f"already holds {taken} of an earlier run"
    elif what == "sweep" and out_dir.is_dir() and any(out_dir.iterdir()):
        why = "is not empty (a sweep makes one directory per run in it)"
    else:
        _ensure_writable(out_dir)
        return
    raise InputError(
        f"output directory {out_dir} {why}: give a new --out for this {what}, or remove it"
    )


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
    latest = out_dir.parent / rundir.LATEST_LINK
    tmp = out_dir.parent / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out_dir.name)
        os.replace(tmp, latest)
    except OSError as e:
        log.warning("could not update %s: %s", latest, e)


class _Progress:
    """A progress bar fed by rank 0's records (steps, or collective sizes) while the ranks run."""

    def __init__(self, out_dir: Path, total: int, label: str = "rank 0 steps") -> None:
        self.path = rundir.rank_jsonl(out_dir, 0)
        self.total = total
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        # On stderr with the other progress lines: stdout keeps the summary alone (a piped
        # stdout got one blank line per bar, one per run of a sweep).
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task(self.label, total=self.total)
            while not self._stop.wait(0.25):
                bar.update(task, completed=self._count())
            bar.update(task, completed=self._count())

    def _count(self) -> int:
        try:
            with open(self.path, "rb") as f:
                return max(0, sum(1 for _ in f) - 1)  # minus the header line
        except OSError:
            return 0
