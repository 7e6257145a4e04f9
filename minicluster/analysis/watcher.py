"""Which run a watch follows, one refresh of it, and when a live watch is over.

A run directory is followed as it is. In a sweep directory (`sweep.json`) the watch follows the
newest run of the plan that has started (its `ranks/` exists) and moves on when the next one
starts; a run has ended when its `result.json` appears, the sweep (and a live watch of it) when
the sweep's own `result.json` does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from minicluster.analysis import sweep
from minicluster.analysis.tail import RunTail
from minicluster.analysis.watch import add_problems, ended_section, snapshot
from minicluster.analysis.watch_rules import START_WAIT_S
from minicluster.core import gc_pause, rundir
from minicluster.core.errors import InputError
from minicluster.result import read
from minicluster.result.model import RunResult


class Watcher:
    """Follows one run (or a sweep's current run): `refresh()` reads what the rank files gained
    and returns the snapshot (`analysis.watch.snapshot`), None while no run has rank files."""

    def __init__(self, path: Path, window: int | None, stall_after_s: float) -> None:
        if not path.is_dir():
            what = " is not a directory" if path.exists() else ": no such directory"
            raise InputError(f"{path}{what} (give a run or sweep directory)")
        self.path = path
        self.window = window
        self.stall_after_s = stall_after_s
        self.plan = sweep.load_plan(path) if rundir.plan_path(path).is_file() else None
        self.tail: RunTail | None = None
        self.planned_ranks: int | None = None
        self.started_at = time.monotonic()
        self.grew_at: float | None = None  # monotonic time a rank file last grew

    def refresh(self, now_s: float | None = None) -> dict[str, Any] | None:
        """One look at every rank file and the snapshot it gives (`now_s`: this machine's
        `time.time()`, for tests). InputError for what the snapshot refuses.

        The garbage collector waits until the refresh is done: a refresh makes a few objects
        per rank that live until the next one, and with a watch of 16,384 ranks in memory each
        full collection those set off walked all of it (~13% of a refresh's CPU there)."""
        with gc_pause.paused():
            return self._refresh(time.time() if now_s is None else now_s)

    def _refresh(self, now_s: float) -> dict[str, Any] | None:
        run_dir = self._current_run()
        if run_dir is None:
            return None
        if self.tail is None or self.tail.run_dir != run_dir:
            self.tail = RunTail(run_dir, self.window)
            self.planned_ranks = _planned_ranks(run_dir)
            self.grew_at = None
        grew = self.tail.look(now_s)
        if not self.tail.ranks:
            return None
        if grew or self.grew_at is None:
            self.grew_at = time.monotonic()
        run_result = _result(run_dir)
        snap = snapshot(self.tail, now_s, self.stall_after_s, run_result, self.planned_ranks)
        if self.plan is not None:
            # The run's own result ends the run; the sweep's result ends the watch.
            runs = sweep.plan(self.plan["world_sizes"], self.plan["repeats"])
            names = [r.name for r in runs]
            sweep_result = _result(self.path)
            snap["sweep"] = {
                "sweep_dir": str(self.path),
                "run": run_dir.name,
                "index": names.index(run_dir.name) + 1,
                "runs": len(names),
                "run_ended": run_result is not None,
                "ended": ended_section(sweep_result) if sweep_result is not None else None,
            }
            if sweep_result is not None:
                snap["exit_code"] = snap["sweep"]["ended"]["exit_code"]
                add_problems(snap["problems"], snap["sweep"]["ended"]["verdicts"])
                snap["healthy"] = not snap["problems"] and snap.get("not_judged") is None
        return snap

    def quiet_s(self) -> float:
        """Seconds since a rank file last grew (since the watch started, while none has)."""
        return time.monotonic() - (self.grew_at if self.grew_at is not None else self.started_at)

    def waited_too_long(self) -> bool:
        """No rank file appeared within max(the stall window, START_WAIT_S) of the start."""
        return self.grew_at is None and self.quiet_s() > max(self.stall_after_s, START_WAIT_S)

    def is_over(self, snap: dict[str, Any] | None) -> bool:
        """A live watch ends when the run (or sweep) wrote its result, or when no rank file has
        grown for longer than the stall window (START_WAIT_S, if longer, before any step)."""
        if snap is None:
            return False
        if (snap["sweep"]["ended"] if "sweep" in snap else snap["ended"]) is not None:
            return True
        stepped = any(r["last_step"] is not None for r in snap["ranks"])
        limit = self.stall_after_s if stepped else max(self.stall_after_s, START_WAIT_S)
        return self.quiet_s() > limit

    def _current_run(self) -> Path | None:
        if self.plan is None and self.grew_at is None and rundir.plan_path(self.path).is_file():
            self.plan = sweep.load_plan(self.path)  # a sweep writes its plan just after starting
        if self.plan is None:
            return self.path
        for planned in reversed(sweep.plan(self.plan["world_sizes"], self.plan["repeats"])):
            run_dir = self.path / planned.name
            if rundir.ranks_dir(run_dir).is_dir():
                return run_dir
        return None


def _result(run_dir: Path) -> RunResult | None:
    """The run's `result.json` once it exists (written atomically: whole or absent)."""
    path = rundir.result_path(run_dir)
    return read(path) if path.is_file() else None


def _planned_ranks(run_dir: Path) -> int | None:
    """The world size `minicluster run` planned (its config.json), before any header says it."""
    try:
        nproc = json.loads(rundir.config_path(run_dir).read_text(encoding="utf-8"))["run"]["nproc"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return nproc if isinstance(nproc, int) and nproc > 0 else None
