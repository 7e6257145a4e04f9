"""`minicluster isolate`: bad ranks (or nodes) found by group testing on N local ranks, or the
recorded rounds of a finished run judged again (`--from DIR`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from minicluster.cli import orchestrate
from minicluster.cli.reference import check_flags
from minicluster.cli.run import launcher_from_args, launcher_text, nproc_from_args, parse_sizes
from minicluster.core import config as config_mod
from minicluster.core import fault_spec
from minicluster.core import group_testing as gt
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError
from minicluster.core.units import format_size
from minicluster.launchers.torchrun import NodeTorchrun
from minicluster.result import store

EXIT_OK, EXIT_BAD = 0, 1
# Each group test keeps the fastest of 5 timed loops by default (not the pairwise test's 2):
# the decision's noise model (core.group_testing: 9% of healthy groups below half the median)
# was measured so, and on this 2-core VM 2 loops leave 23% there (BENCHMARKS.md).
ISOLATE_PASSES = 5


def isolate(args: argparse.Namespace) -> int:
    """Run the search (or re-judge `--from DIR`); print each round and the verdict; exit 1 when
    a unit is named bad (or more than --k are), 0 when none is."""
    if args.from_dir is not None:
        return _from_dir(args)
    launcher = launcher_from_args(args)
    nnodes = launcher.rendezvous.nnodes if isinstance(launcher, NodeTorchrun) else 1
    cfg = isolate_config(args, nnodes)
    s, n = cfg.collectives, cfg.run.nproc * nnodes
    params = gt.Params(n_units=n, max_bad=s.max_bad, group_size=s.group_size)
    faults = "".join(f"; fault {f}" for f in cfg.faults)
    what = (
        f"isolation of {n} ranks by group testing via {launcher_text(launcher)}: all_reduce of "
        f"{format_size(s.pair_bytes)} (K = 1024) on groups of {params.first_group_size} in round "
        f"1, at most {s.max_bad} bad, {s.warmup_iters} warm-up + {s.iters} timed calls x "
        f"{s.passes} pass(es) per group{faults}"
    )
    if args.dry_run:
        orchestrate.print_plan(launcher, cfg, args.out, f"isolate: {what}", args.config)
        return EXIT_OK
    run_id, out_dir = store.new_output(args.out)
    print(f"minicluster: isolate {run_id}: {what} -> {out_dir}", file=sys.stderr)
    result = orchestrate.execute(
        cfg,
        launcher,
        out_dir,
        run_id,
        1,
        "rank 0 rounds",
        point_at=args.out is None,
        quiet=True,
    )
    from minicluster.analysis.verdicts import exit_code

    if result is None:  # a node of a job across nodes: rank 0's node has the verdict
        print(
            f"minicluster: isolate: this node's ranks finished; the verdict is in rank 0's "
            f"result (see {out_dir / 'node.json'})",
            file=sys.stderr,
        )
        return EXIT_OK

    block = result.to_json().get("isolate")
    if block is None:  # the ranks failed before the plan: the run's own verdict says why
        orchestrate.print_summary(out_dir / "result.json", result)
        return exit_code(result)
    _show(block, args.json)
    _junit(args, block)
    print(f"result: {out_dir / 'result.json'}", file=sys.stderr)
    return max(exit_code(result), _exit(block))


def _from_dir(args: argparse.Namespace) -> int:
    """The recorded rounds of `--from DIR` replayed through the decision code (with --k, --z
    given: judged with them instead); nothing is written."""
    from minicluster.analysis.isolate import isolate_block
    from minicluster.analysis.records import read_run_dir

    for flag, name, value in (
        ("--k", "max_bad", args.max_bad),
        ("--z", "isolate_z", args.isolate_z),
    ):
        _in_range(flag, name, value)  # as a live run takes them
    records = read_run_dir(args.from_dir)
    heads = [r.header for r in records if r.header]
    if not heads:
        raise InputError(f"{args.from_dir}: no rank header: not a run directory")
    world = int(heads[0].get("world_size", len(records)))
    plan = next((r.other["isolate_plan"][0] for r in records if r.other.get("isolate_plan")), None)
    if plan is None:
        raise InputError(f"{args.from_dir}: no isolation plan recorded: not an isolate run")
    changes: dict[str, Any] = {
        k: v for k, v in (("max_bad", args.max_bad), ("z", args.isolate_z)) if v is not None
    }
    params = None
    if changes:
        try:
            params = dataclasses.replace(gt.params_from_record(plan["params"]), **changes)
        except ValueError as e:
            raise InputError(f"isolate --from: {e}") from None
    block, errors = isolate_block(records, world, params)
    for line in errors:
        print(f"minicluster: {line}", file=sys.stderr)
    _show(block, args.json)
    _junit(args, block)
    return _exit(block)


def _in_range(flag: str, name: str, value: float | None) -> None:
    """InputError unless `value` (None: not given) is in the range the config's
    `collectives.<name>` allows."""
    meta = {f.name: f.metadata for f in dataclasses.fields(config_mod.CollectivesSection)}[name]
    lo, hi = meta["min"], meta["max"]
    if value is not None and not ((lo is None or value >= lo) and (hi is None or value <= hi)):
        raise InputError(f"{flag} must be in [{lo:g}, {hi:g}], got {value:g}")


def _show(block: dict[str, Any], as_json: bool) -> None:
    from minicluster.report.isolate import text

    with orchestrate.stdout_may_close():
        if as_json:
            keys = ("verdict", "bad", "more_than_max_bad", "unresolved", "rounds_run")
            out = {k: block.get(k) for k in keys}
            out["units"] = block.get("units", [])
            out["reference"] = block.get("reference")
            print(json.dumps(out, indent=1))
        else:
            print(text(block))


def _junit(args: argparse.Namespace, block: dict[str, Any]) -> None:
    """`--junit F`: one case per unit, a unit named bad as a failure."""
    if getattr(args, "junit", None) is None:
        return
    from minicluster.report.junit import isolate_cases, to_xml

    orchestrate.write_output(args.junit, to_xml("minicluster isolate", isolate_cases(block)))


def _exit(block: dict[str, Any]) -> int:
    """1 when a unit is named bad, more than k are, or suspects were left unresolved."""
    found = block["bad"] or block["more_than_max_bad"] or block["unresolved"]
    return EXIT_BAD if found else EXIT_OK


def isolate_config(args: argparse.Namespace, nnodes: int = 1) -> RunConfig:
    """The built-in collectives config (or `-c`) with pattern isolate and the flags applied
    (`nnodes`: nodes of a job across nodes, each with the same ranks)."""
    if args.config is None:
        cfg = RunConfig(name="isolate", job="collectives")
    else:
        cfg = config_mod.load(args.config)
        if cfg.job != "collectives":
            raise InputError(f"{args.config} is a training config (job: {cfg.job}): give none")
    nproc = nproc_from_args(args)
    if nproc is not None and nproc * nnodes < 2:
        raise InputError(f"isolate tests groups of ranks: --nproc must be >= 2, got {nproc}")
    cfg = config_mod.override(cfg, nproc=nproc)
    world = cfg.run.nproc * nnodes
    if world < 2:
        raise InputError("isolate tests groups of ranks: it needs --nproc 2 or more")
    size = parse_sizes(args.size, flag="--size", one=True)[0] if args.size else None
    cfg = config_mod.with_collectives(
        cfg,
        pattern="isolate",
        pair_bytes=size,
        iters=args.iters,
        warmup_iters=args.warmup_iters,
        passes=args.passes if args.passes is not None or args.config else ISOLATE_PASSES,
        max_bad=args.max_bad,
        group_size=args.group_size,
        isolate_z=args.isolate_z,
        min_busbw_gbps=args.min_busbw,
    )
    check_flags(args.reference, args.floor_pct)
    if args.reference is not None:
        cfg = _with_reference(cfg, args.reference, args.floor_pct, nnodes)
    s = cfg.collectives
    if s.group_size is not None and s.group_size > world:
        raise InputError(f"--group-size {s.group_size} is more than the {world} ranks")
    first = gt.Params(n_units=world, group_size=s.group_size).first_group_size
    if len(gt.split_even(list(range(world)), first)) < 2 and s.min_busbw_gbps is None:
        raise InputError(
            f"{world} ranks in groups of {first} make one group, with nothing to judge it "
            "against: give --nproc 4 or more (or a smaller --group-size), or --min-busbw GBPS "
            "(a reference's floor)"
        )
    added = tuple(fault_spec.parse(text) for text in args.fault)
    cfg = dataclasses.replace(cfg, faults=cfg.faults + added)
    fault_spec.check_against_benchmark(cfg.faults, world, True)
    return cfg


def _with_reference(
    cfg: RunConfig, path: Path, floor_pct: float | None, nnodes: int = 1
) -> RunConfig:
    """`cfg` with the reference's all_reduce busbw x the floor as the absolute floor of every
    group (`min_busbw_gbps`, the larger when --min-busbw is given too) and the reference named;
    said and unchanged when the reference is not for this machine or has no figure for this
    all_reduce (nothing is invented)."""
    from minicluster.analysis import references
    from minicluster.rank.header import platform_keys

    ref = references.load(path)
    floor = references.DEFAULT_FLOOR_PCT if floor_pct is None else floor_pct
    s, n = cfg.collectives, cfg.run.nproc * nnodes
    here = platform_keys()
    conditions = {
        "op": "all_reduce",
        "scope": "intra_node" if nnodes == 1 else "inter_node",
        "world_size": n,
        "size_bytes": s.pair_bytes,
        "dtype": s.dtype,
    }
    why = None
    fig = None
    # the reference named as the result will show it: name, kind and file (isolate --json)
    named = f"{ref.name} ({ref.kind}, {path})"
    if not ref.matches(here):
        shown = ", ".join(f"{k}={v}" for k, v in ref.platform.items())
        why = f"reference {named} is for {shown}, not this machine"
    else:
        fig = ref.figure("busbw_gbps", conditions)
        if fig is None:
            why = f"reference {named} has no all_reduce busbw figure for {n} ranks here"
    if fig is None:
        print(f"minicluster: isolate: not judged against a reference: {why}", file=sys.stderr)
        return config_mod.with_collectives(cfg, reference=f"not judged against a reference: {why}")
    floor_gbps = fig.value * floor / 100
    if s.min_busbw_gbps is not None:
        floor_gbps = max(floor_gbps, s.min_busbw_gbps)
    note = (
        f"{named}: all_reduce busbw {fig.value:g} {fig.unit} "
        f"({fig.source or 'site'}{', ' + fig.date if fig.date else ''}) x {floor:g}% = floor "
        f"{floor_gbps:.4g} GB/s: a group below it is slow"
    )
    return config_mod.with_collectives(cfg, min_busbw_gbps=floor_gbps, reference=note)
