"""`minicluster node-check`: this node's health before training (GEMM, memory, host-device copies,
intra-node collectives, hardware error counters, burn-in), one verdict per check, written to
DIR/result.json; exit 0 nothing found, 1 a finding, 2 bad input, 3 nothing could be measured."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from minicluster.cli import orchestrate
from minicluster.core import clock, rundir
from minicluster.core.errors import InputError, MiniclusterError
from minicluster.result import store


def node_check(args: argparse.Namespace) -> int:
    from minicluster.analysis import references
    from minicluster.core.io import atomic_write_json
    from minicluster.core.version import __version__
    from minicluster.report.nodecheck import node_check_html, node_check_markdown, print_node_check
    from minicluster.result.node_check import validate_node_check

    plan = plan_from_args(args)
    given_ref = references.load(args.reference) if args.reference is not None else None
    outputs = [o for o in (args.json, args.md, args.html) if o is not None]
    to_stdout = orchestrate.stdout_outputs(outputs)
    t0 = time.perf_counter()
    run_id, out_dir = store.new_output(args.out, what="node check")
    say = _progress(args.quiet)
    checks = ", ".join(plan.checks)
    burn = f"; burn-in {plan.burn_in_s:g} s" if plan.burn_in_s and plan.runs("burn_in") else ""
    say(f"node-check {run_id}: level {plan.level} ({checks}){burn} -> {out_dir}")

    from minicluster.rank.nodecheck import run as nc_run  # torch: only now

    obs: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    collectives = None
    try:
        nc_run.measure(plan, say, obs=obs)
        seconds.update(obs["seconds"])
        if plan.runs("busbw"):
            t = time.perf_counter()
            collectives = _collectives(plan, obs["platform"], out_dir / "collectives", say)
            seconds["busbw"] = time.perf_counter() - t
        if plan.burn_in_s > 0 and plan.runs("burn_in"):
            say(f"burn-in: {plan.burn_in_s:g} s in {plan.intervals} intervals")
            t = time.perf_counter()
            obs["burn_in"] = nc_run.run_burn_in(plan, say)
            seconds["burn_in"] = time.perf_counter() - t
    except KeyboardInterrupt:
        if "platform" in obs:  # keep what was measured, as every command does
            seconds = {**obs["seconds"], **seconds, "total": time.perf_counter() - t0}
            kept = _result(obs, plan, given_ref, collectives, run_id, seconds, __version__)
            kept.update(status="incomplete", interrupted=True, exit_code=130)
            atomic_write_json(out_dir / "result.json", kept)
            print(f"minicluster: interrupted; kept what was measured in {out_dir}", file=sys.stderr)
        raise
    seconds["total"] = time.perf_counter() - t0
    result = _result(obs, plan, given_ref, collectives, run_id, seconds, __version__)
    validate_node_check(result)
    atomic_write_json(out_dir / "result.json", result)
    if args.json is not None:
        import json

        orchestrate.write_output(args.json, json.dumps(result, indent=2, allow_nan=False) + "\n")
    if args.md is not None:
        orchestrate.write_output(args.md, node_check_markdown(result))
    if args.html is not None:
        orchestrate.write_output(args.html, node_check_html(result))
    if args.out is None:  # runs/latest stays the newest run: a node check is not one
        orchestrate.point_latest(out_dir, rundir.LATEST_NODE_CHECK_LINK)
    with orchestrate.stdout_may_close():
        print_node_check(result, orchestrate.side_console(stderr=to_stdout))
        if not to_stdout:
            print(f"result: {out_dir / 'result.json'}")
    code: int = result["exit_code"]
    return code


def _result(
    obs: dict[str, Any],
    plan: Any,
    given_ref: Any,
    collectives: dict[str, Any] | None,
    run_id: str,
    seconds: dict[str, float],
    version: str,
) -> dict[str, Any]:
    from minicluster.analysis import nodecheck

    reference, why_not = _reference(given_ref, obs["platform"])
    result: dict[str, Any] = nodecheck.build(
        obs,
        plan,
        reference,
        collectives,
        run_id,
        clock.utc_now_iso(),
        version,
        seconds,
    )
    if why_not:
        result["reference_reason"] = why_not
    return result


def plan_from_args(args: argparse.Namespace) -> Any:
    """The plan of `--level` with the flags applied; InputError for a value out of range."""
    from minicluster.core.nodecheck_plan import CHECKS, for_level

    checks = None
    if args.checks is not None:
        checks = tuple(c.strip() for c in args.checks.split(",") if c.strip())
        unknown = [c for c in checks if c not in CHECKS]
        if unknown or not checks:
            raise InputError(
                f"--checks: unknown check {unknown[0] if unknown else args.checks!r}; "
                f"allowed: {', '.join(CHECKS)}"
            )
    if args.duration is not None and args.duration < 0:
        raise InputError(f"--duration must be >= 0 seconds, got {args.duration:g}")
    if args.floor_pct is not None and not 0 < args.floor_pct <= 100:
        # a percent of the reference: above 100 every rate at the reference would be degraded
        raise InputError(f"--floor-pct must be in (0, 100], got {args.floor_pct:g}")
    if args.expect_gpus is not None and args.expect_gpus < 0:
        raise InputError(f"--expect-gpus must be >= 0, got {args.expect_gpus}")
    if args.intervals is not None and args.intervals < 5:
        raise InputError(
            f"--intervals must be >= 5 (the drift test needs 5 points), got {args.intervals}"
        )
    if checks is not None and args.duration and "burn_in" not in checks:
        checks = (*checks, "burn_in")  # --duration asks for the burn-in
    return for_level(
        args.level,
        checks=checks,
        burn_in_s=args.duration,
        intervals=args.intervals,
        floor_pct=args.floor_pct,
        expect_gpus=args.expect_gpus,
    )


def _progress(quiet: bool) -> Any:
    def say(line: str) -> None:
        if not quiet:
            print(f"minicluster: {line}", file=sys.stderr, flush=True)

    return say


def _collectives(plan: Any, platform: dict[str, Any], sub: Path, say: Any) -> dict[str, Any]:
    """Intra-node all_reduce by `minicluster collectives`' own path (one rank per GPU, NCCL; or
    2 gloo ranks on a CPU node), into `sub`; its result, or {"error": why} (with `failed` when
    the run itself failed, not merely could not start for a reason that decides nothing)."""
    import dataclasses

    from minicluster.core import config as config_mod
    from minicluster.core.config import RunConfig

    on_gpu = platform.get("device") == "cuda"
    nproc = int(platform.get("gpus_per_node") or 0) if on_gpu else 2
    if nproc < 2:
        return {"error": f"{nproc} GPU: no intra-node link to measure", "dir": None}
    lo, hi = plan.busbw_sizes_gpu if on_gpu else plan.busbw_sizes_cpu
    cfg = RunConfig(name="node-check-busbw", job="collectives")
    cfg = config_mod.override(
        cfg,
        nproc=nproc,
        threads_per_rank=1 if not on_gpu else 0,
        device="cuda" if on_gpu else "cpu",
    )
    cfg = config_mod.with_collectives(
        cfg,
        ops=["all_reduce"],
        min_bytes=lo,
        max_bytes=hi,
        iters=plan.busbw_iters,
        warmup_iters=plan.busbw_warmup_iters,
    )
    cfg = dataclasses.replace(cfg, name="node-check-busbw")
    sizes = cfg.collectives.sizes(on_gpu)
    say(
        f"intra-node collectives: all_reduce on {nproc} ranks "
        f"({'nccl' if on_gpu else 'gloo'}), {len(sizes)} sizes -> {sub}"
    )
    from minicluster.launchers.torchrun import LocalTorchrun

    try:
        run_id, out = store.new_output(sub, what="node check's collectives")
        result = orchestrate.execute(
            cfg, LocalTorchrun(), out, run_id, len(sizes), "all_reduce sizes", quiet=True
        )
    except MiniclusterError as e:
        return {"error": str(e), "failed": True, "dir": str(sub)}
    if result is None:
        return {"error": "no result written", "failed": True, "dir": str(sub)}
    return {**result.to_json(), "dir": str(sub)}


def _reference(given: Any, platform: dict[str, Any]) -> tuple[Any, str | None]:
    """The reference to judge against: the one given when it is for this platform, else a shipped
    one matching it, else None and why."""
    from minicluster.analysis import references

    keys = {k: platform.get(k) for k in references.PLATFORM_KEYS}
    if given is not None:
        if given.matches(keys):
            return given, None
        shown = ", ".join(f"{k}={v}" for k, v in given.platform.items())
        here = ", ".join(f"{k}={v}" for k, v in keys.items() if v is not None)
        return None, f"reference {given.name} is for {shown}; this node is {here}"
    found = references.find(references.shipped(), keys)
    if found is None:
        return None, "no reference for this platform (give one with --reference FILE)"
    return found, None
