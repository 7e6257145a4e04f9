"""`sweep --project`: the flags checked into the sweep plan, the all_reduce probe the sweep runs
for the link's alpha and beta when none are given, and the projection block built from the plan.

The projection itself (`analysis.projection`) reads only the sweep's scaling block, so a sweep
re-built by `aggregate DIR` (or from finished runs) projects the same way.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from minicluster.analysis import projection, sweep
from minicluster.analysis.alphabeta import Link, LinkModel, given_link, link_from_collectives
from minicluster.analysis.sweep import RunOutcome
from minicluster.cli import orchestrate
from minicluster.core import collective_defs, rundir
from minicluster.core import config as config_mod
from minicluster.core.config import RunConfig
from minicluster.core.errors import InputError, MiniclusterError
from minicluster.launchers.base import Launcher
from minicluster.result import read, store
from minicluster.result.model import RunResult

_LINK_FLAGS = ("--collectives", "--link-gbps", "--link-latency-us", "--ranks-per-node")
PROBE_MIN_BYTES = 1024
# The largest probed size is at least this, so the bandwidth term shows above the latency and the
# noise (gloo on a loaded CPU host: a 64K all_reduce is latency; 4M takes a few ms of transfer).
PROBE_FLOOR_BYTES = 4 * 1024 * 1024


def projection_plan(
    args: argparse.Namespace,
    world_sizes: list[int],
    probe_fits: list[int] | None,
) -> dict[str, Any] | None:
    """The `projection` entry of the sweep plan from the flags, checked before any rank starts.

    `probe_fits`: the world sizes whose ranks each get their own cores (where the sweep may run
    its all_reduce probe); None when the sweep cannot run one (built from finished runs), and
    then the link must be given (`--link-*`) or come from `--collectives`. InputError on any
    bad or inconsistent flag.
    """
    used = [f for f in _LINK_FLAGS if getattr(args, f[2:].replace("-", "_"), None) is not None]
    if args.project is None:
        if used:
            raise InputError(f"{', '.join(used)} apply with --project SIZES")
        return None
    sizes = sweep.parse_world_sizes(args.project, "--project", at_least=1)
    gbps = _floats(args.link_gbps, "--link-gbps")
    latency = _floats(args.link_latency_us, "--link-latency-us")
    if (gbps is None) != (latency is None) or (gbps and latency and len(gbps) != len(latency)):
        raise InputError(
            "--link-gbps and --link-latency-us go together, one value each (a flat ring, or the "
            "inter-node link with --ranks-per-node) or two each (INTRA,INTER)"
        )
    per_node = args.ranks_per_node
    if per_node is not None and per_node < 1:
        raise InputError(f"--ranks-per-node must be >= 1, got {per_node}")
    if gbps is not None and len(gbps) == 2 and per_node is None:
        raise InputError("two --link-gbps values are INTRA,INTER: give --ranks-per-node too")
    if per_node is not None and gbps is None:
        raise InputError(
            "--ranks-per-node models two levels: give the inter-node link with --link-gbps "
            "and --link-latency-us"
        )
    measure = gbps is None or (per_node is not None and len(gbps) == 1)
    if args.collectives is not None and not measure:
        raise InputError(
            "--collectives and --link-gbps/--link-latency-us both give the same link: give one"
        )
    plan: dict[str, Any] = {
        "world_sizes": sizes,
        "link_gbps": gbps,
        "link_latency_us": latency,
        "ranks_per_node": per_node,
        "collectives": str(args.collectives.resolve()) if args.collectives else None,
        "probe_world_size": None,
    }
    if measure and args.collectives is None:
        if probe_fits is None:
            raise InputError(
                "--project on finished runs needs the link: --collectives RESULT (a "
                "`minicluster collectives` run on those nodes) or --link-gbps and "
                "--link-latency-us"
            )
        multi = [n for n in world_sizes if n >= 2]
        plan["probe_world_size"] = max([n for n in multi if n in probe_fits], default=multi[0])
    # Build what can be built now: a bad value or file fails before any rank starts.
    model, _ = link_model(plan, None, probing=plan["probe_world_size"] is not None)
    if model is not None:
        bad = [why for n in sizes if (why := model.fits(n))]
        if bad:
            raise InputError(f"--project: {bad[0]}")
    return plan


def run_probe(
    sweep_dir: Path,
    sweep_id: str,
    plan: dict[str, Any],
    train_cfg: RunConfig,
    threads_per_rank: int,
    outcomes: list[RunOutcome],
    launcher: Launcher,
) -> None:
    """Run the sweep's short all_reduce size sweep when the plan asks for one (its result lands
    in `allreduce-nN/`); a failure is one line on stderr and leaves the projection unavailable."""
    n = (plan.get("projection") or {}).get("probe_world_size")
    if n is None:
        return
    on_gpu = orchestrate.on_gpu(train_cfg)
    series = [RunResult.from_json(o.result).series for o in outcomes if o.result is not None]
    grad_bytes = [
        v for s in series if s is not None for v in s.get("comm_bytes") or [] if v is not None
    ]
    top = collective_defs.default_max_bytes(on_gpu)
    if grad_bytes:  # up to the gradient bytes of a step, in powers of two
        top = min(top, max(PROBE_FLOOR_BYTES, 2 ** math.ceil(math.log2(max(grad_bytes)))))
    cfg = config_mod.override(
        RunConfig(name="allreduce-probe", job="collectives"),
        nproc=n,
        threads_per_rank=threads_per_rank,
        backend=train_cfg.run.backend,
        device=train_cfg.run.device,
        collective_timeout_s=train_cfg.run.collective_timeout_s,
    )
    cfg = config_mod.with_collectives(
        cfg, ops=["all_reduce"], min_bytes=PROBE_MIN_BYTES, max_bytes=top
    )
    out_dir = rundir.allreduce_probe_dir(sweep_dir, n)
    sizes = cfg.collectives.sizes(on_gpu)
    print(
        f"sweep: all_reduce probe for the projection's alpha and beta: world size {n}, "
        f"{len(sizes)} sizes {PROBE_MIN_BYTES} B..{top} B -> {out_dir}",
        file=sys.stderr,
    )
    store.ensure_writable(out_dir)
    try:
        result = orchestrate.execute(
            cfg,
            launcher,
            out_dir,
            f"{sweep_id}-allreduce-n{n}",
            len(sizes),
            "rank 0 (op, size)",
            quiet=True,
        )
    except MiniclusterError as e:
        print(f"sweep: all_reduce probe failed: {e}", file=sys.stderr)
        return
    if result is not None:
        print(f"sweep: all_reduce probe: {result.status}", file=sys.stderr)


def reaggregate_probe(sweep_dir: Path, plan: dict[str, Any]) -> None:
    """`aggregate DIR`: re-build the all_reduce probe's result from its rank files, if it ran."""
    n = (plan.get("projection") or {}).get("probe_world_size")
    if n is None or not rundir.ranks_dir(rundir.allreduce_probe_dir(sweep_dir, n)).is_dir():
        return
    try:
        orchestrate.aggregate_dir(rundir.allreduce_probe_dir(sweep_dir, n), None, quiet=True)
    except MiniclusterError as e:
        print(f"aggregate: all_reduce probe: {e}", file=sys.stderr)


