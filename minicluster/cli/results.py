"""The commands on finished results: `aggregate`, `report`, `compare`, `convert`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from minicluster.cli import orchestrate
from minicluster.core import rundir
from minicluster.core.errors import EXIT_OK, InputError
from minicluster.core.exit_policy import code_for


def aggregate(args: argparse.Namespace) -> int:
    """`minicluster aggregate DIR`: re-build result.json from a run's (or a sweep's) rank files;
    the exit code is the result's verdict (`verdict_after_the_fact`: an interrupted run's result
    exits by what it found, not 130: 1 when it was interrupted before its planned steps ran). With threshold flags: `rejudge`."""
    overrides = {
        key.removeprefix("check_"): value
        for key, value in vars(args).items()
        if key.startswith("check_") and value is not None
    }
    from minicluster.analysis.layout_sweep import read_layout_sweep, read_layout_validation
    from minicluster.cli import sweep_layouts, validate_layouts
    from minicluster.cli.repeats import refuse_repeats_dir

    refuse_repeats_dir(args.dir, "aggregate")
    validation = read_layout_validation(args.dir)
    if validation is not None:
        if args.reference is not None or overrides:
            raise InputError(
                f"{args.dir} is a validate --layouts directory: judge or re-judge one of its "
                f"runs ({args.dir}/l0, l1, ...)"
            )
        return validate_layouts.aggregate_validation(validation, args.dir)
    layouts = read_layout_sweep(args.dir)
    if layouts is not None:
        if args.reference is not None or overrides:
            raise InputError(
                f"{args.dir} is a layout sweep: judge or re-judge one of its runs "
                f"({args.dir}/l0, l1, ...)"
            )
        return sweep_layouts.aggregate_layout_sweep(args.dir, layouts)
    is_sweep = rundir.plan_path(args.dir).is_file() and not rundir.ranks_dir(args.dir).is_dir()
    floor = overrides.pop("reference_floor_pct", None)
    if args.reference is not None or floor is not None:
        from minicluster.cli.reference import check_flags, judge_hook

        check_flags(args.reference, floor)
        if overrides or is_sweep:
            raise InputError(
                "--reference judges one run as recorded: give it without other threshold flags, "
                "on a run directory (not a sweep)"
            )
        judge = judge_hook(args.reference, floor)
        return judge_beside(args.dir, judge)
    if overrides:
        if is_sweep:
            raise InputError(
                f"{args.dir} is a sweep: re-judge one of its runs (a directory holding ranks/)"
            )
        return rejudge(args.dir, overrides)
    if is_sweep:
        from minicluster.cli.sweep import aggregate_sweep

        return aggregate_sweep(args.dir)
    return orchestrate.verdict_after_the_fact(orchestrate.aggregate_dir(args.dir, None))


def rejudge(run_dir: Path, overrides: dict[str, float]) -> int:
    """Judge the run in `run_dir` again with `overrides` of its own thresholds: the result goes
    beside its recorded result.json (never over it) as result.rejudged-STAMP.json, and what
    changed is printed. The exit code is the re-judged result's."""
    from minicluster.analysis import rejudge as verdict
    from minicluster.analysis.aggregate import aggregate
    from minicluster.analysis.frame import RunFrame
    from minicluster.core.config import override_checks
    from minicluster.result import store
    from minicluster.result.model import RunResult
    from minicluster.result.schema import validate_result

    records, launch = orchestrate.run_records(run_dir)
    frame = RunFrame.from_records(records, launch)
    if frame.job != "train":
        raise InputError(f"{run_dir} holds a collectives run: its thresholds judge training runs")
    own = frame.config.checks
    new = override_checks(own, **overrides)
    dumps = orchestrate.flight_recorder_diagnosis(run_dir)
    before = aggregate(records, launch, flight_recorder=dumps)
    after = aggregate(records, launch, checks=new, flight_recorder=dumps)
    _record_thresholds(after, new)
    _mark_rejudged(after, run_dir, "thresholds", overrides)
    validate_result(after)
    try:
        path = store.write_fresh_result(run_dir, "rejudged", after)
    except OSError as e:
        raise InputError(
            f"cannot write a re-judged result in {run_dir}: {e.strerror or e}"
        ) from None
    judged_before, judged_after = RunResult.from_json(before), RunResult.from_json(after)
    with orchestrate.stdout_may_close():
        kept = (
            "the recorded result.json is kept"
            if rundir.result_path(run_dir).is_file()
            else "it has no result.json: judged from its rank files"
        )
        print(f"minicluster: re-judged {run_dir} ({kept}):")
        for line in verdict.changes(judged_before, judged_after, own, new):
            print(f"  {line}")
        # what keeps the exit non-zero (a culprit the new thresholds left), as it exits below
        for line in verdict.remaining(judged_after):
            print(f"  {line}")
        print(f"result: {path}")
    return orchestrate.verdict_after_the_fact(judged_after)


def judge_beside(run_dir: Path, judge: Any) -> int:
    """`aggregate DIR --reference FILE`: the run judged against the reference, written beside
    its recorded result.json (never over it) as result.rejudged-STAMP.json, as a re-judge with
    other thresholds is. The exit code is the judged result's; what keeps it non-zero is said."""
    from minicluster.analysis import rejudge as verdict
    from minicluster.analysis.aggregate import aggregate
    from minicluster.result import store
    from minicluster.result.model import RunResult
    from minicluster.result.schema import validate_result

    records, launch = orchestrate.run_records(run_dir)
    result = aggregate(
        records, launch, flight_recorder=orchestrate.flight_recorder_diagnosis(run_dir)
    )
    judge(result)
    _mark_rejudged(result, run_dir, "reference", {})
    validate_result(result)
    try:
        path = store.write_fresh_result(run_dir, "rejudged", result)
    except OSError as e:
        raise InputError(
            f"cannot write a re-judged result in {run_dir}: {e.strerror or e}"
        ) from None
    judged = RunResult.from_json(result)
    kept = (
        "the recorded result.json is kept"
        if rundir.result_path(run_dir).is_file()
        else "it has no result.json: judged from its rank files"
    )
    orchestrate.print_summary(path, judged)
    with orchestrate.stdout_may_close():
        print(f"minicluster: judged {run_dir} against the reference ({kept})")
        for line in verdict.remaining(judged):
            print(f"  {line}")
    return orchestrate.verdict_after_the_fact(judged)


