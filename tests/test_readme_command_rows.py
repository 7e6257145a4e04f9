"""The README's command table lists each command's flags: a trial found `watch --window` missing
from its row. Checked for the commands whose rows list every flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from minicluster.cli.parser import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _row(command: str) -> str:
    rows = [
        ln for ln in README.read_text().splitlines() if ln.startswith(f"| `minicluster {command} ")
    ]
    assert rows, command
    return rows[0].split(" | ")[0]


@pytest.mark.parametrize("command", ["watch", "diagnose"])
def test_every_flag_is_in_the_command_row(command: str) -> None:
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices[command]
    flags = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    row = _row(command)
    missing = [f for f in flags if f != "--help" and f not in row]
    assert missing == [], missing
