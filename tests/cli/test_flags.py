"""The command line's flags, frozen (as torchtitan freezes its CLI): every command's flags, their
destinations, defaults, choices and types are pinned in tests/golden/cli_flags.json, so a flag
that disappears or changes meaning fails here first. Regenerate after an intended change with
UPDATE_GOLDEN=1.

And the defaults a flag's help states are the ones the run uses: taken from the config
dataclass field (`config_flag`), from `RayOptions`, from argparse's own default, or checked here
against the constant that owns them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from minicluster.cli.parser import build_parser
from minicluster.core.checks import ChecksSection
from minicluster.core.config import CollectivesSection, RunSection
from minicluster.launchers.ray_launch import RayOptions

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "cli_flags.json"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags() -> dict[str, list[dict[str, Any]]]:
    frozen = {}
    for name, sub in sorted(_subparsers(build_parser()).items()):
        frozen[name] = [
            {
                "flags": list(a.option_strings) or [a.dest],
                "dest": a.dest,
                "default": a.default if a.dest != "handler" else None,
                "choices": list(a.choices) if a.choices is not None else None,
                "type": getattr(a.type, "__name__", None),
                "nargs": a.nargs,
                "required": a.required,
                "action": type(a).__name__,
            }
            for a in sub._actions
            if not isinstance(a, argparse._HelpAction)
        ]
    return json.loads(json.dumps(frozen, default=str))


def test_the_flags_are_frozen() -> None:
    flags = _flags()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(flags, indent=1) + "\n")
    assert flags == json.loads(GOLDEN.read_text())


def test_every_handler_is_a_callable_a_reader_can_follow() -> None:
    for name, sub in _subparsers(build_parser()).items():
        handler = sub.get_default("handler")
        assert callable(handler), name
        assert handler.__module__ == "minicluster.cli.handlers", name


def _helps() -> list[tuple[str, argparse.Action]]:
    return [
        (name, a)
        for name, sub in _subparsers(build_parser()).items()
        for a in sub._actions
        if a.help and a.help != argparse.SUPPRESS
    ]


def _field_default(section: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(section) if f.name == name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def test_a_help_that_names_a_config_default_shows_the_fields_default() -> None:
    sections = {"run": RunSection, "collectives": CollectivesSection, "checks": ChecksSection}
    named = 0
    for command, action in _helps():
        for key, field, shown in re.findall(
            r"default: config (\w+)\.(\w+), ([^)]+)\)", action.help
        ):
            default = _field_default(sections[key], field)
            if isinstance(default, list):
                assert shown == ",".join(default), (command, action.dest)
            elif default is None:
                assert shown == "none", (command, action.dest)
            elif isinstance(default, str) or field.endswith("_bytes"):
                assert shown in (str(default), "64M"), (command, action.dest)
            else:
                assert float(shown) == default, (command, action.dest, shown)
            named += 1
    assert named >= 15  # run, validate and collectives take theirs from the config


def test_no_help_restates_a_config_default_by_hand() -> None:
    """The old form, `(default: config, 20)`, is what drifted: every config default is named."""
    for command, action in _helps():
        assert "default: config," not in action.help, (command, action.option_strings)
        assert "(default: config run.nproc, 2)" not in action.help or action.dest == "nproc"


def test_ray_flags_show_the_ray_options_defaults() -> None:
    helps = {a.dest: a.help for c, a in _helps() if c == "run"}
    options = RayOptions()
    assert f"(default: {options.cpus_per_worker:g})" in helps["cpus_per_worker"]
    assert f"(default: {options.gpus_per_worker:g})" in helps["gpus_per_worker"]
    assert f"(default: {options.placement})" in helps["placement"]


def _mad_floor_text() -> str:
    from minicluster.analysis.fleet import MAD_FLOOR_FRAC

    return f"(default: {MAD_FLOOR_FRAC:g})"


@pytest.mark.parametrize(
    ("command", "dest", "expected"),
    [
        ("fleet", "mad_floor", lambda: _mad_floor_text()),
        ("watch", "window", lambda: _window_text()),
    ],
)
def test_a_default_owned_by_the_analysis_is_the_one_its_help_states(
    command: str, dest: str, expected: Any
) -> None:
    helps = {a.dest: a.help for c, a in _helps() if c == command}
    assert expected() in helps[dest]


def _window_text() -> str:
    from minicluster.analysis import tail

    return f"{tail.WINDOW_BUDGET:,} / ranks, between {tail.WINDOW_MIN} and {tail.WINDOW_MAX}"


def test_the_fleet_metrics_help_names_the_default_metrics() -> None:
    from minicluster.analysis.fleet import DEFAULT_METRICS

    helps = {a.dest: a.help for c, a in _helps() if c == "fleet"}
    named = re.findall(r"[a-z0-9_]+_(?:ms|gbps|mib|joules)", helps["metric"])
    assert named == list(DEFAULT_METRICS)
