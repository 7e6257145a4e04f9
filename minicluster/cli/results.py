"""The commands on finished results: `aggregate`, `report`, `compare`, `convert`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minicluster.cli import orchestrate
from minicluster.core import clock, rundir
from minicluster.core.errors import EXIT_FAILED_CHECK, EXIT_OK, InputError


def aggregate(args: argparse.Namespace) -> int:
    """`minicluster aggregate DIR`: re-build result.json from a run's (or a sweep's) rank files."""
    from minicluster.analysis.verdicts import exit_code

    overrides = {
        key.removeprefix("check_"): value
        for key, value in vars(args).items()
        if key.startswith("check_") and value is not None
    }
    is_sweep = rundir.plan_path(args.dir).is_file() and not rundir.ranks_dir(args.dir).is_dir()
    if overrides:
        if is_sweep:
            raise InputError(
                f"{args.dir} is a sweep: re-judge one of its runs (a directory holding ranks/)"
            )
        return rejudge(args.dir, overrides)
    if is_sweep:
        from minicluster.cli.sweep import aggregate_sweep

        return aggregate_sweep(args.dir)
    return exit_code(orchestrate.aggregate_dir(args.dir, None))


def rejudge(run_dir: Path, overrides: dict[str, float]) -> int:
    """Judge the run in `run_dir` again with `overrides` of its own thresholds: the result goes
    beside its recorded result.json (never over it) as result.rejudged-STAMP.json, and what
    changed is printed. The exit code is the re-judged result's."""
    from minicluster.analysis import rejudge as verdict
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.frame import RunFrame
    from minicluster.analysis.verdicts import exit_code
    from minicluster.core.config import override_checks
    from minicluster.core.io import atomic_write_json
    from minicluster.result.schema import validate_result

    records, launch = orchestrate.run_records(run_dir, None)
    own = RunFrame.from_records(records, launch).config.checks
    if RunFrame.from_records(records, launch).job != "train":
        raise InputError(f"{run_dir} holds a collectives run: its thresholds judge training runs")
    new = override_checks(own, **overrides)
    before = aggregate(records, launch)
    after = aggregate(records, launch, checks=new)
    validate_result(after)
    path = run_dir / f"result.rejudged-{clock.utc_stamp()}.json"
    try:
        atomic_write_json(path, after)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    with orchestrate.stdout_may_close():
        print(f"minicluster: re-judged {run_dir} (the recorded result.json is kept):")
        for line in verdict.changes(before, after, own, new):
            print(f"  {line}")
        print(f"result: {path}")
    return exit_code(after)


def report(args: argparse.Namespace) -> int:
    """`minicluster report RESULT`: the terminal summary, and Markdown/HTML when asked."""
    from minicluster.report.terminal import print_run_summary
    from minicluster.result.schema import load_result

    result = load_result(args.result)
    orchestrate.write_reports(result, args.md, args.html)
    with orchestrate.stdout_may_close():
        print_run_summary(result)
    return EXIT_OK


def compare(args: argparse.Namespace) -> int:
    """`minicluster compare A B ...`: exit 1 on a gated regression or an input run that did not
    finish ok (failed, incomplete). An output named `-` goes to
    standard output; the terminal table then goes to standard error."""
    from minicluster.compare import compare as compare_records
    from minicluster.compare.data import to_dict
    from minicluster.interop import load
    from minicluster.report.comparison import print_comparison, to_html, to_markdown

    inputs = list(args.inputs)
    if len(inputs) < 2:
        raise InputError("compare needs at least two inputs")
    base = 0
    if args.baseline is not None:
        resolved = [p.resolve() for p in inputs]
        if args.baseline.resolve() not in resolved:
            raise InputError(
                f"--baseline {args.baseline} is not one of the inputs; name it among them"
            )
        base = resolved.index(args.baseline.resolve())
    to_stdout = orchestrate.stdout_outputs(
        [o for o in (args.json, args.md, args.html) if o is not None]
    )
    records = [load(path, args.format) for path in inputs]
    comparison = compare_records(records, base, args.threshold, args.alpha)
    if args.json:
        try:
            text = json.dumps(to_dict(comparison), indent=2, allow_nan=False) + "\n"
        except ValueError as e:
            raise InputError(f"cannot write output: {e}") from None
        orchestrate.write_output(args.json, text)
    if args.md:
        orchestrate.write_output(args.md, to_markdown(comparison))
    if args.html:
        orchestrate.write_output(args.html, to_html(comparison))
    # files first: a terminal that goes away (`| head`) must not cost them, nor the exit code
    with orchestrate.stdout_may_close():
        print_comparison(comparison, orchestrate.side_console(stderr=to_stdout))
    return EXIT_FAILED_CHECK if comparison.gate_failed else EXIT_OK


def convert(args: argparse.Namespace) -> int:
    """`minicluster convert IN --to FORMAT`: any supported input to any target (`-o -`: stdout)."""
    from minicluster.interop import export, load

    data = export(load(args.input, args.format), args.to)
    if args.out is not None and not orchestrate.is_stdout(args.out):
        orchestrate.write_file(args.out, data)
    elif isinstance(data, bytes):
        raise InputError(f"--to {args.to} writes binary output: give a file with -o")
    else:
        sys.stdout.write(data)
    return EXIT_OK
