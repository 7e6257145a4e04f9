"""The `minicluster` command line: parse the arguments, run one command, map errors to exit codes.

Each command lives in one module of this package (`run`, `sweep`, `results`, `watch`, `fleet`,
`doctor`) and is imported only when it runs (`handlers`): the analysis commands start fast and
run without torch.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from minicluster.cli.parser import build_parser
from minicluster.core import rundir
from minicluster.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    InputError,
    MiniclusterError,
)
from minicluster.core.io import probe_writable_dir

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run `minicluster ARGV`; the exit code (0 ok, 1 a finding, 2 bad input, 3 run failed, 70
    internal error, 130 interrupted). No traceback for a user error; MINICLUSTER_DEBUG=1 shows
    internal ones. A disk that fills up before any rank started is bad input (the commands that
    start ranks say exit 3 once they have)."""
    _closed_streams_to_devnull()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        from minicluster.core.log import setup_logging

        setup_logging()
    except KeyboardInterrupt:  # Ctrl-C while the command line is read: no traceback
        print("minicluster: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        check_output_files(args, sys.argv[1:] if argv is None else argv)
        code: int = args.handler(args)
        return code
    except MiniclusterError as e:
        text = as_flag(str(e), sys.argv[1:] if argv is None else argv)
        print(f"minicluster: error: {text}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        # ranks under minicluster's own launcher stay quiet: the launcher says it once
        if not (args.command == "worker" and os.environ.get("MINICLUSTER_PROGRESS") == "0"):
            print("minicluster: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or os.environ.get("MINICLUSTER_DEBUG"):
            return _internal_error(e)
        from minicluster.cli.orchestrate import no_space_text

        print(f"minicluster: error: {no_space_text(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as e:
        missing = (e.name or "").partition(".")[0]
        if not missing or missing == "minicluster" or os.environ.get("MINICLUSTER_DEBUG"):
            return _internal_error(e)  # a module of minicluster itself missing is a bug
        print(f"minicluster: error: {missing_package_text(missing)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:
        return _internal_error(e)


def _closed_streams_to_devnull() -> None:
    """A command started with stdout or stderr closed (`minicluster aggregate DIR >&-`: Python
    then sets sys.stdout to None) writes what it would print to /dev/null, as with `>/dev/null`:
    its files and exit code are the same (it failed with 'internal error', exit 70)."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (for the process's life)


def as_flag(message: str, argv: Sequence[str]) -> str:
    """A config error about a value the command line gave (`command line: checks.
    straggler_threshold_pct is -5.0; must be >= 0`) names the flag typed, the key in brackets:
    `--straggler-threshold is -5.0; must be >= 0 (config checks.straggler_threshold_pct)`; a
    lower bound of 1e-09 (the config's "more than 0") reads `> 0`. Any other message as is."""
    import re

    from minicluster.cli.parser import CONFIG_FLAGS

    m = re.match(r"command line: ([a-z_]+\.[a-z_0-9]+) (is .*)$", message)
    if m is None:
        return message
    key, rest = m.groups()
    typed = [f for f in CONFIG_FLAGS.get(key, []) if any(a.split("=")[0] == f for a in argv)]
    if not typed:
        return message
    rest = re.sub(r"must be >= 1e-0?9$", "must be > 0", rest)
    return f"{typed[0]} {rest} (config {key})"


# the extra (pyproject.toml) that installs a package minicluster imports only for some commands
_EXTRA_OF = {"torch": "train", "ray": "ray", "pynvml": "gpu"}


def missing_package_text(package: str) -> str:
    """An environment without a package this command imports: what is missing, where, and the
    README's set-up command that installs it (an environment problem, exit 2, not a bug)."""
    extra = _EXTRA_OF.get(package)
    how = (
        f"bash scripts/setup.sh {extra} (the README's set-up; or pip install 'minicluster[{extra}]')"
        if extra
        else f"bash scripts/setup.sh (the README's set-up; or pip install {package})"
    )
    return (
        f"this command needs the Python package {package!r}, which {sys.executable} cannot "
        f"import: install it with {how}, or run minicluster from the environment that has it"
    )


def _internal_error(e: Exception) -> int:
    """A bug in minicluster, not a finding nor bad input: one line and its own exit code, 70
    (EX_SOFTWARE), so a CI gate can tell it from a verdict."""
    if os.environ.get("MINICLUSTER_DEBUG"):
        raise e
    print(
        f"minicluster: internal error: {type(e).__name__}: {e} "
        "(set MINICLUSTER_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


# commands whose --md/--html are `add_report_flags`' and whose standard output carries their
# own summary: a report there would be mixed into it (`report` and `node-check` move the summary
# to stderr instead)
SUMMARY_ON_STDOUT = ("run", "validate", "sweep", "collectives", "aggregate")


# the short forms of the output flags (`convert -o`): an error names the form that was typed
SHORT_FLAGS = {("convert", "out"): "-o"}


def _as_typed(command: object, flag: str, argv: Sequence[str]) -> str:
    """`--flag`, or its short form when that is what the command line used last (`-o`)."""
    short = SHORT_FLAGS.get((str(command), flag))
    for token in reversed(argv):
        if token == f"--{flag}" or token.startswith(f"--{flag}="):
            return f"--{flag}"
        if short and token.startswith(short) and not token.startswith("--"):
            return short
    return f"--{flag}"


def check_output_files(args: object, argv: Sequence[str] = ()) -> None:
    """InputError, before any work, when a report file (`--md`, `--html`, `--json`, `--junit`)
    cannot be written or must not be: it names a directory; its folder does not exist (a typo'd
    folder is not made: make it first), or cannot be written in; it is a file minicluster records
    (a result.json, a rank file, a run's config or plan) or a history database (SQLite or DuckDB,
    by its header, with its -wal/-shm/-journal files); or it is one of the command's inputs or
    another of its paths (`--db`, `-c`, `--baseline`...). A typo must not cost a finished run its
    report, nor a report cost a run its records. Errors name the flag as typed (`convert -o`),
    from `argv`."""
    command = getattr(args, "command", None)
    # `convert -o` and `reference record --out` write one file, as a report does (a
    # reference's --force replaces an earlier reference, never a run's record).
    flags = ["md", "html", "json", "junit"] + (
        ["out"] if command in ("convert", "reference") else []
    )
    taken = _taken_paths(args, flags)
    for flag in flags:
        path = getattr(args, flag, None)
        shown = _as_typed(command, flag, argv)
        if isinstance(path, os.PathLike) and os.fspath(path) == "-":
            if flag in ("md", "html") and command in SUMMARY_ON_STDOUT:
                raise InputError(
                    f"{shown} - (standard output): `{command}` prints its summary there; name a "
                    f"file (or `minicluster report RESULT --{flag} -` after the run)"
                )
            continue
        if not isinstance(path, os.PathLike):
            continue
        target = Path(path).resolve()
        if os.path.isdir(path):
            raise InputError(f"{shown} {path} is a directory; name a file")
        if target in taken:
            what = taken[target]
            said = "one of this command's inputs" if what is None else f"this command's {what}"
            raise InputError(f"{shown} {path} is {said}; name another file")
        if _recorded(target):
            raise InputError(
                f"{shown} {path} would overwrite a file minicluster records (results, rank "
                "records, a run's config or plan); name another file"
            )
        kind = history_database(target)
        if kind is not None:
            raise InputError(
                f"{shown} {path} is a {kind} database (a history of runs); name another file"
            )
        folder = target.parent
        if not folder.exists():  # a typo'd folder (`/nonexistent/dir/x.md`) is not made silently
            given = Path(path).parent
            raise InputError(
                f"{shown} {path}: folder {given} does not exist; make it first "
                f"(mkdir -p {given}) or name a file in an existing folder"
            )
        try:
            probe_writable_dir(folder)  # a file can be created there, as the write will
        except OSError as e:
            raise InputError(
                f"{shown} {path}: cannot write in {folder}: {e.strerror or e}"
            ) from None


# positional arguments: said as "one of this command's inputs"
_INPUT_NAMES = ("inputs", "result", "input", "dir", "results")


def _taken_paths(args: object, flags: list[str]) -> dict[Path, str | None]:
    """Every path the command reads or writes other than its report files, resolved: its inputs
    (a run directory's result.json too; each run of `A1,A2` and `FILE#N`), `--db` (the history
    database, its default too), `-c`, `--baseline`, `--out`...; each with the flag that named it
    (None for a positional input)."""
    taken: dict[Path, str | None] = {}
    names = [n for n in vars(args) if n not in flags] if hasattr(args, "__dict__") else []
    for name in sorted(names, key=lambda n: n not in _INPUT_NAMES):
        label = None if name in _INPUT_NAMES else "--" + name.replace("_", "-")
        for p in _as_list(getattr(args, name, None)):
            for part in os.fspath(p).split(","):
                one = Path(part.split("#", 1)[0]) if part else None
                if one is None:
                    continue
                for q in (one, one / rundir.RESULT_FILE) if one.is_dir() else (one,):
                    taken.setdefault(q.resolve(), label)
    if getattr(args, "command", None) == "history" and getattr(args, "db", None) is None:
        from minicluster.compare.history import default_path

        taken.setdefault(default_path().resolve(), "history database")
    return taken


# the first bytes of a SQLite database and of a SQLite write-ahead log; DuckDB's magic follows
# an 8-byte checksum
_SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
_DUCKDB_MAGIC = b"DUCK"


def history_database(path: Path) -> str | None:
    """ "SQLite" or "DuckDB" when `path` is such a database (by its header), or the write-ahead
    log, shared memory or journal file of one (`DB-wal`, `DB-shm`, `DB-journal` beside a
    database); None otherwise (a file that does not exist, an empty one, any other)."""
    for suffix in ("-wal", "-shm", "-journal", ".wal"):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            base = history_database(path.with_name(path.name[: -len(suffix)]))
            if base is not None:
                return base
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head.startswith(_SQLITE_MAGIC) or head[:4] in _WAL_MAGIC:
        return "SQLite"
    if head[8:12] == _DUCKDB_MAGIC:
        return "DuckDB"
    return None


def _as_list(value: object) -> list[os.PathLike[str]]:
    if isinstance(value, os.PathLike):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, os.PathLike)]
    return []


def _recorded(target: Path) -> bool:
    """Whether `target` names a file a run, sweep or node writes as its record."""
    name = target.name
    return (
        name in rundir.RECORDED_FILES
        or name == rundir.LAYOUTS_FILE
        or name.startswith(("result.partial-", "result.rejudged-"))
        or target.parent.name in (rundir.RANKS_DIR, rundir.FLIGHT_RECORDER_DIR)
        or fnmatch.fnmatch(name, rundir.RANK_FILE_GLOB)
        or fnmatch.fnmatch(name, rundir.SUMMARY_FILE_GLOB)
    )
