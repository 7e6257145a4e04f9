"""The `minicluster` command line: parse the arguments, run one command, map errors to exit codes.

Each command lives in one module of this package (`run`, `sweep`, `results`, `fleet`, `doctor`)
and is imported only when it runs: the analysis commands start fast and run without torch.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from minicluster.cli.parser import build_parser
from minicluster.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    InputError,
    MiniclusterError,
)

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run `minicluster ARGV`; the exit code (0 ok, 1 check failed, 2 bad input, 3 run failed,
    130 interrupted). No traceback for a user error; MINICLUSTER_DEBUG=1 shows internal ones."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from minicluster.core.log import setup_logging

    setup_logging()
    module, _, func = args.handler.partition(":")
    try:
        check_output_files(args)
        handler = getattr(importlib.import_module(f"minicluster.cli.{module}"), func)
        code: int = handler(args)
        return code
    except MiniclusterError as e:
        print(f"minicluster: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        # ranks under minicluster's own launcher stay quiet: the launcher says it once
        if not (args.command == "worker" and os.environ.get("MINICLUSTER_PROGRESS") == "0"):
            print("minicluster: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if os.environ.get("MINICLUSTER_DEBUG"):
            raise
        print(
            f"minicluster: internal error: {type(e).__name__}: {e} "
            "(set MINICLUSTER_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def check_output_files(args: object) -> None:
    """InputError, before any work, when a report file (`--md`, `--html`, `--json`) cannot be
    written: it names a directory, or its folder cannot be made or is not writable (a missing
    folder is made, as the write would). A typo must not
    cost a finished run its report (the run's `result.json` is kept either way)."""
    for flag in ("md", "html", "json"):
        path = getattr(args, flag, None)
        if not isinstance(path, os.PathLike) or os.fspath(path) == "-":
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise InputError(f"--{flag} {path} is a directory; name a file")
        try:
            os.makedirs(folder, exist_ok=True)  # as the write at the end would
        except OSError as e:
            raise InputError(
                f"--{flag} {path}: cannot make directory {folder}: {e.strerror or e}"
            ) from None
        if not os.access(folder, os.W_OK):
            raise InputError(f"--{flag} {path}: directory {folder} is not writable")
