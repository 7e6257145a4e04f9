"""`minicluster validate --layouts ddp,fsdp,tp`: the same model, seed and data under each layout, one
run each; the job's loss per step must agree with the first layout's within a stated tolerance.

Every run trains on the same global batch (`run.fixed_global_batch`: a layout with fewer
data-parallel ranks gives each more shards of it), so the job's loss of a step (the mean over
ranks of each rank's loss: the ranks of a tensor-parallel group share theirs) is the same number
in every layout up to the order of floating-point sums. Tolerance: relative 1e-4 in fp32 (FSDP2
and TP reorder sums; measured differences 1e-6 to 1e-5 over a few steps), 3e-2 in bf16 and fp16
(one rounding of 8 or 11 mantissa bits per matmul).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from minicluster.analysis import layout_sweep
from minicluster.analysis.records import read_run_dir
from minicluster.cli import orchestrate
from minicluster.core import config as config_mod
from minicluster.core import rundir
from minicluster.core.config import RunConfig
from minicluster.core.errors import EXIT_BAD_INPUT, ConfigError, InputError
from minicluster.core.io import atomic_write_json
from minicluster.launchers.base import Launcher
from minicluster.result import store

REL_TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 3e-2}


NAMED_LAYOUTS = ("ddp", "fsdp", "tp", "pp", "ep", "fsdp_tp", "hsdp")


def split_layouts(text: str) -> list[str]:
    """The items of `--layouts`: names separated by ',' (`ddp,fsdp`, any case), or, once a
    degree spec is among them, items separated by ';' (`ddp;dp_shard=2,tp=2`); InputError for a
    name joined to a spec by ',' (`ddp,tp=2`), which reads as one spec."""
    out = []
    for item in (t.strip() for t in text.split(";") if t.strip()):
        if "=" not in item:  # names, separated by ',' (within a ';' item too: ddp,fsdp;tp=2)
            out += [name.strip().lower() for name in item.split(",") if name.strip()]
            continue
        names = [part.strip() for part in item.split(",") if "=" not in part and part.strip()]
        if names:
            raise InputError(
                f"--layouts {item}: {names[0]!r} is a layout name beside a degree spec: separate "
                f"layouts with ';' once a degree spec is among them ({names[0]};"
                f"{','.join(q.strip() for q in item.split(',') if '=' in q)})"
            )
        out.append(item)
    return out


def named_layout(name: str, world_size: int) -> str | None:
    """The `--parallel` text of a layout name at `world_size` (None for DDP, the default);
    InputError for a 2-D name the world size cannot hold (fsdp_tp at 2 ranks would be tp alone)."""
    if name in ("fsdp_tp", "hsdp") and (world_size < 4 or world_size % 2):
        raise InputError(
            f"--layouts {name}: needs an even world size of 4 or more (2 x 2 at least), "
            f"got {world_size}: give --world-sizes 4 (sweep) or --nproc 4 (validate)"
        )
    return {
        "ddp": None,
        "fsdp": f"dp_shard={world_size}",
        "tp": f"tp={world_size}",
        "pp": f"pp={world_size}",
        "ep": f"ep={world_size}",
        "fsdp_tp": f"dp_shard={world_size // 2},tp=2",
        "hsdp": f"dp_replicate=2,dp_shard={world_size // 2}",
    }[name]


def layout_specs(text: str, world_size: int) -> list[tuple[str, str | None]]:
    """`ddp,fsdp,tp` (or degree specs `dp_shard=2,tp=2` separated by `;`) -> [(name, --parallel
    text or None for DDP)]; InputError on a name it does not know."""
    out: list[tuple[str, str | None]] = []
    for item in split_layouts(text):
        if "=" in item:
            out.append((item, item))
        elif item in NAMED_LAYOUTS:
            out.append((item, named_layout(item, world_size)))
        else:
            raise InputError(
                f"--layouts: unknown layout {item!r}; names: {', '.join(NAMED_LAYOUTS)}, or "
                "degree specs separated by ';' (dp_shard=2;tp=2)"
            )
    if len(out) < 2:
        raise InputError("--layouts needs two layouts or more to compare (e.g. ddp,fsdp,tp)")
    return out


def job_losses(run_dir: Path) -> dict[int, float]:
    """Step -> the mean over ranks of each rank's loss (warm-up steps included: they are the
    same computation)."""
    by_step: dict[int, list[float]] = {}
    for rec in read_run_dir(run_dir):
        for s in rec.steps:
            loss = s.get("loss")
            if isinstance(loss, (int, float)) and not math.isnan(loss):
                by_step.setdefault(int(s["step"]), []).append(float(loss))
    return {step: sum(v) / len(v) for step, v in sorted(by_step.items())}


def first_divergence(
    reference: dict[int, float], other: dict[int, float], rel_tol: float
) -> dict[str, Any] | None:
    """The first step whose loss differs from the reference's by more than `rel_tol` (relative),
    or is missing from one side; None when they agree everywhere."""
    for step in sorted(set(reference) | set(other)):
        a, b = reference.get(step), other.get(step)
        if a is None or b is None:
            return {"step": step, "reference": a, "loss": b, "why": "a step is missing"}
        if abs(a - b) > rel_tol * max(abs(a), 1e-12):
            return {"step": step, "reference": a, "loss": b, "rel_diff": abs(a - b) / abs(a)}
    return None


def validate_layouts(args: argparse.Namespace, cfg: RunConfig, launcher: Launcher) -> int:
    """Run each layout of `args.layouts` (the config `cfg`, its ranks started by `launcher`),
    compare the job's loss step by step with the first's: exit 0 when all agree, 1 naming the
    first layout and step that diverge."""
    cfg = config_mod.override(cfg, fixed_global_batch=True)
    world = cfg.run.nproc
    specs = layout_specs(args.layouts, world)
    configs: list[tuple[str, RunConfig]] = []
    for name, flag in specs:  # every layout checked before any rank starts
        one = config_mod.with_parallel(
            dataclasses.replace(cfg, parallel=config_mod.ParallelSection()),
            flag,
            f"--layouts {name}",
        )
        try:
            label = config_mod.check_layout(one, world).label
        except ConfigError as e:  # the layout the user typed, not a --parallel they did not give
            raise ConfigError(f"--layouts {name}: {e}") from None
        same = next((n for n, c in configs if c.parallel.layout(world).label == label), None)
        if same is not None:
            what = f"{name} is given twice" if same == name else f"{name} is {same} ({label})"
            raise InputError(f"--layouts: {what}: give each layout once")
        configs.append((name, one))
    tol = REL_TOLERANCE[cfg.run.precision]
    if args.dry_run:
        store.check_planned_output(args.out, "layouts")  # exit 2 where the run would refuse it
        for name, one in configs:
            print(f"layout {name}: {one.parallel.layout(world).label}")
        return 0
    run_id, out_dir = store.new_output(args.out, "layouts")
    print(
        f"minicluster: validate {run_id}: {len(configs)} layouts on {world} ranks, same model, "
        f"seed and global batch; losses must agree within relative {tol:g} ({cfg.run.precision})"
        f" -> {out_dir}",
        file=sys.stderr,
    )
    runs: list[dict[str, Any]] = []
    reference: dict[int, float] | None = None
    failed = None
    bad_input: str | None = None
    bad_name = ""
    for i, (name, one) in enumerate(configs):
        sub = out_dir / f"l{i}"
        result = orchestrate.execute(
            one,
            launcher,
            sub,
            f"{run_id}-l{i}",
            one.steps.warmup + one.steps.measured,
            quiet=True,
        )
        status = result.status if result is not None else "failed"
        losses = job_losses(sub)
        entry: dict[str, Any] = {
            "layout": name,
            "label": one.parallel.layout(world).label,
            "dir": sub.name,
            "status": status,
            "losses": [losses[s] for s in sorted(losses)],
        }
        if result is not None and result.bad_input is not None and bad_input is None:
            # the user's code stopped the ranks (its line printed by the aggregation): bad
            # input, not a divergence; the layouts after it are not run
            bad_input, bad_name = f"layout {name}: {result.bad_input}", name
            entry["bad_input"] = result.bad_input
        if status != "ok" and failed is None:
            failed = f"layout {name}: the run did not finish ok ({status})"
        check = result.validation if result is not None else None
        if check is not None:  # the replica / shard check (on when --fault corrupt_grad is given)
            entry["checks_passed"] = check.passed
            if not check.passed and failed is None:
                failed = f"layout {name}: {check.reason}"
        if reference is None:
            reference = losses
        else:
            div = first_divergence(reference, losses, tol)
            entry["divergence"] = div
            if div is not None and failed is None:
                failed = (
                    f"layout {name} diverges from {configs[0][0]} at step {div['step']}: loss "
                    f"{div['loss']} vs {div['reference']} (relative tolerance {tol:g})"
                )
        runs.append(entry)
        said = "" if check is None or check.passed else f"; check FAILED: {check.reason}"
        print(f"validate: layout {name} ({entry['label']}): {status}{said}", file=sys.stderr)
        if bad_input is not None:
            break
    atomic_write_json(
        out_dir / "layouts.json",
        {
            "kind": layout_sweep.VALIDATION_KIND,
            "run_id": run_id,
            "reference": configs[0][0],
            "precision": cfg.run.precision,
            "rel_tolerance": tol,
            "loss": "per step, the mean over ranks of each rank's loss",
            "runs": runs,
            "passed": None if bad_input is not None else failed is None,
            "reason": bad_input or failed,
        },
    )
    if bad_input is not None:
        print(
            f"minicluster: validate: not judged: layout {bad_name} stopped on bad input (the "
            f"line above); {out_dir}/layouts.json",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if failed is not None:
        print(f"minicluster: validate: FAIL: {failed}")
        return 1
    steps = len(runs[0]["losses"])
    print(
        f"minicluster: validate: PASS: {', '.join(n for n, _ in configs)} agree on the loss at "
        f"all {steps} steps within relative {tol:g} ({cfg.run.precision}); {out_dir}/layouts.json"
    )
    return 0


def report_validation(data: dict[str, Any], run_dir: Path, md: Path | None) -> int:
    """`report DIR` on a `validate --layouts` directory: its verdict and one line per layout
    (`--md FILE`: the same lines; `-`: on stdout, the summary on stderr)."""
    lines = layout_sweep.validation_lines(data)
    text = "\n".join(lines) + "\n"
    to_stdout = md is not None and orchestrate.is_stdout(md)
    if md is not None:
        orchestrate.write_report(md, text)
    with orchestrate.stdout_may_close():
        out = sys.stderr if to_stdout else sys.stdout
        out.write(text)
        print(f"each run: minicluster report {run_dir}/lN", file=out)
    return 0


def aggregate_validation(data: dict[str, Any], run_dir: Path) -> int:
    """`aggregate DIR` on a `validate --layouts` directory: each layout's run's result rebuilt
    from its rank files, then the recorded verdict (the exit code is the verdict's: 0 PASS,
    1 FAIL, 2 not judged)."""
    for run in data.get("runs") or []:
        sub = run_dir / str(run.get("dir"))
        if rundir.ranks_dir(sub).is_dir():
            try:
                orchestrate.aggregate_dir(sub, None)
            except InputError as e:
                print(f"minicluster: {sub}: {e}", file=sys.stderr)
    with orchestrate.stdout_may_close():
        for line in layout_sweep.validation_lines(data):
            print(line)
    passed = data.get("passed")
    return 0 if passed is True else 1 if passed is False else EXIT_BAD_INPUT