def _mark_rejudged(
    result: dict[str, Any], run_dir: Path, by: str, overrides: dict[str, float]
) -> None:
    """The re-judged result says inside it that it is one (`rejudged`: by what, when, beside
    which recorded result), so the file read alone is not taken for the run's own verdict."""
    from minicluster.core import clock

    recorded = rundir.result_path(run_dir)
    result["rejudged"] = {
        "by": by,
        "at": clock.utc_now_iso(),
        "recorded_result": recorded.name if recorded.is_file() else None,
        "overrides": dict(overrides),
    }


def _record_thresholds(result: dict[str, Any], checks: Any) -> None:
    """The re-judged result states the thresholds it was judged by (it carried the recorded
    run's, so one file showed two straggler thresholds): `config.checks`, or the keys under
    `config.run` where a run from before the checks section kept them."""
    config = result.get("config")
    if not isinstance(config, dict):
        return
    values = dataclasses.asdict(checks)
    if isinstance(config.get("checks"), dict):
        config["checks"] = {**config["checks"], **values}
    elif isinstance(config.get("run"), dict):
        run = config["run"]
        for key in values.keys() & run.keys():
            run[key] = values[key]


def report(args: argparse.Namespace) -> int:
    """`minicluster report RESULT`: the terminal summary, and Markdown/HTML when asked."""
    from minicluster.analysis.layout_sweep import read_layout_sweep, read_layout_validation
    from minicluster.cli import sweep_layouts, validate_layouts
    from minicluster.cli.repeats import refuse_repeats_dir
    from minicluster.report.terminal import print_run_summary
    from minicluster.result.model import RunResult
    from minicluster.result.node_check import is_node_check, load_any

    refuse_repeats_dir(args.result, "report")
    validation = read_layout_validation(args.result)
    if validation is not None:
        if args.html is not None:
            raise InputError(
                f"{args.result} is a validate --layouts directory: its verdict goes to --md; a "
                f"run's HTML: `minicluster report {args.result}/l0 --html FILE`"
            )
        return validate_layouts.report_validation(validation, args.result, args.md)
    layouts = read_layout_sweep(args.result)
    if layouts is not None:
        if args.html is not None:
            raise InputError(
                f"{args.result} is a layout sweep: its table goes to --md; a run's HTML: "
                f"`minicluster report {args.result}/l0 --html FILE`"
            )
        return sweep_layouts.report_layout_sweep(layouts, args.result, args.md)
    data = load_any(args.result)
    if is_node_check(data):
        return _report_node_check(data, args)
    result = RunResult.from_json(data)
    # `--md -` / `--html -`: the report on standard output, the summary on stderr
    to_stdout = orchestrate.stdout_outputs([o for o in (args.md, args.html) if o is not None])
    orchestrate.write_reports(result, args.md, args.html)
    with orchestrate.stdout_may_close():
        print_run_summary(result, orchestrate.side_console(stderr=to_stdout))
    return EXIT_OK


def _report_node_check(result: dict[str, Any], args: argparse.Namespace) -> int:
    """A node-check result (`minicluster node-check`) in its own report."""
    from minicluster.report.nodecheck import node_check_html, node_check_markdown, print_node_check

    # `--md -` / `--html -`: the report on standard output, the summary on stderr
    to_stdout = orchestrate.stdout_outputs([o for o in (args.md, args.html) if o is not None])
    for path, render in ((args.md, node_check_markdown), (args.html, node_check_html)):
        if path is not None:
            orchestrate.write_report(path, render(result))
    with orchestrate.stdout_may_close():
        print_node_check(result, orchestrate.side_console(stderr=to_stdout))
    return EXIT_OK


def compare(args: argparse.Namespace) -> int:
    """`minicluster compare A B ...`: exit 1 on a gated regression, an input run that did not
    finish ok (failed, incomplete) or whose own checks failed; 2 when nothing failed but an
    input's own run was NOT JUDGED. An output named `-` goes to
    standard output; the terminal table then goes to standard error."""
    from minicluster.compare import compare as compare_records
    from minicluster.compare.data import to_dict
    from minicluster.compare.repeats import load_side
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
        [o for o in (args.json, args.md, args.html, args.junit) if o is not None]
    )
    from minicluster.compare.comparability import parse_allowed

    allowed = parse_allowed(args.allow_different)
    records = [load_side(str(path), args.format) for path in inputs]
    comparison = compare_records(records, base, args.threshold, args.alpha, allowed)
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
    if args.junit:
        from minicluster.report.junit import compare_cases, to_xml

        orchestrate.write_output(
            args.junit, to_xml("minicluster compare", compare_cases(comparison))
        )
    # files first: a terminal that goes away (`| head`) must not cost them, nor the exit code
    with orchestrate.stdout_may_close():
        print_comparison(comparison, orchestrate.side_console(stderr=to_stdout))
    # a gate failure is 1; an input whose own run was NOT JUDGED (and nothing failed) is
    # not_judged (2), never a pass
    return code_for([] if comparison.verdict == "ok" else [comparison.verdict])


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
