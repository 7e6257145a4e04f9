"""`minicluster watch DIR`: the live per-rank view of a running job, or one snapshot (`--once`)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minicluster.core.errors import InputError

if TYPE_CHECKING:
    from minicluster.analysis.watcher import Watcher


def watch_command(run_dir: Path) -> str:
    """The command that watches `run_dir`, as `run` and `sweep` print it at their start."""
    return f"minicluster watch {shlex.quote(str(run_dir))}"


def watch(args: argparse.Namespace) -> int:
    """Refresh every `--interval` seconds until the run ends or its files stop growing; exit 0
    healthy, 1 stalled, straggling, a failed rank or the ended run's finding (`incomplete` for
    an interrupted run), 2 bad input or not judged yet, 3 the run ended failed."""
    from minicluster.analysis.watcher import Watcher

    if args.interval <= 0:
        raise InputError(f"--interval must be > 0 seconds, got {args.interval}")
    if args.stall_after <= 0:
        raise InputError(f"--stall-after must be > 0 seconds, got {args.stall_after}")
    if args.window is not None and args.window < 2:
        raise InputError(f"--window must be >= 2 steps, got {args.window}")
    from minicluster.cli.repeats import refuse_repeats_dir

    refuse_repeats_dir(args.dir, "watch")
    _refuse_node_check(args.dir)
    _refuse_layout_sweep(args.dir)
    from minicluster.core import rundir

    hint = None if rundir.ranks_dir(args.dir).is_dir() else rundir.wrong_level(args.dir, "watch")
    if hint is not None:  # a run's ranks/ folder, a folder of runs: no rank files would come
        raise InputError(hint)
    watcher = Watcher(args.dir, args.window, args.stall_after)
    if args.once:
        snap = watcher.refresh()
        if snap is None:
            _refuse_ended_launch(args.dir)
            raise InputError(
                f"{args.dir} holds no rank files with a header yet (ranks/rank_NNNNN.jsonl)"
            )
        from minicluster.cli.orchestrate import stdout_may_close

        with stdout_may_close():  # `watch --once | head -1` keeps the snapshot's exit code
            _print_once(snap, args.json)
        return int(snap["exit_code"])
    return _live(watcher, args)


def _refuse_ended_launch(run_dir: Path) -> None:
    """A run with no rank record whose launcher has recorded its end (launcher.json): none will
    come. Exit 1 when it was interrupted, 3 when the launch failed (as `aggregate` says)."""
    from minicluster.cli import orchestrate

    orchestrate.refuse_empty_launch(orchestrate.recorded_launch(run_dir), "nothing to watch")


def _refuse_node_check(run_dir: Path) -> None:
    """InputError for a node-check result's directory: no ranks step there to watch."""
    from minicluster.core import rundir
    from minicluster.result.node_check import is_node_check

    try:
        data = json.loads(rundir.result_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if is_node_check(data):
        raise InputError(
            f"{run_dir} is a node-check result, not a training run: nothing to watch; see it "
            f"with `minicluster report {run_dir}`"
        )


def _refuse_layout_sweep(sweep_dir: Path) -> None:
    """InputError for a layout sweep's directory: its runs step in their own directories."""
    from minicluster.analysis.layout_sweep import read_layout_sweep, read_layout_validation

    validation = read_layout_validation(sweep_dir)
    if validation is not None:
        runs = [r["dir"] for r in validation.get("runs") or [] if r.get("dir")]
        latest = f"{sweep_dir}/{runs[-1]}" if runs else f"{sweep_dir}/l0"
        raise InputError(
            f"{sweep_dir} is a validate --layouts directory (one run per layout in l0, l1, ...): "
            f"watch one run with `minicluster watch {latest}`; the verdict: "
            f"`minicluster report {sweep_dir}`"
        )
    plan = read_layout_sweep(sweep_dir)
    if plan is None:
        return
    started = [e["dir"] for e in plan["layouts"] if (sweep_dir / e["dir"] / "ranks").is_dir()]
    latest = f"{sweep_dir}/{started[-1]}" if started else f"{sweep_dir}/l0"
    raise InputError(
        f"{sweep_dir} is a layout sweep (one run per layout in l0, l1, ...): watch one run with "
        f"`minicluster watch {latest}`; the table: `minicluster report {sweep_dir}`"
    )


def _live(watcher: Watcher, args: argparse.Namespace) -> int:
    from rich.live import Live

    from minicluster.report import watch as render
    from minicluster.report.terminal import make_console

    console = make_console()
    live = (
        Live(console=console, auto_refresh=False) if not args.json and console.is_terminal else None
    )
    snap = None
    try:
        if live is not None:
            live.start()
        while True:
            snap = watcher.refresh()
            if snap is None:
                _refuse_ended_launch(args.dir)
                if watcher.waited_too_long():
                    raise InputError(
                        f"no rank file appeared under {args.dir} in {watcher.quiet_s():.0f} s "
                        "(ranks/rank_NNNNN.jsonl)"
                    )
            elif args.json:
                print(json.dumps(snap), flush=True)
            elif live is not None:
                live.update(render.view(snap), refresh=True)
            else:
                print(render.status_line(snap), flush=True)
            if watcher.is_over(snap):
                break
            time.sleep(args.interval)
    finally:
        if live is not None:
            live.stop()
    assert snap is not None  # the loop leaves only through is_over, which needs a snapshot
    if not args.json:
        if live is None:
            console.print(render.view(snap))
        for line in render.final_lines(snap):
            console.print(line, highlight=False, markup=False)
    return int(snap["exit_code"])


def _print_once(snap: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(snap, indent=2))
        return
    from minicluster.report import watch as render
    from minicluster.report.terminal import make_console

    console = make_console()
    console.print(render.view(snap))
    if snap["ended"] is not None:
        for line in render.final_lines(snap):
            console.print(line, highlight=False, markup=False)
    sys.stdout.flush()
