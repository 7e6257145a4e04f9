"""Exception types and the exit code each one maps to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED_CHECK = 1  # a finding: validation failed, a regression, slow link, outlier node
EXIT_BAD_INPUT = 2  # bad usage, config, file or format
EXIT_RUN_FAILED = 3  # a rank crashed, hung or timed out
EXIT_INTERNAL = 70  # a bug in minicluster (EX_SOFTWARE of sysexits.h): never a verdict
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: what ran is kept, status incomplete


class MiniclusterError(Exception):
    """Base of every error the CLI turns into one line and an exit code."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(MiniclusterError, ValueError):
    """A config file or option is missing, malformed or out of range."""


class InputError(MiniclusterError, ValueError):
    """An input file (result, rank record, report) cannot be read or understood."""


class RunFailedError(MiniclusterError):
    """The run itself failed: a rank crashed, hung or timed out."""

    exit_code = EXIT_RUN_FAILED


class RunIncompleteError(MiniclusterError):
    """The run read was interrupted before any rank recorded anything: nothing to judge, and
    no failure of the run (exit 1, as any interrupted run `aggregate` reads)."""

    exit_code = EXIT_FAILED_CHECK