def projection_block(
    scaling: dict[str, Any], plan: dict[str, Any], sweep_dir: Path
) -> dict[str, Any]:
    """The sweep's `projection` block from its scaling block and the plan's projection entry."""
    entry = plan["projection"]
    probe = None
    if entry.get("probe_world_size") is not None:
        try:
            probe = read(rundir.allreduce_probe_dir(sweep_dir, entry["probe_world_size"]))
        except MiniclusterError:
            probe = None
    try:
        model, why = link_model(entry, probe)
    except InputError as e:  # e.g. the --collectives file moved since the sweep ran
        model, why = None, str(e)
    return projection.project(scaling, entry["world_sizes"], model, why)


def link_model(
    entry: dict[str, Any], probe: RunResult | None, probing: bool = False
) -> tuple[LinkModel | None, str | None]:
    """The all-reduce model the plan's projection entry describes, or (None, why not).

    The measured link comes from `--collectives` or from the sweep's probe result `probe`
    (`probing`: the probe has not run yet; then None and no error). InputError for given values
    or a --collectives file that cannot make a link.
    """
    measured: Link | None = None
    why = None
    if entry.get("collectives"):
        path = Path(entry["collectives"])
        measured = link_from_collectives(read(path), f"--collectives {path}")
    elif entry.get("probe_world_size") is not None and not probing:
        if probe is None:
            why = "the sweep's all_reduce probe left no result (it failed or did not run)"
        else:
            try:
                measured = link_from_collectives(probe, "the sweep's all_reduce probe")
            except InputError as e:
                why = str(e)
    gbps, latency = entry.get("link_gbps") or [], entry.get("link_latency_us") or []
    names = ["--link-gbps/--link-latency-us"]
    if len(gbps) == 2:
        names = ["intra-node --link-gbps/--link-latency-us", "inter-node --link-*"]
    given = [given_link(g, a, name) for g, a, name in zip(gbps, latency, names, strict=False)]
    per_node = entry.get("ranks_per_node")
    if per_node is None:
        link = given[0] if given else measured
        return (LinkModel(link), None) if link else (None, why)
    intra = given[0] if len(given) == 2 else measured
    if intra is None:
        return None, why
    return LinkModel(given[-1], intra, per_node), None


def _floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{flag}: {text!r} is not a number or a comma pair of numbers") from None
    if not 1 <= len(values) <= 2 or not all(math.isfinite(v) for v in values):
        raise InputError(f"{flag}: give one value or two (INTRA,INTER), got {text!r}")
    return values
