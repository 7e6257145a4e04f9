"""`minicluster fleet`: node-check results of many nodes side by side; exit 1 naming the outlier
(or failed, or below `--reference`'s floor) nodes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from minicluster.cli import orchestrate
from minicluster.core.exit_policy import code_for


def fleet(args: argparse.Namespace) -> int:
    """Load every RESULT, build the fleet report, write the files asked for, print the verdict
    and the tables. 0: no outlier; 1: an outlier, a failed node check, a node whose own check
    found a problem, or one below --reference's floor; 2: bad input (a bad reference file or
    floor), or no metric could be judged (measured on too few nodes)."""
    from minicluster.analysis.fleet import fleet as fleet_report
    from minicluster.report.fleet import fleet_html, fleet_markdown, print_fleet
    from minicluster.result.node_check import load_any

    to_stdout = orchestrate.stdout_outputs(
        [o for o in (args.json, args.md, args.html, args.junit) if o is not None]
    )
    reference, floor_pct = _reference(args)
    results = [(str(path), _load(path, load_any)) for path in args.inputs]
    report = fleet_report(
        results, args.metric or None, args.outlier_z, args.mad_floor, reference, floor_pct
    )
    if args.json:
        orchestrate.write_output(args.json, json.dumps(report, indent=2, allow_nan=False) + "\n")
    if args.md:
        orchestrate.write_output(args.md, fleet_markdown(report))
    if args.html:
        orchestrate.write_output(args.html, fleet_html(report))
    if args.junit:
        from minicluster.report.junit import fleet_cases, to_xml

        orchestrate.write_output(args.junit, to_xml("minicluster fleet", fleet_cases(report)))
    # files first: a terminal that goes away (`| head`) must not cost them, nor the exit code
    with orchestrate.stdout_may_close():
        print_fleet(report, orchestrate.side_console(stderr=to_stdout))
    bad = report["outliers"] or report["failed"] or report["findings"]
    return code_for(
        (["outlier_node"] if bad else [])
        + (["below_reference"] if report["below_reference"] else [])
        + ([] if report.get("judged", True) else ["not_judged"])
    )


def _reference(args: argparse.Namespace) -> tuple[Any, float]:
    """`--reference FILE [--floor-pct P]`: the reference, read before any result (a bad file or
    floor is one line, exit 2), and the floor (default 90%); (None, default) without one."""
    from minicluster.analysis import references
    from minicluster.cli.reference import check_flags

    check_flags(args.reference, args.floor_pct)
    floor = references.DEFAULT_FLOOR_PCT if args.floor_pct is None else args.floor_pct
    if args.reference is None:
        return None, floor
    return references.load(args.reference), floor


def _load(path: Any, load_result: Any) -> dict[str, Any]:
    """A node's result: a minicluster result, or a node's nccl-tests log (converted on the fly
    into a collectives result, as `convert --to minicluster` writes it)."""
    from minicluster.interop import load
    from minicluster.interop.detect import read_text
    from minicluster.interop.minicluster import to_result
    from minicluster.interop.nccl_tests import looks_like

    if path.is_file() and looks_like(read_text(path)):
        return to_result(load(path, "nccl-tests")).to_json()
    result: dict[str, Any] = load_result(path)
    return result
