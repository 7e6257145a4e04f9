"""`minicluster sweep --layouts "dp_replicate=4;dp_shard=4;dp_shard=2,tp=2"`: the same job under
each layout at one world size, one run each under `DIR/l0`, `DIR/l1`, ..., then one table side by
side (`analysis.layout_sweep`) in `DIR/layouts.md` and `DIR/layouts.json`.

Every layout is checked against the world size and the model before any rank starts (exit 2
naming the layout and the field). `layouts.json` is written first (the plan) and re-written as
each run ends, so `aggregate DIR` re-builds the table from the runs after a crash or Ctrl-C, and
`report DIR` prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from minicluster.analysis import layout_sweep
from minicluster.cli import orchestrate
from minicluster.cli.run import launcher_from_args, launcher_text, load_training_config
from minicluster.core import clock, fault_spec, host_fit, rundir
from minicluster.core import config as config_mod
from minicluster.core.config import RunConfig
from minicluster.core.errors import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    ConfigError,
    InputError,
    RunFailedError,
)
from minicluster.core.io import atomic_write_json
from minicluster.core.layout import parse_flag
from minicluster.result import store

TABLE_FILE = "layouts.md"


def _world_size(args: argparse.Namespace, text: str, cfg: RunConfig) -> int:
    """The one world size: `--world-sizes N`, else the largest product of the degrees a layout
    spec names (`dp_shard=2,tp=2`: 4), else (names only: `ddp,fsdp,tp`) the config's
    `run.nproc`."""
    if args.world_sizes is not None:
        sizes = [s.strip() for s in str(args.world_sizes).split(",") if s.strip()]
        if len(sizes) != 1:
            raise InputError(
                f"--layouts runs at one world size: --world-sizes takes one number, got "
                f"{args.world_sizes!r}"
            )
        if not sizes[0].isdigit() or int(sizes[0]) < 1:
            raise InputError(f"--world-sizes must be a whole number >= 1, got {sizes[0]!r}")
        return int(sizes[0])
    from minicluster.cli.validate_layouts import split_layouts

    specs = [item for item in split_layouts(text) if "=" in item]
    if not specs:
        return cfg.run.nproc
    best = 1
    for item in specs:
        try:
            degrees = parse_flag(item, f"--layouts {item}")
        except ConfigError as e:
            raise InputError(str(e)) from None
        product = 1
        for key, value in degrees.items():
            if key != "pp_schedule" and key != "pp_microbatches":
                product *= int(value)
        best = max(best, product)
    return best


def parse_layouts(text: str, world: int) -> list[tuple[str, str]]:
    """`dp_replicate=4;dp_shard=4;dp_shard=2,tp=2` (or names, as `validate --layouts` takes
    them: `ddp,fsdp,tp`, mixed with degree specs after `;`) -> [(what was typed, the degree
    spec at `world`)]; InputError when fewer than two or one does not parse."""
    from minicluster.cli.validate_layouts import NAMED_LAYOUTS, named_layout, split_layouts

    out = []
    for item in split_layouts(text):
        spec = item
        if "=" not in item:
            if item not in NAMED_LAYOUTS:
                raise InputError(
                    f"--layouts: unknown layout {item!r}; names: {', '.join(NAMED_LAYOUTS)}, or "
                    "degree specs separated by ';' (dp_shard=2;tp=2)"
                )
            spec = named_layout(item, world) or f"dp_replicate={world}"
        try:
            parse_flag(spec, f"--layouts {item}")
        except ConfigError as e:
            raise InputError(str(e)) from None
        out.append((item, spec))
    if len(out) < 2:
        raise InputError(
            "--layouts needs two layouts or more, names (ddp,fsdp,tp) or degree specs separated "
            "by ';' (e.g. \"dp_replicate=4;dp_shard=4;dp_shard=2,tp=2\")"
        )
    return out


def sweep_layouts(args: argparse.Namespace) -> int:
    """Run the job under each layout of `args.layouts` at one world size, then the table."""
    for flag, given in (
        ("--parallel", args.parallel),
        ("--from", args.from_dirs),
        ("--mode strong", args.mode == "strong"),
        ("--global-batch", args.global_batch),
        ("--repeats", args.repeats is not None and args.repeats != 1),
        ("--project", getattr(args, "project", None)),
    ):
        if given:
            raise InputError(
                f"sweep --layouts takes no {flag}: it runs each layout once at one world size"
            )
    cfg = config_mod.require(load_training_config(args.config), args.require)
    world = _world_size(args, args.layouts, cfg)
    specs = parse_layouts(args.layouts, world)
    cores = os.cpu_count()
    threads = cfg.run.threads_per_rank or config_mod.default_threads(cores, world)
    configs: list[tuple[str, RunConfig]] = []
    seen: dict[str, str] = {}  # layout label -> what was typed for it
    for typed, spec in specs:  # every layout checked before any rank starts
        one = config_mod.with_parallel(
            dataclasses.replace(cfg, parallel=config_mod.ParallelSection()),
            spec,
            f"--layouts {typed}",
        )
        one = config_mod.override(one, nproc=world, threads_per_rank=threads)
        try:
            lay = config_mod.check_layout(one, world)
        except ConfigError as e:
            # The hint names run's flag; this command's world size is --world-sizes.
            text = str(e).replace("ranks: --nproc ", "ranks: --world-sizes ")
            raise ConfigError(f"--layouts {typed}: {text}") from None
        same = seen.get(lay.label)
        if same is not None:
            what = f"{typed} is given twice" if same == typed else f"{typed} is {same}"
            raise InputError(
                f"--layouts {what} (the same layout as an earlier one, {lay.label}): give each "
                "layout once"
            )
        seen[lay.label] = typed
        # a name keeps its degrees beside it in the table: "ddp (dp_replicate=2)"
        configs.append((lay.label if typed == spec else f"{typed} ({lay.label})", one))
    fault_spec.check_against_run(cfg.faults, world, cfg.steps.warmup + cfg.steps.measured)
    orchestrate.check_required(cfg)
    launcher = launcher_from_args(args)
    gpu = orchestrate.on_gpu(cfg)
    from minicluster.launchers.torchrun import LocalTorchrun

    if isinstance(launcher, LocalTorchrun):
        host_fit.check_local_ranks(world, gpu, flag=f"--layouts at world size {world}")
    what = (
        f"{len(configs)} layouts at world size {world} ({'; '.join(n for n, _ in configs)}), "
        f"{cfg.steps.warmup} warm-up + {cfg.steps.measured} measured steps each"
    )
    if args.dry_run:
        sweep_id, sweep_dir = store.check_planned_output(args.out, "sweep")
        print(f"minicluster: dry run: sweep {sweep_id}: {what} -> {sweep_dir}; nothing started")
        for i, (name, one) in enumerate(configs):
            print(f"layout {name}:")
            for line in launcher.plan(one, sweep_dir / f"l{i}", f"{sweep_id}-l{i}").lines():
                print(f"  {line}")
        return EXIT_OK
    sweep_id, out_dir = store.new_output(args.out, "sweep")
    plan: dict[str, Any] = {
        "kind": layout_sweep.KIND,
        "sweep_id": sweep_id,
        "created_at": clock.utc_now_iso(),
        "world_size": world,
        "layouts": [{"label": n, "dir": f"l{i}"} for i, (n, _) in enumerate(configs)],
        "rows": [],
        "table": None,
    }
    atomic_write_json(layout_sweep.layouts_path(out_dir), plan)
    print(f"minicluster: sweep {sweep_id}: {what} via {launcher_text(launcher)} -> {out_dir}",
          file=sys.stderr)  # fmt: skip
    for i, (name, one) in enumerate(configs):
        sub = out_dir / f"l{i}"
        print(
            f"sweep: [{i + 1}/{len(configs)}] layout {name} -> {sub} (watch it live: "
            f"minicluster watch {sub})",
            file=sys.stderr,
        )
        why = None
        result = None
        try:
            orchestrate.execute(
                one, launcher, sub, f"{sweep_id}-l{i}", one.steps.warmup + one.steps.measured,
                quiet=True,
            )  # fmt: skip
        except RunFailedError as e:  # the launch failed before any rank recorded anything
            why = str(e)
        result = _read_result(sub)
        row = layout_sweep.row(name, name, sub.name, result, why)
        plan["rows"].append(row)
        print(f"sweep: layout {name}: {row['status']}", file=sys.stderr)
        atomic_write_json(layout_sweep.layouts_path(out_dir), plan)
    if args.out is None:
        orchestrate.point_latest(out_dir)
    return _finish(out_dir, plan)


def _read_result(run_dir: Path) -> dict[str, Any] | None:
    path = rundir.result_path(run_dir)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _finish(out_dir: Path, plan: dict[str, Any]) -> int:
    lines = layout_sweep.table(plan["rows"])
    plan["table"] = lines
    atomic_write_json(layout_sweep.layouts_path(out_dir), plan)
    (out_dir / TABLE_FILE).write_text(
        f"# Layout sweep {plan['sweep_id']}: world size {plan['world_size']}\n\n"
        + "\n".join(lines)
        + "\n\nFigures per run from its result.json (the run directories l0, l1, ...); "
        "'-': not measured or not applicable (the reason is in layouts.json).\n"
    )
    print_table(plan, out_dir)
    bad = [r for r in plan["rows"] if r.get("status") != "ok"]
    return EXIT_RUN_FAILED if bad or len(plan["rows"]) < len(plan["layouts"]) else EXIT_OK


def print_table(plan: dict[str, Any], out_dir: Path, stderr: bool = False) -> None:
    """The table on standard output (on standard error when stdout carries a report)."""
    out = sys.stderr if stderr else sys.stdout
    with orchestrate.stdout_may_close():
        print(f"layout sweep {plan['sweep_id']}: world size {plan['world_size']}", file=out)
        for line in layout_sweep.table(plan["rows"]):
            print(line, file=out)
        missing = [e["label"] for e in plan["layouts"][len(plan["rows"]) :]]
        if missing:
            print(f"not run: {', '.join(missing)}", file=out)
        print(
            f"{out_dir / TABLE_FILE} and {layout_sweep.layouts_path(out_dir)}; each run: "
            f"minicluster report {out_dir}/lN",
            file=out,
        )


def aggregate_layout_sweep(sweep_dir: Path, plan: dict[str, Any]) -> int:
    """`aggregate DIR` on a layout sweep: re-build each run's result from its rank files, then
    the rows and the table (also after a crash or Ctrl-C: the runs that left records count)."""
    rows = []
    for entry in plan["layouts"]:
        sub = sweep_dir / entry["dir"]
        if not rundir.ranks_dir(sub).is_dir():
            continue  # never started
        why = None
        try:
            orchestrate.aggregate_dir(sub, None)
        except InputError as e:
            why = str(e)
        rows.append(
            layout_sweep.row(entry["label"], entry["label"], sub.name, _read_result(sub), why)
        )
    plan["rows"] = rows
    return _finish(sweep_dir, plan)


def report_layout_sweep(plan: dict[str, Any], sweep_dir: Path, md: Path | None) -> int:
    """`report DIR` on a layout sweep: its table (and the Markdown file when asked)."""
    to_stdout = md is not None and orchestrate.is_stdout(md)
    if md is not None:  # `--md -`: the table on standard output, the summary on stderr
        orchestrate.write_report(md, "\n".join(layout_sweep.table(plan["rows"])) + "\n")
    print_table(plan, sweep_dir, stderr=to_stdout)
    return EXIT_OK
