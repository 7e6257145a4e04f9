"""One handler per sub-command, `handler(args) -> exit code`, as the parser names them.

Each imports its command's module only when that command runs, so `--help` and the analysis
commands start without torch (and without numpy where they do not need it).
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from minicluster.cli import run as command

    return command.run(args)


def validate(args: argparse.Namespace) -> int:
    from minicluster.cli import run as command

    return command.validate(args)


def collectives(args: argparse.Namespace) -> int:
    from minicluster.cli import run as command

    return command.collectives(args)


def isolate(args: argparse.Namespace) -> int:
    from minicluster.cli import isolate as command

    return command.isolate(args)


def worker(args: argparse.Namespace) -> int:
    from minicluster.cli import run as command

    return command.worker(args)


def sweep(args: argparse.Namespace) -> int:
    from minicluster.cli import sweep as command

    return command.run_sweep(args)


def aggregate(args: argparse.Namespace) -> int:
    from minicluster.cli import results

    return results.aggregate(args)


def report(args: argparse.Namespace) -> int:
    from minicluster.cli import results

    return results.report(args)


def compare(args: argparse.Namespace) -> int:
    from minicluster.cli import results

    return results.compare(args)


def convert(args: argparse.Namespace) -> int:
    from minicluster.cli import results

    return results.convert(args)


def watch(args: argparse.Namespace) -> int:
    from minicluster.cli import watch as command

    return command.watch(args)


def diagnose(args: argparse.Namespace) -> int:
    from minicluster.cli import diagnose as command

    return command.diagnose(args)


def fleet(args: argparse.Namespace) -> int:
    from minicluster.cli import fleet as command

    return command.fleet(args)


def doctor(args: argparse.Namespace) -> int:
    from minicluster.cli import doctor as command

    return command.doctor(args)


def node_check(args: argparse.Namespace) -> int:
    from minicluster.cli import node_check as command

    return command.node_check(args)


def reference_no_action(args: argparse.Namespace) -> int:
    from minicluster.cli import reference

    return reference.no_action(args)


def reference_record(args: argparse.Namespace) -> int:
    from minicluster.cli import reference

    return reference.record(args)


def history_no_action(args: argparse.Namespace) -> int:
    from minicluster.cli import history

    return history.no_action(args)


def history_add(args: argparse.Namespace) -> int:
    from minicluster.cli import history

    return history.add(args)


def history_list_runs(args: argparse.Namespace) -> int:
    from minicluster.cli import history

    return history.list_runs(args)


def history_show(args: argparse.Namespace) -> int:
    from minicluster.cli import history

    return history.show(args)


def history_check(args: argparse.Namespace) -> int:
    from minicluster.cli import history

    return history.check(args)
