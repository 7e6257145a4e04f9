"""The commands on finished results: `aggregate`, `report`, `compare`, `convert`."""

from __future__ import annotations

import argparse
import json
import sys

from minicluster.cli import orchestrate
from minicluster.core import rundir
from minicluster.core.errors import EXIT_FAILED_CHECK, EXIT_OK, InputError


def aggregate(args: argparse.Namespace) -> int:
    """`minicluster aggregate DIR`: re-build result.json from a run's (or a sweep's) rank files."""
    from minicluster.analysis.verdicts import exit_code

    if rundir.plan_path(args.dir).is_file() and not rundir.ranks_dir(args.dir).is_dir():
        from minicluster.cli.sweep import aggregate_sweep

        return aggregate_sweep(args.dir)
    return exit_code(orchestrate.aggregate_dir(args.dir, None))


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
    """`minicluster compare A B ...`: exit 1 on a gated regression."""
    from minicluster.compare import compare as compare_records
    from minicluster.compare.data import to_dict
    from minicluster.interop import load
    from minicluster.report.comparison import print_comparison, to_html, to_markdown

    inputs = list(args.inputs)
    if args.baseline is not None and args.baseline not in inputs:
        inputs.insert(0, args.baseline)
    if len(inputs) < 2:
        raise InputError("compare needs at least two inputs")
    records = [load(path, args.format) for path in inputs]
    base = inputs.index(args.baseline) if args.baseline is not None else 0
    comparison = compare_records(records, base, args.threshold, args.alpha)
    if args.json:
        try:
            text = json.dumps(to_dict(comparison), indent=2, allow_nan=False) + "\n"
        except ValueError as e:
            raise InputError(f"cannot write output: {e}") from None
        orchestrate.write_file(args.json, text)
    if args.md:
        orchestrate.write_file(args.md, to_markdown(comparison))
    if args.html:
        orchestrate.write_file(args.html, to_html(comparison))
    with orchestrate.stdout_may_close():  # files first: a closed stdout must not cost them
        print_comparison(comparison)
    return EXIT_FAILED_CHECK if comparison.has_regression else EXIT_OK


def convert(args: argparse.Namespace) -> int:
    """`minicluster convert IN --to FORMAT`: any supported input to any target."""
    from minicluster.interop import export, load

    data = export(load(args.input, args.format), args.to)
    if args.out is not None:
        orchestrate.write_file(args.out, data)
    elif isinstance(data, bytes):
        raise InputError(f"--to {args.to} writes binary output: give a file with -o")
    else:
        sys.stdout.write(data)
    return EXIT_OK
