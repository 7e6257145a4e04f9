"""`minicluster doctor`: what this machine can measure (GPU, NVML, RAPL, thermal), and why not."""

from __future__ import annotations

import argparse

from minicluster.core.errors import EXIT_OK


def doctor(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from minicluster.rank import telemetry
    from minicluster.report.terminal import make_console

    table = Table(title="What this machine can measure", title_justify="left")
    table.add_column("source", no_wrap=True)
    table.add_column("readable")
    table.add_column("detail / why not")
    for row in telemetry.doctor_rows():
        ok = "[green]yes[/green]" if row.available else "[red]no[/red]"
        table.add_row(escape(row.name), ok, escape(row.detail or row.reason or ""))
    make_console().print(table)
    return EXIT_OK
