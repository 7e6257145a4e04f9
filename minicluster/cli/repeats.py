"""`minicluster run --repeats K`: the same job K times, one after another, into one directory.

Layout: DIR/r0 .. DIR/r{K-1} are ordinary run directories, each made by the one orchestration
path (`run` -> `orchestrate.execute`), and DIR/repeats.json is the combined view: the runs, their
status, and per metric the value of each run with the between-run spread. `compare DIR_A DIR_B`
and `history add DIR` read such a directory as K runs of one side.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minicluster.cli import orchestrate
from minicluster.core import rundir
from minicluster.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_CHECK,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    InputError,
)
from minicluster.core.io import atomic_write_json
from minicluster.result import store
from minicluster.result.model import RunResult

MANIFEST = rundir.REPEATS_FILE
_POLICY_CODES = (EXIT_OK, EXIT_FAILED_CHECK, EXIT_BAD_INPUT, EXIT_RUN_FAILED, EXIT_INTERRUPTED)
SCHEMA = "minicluster-repeats/1"
# metrics the combined view summarises (every measured one is kept per run in the runs' results)
_SUMMARY = ("throughput_samples_per_sec", "latency_p50_ms", "step_time_mean_ms", "compute_ms")


def manifest_path(top: Path) -> Path:
    return top / MANIFEST


def run_repeats(
    args: argparse.Namespace, launch: Callable[[argparse.Namespace], RunResult | None]
) -> int:
    """Run the job `args.repeats` times through `launch` (the `run` command's own path), each into
    DIR/rI; write DIR/repeats.json; exit with the worst exit code of the runs (3 > 1 > 0)."""
    from minicluster.analysis.verdicts import exit_code, verdicts
    from minicluster.core.exit_policy import code_for

    k = args.repeats
    if k < 2:
        raise InputError(f"--repeats must be 2 or more, got {k}")
    if getattr(args, "nnodes", None) is not None:
        raise InputError("--repeats runs on one node: start a job across nodes once per repeat")
    for flag in ("md", "html"):
        if getattr(args, flag, None) is not None:
            raise InputError(
                f"--{flag} with --repeats: report one run with `minicluster report DIR/rI`"
            )
    if getattr(args, "dry_run", False):
        return _dry_run(args, launch)
    run_id, top = store.new_output(args.out, what="repeats")
    print(
        f"minicluster: repeats {run_id}: {k} runs of the job -> {top}/r0..r{k - 1}", file=sys.stderr
    )
    runs: list[dict[str, Any]] = []
    codes: list[int] = []
    junit = getattr(args, "junit", None)
    results: list[tuple[RunResult | None, int]] = []
    for i in range(k):
        sub = copy.copy(args)
        sub.out, sub.repeats, sub.junit = top / f"r{i}", None, None
        print(f"minicluster: repeat {i + 1} of {k}", file=sys.stderr)
        result = launch(sub)
        code = EXIT_OK if result is None else exit_code(result)
        codes.append(code)
        runs.append(_entry(f"r{i}", result, code))
        results.append((result, code))
        _write(top, run_id, k, runs)
    summary = _write(top, run_id, k, runs)
    if junit is not None:
        from minicluster.report.junit import run_cases, to_xml

        cases = [c for res, code in results if res is not None for c in run_cases(res, code)]
        orchestrate.write_output(junit, to_xml("minicluster run --repeats", cases))
    with orchestrate.stdout_may_close():
        print(f"repeats: {manifest_path(top)}")
        for name, s in summary.items():
            if s["n"]:
                print(
                    f"  {name}: median {s['median']:.4g} over {s['n']} runs, min {s['min']:.4g}, "
                    f"max {s['max']:.4g}, between-run CV {s['cv_pct']:.3g}%"
                )
        # the overall verdict: the worst of the runs' (one policy), so the exit code is explained
        print(f"  verdict: {overall_verdict_line(results)}")
    # the worst of the runs by the one policy over every run's verdicts (an internal code, which
    # no result carries, first)
    found = [v for res, _ in results if res is not None for v in verdicts(res)]
    internal = [c for c in codes if c not in _POLICY_CODES]
    return internal[0] if internal else code_for(found)


def overall_verdict_line(results: list[tuple[RunResult | None, int]]) -> str:
    """`STRAGGLER (r0: ok, r1: STRAGGLER)`: the verdict over every run's verdicts (the headline
    words of one run's report), then each run's own, so the reader sees which made the exit."""
    from minicluster.analysis.verdicts import verdicts
    from minicluster.report.text import headline

    found = [v for res, _ in results if res is not None for v in verdicts(res)]
    each = ", ".join(
        f"r{i}: {headline(verdicts(res)) if res is not None else 'no result'} (exit {code})"
        for i, (res, code) in enumerate(results)
    )
    return f"{headline(_policy_order(found))} ({each})"


def _policy_order(found: list[str]) -> list[str]:
    """`found` without repeats, in the exit-code policy's order (the deciding one first)."""
    from minicluster.core.exit_policy import POLICY

    return [v.name for v in POLICY if v.name in found]


def refuse_repeats_dir(path: Path, command: str) -> None:
    """InputError (exit 2, one line) when `path` is a `run --repeats` directory: `command`
    (report, aggregate, watch) reads one run, and each repeat is its own run under DIR/rI."""
    manifest = manifest_path(path)
    if not manifest.is_file():
        return
    try:
        import json

        dirs = [r["dir"] for r in json.loads(manifest.read_text(encoding="utf-8"))["runs"]]
    except (OSError, ValueError, KeyError, TypeError):
        dirs = []
    dirs = [d for d in dirs if isinstance(d, str)] or ["r0"]
    one = dirs[-1] if command == "watch" else dirs[0]
    raise InputError(
        f"{path} is a `run --repeats` directory ({', '.join(dirs)} and {MANIFEST}), not one run: "
        f"`minicluster {command} {path}/{one}` for one run, `minicluster compare {path} OTHER` "
        "for its runs as one side"
    )


def _dry_run(
    args: argparse.Namespace, launch: Callable[[argparse.Namespace], RunResult | None]
) -> int:
    """`--repeats K --dry-run`: the plan of one repeat, said K times over; writes nothing (no
    claim, no repeats.json), as a plain `run --dry-run`. InputError where the real command would
    refuse the directory (it holds an earlier run or repeats)."""
    _, top = store.check_planned_output(args.out, what="repeats")
    k = args.repeats
    with orchestrate.stdout_may_close():
        print(
            f"minicluster: dry run: --repeats {k}: the job below {k} times, one after another, "
            f"into {top}/r0..r{k - 1} and {manifest_path(top)}; nothing started, nothing written"
        )
    sub = copy.copy(args)
    sub.out, sub.repeats, sub.junit = top / "r0", None, None
    launch(sub)
    return EXIT_OK


def _entry(name: str, result: RunResult | None, code: int) -> dict[str, Any]:
    metrics = result.metrics if result is not None else {}
    return {
        "dir": name,
        "run_id": result.run_id if result is not None else None,
        "status": result.status if result is not None else None,
        "exit_code": code,
        "values": {n: mv.value if (mv := metrics.get(n)) else None for n in _SUMMARY},
    }


def _write(top: Path, run_id: str, k: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in _SUMMARY:
        values = [
            r["values"][name] for r in runs if isinstance(r["values"].get(name), (int, float))
        ]
        summary[name] = spread(values)
    atomic_write_json(
        manifest_path(top),
        {
            "schema": SCHEMA,
            "run_id": run_id,
            "repeats": k,
            "runs": runs,
            "between_runs": summary,
            "meaning": "each rI is one run of the same job, one after another; between_runs: per "
            "metric the median, min, max and coefficient of variation over the runs",
        },
    )
    return summary


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max and the coefficient of variation (sample sd / mean) of `values`."""
    n = len(values)
    if not n:
        return {"n": 0, "median": None, "min": None, "max": None, "cv_pct": None}
    ordered = sorted(values)
    mid = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {
        "n": n,
        "median": mid,
        "min": ordered[0],
        "max": ordered[-1],
        "cv_pct": 100.0 * sd / mean if mean else None,
    }
