"""`minicluster diagnose DIR|DUMPS...`: a hang or desync named from Flight Recorder dumps; exit 1
when the ranks disagree, 2 when a member of a group left no dump (nothing judged for it)."""

from __future__ import annotations

import argparse
import json

from minicluster.cli import orchestrate
from minicluster.core.exit_policy import code_for


def diagnose(args: argparse.Namespace) -> int:
    """Read the dumps (a run directory's `flight_recorder/`, a directory of dumps, or dump
    files), print where the ranks disagree, write `--json`. 0: they agree; 1: a desync; 2: no or
    unreadable dumps, or a member of a group left no dump (not judged)."""
    from minicluster.analysis.flight_recorder import diagnose as find
    from minicluster.analysis.flight_recorder import load

    dumps = load(args.inputs)
    found = find(dumps)
    if args.json:
        orchestrate.write_output(args.json, json.dumps(found, indent=2) + "\n")
    with orchestrate.stdout_may_close():
        if not (args.json is not None and str(args.json) == "-"):
            print(
                f"minicluster diagnose: ranks dumped: {', '.join(map(str, found['ranks_dumped']))}"
            )
            head = "DESYNC: " if found["desync"] else "" if found["not_judged"] else "ok: "
            print(head + found["verdict"])
            for g in found["groups"][1:] if found["desync"] else []:
                if g["verdict"] and g["verdict"] != found["verdict"]:
                    print(f"also: {g['verdict']}")
    verdicts = ["desync"] if found["desync"] else []
    return code_for(verdicts + (["not_judged"] if found["not_judged"] else []))
